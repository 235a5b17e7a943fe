import json

import pytest

from tune_ae import experiment
from tune_ae.config import ConfigError, SweepSettings
from tune_ae.grids import GRIDS


def test_record_is_written_then_extended_per_run(tmp_path):
    settings = SweepSettings(storage_path=str(tmp_path), name="e")
    folder = tmp_path / "e"
    run = experiment.this_run(None)
    assert {"command", "versions", "git_commit", "started", "host"} <= set(run)
    assert run["versions"]["torch"] != "not installed" and run["versions"]["ray"] != "not installed"
    experiment.write_meta(folder, "smoke", GRIDS["smoke"], settings, {"folder": "/d"}, run)
    experiment.write_meta(folder, "smoke", GRIDS["smoke"], settings, {"folder": "/d"}, {**run, "command": ["again"]})
    meta = json.loads((folder / "tune_ae" / "experiment.json").read_text())
    assert meta["grid"]["axes"]["hidden"] == list(GRIDS["smoke"].values("hidden")) and meta["settings"]["name"] == "e"
    assert experiment.recorded_grid(meta) == GRIDS["smoke"]
    assert experiment.recorded_settings(meta, str(tmp_path), "e") == settings
    assert [r["command"] for r in meta["runs"]][1] == ["again"] and len(meta["runs"]) == 2
    assert experiment.latest_experiment(str(tmp_path)) == folder


@pytest.mark.parametrize(
    "kw, words",
    [
        ({"cpus_per_trial": 0}, "cpus-per-trial must be auto or a finite number > 0"),
        ({"cpus_per_trial": float("inf")}, "cpus-per-trial must be auto or a finite number > 0"),
        ({"gpus_per_trial": -1}, "gpus-per-trial must be auto, a fraction"),
        ({"gpus_per_trial": float("nan")}, "gpus-per-trial must be auto, a fraction"),
        ({"gpus_per_trial": float("inf")}, "gpus-per-trial must be auto, a fraction"),
        ({"pending_timeout_s": 0}, "pending-timeout must be"),
        ({"gpus_per_trial": 1.5}, "gpus-per-trial must be auto, a fraction"),
        ({"scheduler": "pbt"}, "scheduler must be one of fifo, asha"),
        ({"checkpoint_every": 0}, "checkpoint_every must be >= 1"),
        ({"name": "a/b"}, "name must be a plain folder name"),
        ({"name": "../other"}, "name must be a plain folder name"),
        ({"name": ""}, "name must be a plain folder name"),
    ],
)
def test_sweep_settings_validation(tmp_path, kw, words):
    with pytest.raises(ConfigError) as err:
        SweepSettings(**{"storage_path": str(tmp_path), "name": "n", **kw})
    assert words in str(err.value)
