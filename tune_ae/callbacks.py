"""Tune callbacks of a sweep: a log of every result, a readable progress view, a watchdog for
trials that can never start, and the settings a resumed sweep changes. They run in the driver,
inside Tune's loop.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TextIO

from ray import tune
from ray.tune.experiment import Trial

from tune_ae import labels, ray_internals, record
from tune_ae.config import TRIAL_FIELDS, upgraded
from tune_ae.results import EPOCHS_LOG, error_message


def trial_label(config: dict, swept: list[str]) -> str:
    """'h=512' or 'h=512 dropout=0.1 seed=2': the fields that tell this grid's trials apart."""
    return labels.label(config, [name for name in swept or ["hidden"] if name in TRIAL_FIELDS], shown=str)


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class EpochLog(tune.Callback):
    """Every result, appended to <experiment>/<trial folder>/tune_ae_epochs.jsonl; the tables read it.

    Tune's own result.json is copied back from the storage path whenever a trial (re)starts;
    a retry that starts before Tune's next sync of that file (seen with reused workers) loses
    the epochs reported since. This file is only ever appended to, by the driver.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.opened: set[Path] = set()  # logs this driver has appended to (and made end in a newline)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        path = self.folder / Path(trial.path).name / EPOCHS_LOG
        line = json.dumps(result, default=str) + "\n"
        if path not in self.opened:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not ends_a_line(path):  # a line cut short by a kill or a full disk: keep it apart from this one
                line = "\n" + line
            self.opened.add(path)
        with path.open("a") as f:
            f.write(line)


class TrialRecord(tune.Callback):
    """Each trial's start and end into tune_ae's own record (record.py), as they happen: what
    the tables, the next run's plan, the page and the exit code read a trial's status from."""

    def __init__(self, folder: str | Path, point_fields: list[str], scheduler: str):
        self.folder, self.scheduler = Path(folder), scheduler
        self.recorder = record.Recorder(folder, point_fields)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.recorder.start(Path(trial.path).name, dict(trial.config))

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        epoch = result.get("epoch")
        done = (epoch or 0) >= trial.config["epochs"]
        self.recorder.end(Path(trial.path).name, "done" if done else "stopped early", epoch, result.get("val_loss"),
                          by=None if done else self.scheduler)

    def on_trial_error(self, iteration, trials, trial, **info):
        name = Path(trial.path).name
        message = error_message(self.folder / name) or f"failed {ray_internals.failures(trial)} time(s)"
        self.recorder.end(name, "error", (trial.last_result or {}).get("epoch"), error=message)

    def on_experiment_end(self, trials, **info):
        # The fit ended (at its end, or stopped by a signal or the pending watchdog, which Tune
        # marks TERMINATED too): a trial that began and has no end here was interrupted.
        for trial in trials:
            name = Path(trial.path).name
            entry = self.recorder.known.get(name)
            if entry is None and "epoch" not in trial.last_result:  # (one with epochs and no record: an older tune_ae's)
                self.recorder.never_started(name, dict(trial.config))
            elif entry is not None and entry.status is None:
                self.recorder.end(name, "interrupted", (trial.last_result or {}).get("epoch"))


def ends_a_line(path: Path) -> bool:
    """Whether `path` is empty, missing, or ends with a newline."""
    try:
        with path.open("rb") as f:
            f.seek(-1, 2)
            return f.read(1) == b"\n"
    except OSError:  # missing, or empty (seek before the start)
        return True


class Progress(tune.Callback):
    """One line per trial event: start, progress (at most every `every_s` per trial), end, error.

    Replaces Tune's per-result status box (the sweep runs Tune with verbose=0); Tune's own log
    goes to the experiment folder (sweep.py).
    """

    def __init__(self, swept: list[str], configs: list[dict], every_s: float = 10.0, out: TextIO = sys.stdout,
                 folder: str | Path | None = None):
        self.swept, self.n_trials, self.every_s, self.out = swept, len(configs), every_s, out
        self.folder = Path(folder) if folder else None  # the experiment: tells a trial that trained before
        self.width = max((len(trial_label(c, swept)) for c in configs), default=0)  # labels line up in a column
        self.started = time.monotonic()
        self.last_line: dict[str, float] = {}
        self.begun: set[str] = set()
        self.cpus: dict[str, float] = {}  # trial -> the CPUs of its last start (hand_on.py may add some)
        self.retrying: set[str] = set()  # trials whose next start is a retry after a failure
        self.first_epoch: dict[str, tuple[int, float]] = {}  # trial -> (epoch, time) of its first result here

    def line(self, trial: Trial, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"{duration(elapsed):>7}  {trial_label(trial.config, self.swept):<{self.width}}  {text}", file=self.out, flush=True)

    def trained_before(self, trial: Trial) -> bool:
        """Whether the trial's epochs log held epochs before this start's first (just logged) result."""
        if self.folder is None:
            return False
        try:
            with (self.folder / Path(trial.path).name / EPOCHS_LOG).open("rb") as f:
                return sum(1 for _ in f) > 1
        except OSError:
            return False

    def on_trial_start(self, iteration, trials, trial, **info):
        first = trial.trial_id not in self.begun
        self.begun.add(trial.trial_id)
        cpus = trial.placement_group_factory.required_resources.get("CPU", 0)
        grown = not first and cpus > self.cpus.get(trial.trial_id, cpus)
        self.cpus[trial.trial_id] = cpus
        self.line(trial, f"started ({len(self.begun)}/{self.n_trials} trials begun)" if first
                  else f"restarted with {cpus:g} CPUs (freed by trials that ended)" if grown else "restarted")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        epoch, total, now = result["epoch"], trial.config["epochs"], time.monotonic()
        if result.get("set_aside"):  # the first result of a start that found unreadable checkpoints
            self.line(trial, f"warning: unreadable checkpoint(s) set aside: {result['set_aside']}")
        resumed = result.get("resumed_from_epoch")
        if resumed is not None:
            retry = trial.trial_id in self.retrying
            self.retrying.discard(trial.trial_id)
            if resumed or retry or result.get("set_aside") or self.trained_before(trial):
                self.line(trial, f"continues from its checkpoint at epoch {resumed}" if resumed
                          else "starts again from epoch 1 (no checkpoint of it loads)")
        first_epoch, first_time = self.first_epoch.setdefault(trial.trial_id, (epoch, now))
        if epoch not in (1, total) and now - self.last_line.get(trial.trial_id, 0.0) < self.every_s:
            return
        self.last_line[trial.trial_id] = now
        eta = ""
        if epoch > first_epoch:
            eta = f"  ETA {duration((now - first_time) / (epoch - first_epoch) * (total - epoch))}"
        self.line(trial, f"epoch {epoch:>{len(str(total))}}/{total}  val_loss {result['val_loss']:.5g}{eta}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        done = result.get("epoch", 0)
        what = "done" if done >= trial.config["epochs"] else f"stopped at epoch {done}"
        self.line(trial, f"{what}  val_loss {result.get('val_loss', float('nan')):.5g}")

    def on_trial_recover(self, iteration, trials, trial, **info):
        # Where it continues is said by its first result: the trial picks its newest checkpoint
        # that loads (trainable.resume_point), or starts again when there is none.
        self.retrying.add(trial.trial_id)
        self.line(trial, f"failed, retrying (failure {ray_internals.failures(trial)})")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.line(trial, f"ERROR after {ray_internals.failures(trial)} failure(s); see {trial.path}/{ray_internals.ERROR_FILE}")


class DashboardLog(tune.Callback):
    """Each trial's start, epochs and end into the experiment's Optuna journal (journal.py), which
    `tune-ae dashboard` serves. A write that fails (a full disk) or Optuna missing (a GPU machine
    without it) turns the journal off for this run with one line; the sweep goes on, and the
    dashboard rebuilds the journal from the tables when it next opens."""

    def __init__(self, folder: str | Path, grid, out: TextIO = sys.stdout):
        from tune_ae import journal

        self.out, self.recorder = out, None
        try:
            self.recorder = journal.Recorder(folder, grid)
        except Exception as err:  # ImportError, OSError, Optuna's own: the sweep matters more
            self.off(err)

    def off(self, err: Exception) -> None:
        self.recorder = None
        print(f"warning: the dashboard's journal is off for this run ({type(err).__name__}: {err}); "
              "`tune-ae dashboard` rebuilds it from the tables", file=self.out, flush=True)

    def record(self, method: str, trial: Trial, *args) -> None:
        if self.recorder is not None:
            try:
                getattr(self.recorder, method)(Path(trial.path).name, trial.config, *args)
            except Exception as err:
                self.off(err)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.record("start", trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.record("epoch", trial, result["epoch"], result["val_loss"])

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        done = result.get("epoch", 0) >= trial.config["epochs"]
        self.record("end", trial, "done" if done else "stopped early", result.get("val_loss"))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.record("end", trial, "error", None, f"failed {ray_internals.failures(trial)} time(s); see {ray_internals.ERROR_FILE}")


class PendingWatchdog(tune.Callback, tune.Stopper):
    """Stops the sweep when trials wait and none has run or reported for `limit_s` seconds.

    The resource check before the sweep catches requests no node can meet; this catches the
    rest (a node that never joins, resources held by other jobs), instead of waiting forever.
    """

    def __init__(self, limit_s: float):
        self.limit_s = limit_s
        self.last_progress = time.monotonic()
        self.fired = False

    def on_step_begin(self, iteration, trials, **info):
        if any(t.status == Trial.RUNNING for t in trials) or not any(t.status == Trial.PENDING for t in trials):
            self.last_progress = time.monotonic()
        elif time.monotonic() - self.last_progress > self.limit_s:
            self.fired = True

    def __call__(self, trial_id, result) -> bool:
        return False  # never stops a single trial

    def stop_all(self) -> bool:
        return self.fired


class ApplyOnResume(tune.Callback):
    """A resumed sweep's new resources, retry limit and checkpoints kept, given to the trials Tune restored.

    Tune keeps each trial's resources and max_failures in its experiment state; Trial's
    `update_resources` is the hook it offers for trials that are not running. Their configs
    are restored as saved, too: one saved before a TrialConfig field existed is upgraded
    (config.upgraded), since the trainable refuses a config without every field.
    """

    def __init__(self, resources: dict, max_failures: int, keep_checkpoints: int | None = None):
        self.resources, self.max_failures, self.keep_checkpoints = resources, max_failures, keep_checkpoints
        self.applied = False

    def on_step_begin(self, iteration, trials, **info):
        if self.applied:
            return
        self.applied = True
        for trial in trials:
            ray_internals.set_retries(trial, self.max_failures)
            if self.keep_checkpoints is not None:
                ray_internals.set_checkpoints_kept(trial, self.keep_checkpoints)
            if trial.status in (Trial.PENDING, Trial.PAUSED):
                ray_internals.set_resources(trial, self.resources)
                trial.config.update(upgraded(trial.config))
