"""The experiment folder's own record: `tune_ae/experiment.json` (what ran, how, with which versions).

Written before the first trial starts, so even a sweep killed in its first second leaves a
folder that says what it was, and that `--resume` can pick up. It lies in the `tune_ae/`
subfolder, beside the trials' record (record.py): Tune copies every top-level `*.json` of the
experiment folder to its staging folder and back at each save, which a kill can leave empty.
Folders of an older tune_ae hold it at the top, as `tune_ae.json`: read there, moved at the
next write.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Callable

from tune_ae.config import ConfigError, SweepSettings
from tune_ae.grids import Grid
from tune_ae.record import RECORD_DIR

META_FILE = f"{RECORD_DIR}/experiment.json"
LEGACY_META_FILE = "tune_ae.json"  # an older tune_ae's place for it, where Tune's sync reaches
PACKAGES = ("tune_ae", "torch", "torchvision", "ray", "numpy", "pandas", "pyarrow", "matplotlib", "seaborn")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def git_commit() -> str | None:
    """The commit of the tune_ae checkout (with '-dirty' if it has local changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def this_run(ray_address: str | None, command: list[str] | None = None) -> dict:
    return {
        "command": command or [Path(sys.executable).name, "-m", "tune_ae.run", *sys.argv[1:]],
        "cwd": os.getcwd(),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "ray_address": ray_address,
        "versions": versions(),
        "git_commit": git_commit(),
    }


def write_meta(folder: Path, grid_name: str, grid: Grid, settings: SweepSettings, data_info: dict, run: dict,
               new_grid: bool = False) -> Path:
    """Create or extend the record: the resolved grid (an --extend's grown one, `new_grid`; the
    run entry says what it added); the settings now in force (a resume may change some, listed
    in its run entry); one entry per run, resume or extension."""
    meta = read_meta(folder) if has_record(folder) else {
        "grid_name": grid_name,
        "grid": grid.to_dict(),
        "data": data_info,
        "runs": [],
    }
    if new_grid:
        meta["grid"] = grid.to_dict()
    meta["settings"] = settings.to_dict()
    meta["runs"].append(run)
    folder.mkdir(parents=True, exist_ok=True)
    return _write(folder, meta)


def record_pca(folder: Path, pca: dict[int, float]) -> None:
    """PCA's validation MSE at k = h per width into the record's data entry: the reference
    `tune-ae list` divides each width's best val_loss by."""
    meta = read_meta(folder)
    meta["data"]["pca_val_mse"] = {**meta["data"].get("pca_val_mse", {}), **{str(k): v for k, v in pca.items()}}
    _write(folder, meta)


def add_to_last_run(folder: Path, values: dict) -> None:
    """Extend the newest run entry of the record (e.g. its timings, known only at its end)."""
    meta = read_meta(folder)
    meta["runs"][-1].update(values)
    _write(folder, meta)


def _write(folder: Path, meta: dict) -> Path:
    path = folder / META_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_whole(path, json.dumps(meta, indent=2, default=str) + "\n")
    (folder / LEGACY_META_FILE).unlink(missing_ok=True)  # moved: one record, out of Tune's way
    return path


def record_file(folder: str | Path) -> Path | None:
    """The experiment's record: tune_ae/experiment.json, or an older tune_ae's tune_ae.json; None if neither."""
    for name in (META_FILE, LEGACY_META_FILE):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def has_record(folder: str | Path) -> bool:
    return record_file(folder) is not None


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` into a temporary file beside `path`, then rename: a reader sees the old file
    or the new one, never a part (a kill or a full disk mid-write leaves the old one whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        if not err.filename or str(err.filename) == str(tmp):  # name the file meant, not the temporary one
            err.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text_whole(path: Path, text: str) -> None:
    write_whole(path, lambda tmp: tmp.write_text(text))


def read_meta(folder: str | Path) -> dict:
    path = record_file(folder) or Path(folder) / META_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # empty, cut short, not JSON, unreadable
        reason = err.strerror if isinstance(err, OSError) else f"not valid JSON: {err}"
        raise ConfigError(f"{path} cannot be read ({reason}); it is not a usable tune_ae record: put back a copy of "
                          "it, or run the sweep under a new --name (this folder's trials stay as they are)") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("runs"), list):
        raise ConfigError(f"{path} is not a tune_ae record (no list of runs)")
    return meta


def recorded_grid(meta: dict) -> Grid:
    return Grid.from_dict(meta["grid"])


def recorded_settings(meta: dict, storage_path: str, name: str) -> SweepSettings:
    return SweepSettings.from_dict({**meta["settings"], "storage_path": storage_path, "name": name})


def latest_experiment(storage_path: str) -> Path | None:
    """The most recently started experiment under a local `storage_path`, by its record's mtime."""
    records = sorted([*Path(storage_path).glob(f"*/{META_FILE}"), *Path(storage_path).glob(f"*/{LEGACY_META_FILE}")],
                     key=lambda p: p.stat().st_mtime)
    return Path(storage_path) / records[-1].relative_to(storage_path).parts[0] if records else None


def default_name(grid_name: str) -> str:
    """GRID-DATE-TIME; run.claim adds -2, -3, ... when another sweep took it in the same second."""
    return f"{grid_name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
