import json
import os

import pandas as pd
import pytest

from tune_ae import results


def fake_trial(folder, trial_id, hidden, epochs_reported, planned=3, error=False, checkpoints=()):
    trial_dir = folder / f"train_autoencoder_{trial_id}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "params.json").write_text(json.dumps({"hidden": hidden, "epochs": planned, "batch_size": 10}))
    lines = []
    for i, epoch in enumerate(epochs_reported):
        lines.append(json.dumps({
            "trial_id": trial_id, "hidden": hidden, "dropout": 0.1, "lr": 1e-3, "seed": 0, "batch_size": 10,
            "epochs": planned, "output_activation": "relu", "precision": "fp32", "epoch": epoch,
            "train_loss": 0.1 / epoch + i * 1e-6, "val_loss": 0.2 / epoch, "epoch_time_s": 1.0,
            "images_per_s": 10.0, "parameters": 5, "device": "cpu", "threads": 1, "node_id": "n",
            "trial_started_at": 100.0, "reported_at": 100.0 + 2 * (i + 1),
        }))
    (trial_dir / "result.json").write_text("\n".join(lines) + "\n" + '{"cut sho')  # a killed writer's last line
    if error:
        (trial_dir / "error.txt").write_text("Failure # 1\nTraceback ...\n\nboom\n")
    for c in checkpoints:
        (trial_dir / f"checkpoint_{c:06d}").mkdir()
        (trial_dir / f"checkpoint_{c:06d}" / "state.pt").write_bytes(b"")  # latest_checkpoint wants one
    return trial_dir


def test_epochs_once_each_last_report_wins_and_trial_summary(tmp_path):
    a = fake_trial(tmp_path, "a", 64, [1, 2, 3, 2, 3], checkpoints=(2, 10))
    fake_trial(tmp_path, "b", 32, [1, 2], error=True)
    fake_trial(tmp_path, "c", 16, [1], planned=5)
    epochs = results.load_epochs(tmp_path)
    assert epochs.groupby("trial_id")["epoch"].apply(list).to_dict() == {"a": [1, 2, 3], "b": [1, 2], "c": [1]}
    # The re-reported epoch 2 of trial a (the 4th line) replaced the first report.
    assert epochs[(epochs.trial_id == "a") & (epochs.epoch == 2)]["train_loss"].item() == pytest.approx(0.05 + 3e-6)

    trials = results.summarise_trials(epochs).set_index("trial_id")
    assert trials.loc["a", "status"] == "done" and trials.loc["b", "status"] == "error"
    assert trials.loc["c", "status"] == "interrupted"  # fewer epochs, no end recorded: unfinished, never "stopped early"
    assert trials.loc["b", "error"] == "boom" and pd.isna(trials.loc["a", "error"])
    assert trials.loc["a", "best_epoch"] == 3 and trials.loc["a", "best_val_loss"] == pytest.approx(0.2 / 3)
    assert trials.loc["a", "epochs_done"] == 3 and trials.loc["a", "wall_time_s"] == pytest.approx(10.0)
    assert trials.loc["a", "checkpoint"] == str(a / "checkpoint_000010")
    assert pd.isna(trials.loc["b", "checkpoint"])


def test_save_tables_parquet_and_csv_agree(tmp_path):
    fake_trial(tmp_path, "a", 64, [1, 2, 3])
    paths = results.save_tables(tmp_path)
    assert set(paths) == {"epochs.parquet", "epochs.csv", "trials.parquet", "trials.csv"}
    parquet, csv = pd.read_parquet(paths["epochs.parquet"]), pd.read_csv(paths["epochs.csv"])
    assert parquet["val_loss"].tolist() == pytest.approx(csv["val_loss"].tolist())
    assert results.load_table(tmp_path, "trials")["trial_id"].tolist() == ["a"]


def test_tables_without_saved_files_and_empty_folders(tmp_path):
    fake_trial(tmp_path / "x", "a", 64, [1])
    assert len(results.load_table(tmp_path / "x", "epochs")) == 1
    assert results.load_epochs(tmp_path / "empty").empty
    with pytest.raises(ValueError, match="table must be one of epochs, trials"):
        results.load_table(tmp_path, "nope")


