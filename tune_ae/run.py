"""`python -m tune_ae.run --grid paper`: run (or resume) a sweep and write its results.

Everything it is given is checked before Ray starts; a bad value ends the command with one
`error:` line and exit code 2. Exit codes: 0 every trial finished (done, or stopped early by
ASHA), 1 some trial failed, did not start, or the report failed, 2 bad input, 130
interrupted (Ctrl-C; the output says how to resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path

from tune_ae import experiment, storage
from tune_ae.args import FAILED, INTERRUPTED, OK, USAGE_ERROR, Parser, add_trial_flags, exit_now, flag
from tune_ae.config import RESUMABLE_SETTINGS, SCHEDULERS, ConfigError, SweepSettings
from tune_ae.grids import GRIDS, Grid, resolve

SETTING_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SweepSettings) if f.default is not dataclasses.MISSING}
DRIVER_ERROR_FILE = "driver-error.txt"


def gpus_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def build_parser(prog: str = "python -m tune_ae.run") -> Parser:
    grids = "; ".join(f"{name}: {grid.describe()}" for name, grid in GRIDS.items())
    p = Parser(prog=prog, description="Sweep autoencoders on Fashion-MNIST with Ray Tune. "
               "Exit codes: 0 all trials finished, 1 a trial failed or did not start, 2 bad input, 130 interrupted.")
    p.add_argument("--grid", choices=GRIDS, help=f"named grid, paper if not given. {grids}")
    g = p.add_argument_group("grid overrides (each takes one or more values; not given: the grid's own)")
    trial_flags = add_trial_flags(g)
    g.add_argument("--seeds", type=int, help="repeats per grid point, seeds 0..N-1")
    g.add_argument("--subset", type=int, help="training images kept, class-balanced (test: N/6)")
    r = p.add_argument_group("where and how it runs (changeable on --resume, except --scheduler and --name)")
    r.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files; only there when given "
                   "(else $TUNE_AE_DATA, then the cache, then a download)")
    r.add_argument("--storage-path", help=f"folder or URI holding experiments (default {storage.DEFAULT_STORAGE})")
    r.add_argument("--name", help="experiment folder name (default GRID-DATE-TIME; with --resume, the newest)")
    r.add_argument("--resume", action="store_true", help="continue experiment --name where it stopped")
    r.add_argument("--address", help="join this Ray cluster, HOST:PORT or auto (also $RAY_ADDRESS); "
                   "default: a Ray started for this run on this machine")
    d = SETTING_DEFAULTS
    r.add_argument("--cpus-per-trial", type=float, help=f"CPU cores (torch threads) per trial (default {d['cpus_per_trial']:g})")
    r.add_argument("--gpus-per-trial", type=gpus_arg, help="GPU share per trial, or auto: the visible GPUs split "
                   "among the trials that can run at once (default auto)")
    r.add_argument("--scheduler", choices=SCHEDULERS, help=f"asha stops poor trials early (default {d['scheduler']})")
    r.add_argument("--max-failures", type=int, help=f"retries per crashed trial, from its checkpoint (default {d['max_failures']})")
    r.add_argument("--checkpoint-every", type=int, help=f"epochs between checkpoints (default {d['checkpoint_every']})")
    r.add_argument("--keep-checkpoints", type=int, help=f"checkpoints kept per trial (default {d['keep_checkpoints']})")
    r.add_argument("--pending-timeout", type=float, dest="pending_timeout_s",
                   help=f"seconds trials may wait with none running before the sweep stops (default {d['pending_timeout_s']:g})")
    r.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_const", const=False,
                   help="on CUDA, run the eager loop instead of replaying each epoch as a CUDA graph")
    r.add_argument("--no-report", action="store_true", help="skip figures and report.md (tables are still written)")
    p.set_defaults(trial_flags=trial_flags)
    return p


def given_settings(args) -> dict:
    """The sweep settings named on the command line (None = not given)."""
    values = {name: getattr(args, name, None) for name in (*RESUMABLE_SETTINGS, "scheduler")}
    return {k: v for k, v in values.items() if v is not None}  # "auto" stays apart from not given


def settings_value(name: str, value):
    """A flag's value as SweepSettings holds it: --gpus-per-trial auto is None there."""
    return None if name == "gpus_per_trial" and value == "auto" else value


