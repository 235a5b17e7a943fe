"""What sweep.py checks before a trial runs: storage every node sees, and the probe that finds out."""

import pytest

from tune_ae import sweep
from tune_ae.config import ConfigError


def test_unshared_storage_on_a_multi_node_cluster_is_refused(monkeypatch):
    monkeypatch.setattr(sweep, "nodes_missing", lambda path: ["10.0.0.7"])
    with pytest.raises(ConfigError) as err:
        sweep.check_shared_storage("/home/me/results")
    message = str(err.value)
    assert "not visible from node(s) 10.0.0.7" in message
    assert "s3://" in message and "gs://" in message and "shared file system" in message


def test_storage_probe_on_one_node_and_for_uris(ray_session, tmp_path, monkeypatch):
    assert sweep.nodes_missing(str(tmp_path)) == []  # a single node always sees its own disk: no probe
    assert sweep.nodes_missing("s3://bucket/results") == []  # Tune reaches a URI from every node itself
    assert list(tmp_path.iterdir()) == []
    # The probe itself: the one node, listed twice as if two, reads the file the driver wrote;
    # one that cannot (listed with a node id none has) is named; the probe file is removed.
    (node,) = [n for n in ray_session.nodes() if n["Alive"]]
    monkeypatch.setattr(sweep.ray, "nodes", lambda: [node, node])
    assert sweep.nodes_missing(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "elsewhere").mkdir()
    write = sweep.Path.write_text  # what a node with another disk sees: not the driver's token
    monkeypatch.setattr(sweep.Path, "write_text", lambda self, text: write(self, "not " + text))
    assert sweep.nodes_missing(str(tmp_path / "elsewhere")) == [node["NodeManagerAddress"]] * 2
    assert list((tmp_path / "elsewhere").iterdir()) == []
