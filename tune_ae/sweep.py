"""Drive one sweep from start to end: Ray up, checks that nothing can hang, the experiment's
record, the Tuner's fit (tuner.py), Ray down. What it finds wrong before a trial runs is a
ConfigError with one line to say so.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

import tune_ae
from tune_ae import callbacks, experiment, preflight, ray_internals, results, signals, storage, tuner
from tune_ae.config import TRIAL_FIELDS, ConfigError, SweepSettings, TrialConfig
from tune_ae.data import FashionMNIST
from tune_ae.grids import Grid
from tune_ae.trainable import train_autoencoder

CONNECT_TIMEOUT_S = 30  # an unreachable --address answers within this
TUNE_LOG = "tune.log"  # Tune's and Ray's driver log, inside the experiment folder
TOKEN_PREFIX = "tune_ae-token-"  # the embedded Ray's private token folder: <tmp>/tune_ae-token-<pid>-<random>


@dataclass
class Outcome:
    folder: Path  # the local experiment folder (a mirror for URI storage)
    pending_timeout: bool  # the watchdog stopped a sweep whose trials could not start
    timings: dict  # seconds per phase: ray_start_s, checks_s, fit_s, shutdown_s


@contextmanager
def deadline(seconds: int, message: str):
    """Raise ConfigError(message) if the block runs longer than `seconds` (main thread only)."""

    def expire(signum, frame):
        raise ConfigError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def private_token() -> Path | None:
    """The embedded Ray's auth token in a new file, mode 600, in a new folder, mode 700.

    Left alone, Ray writes it to ~/.ray/auth_token readable by every user (mode 644). Not
    used when auth is off or the caller chose a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH).
    Returns the folder, for `run` to remove when Ray is down.
    """
    if os.environ.get("RAY_AUTH_MODE") == "disabled" or {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"} & set(os.environ):
        return None
    remove_stale_tokens()
    # Mode 700, an unpredictable name that starts with our pid (so a later run knows when it is stale).
    folder = Path(tempfile.mkdtemp(prefix=f"{TOKEN_PREFIX}{os.getpid()}-"))
    token = folder / "token"
    with open(os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write(secrets.token_hex(32))
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
    return folder


def remove_stale_tokens() -> None:
    """Token folders of earlier runs that ended without removing theirs (SIGKILL): their pid is gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{TOKEN_PREFIX}*-*"):
        pid = folder.name[len(TOKEN_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:  # alive under another user, or gone already
            continue


def shipped_code() -> dict:
    """Ray's runtime environment that sends this tune_ae to every node of a cluster: the nodes
    need its dependencies (torch, ray, pandas, ...), not tune_ae itself, and always run the
    driver's version of it."""
    return {"py_modules": [str(Path(tune_ae.__file__).parent)], "excludes": ["__pycache__"]}


def start_ray(address: str | None) -> None:
    """Join `address`, or start an embedded single-node Ray sized to this machine."""
    # Trials print nothing useful to the console: their errors land in error.txt and Progress says so.
    # Ray's C++ core would install a SIGTERM handler that prints a stack and kills the driver;
    # tune_ae's (signals.py) stops the sweep instead. Its Python side sets SIGTERM handlers
    # that end with sys.exit while it starts: that SystemExit is a SIGTERM, an interruption.
    os.environ.setdefault(ray_internals.DISABLE_CORE_SIGNAL_HANDLER, "1")
    if not address:
        with signal_during_start():
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     _system_config=ray_internals.EMBEDDED_SYSTEM_CONFIG)
        signals.install()
        return
    preflight.check_reachable(address)
    try:
        with deadline(CONNECT_TIMEOUT_S, f"the Ray cluster at {address} did not answer within {CONNECT_TIMEOUT_S} s; "
                                         "check that it runs Ray 2.60.0 and that its token is set (RAY_AUTH_TOKEN)"), \
                core_log_aside() as core_log, signal_during_start():
            if ray_internals.token_refused(address):  # at once, where ray.init takes ~20 s to give up
                raise ConnectionError("authentication: the cluster refused the token")
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, runtime_env=shipped_code())
        signals.install()
    except ConnectionError as err:
        said = f"{err} {''.join(core_log)}".lower()
        if "authentication" in said or "unauthenticated" in said or "token" in said:
            raise ConfigError(f"the Ray cluster at {address} refused this driver's token; set RAY_AUTH_TOKEN "
                              "(or RAY_AUTH_TOKEN_PATH) to the cluster's token") from None
        raise ConfigError(f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}; "
                          "start one with `ray start --head` or drop --address to run on this machine") from None


