"""Every experiment under a storage path, one summary each, from tune_ae's own records only.

`scan(storage)` reads each subfolder's `tune_ae/experiment.json` and `tune_ae/trials.jsonl` and
asks its lock whether a run holds it: no tables, no checkpoints, no Ray, no torch, so a
hundred experiments list in well under a second. A folder that is not a tune_ae experiment,
or one half written, cut short or from an older tune_ae, is listed with a status that says
so; nothing in it can break the list.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tune_ae import lock, ray_internals, record
from tune_ae.config import ConfigError
from tune_ae.experiment import has_record, read_meta, recorded_grid

@dataclass
class Entry:
    """One folder under the storage path, as `tune-ae list` shows it."""
    name: str
    status: str  # running, finished, interrupted, failed, not complete or not an experiment
    why: str = ""  # for the last two: what is missing or wrong
    kind: str = ""  # grid, random or optuna
    grid_name: str = ""
    finished: int = 0  # trials done or stopped early
    total: int = 0  # trials of the (possibly extended) grid
    best: dict = field(default_factory=dict)  # width -> best final val_loss of its done trials
    pca: dict = field(default_factory=dict)  # width -> PCA's validation MSE at k = h, where recorded
    started: str = ""  # the first run's start (ISO, UTC)
    host: str = ""  # the last run's machine
    duration_s: float | None = None  # the runs' recorded phases; a running one's so far

    def ratio(self, hidden: int) -> float | None:
        """Best final val_loss at width `hidden` over PCA's at k = h, where both are known."""
        best, pca = self.best.get(hidden), self.pca.get(hidden)
        return best / pca if best is not None and pca else None

    def to_dict(self) -> dict:
        found = asdict(self)
        found["best"] = {str(h): v for h, v in self.best.items()}
        found["pca"] = {str(h): v for h, v in self.pca.items()}
        found["x_pca"] = {str(h): self.ratio(h) for h in self.best}
        return found


def scan(storage: str | Path) -> list[Entry]:
    """Every subfolder of `storage` (hidden ones, such as Tune's and tune_ae's own, left out),
    newest first; those with no start known last, by name."""
    root = Path(storage).expanduser()
    folders = [p for p in root.iterdir() if is_folder(p) and not p.name.startswith(".")] if root.is_dir() else []
    entries = sorted((describe(folder) for folder in folders), key=lambda e: e.name)
    return sorted(entries, key=lambda e: e.started, reverse=True)  # ISO times sort as text; "" last; stable


def describe(folder: Path) -> Entry:
    """The summary of one folder; never raises for what is in it."""
    try:
        return summarise(folder)
    except OSError as err:  # a folder or file this user cannot read
        return Entry(folder.name, "not complete", f"cannot be read: {err.strerror or err}")


def summarise(folder: Path) -> Entry:
    if not has_record(folder):
        trial_folders = any(folder.glob(f"*/{ray_internals.PARAMS_FILE}")) or (folder / record.RECORD_DIR).is_dir()
        why = ("trial folders but no tune_ae/experiment.json (a run killed before its record, or another tool's)"
               if trial_folders else "no tune_ae/experiment.json")
        return Entry(folder.name, "not complete" if trial_folders else "not an experiment", why)
    try:
        meta = read_meta(folder)
        grid = recorded_grid(meta)
        entry = Entry(folder.name, "", kind=grid.search, grid_name=str(meta.get("grid_name", "")), total=grid.n_trials)
        runs = meta["runs"]
        entry.started, entry.host = str(runs[0].get("started", "")) if runs else "", str(runs[-1].get("host", "")) if runs else ""
        entry.pca = {int(h): float(v) for h, v in (meta.get("data", {}).get("pca_val_mse") or {}).items()}
        entry.duration_s = recorded_seconds(runs)
    except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as err:
        said = str(err).splitlines()[0].split("; ")[0] if str(err) else type(err).__name__
        return Entry(folder.name, "not complete", f"its record does not read: {said[:200]}")
    trials = record.trials(folder)
    entry.finished = sum(1 for t in trials.values() if t.status in record.FINISHED)
    for t in trials.values():
        hidden, value = t.config.get("hidden"), t.value
        if t.status == "done" and isinstance(hidden, int) and isinstance(value, (int, float)) and math.isfinite(value):
            entry.best[hidden] = min(value, entry.best.get(hidden, math.inf))
    entry.best = dict(sorted(entry.best.items()))
    if lock.held(folder):
        entry.status = "running"
        last = runs[-1] if runs and isinstance(runs[-1], dict) else {}
        entry.duration_s = (entry.duration_s or 0.0) + since(last.get("started"))
    elif any(t.status == "error" for t in trials.values()):
        entry.status = "failed"
    elif entry.finished >= entry.total:
        entry.status = "finished"
    else:
        entry.status = "interrupted"
    if not record.path(folder).is_file() and entry.status != "running":
        entry.why = "an older tune_ae's folder: statuses from Tune's saved state"
    return entry


def is_folder(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a symlink loop, a name too long
        return False


def recorded_seconds(runs: list[dict]) -> float | None:
    timings = [run.get("timings") if isinstance(run, dict) else None for run in runs]
    seconds = [sum(v for v in t.values() if isinstance(v, (int, float))) for t in timings if isinstance(t, dict)]
    return sum(seconds) if any(seconds) else None


def since(started: str | None) -> float:
    try:
        return max(0.0, time.time() - dt.datetime.fromisoformat(str(started)).timestamp())
    except ValueError:
        return 0.0


def best_cell(entry: Entry) -> str:
    """'64: 0.0123 (1.19x)  512: 0.0059' (no multiple where PCA's error is not recorded)."""
    parts = []
    for hidden, value in entry.best.items():
        ratio = entry.ratio(hidden)
        parts.append(f"{hidden}: {value:.4g}" + (f" ({ratio:.3g}x)" if ratio is not None else ""))
    return "  ".join(parts) or "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
