"""An experiment folder -> two pandas tables, read straight from its files.

Reading each trial's epochs log (one JSON line per reported epoch, written by the driver) and
tune_ae's record of the trials (record.py) needs no Ray session, so the tables load anywhere
the folder is: a laptop, a notebook, after the cluster is gone. A trial's status is the
record's (Tune's saved state is read only for a folder of an older tune_ae, which kept no
record: record.legacy_events).

- `epochs`: one row per trial x epoch.
- `trials`: one row per trial of the grid, whatever became of it: done, stopped early (a
  scheduler), error (with its message), interrupted, or not started.

A trial restored from a checkpoint re-reports the epochs after that checkpoint; the last
report of an epoch wins, so every trial has each epoch exactly once. Epochs that reached a
checkpoint but not the driver's log (a driver killed between the two) come from the
checkpoint's own copy of the rows.

Saved tables hold paths relative to the experiment folder, so a folder can move or be copied;
`load_table` gives them back absolute, under the folder it was asked for.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import pandas as pd

from tune_ae import ray_internals, record
from tune_ae.config import TRIAL_FIELDS, upgraded
from tune_ae.experiment import has_record, read_meta, recorded_grid, write_whole

METRIC_COLUMNS = ["epoch", "train_loss", "val_loss", "epoch_time_s", "images_per_s"]  # train.train_epoch's
IDENTITY_COLUMNS = ["parameters", "device", "cuda_graphs", "threads", "node_id", "trial_started_at", "reported_at"]
ANALYSIS_COLUMNS = ["dead_units", "probe_accuracy"]  # baselines.trial_analysis's, in a trial's last report only
ANALYSIS_TIME = "analysis_time_s"  # and the seconds it took (absent in folders of an older tune_ae)
EPOCH_COLUMNS = ["trial_id", *TRIAL_FIELDS, *METRIC_COLUMNS, *IDENTITY_COLUMNS, *ANALYSIS_COLUMNS, ANALYSIS_TIME]
TABLES = ("epochs", "trials")
EPOCHS_LOG = "tune_ae_epochs.jsonl"  # every result of a trial, appended by the driver (callbacks.EpochLog)
HISTORY_FILE = "history.jsonl"  # in each checkpoint: the trial's reported rows up to it (trainable.py)
STATE_FILE = "state.pt"  # train.STATE_FILE, named here too so that reading tables needs no torch
SET_ASIDE_PREFIX = "unreadable-"  # a checkpoint folder that did not load, renamed by the trial
PATH_COLUMNS = ("trial_dir", "checkpoint")  # stored relative to the experiment folder
CHECKPOINT_DIR = ray_internals.CHECKPOINT_DIR  # Tune's checkpoint folders (not the ones set aside)
FINISHED = record.FINISHED  # what a sweep that ended well leaves


def trial_dirs(experiment_dir: str | Path) -> list[Path]:
    """Trial folders: those Tune gave a params.json, or the driver an epochs log (a trial killed
    in its first seconds can have epochs and a checkpoint before Tune wrote its params.json)."""
    folder = Path(experiment_dir)
    return sorted({p.parent for name in (ray_internals.PARAMS_FILE, EPOCHS_LOG) for p in folder.glob("*/" + name)})


def json_lines(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a killed process or a full disk
            continue
    return rows


def checkpoint_history(checkpoint: Path) -> list[dict]:
    path = checkpoint / HISTORY_FILE
    try:
        return json_lines(path) if path.is_file() else []
    except OSError:
        return []


def checkpoint_epoch(checkpoint: Path) -> int:
    """The epoch a checkpoint holds, from the last of its rows (-1: unknown, an older tune_ae's).

    Reads the file's tail only: it is asked of every checkpoint of every trial."""
    path = checkpoint / HISTORY_FILE
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            tail = f.read().decode(errors="replace")
    except OSError:
        return -1
    for line in reversed(tail.splitlines()):
        try:
            return int(json.loads(line).get("epoch", -1))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue
    return -1


def latest_checkpoint(trial_dir: Path) -> Path | None:
    """The checkpoint with the highest epoch that still has its state.pt (ties: highest index).

    Not simply the highest index: Tune numbers checkpoints from its saved state, which a
    killed driver leaves older than the trial folder.
    """
    checkpoints = [p for p in trial_dir.glob("checkpoint_*")
                   if CHECKPOINT_DIR.fullmatch(p.name) and (p / STATE_FILE).is_file()]
    key = lambda p: (checkpoint_epoch(p), int(p.name.split("_")[-1]))  # noqa: E731
    return max(checkpoints, key=key) if checkpoints else None


def read_reports(trial_dir: Path) -> list[dict]:
    """The trial's results in the order reported: the rows its newest checkpoint carries, then
    tune_ae's own log (folders of an older tune_ae: Tune's result.json, which a restarted trial
    can lose epochs from). Later rows of an epoch supersede earlier ones."""
    path = trial_dir / EPOCHS_LOG
    if not path.is_file():
        path = trial_dir / ray_internals.RESULT_FILE
    logged: dict = {}
    for row in json_lines(path) if path.is_file() else []:
        resumed = row.get("resumed_from_epoch")  # a start from a checkpoint: later rows of an earlier start are void
        if isinstance(resumed, int):
            logged = {epoch: r for epoch, r in logged.items() if isinstance(epoch, int) and epoch <= resumed}
        logged[row.get("epoch")] = row
    latest = latest_checkpoint(trial_dir)
    kept = [row for row in (checkpoint_history(latest) if latest else []) if row.get("epoch") not in logged]
    return kept + list(logged.values())


EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit): ")


