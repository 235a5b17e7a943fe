"""Where experiments live: a local folder or a URI (with its local mirror)."""

import pytest

from tune_ae import storage
from tune_ae.config import ConfigError


def test_storage_checks(tmp_path):
    assert storage.check_storage(str(tmp_path / "new" / "deep")) == str(tmp_path / "new" / "deep")
    assert storage.check_storage(f"file://{tmp_path}/remote/") == f"file://{tmp_path}/remote"
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="not writable"):
        storage.check_storage(str(tmp_path / "file" / "sub"))
    with pytest.raises(ConfigError, match="cannot be opened"):
        storage.check_storage("nosuchscheme://bucket/x")


def test_uri_storage_mirror_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "MIRROR", tmp_path / "mirror")
    remote = f"file://{tmp_path}/remote"
    (tmp_path / "remote" / "exp" / "trial").mkdir(parents=True)
    (tmp_path / "remote" / "exp" / "trial" / "result.json").write_text("{}")
    assert storage.exists(remote, "exp") and not storage.exists(remote, "other")
    local = storage.pull(remote, "exp")
    assert local == tmp_path / "mirror" / "exp" and (local / "trial" / "result.json").read_text() == "{}"
    (local / "figures").mkdir()
    (local / "figures" / "a.png").write_bytes(b"png")
    (local / "report.md").write_text("# r")
    storage.push(remote, "exp", ["report.md", "figures/a.png"])
    assert (tmp_path / "remote" / "exp" / "figures" / "a.png").read_bytes() == b"png"
    assert (tmp_path / "remote" / "exp" / "report.md").read_text() == "# r"
    # Local storage: the experiment folder is its own "mirror"; nothing is copied.
    assert storage.local_folder(str(tmp_path), "exp") == tmp_path / "exp"
