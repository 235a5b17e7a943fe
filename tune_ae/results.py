"""An experiment folder -> two pandas tables, read straight from Tune's trial files.

Reading `result.json` (one JSON line per reported epoch) needs no Ray session, so the
tables load anywhere the folder is: a laptop, a notebook, after the cluster is gone.

- `epochs`: one row per trial x epoch.
- `trials`: one row per trial: final and best val_loss, epochs done, wall time, status.

A trial restored from a checkpoint re-reports the epochs after that checkpoint; the last
report of an epoch wins, so every trial has each epoch exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

EPOCH_COLUMNS = [
    "trial_id", "hidden", "dropout", "lr", "seed", "batch_size", "epochs", "output_activation",
    "precision", "epoch", "train_loss", "val_loss", "epoch_time_s", "images_per_s",
    "parameters", "device", "threads", "node_id", "trial_started_at", "reported_at",
]
TABLES = ("epochs", "trials")


def trial_dirs(experiment_dir: str | Path) -> list[Path]:
    """Trial folders: those Tune gave a params.json."""
    return sorted(p.parent for p in Path(experiment_dir).glob("*/params.json"))


def latest_checkpoint(trial_dir: Path) -> Path | None:
    checkpoints = sorted(trial_dir.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1]))
    return checkpoints[-1] if checkpoints else None


def read_reports(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed process
            continue
    return rows


def load_epochs(experiment_dir: str | Path) -> pd.DataFrame:
    frames = []
    for trial_dir in trial_dirs(experiment_dir):
        reports = read_reports(trial_dir)
        if reports:
            frame = pd.DataFrame(reports)
            frame["trial_dir"] = str(trial_dir)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=EPOCH_COLUMNS + ["trial_dir"])
    epochs = pd.concat(frames, ignore_index=True)
    epochs = epochs.drop_duplicates(["trial_id", "epoch"], keep="last")
    return epochs[EPOCH_COLUMNS + ["trial_dir"]].sort_values(["hidden", "dropout", "lr", "seed", "epoch"]).reset_index(drop=True)


def trial_status(trial_dir: Path, epochs_done: int, epochs_planned: int) -> str:
    if epochs_done >= epochs_planned:
        return "done"
    if (trial_dir / "error.txt").is_file():
        return "error"
    return "stopped"  # early-stopped by a scheduler, or interrupted


def summarise_trials(epochs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for trial_id, t in epochs.groupby("trial_id", sort=False):
        best = t.loc[t["val_loss"].idxmin()]
        last = t.iloc[-1]
        trial_dir = Path(last["trial_dir"])
        checkpoint = latest_checkpoint(trial_dir)
        rows.append({
            "trial_id": trial_id,
            **{k: last[k] for k in ("hidden", "dropout", "lr", "seed", "batch_size", "parameters", "device", "node_id")},
            "epochs_planned": int(last["epochs"]),
            "epochs_done": int(t["epoch"].max()),
            "final_train_loss": last["train_loss"],
            "final_val_loss": last["val_loss"],
            "best_val_loss": best["val_loss"],
            "best_epoch": int(best["epoch"]),
            "train_time_s": t["epoch_time_s"].sum(),
            "wall_time_s": t["reported_at"].max() - t["trial_started_at"].min(),
            "started_at": t["trial_started_at"].min(),
            "ended_at": t["reported_at"].max(),
            "status": trial_status(trial_dir, int(t["epoch"].max()), int(last["epochs"])),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "trial_dir": str(trial_dir),
        })
    return pd.DataFrame(rows)


def load_trials(experiment_dir: str | Path) -> pd.DataFrame:
    return summarise_trials(load_epochs(experiment_dir))


def save_tables(experiment_dir: str | Path) -> dict[str, Path]:
    """Write epochs and trials as Parquet and CSV into the experiment folder; returns the paths."""
    experiment_dir = Path(experiment_dir)
    epochs = load_epochs(experiment_dir)
    tables = {"epochs": epochs, "trials": summarise_trials(epochs)}
    paths = {}
    for name, table in tables.items():
        for suffix in ("parquet", "csv"):
            path = experiment_dir / f"{name}.{suffix}"
            getattr(table, f"to_{suffix}")(path, index=False)
            paths[f"{name}.{suffix}"] = path
    return paths


def load_table(experiment_dir: str | Path, name: str) -> pd.DataFrame:
    """A saved table (`epochs` or `trials`); rebuilt from the trial files if not saved yet."""
    if name not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {name!r}")
    path = Path(experiment_dir) / f"{name}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    return load_epochs(experiment_dir) if name == "epochs" else load_trials(experiment_dir)