def error_message(trial_dir: Path) -> str | None:
    """The trial's error from its error.txt: the last `SomeError: message` line (the innermost
    cause Ray printed), else the last line."""
    path = trial_dir / ray_internals.ERROR_FILE
    if not path.is_file():
        return None
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
    return (exceptions or lines or ["error (no message)"])[-1][:500]


def load_epochs(experiment_dir: str | Path) -> pd.DataFrame:
    experiment_dir = Path(experiment_dir).expanduser().resolve()
    frames = []
    for trial_dir in trial_dirs(experiment_dir):
        # A row of an older tune_ae lacks the fields added since: it ran at their defaults.
        reports = [{**row, **upgraded(row)} for row in read_reports(trial_dir)]
        if reports:
            frame = pd.DataFrame(reports)
            frame["trial_dir"] = str(trial_dir)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=EPOCH_COLUMNS + ["trial_dir"])
    epochs = pd.concat(frames, ignore_index=True)
    for name in EPOCH_COLUMNS:
        if name not in epochs:
            epochs[name] = None
    # By folder, not trial id: a trial continued by a new Tuner (its saved state lost) has a new id.
    epochs = epochs.drop_duplicates(["trial_dir", "epoch"], keep="last")
    return epochs[EPOCH_COLUMNS + ["trial_dir"]].sort_values([*TRIAL_FIELDS, "epoch"]).reset_index(drop=True)


def trial_status(epochs_done: int, epochs_planned: int, entry: record.TrialEntry | None, error: str | None) -> str:
    """A trial's status from tune_ae's record of it (record.py) and its epochs: a trial with
    epochs left and no end recorded is unfinished (interrupted), never stopped early."""
    if epochs_done >= epochs_planned:
        return "done"
    if entry is not None and entry.status in ("done", "stopped early", "error"):
        return entry.status
    if entry is not None and entry.status == "not started" and epochs_done == 0:
        return "not started"  # (one with epochs: an earlier run trained it, this one did not start it)
    if entry is None and error:  # a folder of an older tune_ae, which kept no record
        return "error"
    if epochs_done == 0 and entry is None:
        return "not started"
    return "interrupted"


def config_key(config: dict) -> tuple:
    return tuple(upgraded(config).values())


