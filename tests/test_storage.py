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
    assert local.parent.parent == tmp_path / "mirror" and local.name == "exp" and (local / "trial" / "result.json").read_text() == "{}"
    (local / "figures").mkdir()
    (local / "figures" / "a.png").write_bytes(b"png")
    (local / "report.md").write_text("# r")
    storage.push(remote, "exp", ["report.md", "figures/a.png"])
    assert (tmp_path / "remote" / "exp" / "figures" / "a.png").read_bytes() == b"png"
    assert (tmp_path / "remote" / "exp" / "report.md").read_text() == "# r"
    # Local storage: the experiment folder is its own "mirror"; nothing is copied.
    assert storage.local_folder(str(tmp_path), "exp") == tmp_path / "exp"


def test_two_uris_with_one_experiment_name_have_a_mirror_each(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "MIRROR", tmp_path / "mirror")
    one, other = storage.local_folder("s3://a/sweeps", "exp"), storage.local_folder("s3://b/sweeps", "exp")
    assert one != other and one.name == other.name == "exp"  # the name stays the folder's (the record reads it)
    assert storage.local_folder("s3://a/sweeps", "exp") == one  # and the same URI finds the same mirror



def test_a_pull_never_shortens_the_drivers_logs(tmp_path, monkeypatch):
    """A run that ended before sending its logs to the URI: the mirror's longer copy is kept."""
    monkeypatch.setattr(storage, "MIRROR", tmp_path / "mirror")
    remote = f"file://{tmp_path}/remote"
    (tmp_path / "remote" / "exp" / "tune_ae").mkdir(parents=True)
    (tmp_path / "remote" / "exp" / "tune_ae" / "trials.jsonl").write_text('{"a": 1}\n')
    (tmp_path / "remote" / "exp" / "other.json").write_text("remote")
    local = storage.local_folder(remote, "exp")
    (local / "tune_ae").mkdir(parents=True)
    (local / "tune_ae" / "trials.jsonl").write_text('{"a": 1}\n{"b": 2}\n')
    storage.pull(remote, "exp")
    assert (local / "tune_ae" / "trials.jsonl").read_text() == '{"a": 1}\n{"b": 2}\n'
    assert (local / "other.json").read_text() == "remote"
    assert storage.own_logs(remote, "exp") == ["tune_ae/trials.jsonl"]
    storage.push(remote, "exp", storage.own_logs(remote, "exp"))
    assert (tmp_path / "remote" / "exp" / "tune_ae" / "trials.jsonl").read_text() == '{"a": 1}\n{"b": 2}\n'
    storage.rename_remote(remote, "exp", [("other.json", ".other.json.superseded")])
    assert (tmp_path / "remote" / "exp" / ".other.json.superseded").read_text() == "remote"