def test_every_trial_of_the_grid_is_accounted_for(tmp_path):
    """Tune's status decides; trials of the recorded grid without a folder are 'not started'."""
    from tune_ae.config import SweepSettings
    from tune_ae.experiment import write_meta
    from tune_ae.grids import Grid

    grid = Grid({"hidden": (16, 32, 64, 128, 256), "epochs": (3,), "batch_size": (10,)})
    write_meta(tmp_path, "custom", grid, SweepSettings(storage_path=str(tmp_path.parent), name=tmp_path.name),
               {"folder": "/d"}, {"command": []})
    dirs = {h: fake_trial(tmp_path, f"t{h}", h, epochs, error=h == 32)
            for h, epochs in ((16, [1, 2, 3]), (32, [1]), (64, [1, 2]), (128, []))}
    state = {"trial_data": [[json.dumps({"relative_logdir": dirs[h].name, "status": status}), "{}"]
                            for h, status in ((16, "TERMINATED"), (32, "ERROR"), (64, "RUNNING"), (128, "PENDING"))]}
    (tmp_path / "experiment_state-2026-11-27_10-00-00.json").write_text(json.dumps(state))
    trials = results.load_trials(tmp_path).set_index("hidden")
    assert trials["status"].to_dict() == {16: "done", 32: "error", 64: "interrupted", 128: "not started",
                                          256: "not started"}
    assert trials.loc[32, "error"] == "boom" and trials.loc[64, "epochs_done"] == 2


def test_tables_of_folders_written_before_a_field_existed(tmp_path):
    """Reports without a field added since (here: all but hidden) read as that field's default."""
    trial_dir = fake_trial(tmp_path, "a", 64, [1, 2, 3])
    rows = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()[:-1]]
    (trial_dir / "result.json").write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "precision"})
                                                     for r in rows) + "\n")
    epochs = results.load_epochs(tmp_path)
    assert (epochs["precision"] == "fp32").all() and list(epochs.columns[:-1]) == results.EPOCH_COLUMNS
    assert (epochs["weight_decay"] == 0.0).all()  # never reported by these trials: they ran without it


def test_saved_tables_are_relative_and_a_damaged_one_is_rebuilt(tmp_path):
    folder = tmp_path / "exp"
    fake_trial(folder, "a", 64, [1, 2, 3], checkpoints=(0,))
    results.save_tables(folder)
    saved = pd.read_parquet(folder / "trials.parquet")
    assert saved["trial_dir"].tolist() == ["train_autoencoder_a"]
    assert saved["checkpoint"].tolist() == ["train_autoencoder_a/checkpoint_000000"]
    moved = tmp_path / "moved"
    folder.rename(moved)  # read from its new place, never the old one
    assert results.load_table(moved, "trials")["checkpoint"].tolist() == [str(moved / "train_autoencoder_a/checkpoint_000000")]
    (moved / "epochs.parquet").write_bytes(b"PAR1")  # a writer killed mid-file (before whole-file writes)
    with pytest.warns(UserWarning, match="unreadable"):
        epochs = results.load_table(moved, "epochs")
    assert epochs["epoch"].tolist() == [1, 2, 3] and epochs["trial_dir"].tolist() == [str(moved / "train_autoencoder_a")] * 3


def test_a_start_from_an_older_checkpoint_voids_the_later_rows_of_the_run_it_replaced(tmp_path):
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    rows = [{"epoch": e, "val_loss": 1.0} for e in (1, 2, 3, 4, 5)]  # a run killed after epoch 5
    rows += [{"epoch": 3, "val_loss": 0.5, "resumed_from_epoch": 2}, {"epoch": 4, "val_loss": 0.4}]  # resumed at 2
    (trial_dir / results.EPOCHS_LOG).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(r["epoch"], r["val_loss"]) for r in results.read_reports(trial_dir)] == [(1, 1.0), (2, 1.0), (3, 0.5), (4, 0.4)]


def test_a_trial_killed_before_tune_wrote_its_params_still_has_its_epochs(tmp_path):
    trial_dir = fake_trial(tmp_path, "a", 64, [1, 2], planned=5)
    os.rename(trial_dir / "result.json", trial_dir / results.EPOCHS_LOG)  # the driver's log, ...
    (trial_dir / "params.json").unlink()  # ...and no params.json yet
    assert results.load_epochs(tmp_path)["epoch"].tolist() == [1, 2]


def test_a_trial_this_run_did_not_start_but_an_earlier_one_trained_is_interrupted(tmp_path):
    from tune_ae import record

    trial_dir = fake_trial(tmp_path, "a", 64, [1, 2], planned=5)
    record.Recorder(tmp_path, []).never_started(trial_dir.name, {"hidden": 64, "epochs": 5})
    assert results.load_trials(tmp_path)["status"].tolist() == ["interrupted"]