def params(trial_dir: Path) -> dict:
    try:
        return json.loads((trial_dir / ray_internals.PARAMS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def config_from_files(trial_dir: Path, entry: record.TrialEntry | None) -> dict:
    """A trial's fields without its reports: params.json, else the record's config of it."""
    return upgraded(params(trial_dir) or (entry.config if entry else {}))


def summarise_trials(epochs: pd.DataFrame, experiment_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per trial: from its epochs, tune_ae's record of it and error.txt; with
    `experiment_dir`, also a row for every trial of the recorded grid that never got a folder."""
    experiment_dir = Path(experiment_dir).expanduser().resolve() if experiment_dir else None
    entries = record.trials(experiment_dir) if experiment_dir else {}
    has_meta = bool(experiment_dir) and has_record(experiment_dir)
    grid = recorded_grid(read_meta(experiment_dir)) if has_meta else None
    expected = [c.to_dict() for c in grid.trial_configs()] if grid and grid.known_in_advance else []
    by_dir = {d: t for d, t in epochs.groupby("trial_dir", sort=False)}
    dirs = [Path(d) for d in by_dir]
    if experiment_dir:  # also the folders of trials that failed before writing params.json
        dirs = sorted(set(trial_dirs(experiment_dir)) | {experiment_dir / name for name in entries
                                                         if (experiment_dir / name).is_dir()})
    rows, seen = [], set()
    for trial_dir in dirs:
        t = by_dir.get(str(trial_dir))
        if t is not None:
            config = {name: t.iloc[-1][name] for name in TRIAL_FIELDS}
        else:
            config = config_from_files(trial_dir, entries.get(trial_dir.name))
        seen.add(config_key(config))
        error = error_message(trial_dir)
        row = {"trial_id": None, **config, "epochs_planned": int(config["epochs"]), "epochs_done": 0, "error": error,
               "trial_dir": str(trial_dir), "checkpoint": None}
        if t is not None:
            best, last = t.loc[t["val_loss"].idxmin()], t.iloc[-1]
            checkpoint = latest_checkpoint(trial_dir)
            row.update({
                "trial_id": last["trial_id"],
                **{k: last[k] for k in ("parameters", "device", "node_id")},
                "epochs_done": int(t["epoch"].max()),
                "final_train_loss": last["train_loss"],
                "final_val_loss": last["val_loss"],
                "best_val_loss": best["val_loss"],
                "best_epoch": int(best["epoch"]),
                "train_time_s": t["epoch_time_s"].sum(),
                "wall_time_s": t["reported_at"].max() - t["trial_started_at"].min(),
                "started_at": t["trial_started_at"].min(),
                "ended_at": t["reported_at"].max(),
                "checkpoint": str(checkpoint) if checkpoint else None,
                **{k: last[k] for k in (*ANALYSIS_COLUMNS, ANALYSIS_TIME)},
            })
        row["status"] = trial_status(row["epochs_done"], row["epochs_planned"], entries.get(trial_dir.name), error)
        if row["status"] != "error":
            row["error"] = None  # a failure that a retry or a resume got past
        rows.append(row)
    unmade = [upgraded(e.config) for name, e in entries.items() if not (experiment_dir / name).is_dir()]
    never = never_begun(grid, rows + unmade) if has_meta and not grid.known_in_advance else \
        [c for c in expected if config_key(c) not in seen]
    never += [c for c in unmade if config_key(c) not in seen | {config_key(n) for n in never}]
    rows += [{**c, "epochs_planned": c["epochs"], "epochs_done": 0, "status": "not started"} for c in never]
    columns = ["trial_id", *TRIAL_FIELDS, "parameters", "epochs_planned", "epochs_done", "final_train_loss",
               "final_val_loss", "best_val_loss", "best_epoch", "train_time_s", "wall_time_s", "started_at", "ended_at",
               "device", "node_id", *ANALYSIS_COLUMNS, ANALYSIS_TIME, "status", "error", "checkpoint", "trial_dir"]
    return pd.DataFrame(rows, columns=columns)


def never_begun(grid, rows: list[dict]) -> list[dict]:
    """An optuna search's samples not begun, each point's: unnamed (the searched fields None)."""
    never = []
    fields = grid.point_fields()
    for point in grid.points():
        begun = sum(all(r.get(n) == point[n] for n in fields) for r in rows)
        never += [{**point, **{n: None for n in grid.searched()}}] * max(0, grid.num_samples - begun)
    return never


def load_trials(experiment_dir: str | Path) -> pd.DataFrame:
    return summarise_trials(load_epochs(experiment_dir), experiment_dir)


def save_tables(experiment_dir: str | Path) -> dict[str, Path]:
    """Write epochs and trials as Parquet and CSV into the experiment folder; returns the paths."""
    experiment_dir = Path(experiment_dir).expanduser().resolve()  # relative paths against the real folder
    epochs = load_epochs(experiment_dir)
    tables = {"epochs": epochs, "trials": summarise_trials(epochs, experiment_dir)}
    paths = {}
    for name, table in tables.items():
        table = relative_paths(table, experiment_dir)
        for suffix in ("parquet", "csv"):
            path = experiment_dir / f"{name}.{suffix}"
            write_whole(path, lambda tmp: getattr(table, f"to_{suffix}")(tmp, index=False))
            paths[f"{name}.{suffix}"] = path
    return paths


def relative_paths(table: pd.DataFrame, experiment_dir: Path) -> pd.DataFrame:
    table = table.copy()
    for column in PATH_COLUMNS:
        if column in table:
            table[column] = table[column].map(lambda p: os.path.relpath(p, experiment_dir) if isinstance(p, str) else p)
    return table


def absolute_paths(table: pd.DataFrame, experiment_dir: Path) -> pd.DataFrame:
    """Paths of a saved table under the folder it was read from (relative ones as saved today;
    absolute ones from an older tune_ae re-rooted by their part below the experiment's name)."""
    def place(p):
        if not isinstance(p, str):
            return p
        path = Path(p)
        if path.is_absolute():  # an older table: keep the part inside the experiment folder
            parts = path.parts
            path = Path(*parts[parts.index(experiment_dir.name) + 1:]) if experiment_dir.name in parts else path
        return str(experiment_dir / path)

    for column in PATH_COLUMNS:
        if column in table:
            table[column] = table[column].map(place)
    return table


def load_table(experiment_dir: str | Path, name: str) -> pd.DataFrame:
    """A saved table (`epochs` or `trials`); rebuilt from the trial files if not saved yet, or if
    the saved file cannot be read (cut short by a kill or a full disk)."""
    if name not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}, got {name!r}")
    experiment_dir = Path(experiment_dir).expanduser().resolve()
    path = experiment_dir / f"{name}.parquet"
    if path.is_file():
        try:
            return absolute_paths(pd.read_parquet(path), experiment_dir)
        except Exception as err:  # pyarrow's errors for a damaged file are many and not OSError alone
            warnings.warn(f"{path} is unreadable ({type(err).__name__}); rebuilt from the trial folders", stacklevel=2)
    return load_epochs(experiment_dir) if name == "epochs" else load_trials(experiment_dir)
