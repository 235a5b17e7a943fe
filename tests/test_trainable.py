"""The trainable under Tune: retried from its own checkpoints, reproducing an uninterrupted run.

(Device fallback and thread counts under a GPU share are checked in test_tuner.py.)
"""

from pathlib import Path

import pytest
import torch

from tune_ae import results, train, tuner
from tune_ae.config import SweepSettings, TrialConfig
from tune_ae.data import load_fashion_mnist
from tune_ae.grids import Grid
from tune_ae.plan import new as new_plan

from conftest import write_dataset
from faults import as_if_written_on_cuda, crash_once_at_epoch


def logged(trial_dir: Path) -> list[dict]:
    """Every result the driver logged, in order (the tables keep the last of each epoch)."""
    return results.json_lines(trial_dir / results.EPOCHS_LOG)


def test_crashed_trials_are_retried_from_their_checkpoints_even_one_written_on_cuda(ray_session, tmp_path):
    """Two trials crash once after epoch 3; h = 32 resumes from its epoch-2 checkpoint as it was
    and reproduces an uninterrupted run exactly; h = 16's checkpoint is first rewritten the way a
    CUDA run writes it (a trial restarted on a CPU-only node): same weights, new random streams.
    One fit for both, as each trial costs a Ray worker's start."""
    def make_checkpoint_cuda_style(trial_dir):
        # Tune persists checkpoints under the storage path, not in the trial's working folder.
        stored = tmp_path / "store" / "crash" / Path(trial_dir).name
        if not stored.name.startswith("hidden=16,"):
            return
        latest = max(stored.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))
        as_if_written_on_cuda(latest / train.STATE_FILE)

    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    grid = Grid({"hidden": (16, 32), "epochs": (6,), "batch_size": (50,)})
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="crash", checkpoint_every=2, max_failures=2,
                      cpus_per_trial=1)  # a fixed thread count: the reproducible mode
    markers = tmp_path / "markers"
    markers.mkdir()
    tuner.build_tuner(new_plan(grid, s), data, trainable=crash_once_at_epoch(3, str(markers), make_checkpoint_cuda_style)).fit()

    assert len(list(markers.iterdir())) == 2  # each trial really crashed once
    folder = tmp_path / "store" / "crash"
    epochs, trials = results.load_epochs(folder), results.load_trials(folder)
    assert (trials["status"] == "done").all()
    for trial_id, t in epochs.groupby("trial_id"):
        assert t["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
        trial_dir = Path(t["trial_dir"].iloc[0])
        assert (trial_dir / "error.txt").is_file()
        # Raw reports: 1-3, the crash, then 3-6 again from the epoch-2 checkpoint (not from 1).
        assert [r["epoch"] for r in logged(trial_dir)] == [1, 2, 3, 3, 4, 5, 6]
    torch.set_num_threads(1)
    train_x, val_x = (train.to_device(x, torch.device("cpu")) for x in (data.train_images, data.test_images))
    reference = {c.hidden: [m["val_loss"] for m in train.train(c, train_x, val_x)] for c in grid.trial_configs()}
    got = {h: epochs[epochs["hidden"] == h]["val_loss"].tolist() for h in (16, 32)}
    # Restarted at the epoch-2 checkpoint, the trial reproduces an uninterrupted run exactly.
    assert got[32] == reference[32]
    # Same weights at epoch 2, new random streams after it: epoch 3 differs from the first try.
    assert got[16][:2] == reference[16][:2] and got[16][2] != reference[16][2]
    assert got[16][-1] == pytest.approx(reference[16][-1], rel=0.1)


def test_a_trial_in_a_reused_worker_does_not_depend_on_its_predecessor(ray_session, tmp_path):
    """One trial at a time (2 CPUs each on 2), so the second trial runs in the first trial's
    process: a wider model with more dropout first, then the trial under test (h = 8, dropout
    0.1), whose losses must be those of the same trial trained alone in a fresh process state."""
    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    # Widest first: the predecessor (h = 64, dropout 0.3), then the trial under test.
    grid = Grid({"hidden": (64, 8), "dropout": (0.1, 0.3), "epochs": (3,), "batch_size": (50,)})
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="reused", cpus_per_trial=2)
    tuner.build_tuner(new_plan(grid, s), data).fit()
    folder = tmp_path / "store" / "reused"
    pids = {r["pid"] for d in results.trial_dirs(folder) for r in logged(d)}
    assert len(pids) == 1, f"the trials ran in {len(pids)} processes, not one reused worker"
    epochs = results.load_epochs(folder)
    got = epochs[(epochs["hidden"] == 8) & (epochs["dropout"] == 0.1)][["train_loss", "val_loss"]].values.tolist()
    assert len(got) == 3
    torch.set_num_threads(2)  # the trial's CPUs are its threads
    train_x, val_x = (train.to_device(x, torch.device("cpu")) for x in (data.train_images, data.test_images))
    alone = [[m["train_loss"], m["val_loss"]]
             for m in train.train(TrialConfig(hidden=8, dropout=0.1, epochs=3, batch_size=50), train_x, val_x)]
    assert got == alone


def test_resuming_a_sweep_from_before_a_field_existed_runs_it_at_the_default(ray_session, tmp_path):
    """Tune restores each trial's config as it was saved; one written before weight_decay existed lacks it."""
    from ray import tune

    from tune_ae.callbacks import ApplyOnResume

    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    grid = Grid({"hidden": (16,), "epochs": (2,), "batch_size": (50,)})
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="old", max_failures=0)
    older = {k: v for k, v in tuner.param_space(grid).items() if k != "weight_decay"}
    resources = tuner.trial_resources(s, 1)
    tune.Tuner(tuner.wrapped_trainable(s, resources, data, tuner.train_autoencoder), param_space=older,
               run_config=tuner.run_config(grid, s, [])).fit()
    assert results.load_trials(tmp_path / "store" / "old")["status"].tolist() == ["error"]  # today's trainable refuses it

    tuner.restore_tuner(tmp_path / "store" / "old", grid, s, resources, data, callbacks=[ApplyOnResume(resources, 0)]).fit()
    trials = results.load_trials(tmp_path / "store" / "old")
    assert trials["status"].tolist() == ["done"] and trials["weight_decay"].tolist() == [0.0]


def test_freed_cores_say_so_once_per_freeing(monkeypatch):
    from tune_ae import ray_internals, trainable

    seen = iter([0.0, 1.0, 1.0, 0.0, 2.0, 3.0, 0.5])
    monkeypatch.setattr(ray_internals, "free_cpus", lambda node: next(seen))
    freed = trainable.FreedCores("n", every_s=0.0)
    assert [freed.came_free() for _ in range(7)] == [False, True, False, False, True, True, False]
    seldom = trainable.FreedCores("n", every_s=3600.0)
    monkeypatch.setattr(ray_internals, "free_cpus", lambda node: 2.0)
    assert [seldom.came_free() for _ in range(3)] == [True, False, False]  # Ray asked once an hour at most
