"""What a run does once its sweep has ended, or failed: the tables, the summary, the report
and its upload; an interruption or a failure said in one line with how to go on. Each ending
returns the command's exit code, from args.exit_code.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

from tune_ae import experiment, signals, storage
from tune_ae.args import exit_code
from tune_ae.config import SweepSettings

DRIVER_ERROR_FILE = "driver-error.txt"
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def resume_command(settings: SweepSettings) -> str:
    """The command that continues this sweep, quoted for a POSIX shell."""
    return shlex.join(["python", "-m", "tune_ae.run", "--resume", "--name", settings.name,
                       "--storage-path", settings.storage_path])


def resumable(settings: SweepSettings) -> bool:
    """Whether --resume would find this experiment: its record is written before any trial starts."""
    return experiment.has_record(storage.local_folder(settings.storage_path, settings.name))


def how_to_continue(settings: SweepSettings) -> str:
    if resumable(settings):
        return f"continue with:\n  {resume_command(settings)}"
    return "nothing was saved yet; run the same command again"


def print_summary(trials, folder: Path, paths: dict) -> None:
    from tune_ae.report.tables import trial_overview  # the same columns the report and the notebook show

    overview = trial_overview(trials)
    overview["error"] = overview["error"].map(lambda e: e[:77] + "..." if isinstance(e, str) and len(e) > 80 else e)
    overview = overview.astype(object).where(overview.notna(), "")
    print("\n" + overview.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    counts = trials["status"].value_counts()
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()) + f" (of {len(trials)} trials)")
    print(f"experiment: {folder}")
    for name, path in paths.items():
        print(f"  {name}: {path}")


def save_tables_if_any(folder: Path) -> bool:
    """After a signal cut the sweep or its report short: the tables still show where each trial
    stands. Returns whether every trial had finished (then there is nothing to resume)."""
    if not experiment.has_record(folder):
        return False
    from tune_ae import results

    with signals.held():
        try:
            results.save_tables(folder)
            print(f"tables: {folder / 'trials.csv'}", file=sys.stderr)
            return bool(results.load_table(folder, "trials")["status"].isin(results.FINISHED).all())
        except Exception as err:  # the interruption is what to report; the tables are rebuilt by the next run
            print(f"tables not written ({type(err).__name__}: {err})", file=sys.stderr)
            return False


def write_error(err: BaseException) -> OSError | None:
    """The failed write behind `err` (Ray and Tune wrap it in their own errors), if it is one."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            return err
        err = err.__cause__ or err.__context__
    return None


def disk_full(folder: Path) -> bool:
    """Whether the experiment's file system has (next to) no space left: under 1 MiB."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def driver_error(err: Exception, folder: Path, what: str, after_a_write_error: str) -> int:
    """An unexpected error: one line on the console, the traceback in the experiment folder.

    A failed write (a full disk) is not a bug: the line names the path and the error, and what
    to do once there is space (`after_a_write_error`: a resume finishes trials, tables and report).
    """
    failed = write_error(err)
    if signals.received and (failed is None or failed.errno == errno.EIO):  # the terminal closed (SIGHUP), not the disk
        try:  # where stderr is not that terminal (a log), the interruption is said there
            print(f"interrupted ({signals.name()}); {after_a_write_error}", file=sys.stderr)
        except OSError:
            pass
        return signals.exit_code()
    if failed is None and disk_full(folder):  # Tune's own reads of what a full disk cut short (an empty pickle)
        failed = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
    if failed is not None:
        where = failed.filename or folder
        print(f"error: cannot write {where}: {failed.strerror}; free space (or fix the storage) and {after_a_write_error}",
              file=sys.stderr)
        return exit_code(failed=True)
    path = folder / DRIVER_ERROR_FILE
    try:
        experiment.write_text_whole(path, traceback.format_exc())
        saved = f"traceback in {path}"
    except OSError as write_err:
        saved = f"its traceback could not be saved: {write_err.strerror}"
    message = str(err).splitlines()[0] if str(err) else ""
    print(f"error: {type(err).__name__}: {message}; {what} ({saved})", file=sys.stderr)
    return exit_code(failed=True)


def after_sweep(plan, outcome, report: bool) -> int:
    """After the sweep: tables, summary, report, upload; returns the exit code."""
    from tune_ae import results
    timings, settings = dict(outcome.timings), plan.settings
    clock = time.perf_counter()
    with signals.held():  # a few seconds at most: the tables are what a resume and the report read
        paths = results.save_tables(outcome.folder)
    trials = results.load_table(outcome.folder, "trials")
    timings["tables_s"] = time.perf_counter() - clock
    print_summary(trials, outcome.folder, paths)
    statuses = trials["status"].tolist()
    unfinished = trials["status"].isin(["interrupted", "not started"])
    if not outcome.pending_timeout and (unfinished.any() or signals.received):
        say_interrupted(outcome.folder, settings, int(unfinished.sum()))
        return exit_code(statuses, signal=signals.received[0] if signals.received else None)
    failed = outcome.pending_timeout
    if outcome.pending_timeout:
        print(f"error: trials waited over {settings.pending_timeout_s:g} s with none running (resources never free); "
              f"give them less with --cpus-per-trial/--gpus-per-trial and {how_to_continue(settings)}",
              file=sys.stderr)
    elif (trials["status"] == "error").any():
        print(f"error: {(trials['status'] == 'error').sum()} trial(s) failed (see the error column)", file=sys.stderr)
    if report:
        from tune_ae.report.write import write_report_or_say_why

        clock = time.perf_counter()
        failed |= not write_report_or_say_why(outcome.folder, plan.data_dir)
        timings["report_s"] = time.perf_counter() - clock
    try:
        experiment.add_to_last_run(outcome.folder, {"timings": timings})  # where the time went, for benchmarks
    except OSError:  # a full disk already said by the report's error; the timings are only for benchmarks
        failed = True
    upload(settings, outcome.folder)
    return exit_code(statuses, failed=failed)


def say_interrupted(folder: Path, settings: SweepSettings, unfinished: int) -> None:
    how = f" ({signals.name()})" if signals.received else ""
    if unfinished:
        print(f"interrupted{how}: {unfinished} trial(s) unfinished; {how_to_continue(settings)}", file=sys.stderr)
    else:  # stopped after the last trial ended: nothing to resume, the report not written
        print(f"interrupted{how} after every trial ended; tables written, report not: write it with\n"
              f"  {shlex.join(['python', '-m', 'tune_ae.report', str(folder)])}", file=sys.stderr)


def upload(settings: SweepSettings, folder: Path) -> None:
    """For a URI storage path: tune_ae's files join Tune's there."""
    if not storage.is_uri(settings.storage_path):
        return
    from tune_ae import results

    ours = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
            and (p.parent == folder and p.suffix in (".parquet", ".csv", ".md", ".log")
                 or p.parent.name in ("figures", "tune_ae") or p.name == results.EPOCHS_LOG)]
    storage.push(settings.storage_path, settings.name, ours)
    print(f"  uploaded to {storage.experiment_uri(settings.storage_path, settings.name)}")
