"""`python -m tune_ae.run --grid paper`: run (or resume) a sweep and write its results.

The command's flags and the experiment folder make a plan (plan.py: the mode, and what happens
to each trial), checked before Ray starts; `--plan` prints it and exits. A bad value ends the
command with one `error:` line and exit code 2. The sweep (sweep.py) carries out the plan;
the exit code comes from args.exit_code: 0 every trial finished (done, or stopped early by
ASHA), 1 some trial failed or did not start, the report failed, or a write failed (a full
disk), 2 bad input (or the experiment is in use by another run), 128 + the signal when
interrupted: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the output says how to resume).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from tune_ae import experiment, finish, lock, plan as plans, preflight, signals, storage
from tune_ae.args import (OK, Parser, add_setting_flags, add_trial_flags, exit_code, exit_now,
                          setting_flag)
from tune_ae.config import SETTINGS, ConfigError, SweepSettings
from tune_ae.finish import DRIVER_ERROR_FILE, driver_error, how_to_continue, save_tables_if_any
from tune_ae.grids import GRIDS, SEARCHES

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
    r.add_argument("--plan", action="store_true", help="print what this command would do (the mode, and each trial's "
                   "action) and exit, starting nothing and writing nothing")
    p.set_defaults(trial_flags=trial_flags)
    return p


def make_plan(args) -> plans.Plan:
    """The plan, with every check that needs no Ray: flags, the folder, the address, the machine."""
    if args.dashboard is not None and not 0 < args.dashboard < 65536:
        raise ConfigError(f"--dashboard takes a port in 1..65535, got {args.dashboard}")
    address = args.address or os.environ.get("RAY_ADDRESS")
    preflight.check_address(address, "--address" if args.address else "RAY_ADDRESS")
    storage_path = storage.check_storage(args.storage_path or str(storage.DEFAULT_STORAGE))
    if args.name is not None and (args.resume or args.extend):
        SweepSettings(storage_path="/", name=args.name)  # a bad name is said before a pull could use it
        lock.check_free(storage.local_folder(storage_path, args.name))  # before a pull could touch a running sweep's mirror
        storage.pull(storage_path, args.name)
    plan = plans.make(args, storage_path)
    if address:
        preflight.check_reachable(address)
    else:  # the embedded Ray will have this machine, no more
        preflight.check_fits_this_machine(plan.settings.cpus_per_trial, plan.settings.gpus_per_trial)
    return plan


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.run") -> int:
    signals.install()  # SIGTERM and SIGHUP are interruptions too, from the first second
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(prog).parse_args(argv)
    try:
        return run_command(args, argv)
    except OSError as err:  # the console itself gone (EIO once a closed terminal's SIGHUP came): the signal's code
        if signals.received:
            return exit_code(signal=signals.received[0])
        raise err


def run_command(args, argv: list[str]) -> int:
    named = args.name is not None
    try:
        plan = make_plan(args)
        if args.plan:
            print(plans.describe(plan))
            return OK
        data = load_data(plan.data_dir, plan.grid.subset)
        plan, created = claim(plan, default_name=not named and plan.mode == "new")
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code(usage_error=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted ({signals.name()}) before the sweep started", file=sys.stderr)
        return signals.exit_code()
    folder = plan.folder
    try:
        return sweep_and_report(args, argv, plan, data)
    except KeyboardInterrupt:
        if save_tables_if_any(folder):
            print(f"\ninterrupted ({signals.name()}) after every trial ended; the report is not written: write it with\n"
                  f"  {shlex.join(['python', '-m', 'tune_ae.report', str(folder)])}", file=sys.stderr)
        else:
            print(f"\ninterrupted ({signals.name()}); {how_to_continue(plan.settings)}", file=sys.stderr)
        return signals.exit_code()
    finally:
        with signals.held():
            if created and not experiment.has_record(folder) and not (folder / DRIVER_ERROR_FILE).exists():
                shutil.rmtree(folder, ignore_errors=True)  # refused or stopped before its record: leave nothing
            lock.release(folder)


def load_data(data_dir: str | None, subset: int | None):
    from tune_ae.data import DataError, load_fashion_mnist  # torch loads after the flag checks

    try:
        return load_fashion_mnist(data_dir, subset=subset)
    except DataError as err:
        raise ConfigError(str(err)) from None


def claim(plan: plans.Plan, default_name: bool) -> tuple[plans.Plan, bool]:
    """Lock the experiment's folder before anything is written; returns the plan (a default
    name taken in the same second by another sweep gets a suffix) and whether the folder is new.
    A folder the plan found free of a record is checked again under the lock."""
    settings = plan.settings
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
        if plan.mode == "new" and not created and not storage.is_uri(settings.storage_path) \
                and (experiment.has_record(folder) or plans.not_ours(folder)):
            lock.release(folder)
            raise ConfigError(f"experiment {name} already exists in {settings.storage_path}; "
                              "pass --resume to continue it or a new --name")
        return dataclasses.replace(plan, settings=dataclasses.replace(settings, name=name)), created
    raise ConfigError(f"no free name for {settings.name} in {settings.storage_path}; pass --name")


def sweep_and_report(args, argv: list[str], plan: plans.Plan, data) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    from tune_ae import sweep  # ray loads after the data checks

    address = args.address or os.environ.get("RAY_ADDRESS")
    pages: list = []  # the --dashboard process, once started
    try:
        outcome = sweep.run(plan, data, address, command=[Path(sys.executable).name, "-m", "tune_ae.run", *argv],
                            on_record=(lambda f: pages.append(start_dashboard(f, args.dashboard)))
                            if args.dashboard else None)
    except ConfigError as err:  # found once Ray is up: resources, cluster, storage not shared
        print(f"error: {err}", file=sys.stderr)
        return exit_code(usage_error=True)
    except Exception as err:  # a full disk, a bug or a Ray failure: one line here, the traceback in the folder
        if signals.received:  # a second signal cut Tune's stop short: still an interruption
            raise signals.Interrupted(signals.received[0]) from err
        return driver_error(err, plan.folder, f"the sweep failed; {how_to_continue(plan.settings)}",
                            how_to_continue(plan.settings))
    finally:
        for page in pages:  # down with Ray: the page shows the journal the sweep writes
            stop_dashboard(page)
    try:
        return finish.after_sweep(plan, outcome, report=not args.no_report)
    except Exception as err:
        return driver_error(err, outcome.folder, "the sweep ran, but its tables or report failed; rebuild them with "
                                                 f"{shlex.join(['python', '-m', 'tune_ae.report', str(outcome.folder)])}",
                            how_to_continue(plan.settings))


def start_dashboard(folder: Path, port: int):
    """`python -m tune_ae.dashboard FOLDER --port PORT` beside the sweep; its address once it says
    it serves (not merely once the port answers: that may be another server), or why not. The
    sweep goes on either way."""
    import select
    import subprocess

    # --stop-with: the page ends with this process however it ends (SIGKILL included).
    page = subprocess.Popen([sys.executable, "-m", "tune_ae.dashboard", str(folder), "--port", str(port),
                             "--stop-with", str(os.getpid())],
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


if __name__ == "__main__":
    exit_now(main())