@contextmanager
def signal_during_start():
    try:
        yield
    except SystemExit:  # raised only by the SIGTERM handlers ray.init installs
        signals.received.append(signal.SIGTERM)
        raise signals.Interrupted(signal.SIGTERM) from None


@contextmanager
def core_log_aside():
    """Ray's C++ core logs a failed connection to stderr line by line (~20 lines for a refused
    token): while joining, that goes to a file, read for the cause and then removed."""
    sys.stderr.flush()
    saved = os.dup(2)
    said: list[str] = []  # the log's text, once joining is over
    with tempfile.TemporaryDirectory(prefix="tune_ae-connect-") as folder:
        path = Path(folder) / "core.log"
        with open(path, "w") as log:
            os.dup2(log.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            said.append(path.read_text(errors="replace"))


def check_resources(request: dict, remote: bool) -> None:
    """Refuse a per-trial request that no live node can meet (it would stay pending forever)."""
    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    message = preflight.check_fits(request["cpu"], request["gpu"], nodes, remote)
    if message:  # An autoscaling cluster may add such a node; the pending watchdog ends the wait if none comes.
        logging.getLogger(__name__).warning(message)
        print(f"warning: {message} (waiting for the cluster to scale up, at most --pending-timeout)")


@ray.remote(num_cpus=0)
def _reads(path: str, token: str) -> bool:
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def nodes_missing(storage_path: str) -> list[str]:
    """Addresses of live nodes that cannot read a file the driver just wrote to `storage_path`."""
    nodes = [n for n in ray.nodes() if n["Alive"]]
    if len(nodes) < 2 or storage.is_uri(storage_path):
        return []
    token = secrets.token_hex(8)
    marker = Path(storage_path) / f".tune_ae-shared-{token}"
    marker.write_text(token)
    try:
        checks = [
            _reads.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(marker), token)
            for n in nodes
        ]
        seen = ray.get(checks, timeout=120)
    finally:
        marker.unlink()
    return [n["NodeManagerAddress"] for n, ok in zip(nodes, seen) if not ok]


def check_shared_storage(storage_path: str) -> None:
    """Trials checkpoint wherever they run: on several nodes the storage must be shared."""
    missing = nodes_missing(storage_path)
    if missing:
        raise ConfigError(
            f"storage path {storage_path} is not visible from node(s) {', '.join(missing)} of this multi-node cluster; "
            "pass --storage-path s3://BUCKET/PATH, gs://BUCKET/PATH or a shared file system path that every node mounts"
        )


class QuietFileHandler(logging.FileHandler):
    """A log line that cannot be written (a full disk) is dropped: the failure that matters is
    reported once, by the command; logging's default prints a traceback per line to stderr."""

    def handleError(self, record):
        pass


