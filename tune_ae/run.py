"""`python -m tune_ae.run --grid paper`: run (or resume) a sweep and write its results.

Everything it is given is checked before Ray starts; a bad value ends the command with one
`error:` line and exit code 2. Exit codes: 0 every trial finished (done, or stopped early by
ASHA), 1 some trial failed or did not start, the report failed, or a write failed (a full
disk), 2 bad input (or the experiment is in use by another run), 128 + the signal when
interrupted: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the output says how to resume).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path

from tune_ae import experiment, lock, preflight, signals, storage
from tune_ae.args import (FAILED, OK, USAGE_ERROR, Parser, add_setting_flags, add_trial_flags, exit_now, flag,
                          given_settings, setting_flag)
from tune_ae.config import SETTINGS, TRIAL_FIELDS, ConfigError, SweepSettings
from tune_ae.grids import GRIDS, SEARCHES, Grid, Range, override, resolve

DRIVER_ERROR_FILE = "driver-error.txt"


def build_parser(prog: str = "python -m tune_ae.run") -> Parser:
    grids = "; ".join(f"{name}: {grid.describe()}" for name, grid in GRIDS.items())
    p = Parser(prog=prog, description="Sweep autoencoders on Fashion-MNIST with Ray Tune. "
               "Exit codes: 0 all trials finished, 1 a trial failed or did not start (or a write failed), 2 bad input "
               "or the experiment in use, 130/143/129 interrupted by SIGINT/SIGTERM/SIGHUP.")
    p.add_argument("--grid", choices=GRIDS, help=f"named grid, paper if not given. {grids}")
    g = p.add_argument_group("grid overrides (each takes one or more values, or a numeric field one range "
                             "LOW:HIGH[:log] for a search; not given: the grid's own)")
    trial_flags = add_trial_flags(g, ranges=True)
    g.add_argument("--seeds", type=int, help="repeats per grid point, seeds 0..N-1")
    g.add_argument("--subset", type=int, help="training images kept, class-balanced (test: N/6)")
    g.add_argument("--search", choices=SEARCHES, help="grid (default): every combination; random or optuna (TPE): "
                   "--num-samples configurations at each point, drawn from the ranges and from the lists of choice "
                   "fields; the lists of numeric fields (e.g. --hidden) are the points")
    g.add_argument("--num-samples", type=int, help="configurations per point of a search (default 1)")
    g.add_argument("--search-seed", type=int, help="seed of a search's sampling (default 0): the same seed, the same samples")
    fixed = [setting_flag(f) for f in SETTINGS if not f.metadata["resumable"]]
    r = p.add_argument_group(f"where and how it runs (changeable on --resume, except {', '.join(fixed)} and --name)")
    r.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files; only there when given "
                   "(else $TUNE_AE_DATA, then the cache, then a download)")
    r.add_argument("--storage-path", help=f"folder or URI holding experiments (default {storage.DEFAULT_STORAGE})")
    r.add_argument("--name", help="experiment folder name (default GRID-DATE-TIME; with --resume, the newest)")
    r.add_argument("--resume", action="store_true", help="continue experiment --name where it stopped")
    r.add_argument("--extend", action="store_true", help="add trials to experiment --name: more --seeds, more values "
                   "on an axis, more --num-samples; trials already run are kept as they are")
    r.add_argument("--address", help="join this Ray cluster, HOST:PORT or auto (also $RAY_ADDRESS); "
                   "default: a Ray started for this run on this machine")
    add_setting_flags(r)  # --cpus-per-trial, --scheduler, ...: one per SweepSettings field
    r.add_argument("--dashboard", nargs="?", type=int, const=8080, metavar="PORT",
                   help="serve the live page (tune-ae dashboard) on 127.0.0.1:PORT (default 8080) while the sweep runs")
    r.add_argument("--no-report", action="store_true", help="skip figures and report.md (tables are still written)")
    p.set_defaults(trial_flags=trial_flags)
    return p


def check_name(name: str) -> None:
    SweepSettings(storage_path="/", name=name)  # the name rules live with the settings


GRID_FLAGS = ("seeds", "subset", "search", "num_samples", "search_seed")  # run.py's own, beside the trial fields'


def overrides(args) -> dict:
    """Trial-field flags given: field -> list of values, or one Range."""
    given = {}
    for name in args.trial_flags:
        values = getattr(args, name)
        if values is None:
            continue
        ranges = [v for v in values if isinstance(v, Range)]
        if ranges and len(values) > 1:
            raise ConfigError(f"{flag(name)} takes one range or a list of values, not both ({' '.join(map(str, values))})")
        given[name] = ranges[0] if ranges else values
    return given


def plan_resume(args, storage_path: str) -> tuple[str, Grid, SweepSettings, str | None, dict]:
    grid_given = [flag(f) for f in (*args.trial_flags, *GRID_FLAGS) if getattr(args, f) is not None]
    if args.extend and args.resume:
        raise ConfigError("--resume and --extend are two ways to continue an experiment; give one "
                          "(--extend also finishes the trials an interruption left)")
    if args.grid and args.extend:
        raise ConfigError("--extend adds to the experiment's own grid; drop --grid (give the values to add instead)")
    if args.grid or grid_given and not args.extend:
        raise ConfigError(f"--resume continues the experiment as it was started; drop {' '.join(grid_given) or '--grid'}"
                          + (" (or add trials with --extend)" if grid_given else ""))
    if args.name is not None:
        check_name(args.name)
        lock.check_free(storage.local_folder(storage_path, args.name))  # before a pull could touch a running sweep's mirror
        folder = storage.pull(storage_path, args.name)
    elif storage.is_uri(storage_path):
        raise ConfigError(f"--resume with a URI storage path needs --name (the experiment under {storage_path})")
    else:
        folder = experiment.latest_experiment(storage_path)
    if folder is None or not (folder / experiment.META_FILE).is_file():
        where = storage.experiment_uri(storage_path, args.name) if args.name else storage_path
        raise ConfigError(f"nothing to resume: no tune_ae experiment at {where}; check --storage-path and --name")
    lock.check_free(folder)
    meta = experiment.read_meta(folder)
    try:
        recorded = experiment.recorded_settings(meta, storage_path, folder.name)
        grid, grid_name, data_folder = experiment.recorded_grid(meta), meta["grid_name"], meta["data"]["folder"]
    except (KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"{folder / experiment.META_FILE} lacks what a resume needs ({type(err).__name__}: {err}); "
                          "it is not a complete tune_ae record") from None
    new = given_settings(args)
    for field in SETTINGS:
        if not field.metadata["resumable"] and field.name in new and new[field.name] != getattr(recorded, field.name):
            raise ConfigError(f"{setting_flag(field)} cannot change on --resume (the sweep runs "
                              f"{getattr(recorded, field.name)}); drop it")
    settings = dataclasses.replace(recorded, **new)
    changed = {k: [getattr(recorded, k), v] for k, v in new.items() if getattr(recorded, k) != v}
    if args.extend:
        extended = override(grid, overrides(args), seeds=args.seeds, subset=args.subset, search=args.search,
                            num_samples=args.num_samples, search_seed=args.search_seed)
        added = check_extension(grid, extended)
        changed["extended"] = added  # said and recorded with the run
        grid = extended
    return grid_name, grid, settings, args.data_dir or data_folder, changed


def check_extension(old: Grid, new: Grid) -> dict:
    """What `new` adds to experiment grid `old`; a ConfigError when it would change or drop what
    `old`'s trials are (they ran as recorded), or adds nothing."""
    def refuse(what: str):
        raise ConfigError(f"--extend adds trials to an experiment; {what}")

    if new.subset != old.subset:
        refuse(f"its trials were trained on {old.subset or 'all'} images: drop --subset (a new data subset is a new experiment)")
    for name in ("search", "search_seed"):
        if getattr(new, name) != getattr(old, name):
            refuse(f"it is a {old.search} search with seed {old.search_seed}: drop {flag(name)}")
    if new.ranges != old.ranges:
        changed = [n for n in TRIAL_FIELDS if new.ranges.get(n) != old.ranges.get(n)]
        refuse("the searched ranges are fixed once it ran (" + ", ".join(
            f"{flag(n)} {old.ranges[n] if n in old.ranges else 'not searched'}" for n in changed) + ")")
    if new.search == "random":  # sample k of a point draws its choices by their count: more choices, other samples
        for name in TRIAL_FIELDS:
            if (name in new.searched() or name in old.searched()) and name not in new.ranges \
                    and new.values(name) != old.values(name):
                refuse(f"a random search's choices are fixed once it ran (the samples drawn depend on them): drop "
                       f"{flag(name)}")
    added = {}
    for name in TRIAL_FIELDS:
        before, after = old.values(name), new.values(name)
        dropped = [v for v in before if v not in after]
        if dropped and name in new.searched() and name not in old.searched():
            dropped = []  # a choice field that becomes searched: its old value is still among the choices
        if dropped and name == "seed":
            refuse(f"--seeds {len(after)} drops seed(s) {' '.join(map(str, dropped))} of trials already run; "
                   f"give --seeds {len(before)} or more")
        if dropped:
            refuse(f"{flag(name)} {' '.join(map(str, after))} drops {name} "
                   f"{' '.join(map(str, dropped))} of trials already run; give the old values too, "
                   f"e.g. {flag(name)} {' '.join(map(str, [*before, *[v for v in after if v not in before]]))}")
        if set(after) - set(before):
            added[name] = [v for v in after if v not in before]
    if new.num_samples < old.num_samples:
        refuse(f"it has {old.num_samples} samples per point: --num-samples can only grow")
    if new.num_samples > old.num_samples:
        added["num_samples"] = [old.num_samples, new.num_samples]
    if not added:
        refuse("these flags add nothing to it (more --seeds, a new value on an axis, or more --num-samples)")
    return added


