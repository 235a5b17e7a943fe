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


def fake_trial(folder, config: dict, epochs_done: int):
    """A trial folder as a sweep leaves it: params.json and the driver's epochs log."""
    import json

    from tune_ae import ray_internals, results, tuner

    trial_dir = folder / tuner.folder_name(config)
    trial_dir.mkdir(parents=True)
    (trial_dir / ray_internals.PARAMS_FILE).write_text(json.dumps(config))
    rows = [{"trial_id": trial_dir.name[:8], **config, "epoch": e, "train_loss": 0.1 / e, "val_loss": 0.1 / e,
             "epoch_time_s": 1.0, "images_per_s": 1.0, "trial_started_at": 0.0, "reported_at": float(e)}
            for e in range(1, epochs_done + 1)]
    (trial_dir / results.EPOCHS_LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return trial_dir


def test_a_fresh_tuner_leaves_only_finished_trials_be(tmp_path):
    """Done, or stopped by ASHA as Tune's saved state says; a trial cut short without such a
    record (an interrupted one whose Tune state is lost) is continued, not taken as finished."""
    import json

    from tune_ae import experiment, ray_internals
    from tune_ae.config import SweepSettings
    from tune_ae.grids import Grid

    grid = Grid({"hidden": (8, 16, 32), "epochs": (10,)})
    folder = tmp_path / "e"
    experiment.write_meta(folder, "custom", grid, SweepSettings(storage_path=str(tmp_path), name="e"),
                          {"folder": "-", "subset": None, "train_images": 1, "test_images": 1}, experiment.this_run(None))
    configs = [c.to_dict() for c in grid.trial_configs()]
    fake_trial(folder, configs[0], 10)  # done
    cut = fake_trial(folder, configs[1], 3)  # cut short, no record of why
    stopped = fake_trial(folder, configs[2], 3)
    assert sorted(c["hidden"] for c in sweep.finished_trials(folder)) == [8]
    state = {"trial_data": [[json.dumps({"relative_logdir": stopped.name, "status": "TERMINATED", "config": configs[2]}),
                             json.dumps({})],
                            [json.dumps({"relative_logdir": cut.name, "status": "PAUSED", "config": configs[1]}),
                             json.dumps({})]]}
    (folder / ray_internals.STATE_GLOB.replace("*", "2026-12-01_00-00-00")).write_text(json.dumps(state))
    assert sorted(c["hidden"] for c in sweep.finished_trials(folder)) == [8, 32]  # ASHA stopped 32; 16 continues