def check_name(name: str) -> None:
    SweepSettings(storage_path="/", name=name)  # the name rules live with the settings


def plan_resume(args, storage_path: str) -> tuple[str, Grid, SweepSettings, str | None, dict]:
    grid_given = [flag(f) for f in (*args.trial_flags, "seeds", "subset") if getattr(args, f) is not None]
    if args.grid or grid_given:
        raise ConfigError(f"--resume continues the experiment as it was started; drop {' '.join(grid_given) or '--grid'}")
    if args.name is not None:
        check_name(args.name)
        folder = storage.pull(storage_path, args.name)
    elif storage.is_uri(storage_path):
        raise ConfigError(f"--resume with a URI storage path needs --name (the experiment under {storage_path})")
    else:
        folder = experiment.latest_experiment(storage_path)
    if folder is None or not (folder / experiment.META_FILE).is_file():
        where = storage.experiment_uri(storage_path, args.name) if args.name else storage_path
        raise ConfigError(f"nothing to resume: no tune_ae experiment at {where}; check --storage-path and --name")
    meta = experiment.read_meta(folder)
    recorded = experiment.recorded_settings(meta, storage_path, folder.name)
    given = given_settings(args)
    if "scheduler" in given and given["scheduler"] != recorded.scheduler:
        raise ConfigError(f"--scheduler cannot change on --resume (the sweep runs {recorded.scheduler}); drop it")
    new = {k: settings_value(k, v) for k, v in given.items() if k != "scheduler"}
    settings = dataclasses.replace(recorded, **new)
    changed = {k: [getattr(recorded, k), v] for k, v in new.items() if getattr(recorded, k) != v}
    return meta["grid_name"], experiment.recorded_grid(meta), settings, args.data_dir or meta["data"]["folder"], changed


def plan(args) -> tuple[str, Grid, SweepSettings, str | None, dict]:
    """Everything the sweep needs, validated: grid name, grid, settings, data dir, settings changed on resume."""
    storage_path = storage.check_storage(args.storage_path or str(storage.DEFAULT_STORAGE))
    if args.resume:
        return plan_resume(args, storage_path)
    grid_name = args.grid or "paper"
    grid = resolve(grid_name, {f: getattr(args, f) for f in args.trial_flags}, seeds=args.seeds, subset=args.subset)
    name = args.name if args.name is not None else experiment.default_name(grid_name)
    settings = SweepSettings(storage_path=storage_path, name=name,
                             **{k: settings_value(k, v) for k, v in given_settings(args).items()})
    if storage.exists(storage_path, settings.name):
        raise ConfigError(f"experiment {settings.name} already exists in {storage_path}; "
                          "pass --resume to continue it or a new --name")
    return grid_name, grid, settings, args.data_dir, {}


def resume_command(settings: SweepSettings) -> str:
    return f"python -m tune_ae.run --resume --name {settings.name} --storage-path {settings.storage_path}"


