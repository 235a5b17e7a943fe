"""`python -m tune_ae.report EXPERIMENT_DIR [--data-dir DIR]`: (re)write an experiment's figures and report.md.

An experiment a run is using (a sweep, a --resume: its lock is held, lock.py) is refused with
one line and exit 2, before anything is written: its checkpoints and logs are being written,
and that run writes the tables and the report itself when it ends. While it writes, the report
holds the lock, so that no run starts on the folder meanwhile.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tune_ae import lock, signals
from tune_ae.args import FAILED, OK, USAGE_ERROR, Parser, exit_now
from tune_ae.config import ConfigError
from tune_ae.experiment import META_FILE, has_record, read_meta


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.report") -> int:
    signals.install()
    try:
        return write(argv, prog)
    except KeyboardInterrupt:  # files are written whole: an interrupted report leaves the older ones
        print(f"interrupted ({signals.name()}); run the command again to write the report", file=sys.stderr)
        return signals.exit_code()


def write(argv: list[str] | None, prog: str) -> int:
    p = Parser(prog=prog, description="Write figures and report.md for an experiment folder.")
    p.add_argument("experiment", help="experiment folder (holds tune_ae/experiment.json)")
    p.add_argument("--data-dir", help="Fashion-MNIST folder, if not the one the sweep read")
    args = p.parse_args(argv)
    folder = Path(args.experiment).expanduser().resolve()
    if not has_record(folder):
        print(f"error: {folder} is not a tune_ae experiment (no {META_FILE}); pass the folder the run printed",
              file=sys.stderr)
        return USAGE_ERROR
    if args.data_dir and not Path(args.data_dir).expanduser().is_dir():
        print(f"error: --data-dir {args.data_dir} is not a folder; pass the Fashion-MNIST folder the sweep trained on, "
              "or drop it to use the one it recorded", file=sys.stderr)
        return USAGE_ERROR
    try:
        read_meta(folder)
        held = hold(folder)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return write_tables_and_report(folder, args.data_dir)
    finally:
        if held:
            lock.release(folder)


def hold(folder: Path) -> bool:
    """Take the experiment's lock for the report's writes; ConfigError, naming the holder, when a
    run holds it. False where no lock file can be made (a read-only folder): the report's own
    first write then says why, in its line."""
    lock.check_free(folder)  # in use: refused before the slow imports
    try:
        lock.acquire(folder)
        return True
    except ConfigError:  # taken by a run since the look above, or no lock file to be made here
        lock.check_free(folder)
        return False


def write_tables_and_report(folder: Path, data_dir: str | None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    from tune_ae import results
    from tune_ae.report.write import write_report_or_say_why  # matplotlib and torch load after the checks

    try:  # the tables too: a run killed while writing them leaves the old ones, or none
        results.save_tables(folder)
    except OSError as err:
        print(f"error: tables not written: cannot write {err.filename or folder}: {err.strerror}", file=sys.stderr)
        return FAILED
    return OK if write_report_or_say_why(folder, data_dir) else FAILED


if __name__ == "__main__":
    exit_now(main())