def plan(args) -> tuple[str, Grid, SweepSettings, str | None, dict]:
    """Everything the sweep needs, validated: grid name, grid, settings, data dir, settings changed on resume."""
    if args.dashboard is not None and not 0 < args.dashboard < 65536:
        raise ConfigError(f"--dashboard takes a port in 1..65535, got {args.dashboard}")
    address = args.address or os.environ.get("RAY_ADDRESS")
    preflight.check_address(address, "--address" if args.address else "RAY_ADDRESS")
    planned = plan_resume(args, storage.check_storage(args.storage_path or str(storage.DEFAULT_STORAGE))) \
        if args.resume or args.extend and args.name is not None else plan_new(args)
    settings = planned[2]
    if address:
        preflight.check_reachable(address)
    else:  # the embedded Ray will have this machine, no more
        preflight.check_fits_this_machine(settings.cpus_per_trial, settings.gpus_per_trial)
    return planned


def plan_new(args) -> tuple[str, Grid, SweepSettings, str | None, dict]:
    if args.extend:
        raise ConfigError("--extend adds trials to an existing experiment: give --name (its folder under --storage-path)")
    grid_name = args.grid or "paper"
    grid = resolve(grid_name, overrides(args), seeds=args.seeds, subset=args.subset, search=args.search,
                   num_samples=args.num_samples, search_seed=args.search_seed)
    storage_path = storage.check_storage(args.storage_path or str(storage.DEFAULT_STORAGE))
    name = args.name if args.name is not None else experiment.default_name(grid_name)
    settings = SweepSettings(storage_path=storage_path, name=name, **given_settings(args))
    lock.check_free(storage.local_folder(storage_path, settings.name))
    if storage.exists(storage_path, settings.name):
        raise ConfigError(f"experiment {settings.name} already exists in {storage_path}; "
                          "pass --resume to continue it or a new --name")
    return grid_name, grid, settings, args.data_dir, {}


