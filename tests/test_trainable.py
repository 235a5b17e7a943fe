"""The trainable under Tune: retried from its own checkpoints, reproducing an uninterrupted run.

(Device fallback and thread counts under a GPU share are checked in test_sweep.py.)
"""

from pathlib import Path

import torch

from tune_ae import results, sweep, train
from tune_ae.config import SweepSettings
from tune_ae.data import load_fashion_mnist
from tune_ae.grids import Grid

from conftest import write_dataset
from faults import crash_once_at_epoch


def test_crashed_trial_is_retried_from_its_checkpoint(ray_session, tmp_path):
    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    grid = Grid(hidden=(16, 32), epochs=6, batch_size=50)
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="crash", checkpoint_every=2, max_failures=2)
    markers = tmp_path / "markers"
    markers.mkdir()
    sweep.build_tuner(grid, s, data, trainable=crash_once_at_epoch(3, str(markers))).fit()

    assert len(list(markers.iterdir())) == 2  # each trial really crashed once
    folder = tmp_path / "store" / "crash"
    epochs, trials = results.load_epochs(folder), results.load_trials(folder)
    assert (trials["status"] == "done").all()
    for trial_id, t in epochs.groupby("trial_id"):
        assert t["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
        trial_dir = Path(t["trial_dir"].iloc[0])
        assert (trial_dir / "error.txt").is_file()
        # Raw reports: 1-3, the crash, then 3-6 again from the epoch-2 checkpoint (not from 1).
        assert [r["epoch"] for r in results.read_reports(trial_dir)] == [1, 2, 3, 3, 4, 5, 6]
    # Restarted at the epoch-2 checkpoint, the trial reproduces an uninterrupted run exactly.
    torch.set_num_threads(1)
    train_x, val_x = (train.to_device(x, torch.device("cpu")) for x in (data.train_images, data.test_images))
    for config in grid.trial_configs():
        reference = [m["val_loss"] for m in train.train(config, train_x, val_x)]
        got = epochs[epochs["hidden"] == config.hidden]["val_loss"].tolist()
        assert got == reference