def log_to_folder(folder: Path) -> None:
    """Ray's and Tune's driver messages go to the experiment's tune.log, not the console."""
    handler = QuietFileHandler(folder / TUNE_LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", __name__):
        logger = logging.getLogger(name)
        logger.handlers = [handler]  # replaces Ray's stderr handler
        logger.propagate = False
        logger.setLevel(logging.INFO)
    for name in ("ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).propagate = True  # up to "ray", whose only handler is now the file
        logging.getLogger(name).handlers = []


def finished_trials(folder: Path) -> list[dict]:
    """Configs of the trials in `folder` that finished, each with "value": its last val_loss (what
    Tune's searcher was told). A fresh Tuner leaves them be.

    Finished: every epoch done, or stopped by ASHA, which only Tune's saved state can tell from a
    trial cut short (any of its states, oldest first: an --extend's newer Tuner knows only its own
    trials). A trial with epochs left and no such record continues from its checkpoint."""
    stopped = {}
    for path in ray_internals.state_files(folder):
        try:
            for record, _ in ray_internals.state_trials(json.loads(path.read_text())):
                stopped[Path(record.get("relative_logdir", "")).name] = record.get("status") == "TERMINATED"
        except (OSError, ValueError, KeyError, TypeError):
            continue
    trials = results.load_trials(folder)
    finished = trials[(trials["status"] == "done") | ((trials["status"] == "stopped early") & trials["trial_dir"].map(
        lambda d: isinstance(d, str) and stopped.get(Path(d).name, False)))]
    return [{**{name: row[name] for name in TRIAL_FIELDS}, "value": row["final_val_loss"]}
            for row in finished.to_dict("records")]


def adopt_trial_folders(folder: Path, grid: Grid) -> None:
    """Before a fresh Tuner continues an experiment whose Tune state is gone: trial folders under
    another name (Tune's default, from an older tune_ae) are renamed to the name this Tuner gives
    the same config, so that their checkpoints are found; folders of no trial of the grid are
    kept, moved out of the way."""
    if not grid.known_in_advance:
        return  # an optuna search's trials are not known before it runs: every folder is its own
    expected = {tuner.folder_name(c.to_dict()) for c in grid.trial_configs()}
    strays = []
    for params in folder.glob("*/" + ray_internals.PARAMS_FILE):
        trial_dir = params.parent
        if trial_dir.name in expected:
            continue
        try:
            config = TrialConfig.from_dict(json.loads(params.read_text()), fill_defaults=True).to_dict()
            target = folder / tuner.folder_name(config)
        except (OSError, ValueError, TypeError):  # ConfigError is a ValueError
            target = None
        if target is not None and target.name in expected and not target.exists():
            trial_dir.rename(target)
        else:
            strays.append(trial_dir)
    if strays:
        aside = folder / f".abandoned-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.mkdir(exist_ok=True)
        for trial_dir in strays:
            shutil.move(str(trial_dir), aside / trial_dir.name)


def trials_to_run(grid: Grid, finished: list[dict] | None) -> list[dict]:
    """What the progress lines count and label: the configs of the trials this Tuner runs (a
    restored Tuner runs every trial; a new one on an old folder leaves the `finished` be)."""
    configs = [c.to_dict() for c in grid.trial_configs()] if grid.known_in_advance \
        else [p for p in grid.points() for _ in range(grid.num_samples)]
    if finished:
        keys = {results.config_key(c) for c in finished}
        configs = [c for c in configs if results.config_key(c) not in keys] \
            if grid.known_in_advance else configs[len(finished):]
    return configs


def run(grid_name: str, grid: Grid, settings: SweepSettings, data: FashionMNIST, resuming: bool,
        address: str | None = None, trainable: Callable = train_autoencoder, changed: dict | None = None,
        command: list[str] | None = None, extended: dict | None = None,
        on_record: Callable[[Path], None] | None = None) -> Outcome:
    """Run (or resume) the sweep to its end, or to the first stop signal; returns where its files are.

    `extended`: what an --extend adds to the recorded grid (`grid` is the grown one). A new
    Tuner then runs the trials that have not finished, old ones interrupted included.
    `on_record(folder)` is called once the experiment's record and journal exist (run.py's
    --dashboard starts the page there).
    The caller holds the experiment folder's lock (lock.py).
    """
    folder = storage.local_folder(settings.storage_path, settings.name)
    uri = storage.experiment_uri(settings.storage_path, settings.name)
    started = clock = time.perf_counter()
    timings = {}
    watchdog = token_folder = None
    try:
        token_folder = None if address else private_token()
        start_ray(address)
        timings["ray_start_s"] = time.perf_counter() - clock
        resources = tuner.trial_resources(grid, settings)
        check_resources(resources, remote=bool(address))
        check_shared_storage(settings.storage_path)
        folder.mkdir(parents=True, exist_ok=True)
        log_to_folder(folder)
        problem = tuner.unusable_state(folder) if resuming else None
        restart = resuming and (extended is not None or problem is not None or not tuner.can_resume(uri))
        data_info = {"folder": data.folder, "subset": grid.subset,
                     "train_images": len(data.train_images), "test_images": len(data.test_images)}
        this_run = {**experiment.this_run(address, command), "changed_settings": changed or {}, "restarted": restart}
        if extended is not None:
            this_run["extended"] = extended
        experiment.write_meta(folder, grid_name, grid, settings, data_info, this_run, new_grid=extended is not None)
        storage.push(settings.storage_path, settings.name, [experiment.META_FILE])

        watchdog = callbacks.PendingWatchdog(settings.pending_timeout_s)
        finished = finished_trials(folder) if restart else None
        configs = trials_to_run(grid, finished)
        journal_log = callbacks.DashboardLog(folder, grid)
        hooks = [callbacks.Progress(grid.swept(), configs, folder=folder), watchdog, journal_log]
        if on_record:
            on_record(folder)
        sweep = None
        if resuming and not restart:
            try:
                sweep = tuner.restore_tuner(uri, grid, settings, data, trainable,
                                            [*hooks, callbacks.ApplyOnResume(tuner.trial_resources(grid, settings),
                                                                             settings.max_failures,
                                                                             settings.keep_checkpoints)])
            except Exception as err:  # Tune's files are there but do not restore (cut short, another Ray)
                problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                restart = True
                experiment.add_to_last_run(folder, {"restarted": True})
                finished = finished_trials(folder)  # the new Tuner leaves them be, and the progress lines too
                configs = trials_to_run(grid, finished)
                hooks = [callbacks.Progress(grid.swept(), configs, folder=folder), watchdog, journal_log]
        if restart and extended is not None:
            added = ", ".join(f"{k} {' '.join(map(str, v))}" for k, v in extended.items())
            print(f"{settings.name}: extended ({added}); {len(finished)} finished trial(s) kept as they are")
        elif restart:  # no usable Tune state: a new Tuner, whose trials continue from their folders' checkpoints
            why = f"Tune's saved state is unusable ({problem})" if problem else "it has no Tune state yet (stopped before its first save)"
            print(f"{settings.name}: {why}; continuing every trial from the checkpoints in its folder")
        if restart:
            adopt_trial_folders(folder, grid)
        if sweep is None:
            sweep = tuner.build_tuner(grid, settings, data, trainable, hooks, finished=finished)
        for key, (old, new) in (changed or {}).items():  # said once the checks let them take effect
            print(f"resume: {key} {old} -> {new}")
        print(f"{'resuming' if resuming else 'running'} {settings.name}: {len(configs)} "
              f"trial(s), {resources['cpu']:g} CPU and {resources['gpu']:g} GPU each; Tune's log: {folder / TUNE_LOG}",
              flush=True)
        # Tune's newer console output prints a configuration box even at verbose=0; the legacy
        # one is silent there, so Progress's lines are the whole console view.
        os.environ.setdefault(*ray_internals.LEGACY_CONSOLE)
        clock = time.perf_counter()
        timings["checks_s"] = clock - timings["ray_start_s"] - started
        try:
            if configs:  # an extension or a restart may find every trial finished
                sweep.fit()
        finally:
            signals.fit_ended()
        timings["fit_s"] = time.perf_counter() - clock
    finally:
        with signals.held():  # a second signal must not leave Ray running or the token behind
            clock = time.perf_counter()
            try:
                ray.shutdown()
            finally:
                signals.install()  # ray.shutdown resets SIGTERM's action to the default (death) underneath Python
                timings["shutdown_s"] = time.perf_counter() - clock
                if token_folder:
                    shutil.rmtree(token_folder, ignore_errors=True)
                    os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    storage.pull(settings.storage_path, settings.name)
    return Outcome(folder=folder, pending_timeout=watchdog.fired, timings=timings)