def resume_command(settings: SweepSettings) -> str:
    """The command that continues this sweep, quoted for a POSIX shell."""
    return shlex.join(["python", "-m", "tune_ae.run", "--resume", "--name", settings.name,
                       "--storage-path", settings.storage_path])


def resumable(settings: SweepSettings) -> bool:
    """Whether --resume would find this experiment: its record is written before any trial starts."""
    return (storage.local_folder(settings.storage_path, settings.name) / experiment.META_FILE).is_file()


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


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.run") -> int:
    signals.install()  # SIGTERM and SIGHUP are interruptions too, from the first second
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(prog).parse_args(argv)
    settings = None
    try:
        grid_name, grid, settings, data_dir, changed = plan(args)
        data = load_data(data_dir, grid.subset)
        continuing = args.resume or args.extend
        settings, created = claim(settings, default_name=args.name is None and not continuing, resuming=continuing)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print(f"\ninterrupted ({signals.name()}) before the sweep started", file=sys.stderr)
        return signals.exit_code()
    folder = storage.local_folder(settings.storage_path, settings.name)
    try:
        return sweep_and_report(args, argv, grid_name, grid, settings, data, data_dir, changed)
    except KeyboardInterrupt:
        if save_tables_if_any(folder):
            print(f"\ninterrupted ({signals.name()}) after every trial ended; the report is not written: write it with\n"
                  f"  {shlex.join(['python', '-m', 'tune_ae.report', str(folder)])}", file=sys.stderr)
        else:
            print(f"\ninterrupted ({signals.name()}); {how_to_continue(settings)}", file=sys.stderr)
        return signals.exit_code()
    finally:
        with signals.held():
            if created and not (folder / experiment.META_FILE).exists() and not (folder / DRIVER_ERROR_FILE).exists():
                shutil.rmtree(folder, ignore_errors=True)  # refused or stopped before its record: leave nothing
            lock.release(folder)