def print_summary(trials, folder: Path, paths: dict) -> None:
    from tune_ae.report import trial_overview  # the same columns the report and the notebook show

    overview = trial_overview(trials)
    overview["error"] = overview["error"].map(lambda e: e[:77] + "..." if isinstance(e, str) and len(e) > 80 else e)
    overview = overview.astype(object).where(overview.notna(), "")
    print("\n" + overview.to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    counts = trials["status"].value_counts()
    print("\n" + ", ".join(f"{n} {status}" for status, n in counts.items()) + f" (of {len(trials)} trials)")
    print(f"experiment: {folder}")
    for name, path in paths.items():
        print(f"  {name}: {path}")


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.run") -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(prog).parse_args(argv)
    try:
        grid_name, grid, settings, data_dir, changed = plan(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        return sweep_and_report(args, argv, grid_name, grid, settings, data_dir, changed)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with:\n  {resume_command(settings)}", file=sys.stderr)
        return INTERRUPTED


def sweep_and_report(args, argv, grid_name, grid, settings, data_dir, changed) -> int:
    from tune_ae.data import DataError, load_fashion_mnist  # torch loads after the flag checks

    try:
        data = load_fashion_mnist(data_dir, subset=grid.subset)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    from tune_ae import sweep  # ray loads after the data checks

    address = args.address or os.environ.get("RAY_ADDRESS")
    folder = storage.local_folder(settings.storage_path, settings.name)
    for key, (old, new) in changed.items():
        print(f"resume: {key} {old} -> {new}")
    try:
        outcome = sweep.run(grid_name, grid, settings, data, bool(args.resume), address, changed=changed,
                            command=[Path(sys.executable).name, "-m", "tune_ae.run", *argv])
    except ConfigError as err:  # found once Ray is up: resources, cluster, storage not shared
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as err:  # a bug or a Ray failure: one line here, the traceback in the folder
        return driver_error(err, folder, f"the sweep failed; continue with: {resume_command(settings)}")
    try:
        return finish(args, settings, data_dir, outcome)
    except Exception as err:
        return driver_error(err, outcome.folder, "the sweep ran, but its tables or report failed; rebuild them with "
                                                 f"python -m tune_ae.report {outcome.folder}")


def driver_error(err: Exception, folder: Path, what: str) -> int:
    """An unexpected error: one line on the console, the traceback in the experiment folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DRIVER_ERROR_FILE).write_text(traceback.format_exc())
    message = str(err).splitlines()[0] if str(err) else ""
    print(f"error: {type(err).__name__}: {message}; {what} (traceback in {folder / DRIVER_ERROR_FILE})", file=sys.stderr)
    return FAILED


def finish(args, settings: SweepSettings, data_dir: str | None, outcome) -> int:
    """After the sweep: tables, summary, exit status, report, upload; returns the exit code."""
    from tune_ae import results
    timings = dict(outcome.timings)
    clock = time.perf_counter()
    paths = results.save_tables(outcome.folder)
    trials = results.load_table(outcome.folder, "trials")
    timings["tables_s"] = time.perf_counter() - clock
    print_summary(trials, outcome.folder, paths)
    unfinished = trials["status"].isin(["interrupted", "not started"])
    if outcome.pending_timeout:
        print(f"error: trials waited over {settings.pending_timeout_s:g} s with none running (resources never free); "
              f"give them less with --cpus-per-trial/--gpus-per-trial and continue with:\n  {resume_command(settings)}",
              file=sys.stderr)
        status = FAILED
    elif unfinished.any():
        print(f"interrupted: {unfinished.sum()} trial(s) unfinished; continue with:\n  {resume_command(settings)}",
              file=sys.stderr)
        return INTERRUPTED
    else:
        status = OK if trials["status"].isin(results.FINISHED).all() else FAILED
    if status == FAILED and (trials["status"] == "error").any():
        print(f"error: {(trials['status'] == 'error').sum()} trial(s) failed (see the error column)", file=sys.stderr)
    if not args.no_report:
        from tune_ae.report import write_report_or_say_why

        clock = time.perf_counter()
        if not write_report_or_say_why(outcome.folder, data_dir):
            status = FAILED
        timings["report_s"] = time.perf_counter() - clock
    experiment.add_to_last_run(outcome.folder, {"timings": timings})  # where the time went, for benchmarks
    if storage.is_uri(settings.storage_path):  # our files join Tune's at the URI
        ours = [str(p.relative_to(outcome.folder)) for p in outcome.folder.rglob("*") if p.is_file()
                and (p.parent == outcome.folder and p.suffix in (".parquet", ".csv", ".md", ".log")
                     or p.parent.name == "figures" or p.name == results.EPOCHS_LOG)]
        storage.push(settings.storage_path, settings.name, ours + [experiment.META_FILE])
        print(f"  uploaded to {storage.experiment_uri(settings.storage_path, settings.name)}")
    return status


if __name__ == "__main__":
    exit_now(main())
