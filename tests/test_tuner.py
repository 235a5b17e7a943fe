"""The Tuner as built by tuner.py, run in-process on one shared Ray instance (2 CPUs, 1 logical GPU)."""

from tune_ae import results, tuner
from tune_ae.config import SweepSettings
from tune_ae.data import load_fashion_mnist
from tune_ae.grids import Grid
from tune_ae.plan import new as new_plan

from conftest import write_dataset


def settings(tmp_path, name, **kw):
    return SweepSettings(storage_path=str(tmp_path / "store"), name=name, **kw)


def test_trial_resources_share_the_connected_cluster(ray_session, tmp_path):
    """ray_session: one node of 2 CPUs and 1 logical GPU (allocation.py's arithmetic on what Ray reports)."""
    assert tuner.trial_resources(settings(tmp_path, "a", cpus_per_trial=0.5), 4) == {"cpu": 0.5, "gpu": 0.25}
    # auto: 4 trials, 2 at a time (one thread each), each with half the card.
    assert tuner.trial_resources(settings(tmp_path, "a"), 4) == {"cpu": 1.0, "gpu": 0.5}
    assert tuner.trial_resources(settings(tmp_path, "a"), 1) == {"cpu": 2.0, "gpu": 1.0}
    assert tuner.trial_resources(settings(tmp_path, "a", gpus_per_trial=0.0), 1) == {"cpu": 2.0, "gpu": 0.0}


def test_quarter_gpus_run_four_trials_concurrently_on_cpu(quarter_gpu_study):
    """The shared sweep (conftest.quarter_gpu_study): 8 trials, 0.5 CPU and 0.25 of the logical GPU each."""
    trials = results.load_trials(quarter_gpu_study)
    assert len(trials) == 8 and (trials["status"] == "done").all()
    # The first four trials started before any trial ended: four held their quarter GPU at once.
    assert sorted(trials["started_at"])[3] < trials["ended_at"].min()
    # The logical GPU has no CUDA behind it: each trial fell back to the CPU, one thread.
    epochs = results.load_epochs(quarter_gpu_study)
    assert set(epochs["device"]) == {"cpu"} and set(epochs["threads"]) == {1}


def test_asha_stops_poor_trials_early(ray_session, tmp_path):
    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    # 12 epochs: one rung (ASHA's grace period, epoch 10) before the end.
    grid = Grid({"hidden": (4, 8, 64, 128), "epochs": (12,), "batch_size": (50,), "lr": (3e-3,)})
    # One trial at a time (2 CPUs each on 2), in one reused worker.
    s = settings(tmp_path, "asha", scheduler="asha", checkpoint_every=10, cpus_per_trial=2)
    tuner.build_tuner(new_plan(grid, s), data).fit()
    trials = results.load_trials(tmp_path / "store" / "asha").set_index("hidden")
    # Widest trials run first and set the bar at the first rung (epoch 10); narrow ones fall below it.
    assert (trials["status"] == "stopped early").sum() >= 1
    assert set(trials.loc[trials["status"] == "stopped early", "epochs_done"]) == {10}
    assert trials.loc[128, "status"] == "done" and trials.loc[128, "epochs_done"] == 12


def test_trials_that_can_never_start_stop_the_sweep(ray_session, tmp_path):
    """4 CPUs per trial on a 2-CPU Ray: nothing runs; the watchdog ends the wait instead of hanging."""
    import time

    from tune_ae.callbacks import PendingWatchdog

    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    watchdog = PendingWatchdog(limit_s=3)
    started = time.monotonic()
    tuner.build_tuner(new_plan(Grid({"hidden": (8,), "epochs": (2,)}), settings(tmp_path, "stuck", cpus_per_trial=4)),
                      data, callbacks=[watchdog]).fit()
    assert watchdog.fired and time.monotonic() - started < 60
    trials = results.load_trials(tmp_path / "store" / "stuck")
    assert trials["status"].tolist() == ["not started"]  # accounted for, from the recorded grid or Tune's state


def test_progress_lines_keep_their_labels_in_one_column():
    import io
    from types import SimpleNamespace

    from tune_ae.callbacks import Progress

    grid = Grid({"hidden": (64, 512), "dropout": (0.0, 0.1), "lr": (3e-4, 1e-3)})
    out = io.StringIO()
    progress = Progress(grid.swept(), [c.to_dict() for c in grid.trial_configs()], out=out)
    for config in (grid.trial_configs()[0], grid.trial_configs()[-1]):
        progress.line(SimpleNamespace(config=config.to_dict()), "started")
    short, long = out.getvalue().splitlines()
    assert "h=512 dropout=0.1 lr=0.001" in long + short and "h=64 dropout=0.0 lr=0.0003" in long + short
    assert short.index("started") == long.index("started")