def save_tables_if_any(folder: Path) -> bool:
    """After a signal cut the sweep or its report short: the tables still show where each trial
    stands. Returns whether every trial had finished (then there is nothing to resume)."""
    if not (folder / experiment.META_FILE).is_file():
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


def load_data(data_dir: str | None, subset: int | None):
    from tune_ae.data import DataError, load_fashion_mnist  # torch loads after the flag checks

    try:
        return load_fashion_mnist(data_dir, subset=subset)
    except DataError as err:
        raise ConfigError(str(err)) from None


def claim(settings: SweepSettings, default_name: bool, resuming: bool) -> tuple[SweepSettings, bool]:
    """Lock the experiment's folder before anything is written; returns the settings (a default
    name taken in the same second by another sweep gets a suffix) and whether the folder is new."""
    for attempt in range(1, 1000):
        name = settings.name if attempt == 1 else f"{settings.name}-{attempt}"
        folder = storage.local_folder(settings.storage_path, name)
        try:
            folder.mkdir(parents=True)  # atomic: of two sweeps, one creates it
            created = True
        except FileExistsError:
            created = False
            if default_name:
                continue
        except OSError as err:
            raise ConfigError(f"cannot create {folder} ({err.strerror}); pass --storage-path DIR with a folder "
                              "you can write") from None
        lock.acquire(folder)
        if not (resuming or created or storage.is_uri(settings.storage_path)) \
                and any(p.name != lock.LOCK_FILE for p in folder.iterdir()):
            lock.release(folder)
            raise ConfigError(f"experiment {name} already exists in {settings.storage_path}; "
                              "pass --resume to continue it or a new --name")
        return dataclasses.replace(settings, name=name), created
    raise ConfigError(f"no free name for {settings.name} in {settings.storage_path}; pass --name")


WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def write_error(err: BaseException) -> OSError | None:
    """The failed write behind `err` (Ray and Tune wrap it in their own errors), if it is one."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in WRITE_ERRORS:
            return err
        err = err.__cause__ or err.__context__
    return None


def sweep_and_report(args, argv, grid_name, grid, settings, data, data_dir, changed) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    from tune_ae import sweep  # ray loads after the data checks

    address = args.address or os.environ.get("RAY_ADDRESS")
    folder = storage.local_folder(settings.storage_path, settings.name)
    pages: list = []  # the --dashboard process, once started
    try:
        extended = changed.pop("extended", None)
        outcome = sweep.run(grid_name, grid, settings, data, bool(args.resume or args.extend), address, changed=changed,
                            command=[Path(sys.executable).name, "-m", "tune_ae.run", *argv], extended=extended,
                            on_record=(lambda f: pages.append(start_dashboard(f, args.dashboard)))
                            if args.dashboard else None)
    except ConfigError as err:  # found once Ray is up: resources, cluster, storage not shared
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as err:  # a full disk, a bug or a Ray failure: one line here, the traceback in the folder
        if signals.received:  # a second signal cut Tune's stop short: still an interruption
            raise signals.Interrupted(signals.received[0]) from err
        return driver_error(err, folder, f"the sweep failed; {how_to_continue(settings)}", how_to_continue(settings))
    finally:
        for page in pages:  # down with Ray: the page shows the journal the sweep writes
            stop_dashboard(page)
    try:
        return finish(args, settings, data_dir, outcome)
    except Exception as err:
        return driver_error(err, outcome.folder, "the sweep ran, but its tables or report failed; rebuild them with "
                                                 f"{shlex.join(['python', '-m', 'tune_ae.report', str(outcome.folder)])}",
                            how_to_continue(settings))


def start_dashboard(folder: Path, port: int):
    """`python -m tune_ae.dashboard FOLDER --port PORT` beside the sweep; its address once it says
    it serves (not merely once the port answers: that may be another server), or why not. The
    sweep goes on either way."""
    import select
    import subprocess

    page = subprocess.Popen([sys.executable, "-m", "tune_ae.dashboard", str(folder), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([page.stdout], [], [], 0.2)
        if ready:
            line = page.stdout.readline()
            if line.startswith("dashboard of"):
                print(f"dashboard: http://127.0.0.1:{port}/ (it stops with the sweep; after it: "
                      f"{shlex.join(['tune-ae', 'dashboard', str(folder)])})", flush=True)
                return page
        if page.poll() is not None:
            why = (page.stderr.read().strip().splitlines() or ["it exited"])[-1].removeprefix("error: ")
            print(f"warning: no dashboard: {why}", flush=True)
            return page
    print(f"warning: the dashboard did not start on port {port} within 30 s; the sweep goes on", flush=True)
    return page


def stop_dashboard(page) -> None:
    """Its clean stop (SIGINT, as Ctrl-C), then a kill if it does not end."""
    import signal as signal_module
    import subprocess

    if page.poll() is None:
        page.send_signal(signal_module.SIGINT)
        try:
            page.wait(timeout=10)
        except subprocess.TimeoutExpired:
            page.kill()


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
    if failed is None and disk_full(folder):  # Tune's own reads of what a full disk cut short (an empty pickle)
        failed = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
    if failed is not None:
        where = failed.filename or folder
        print(f"error: cannot write {where}: {failed.strerror}; free space (or fix the storage) and {after_a_write_error}",
              file=sys.stderr)
        return FAILED
    path = folder / DRIVER_ERROR_FILE
    try:
        experiment.write_text_whole(path, traceback.format_exc())
        saved = f"traceback in {path}"
    except OSError as write_err:
        saved = f"its traceback could not be saved: {write_err.strerror}"
    message = str(err).splitlines()[0] if str(err) else ""
    print(f"error: {type(err).__name__}: {message}; {what} ({saved})", file=sys.stderr)
    return FAILED


def finish(args, settings: SweepSettings, data_dir: str | None, outcome) -> int:
    """After the sweep: tables, summary, exit status, report, upload; returns the exit code."""
    from tune_ae import results
    timings = dict(outcome.timings)
    clock = time.perf_counter()
    with signals.held():  # a few seconds at most: the tables are what a resume and the report read
        paths = results.save_tables(outcome.folder)
    trials = results.load_table(outcome.folder, "trials")
    timings["tables_s"] = time.perf_counter() - clock
    print_summary(trials, outcome.folder, paths)
    unfinished = trials["status"].isin(["interrupted", "not started"])
    if outcome.pending_timeout:
        print(f"error: trials waited over {settings.pending_timeout_s:g} s with none running (resources never free); "
              f"give them less with --cpus-per-trial/--gpus-per-trial and {how_to_continue(settings)}",
              file=sys.stderr)
        status = FAILED
    elif unfinished.any():
        how = f" ({signals.name()})" if signals.received else ""
        print(f"interrupted{how}: {unfinished.sum()} trial(s) unfinished; {how_to_continue(settings)}", file=sys.stderr)
        return signals.exit_code()
    elif signals.received:  # stopped after the last trial ended: nothing to resume, the report not written
        print(f"interrupted ({signals.name()}) after every trial ended; tables written, report not: write it with\n"
              f"  {shlex.join(['python', '-m', 'tune_ae.report', str(outcome.folder)])}", file=sys.stderr)
        return signals.exit_code()
    else:
        status = OK if trials["status"].isin(results.FINISHED).all() else FAILED
    if status == FAILED and (trials["status"] == "error").any():
        print(f"error: {(trials['status'] == 'error').sum()} trial(s) failed (see the error column)", file=sys.stderr)
    if not args.no_report:
        from tune_ae.report.write import write_report_or_say_why

        clock = time.perf_counter()
        if not write_report_or_say_why(outcome.folder, data_dir):
            status = FAILED
        timings["report_s"] = time.perf_counter() - clock
    try:
        experiment.add_to_last_run(outcome.folder, {"timings": timings})  # where the time went, for benchmarks
    except OSError:  # a full disk already said by the report's error; the timings are only for benchmarks
        status = FAILED
    if storage.is_uri(settings.storage_path):  # our files join Tune's at the URI
        ours = [str(p.relative_to(outcome.folder)) for p in outcome.folder.rglob("*") if p.is_file()
                and (p.parent == outcome.folder and p.suffix in (".parquet", ".csv", ".md", ".log")
                     or p.parent.name == "figures" or p.name == results.EPOCHS_LOG)]
        storage.push(settings.storage_path, settings.name, ours + [experiment.META_FILE])
        print(f"  uploaded to {storage.experiment_uri(settings.storage_path, settings.name)}")
    return status


if __name__ == "__main__":
    exit_now(main())
