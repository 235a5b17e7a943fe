"""Drive one sweep from start to end: Ray up, checks that nothing can hang, the experiment's
record, the Tuner's fit (tuner.py), Ray down. What it finds wrong before a trial runs is a
ConfigError with one line to say so.
"""

from __future__ import annotations

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
from tune_ae import callbacks, experiment, preflight, ray_internals, signals, storage, tuner
from tune_ae.config import ConfigError
from tune_ae.data import FashionMNIST
from tune_ae.plan import Plan, as_continued
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


def write_record(plan: Plan, data: FashionMNIST, address: str | None, command: list[str] | None) -> None:
    """The experiment's record, before any trial starts: this run's entry added (what it
    changes, adds, and whether a new Tuner carries it)."""
    data_info = {"folder": data.folder, "subset": plan.grid.subset,
                 "train_images": len(data.train_images), "test_images": len(data.test_images)}
    this_run = {**experiment.this_run(address, command), "mode": plan.mode, "changed_settings": plan.changed,
                "restarted": plan.mode in ("continue", "extend")}
    if plan.added is not None:
        this_run["extended"] = plan.added
    experiment.write_meta(plan.folder, plan.grid_name, plan.grid, plan.settings, data_info, this_run,
                          new_grid=plan.added is not None)
    storage.push(plan.settings.storage_path, plan.settings.name, [experiment.META_FILE])


def prepare_folder(plan: Plan) -> None:
    """The plan's changes to the folder before a Tuner sees it: Tune state files that do not parse
    renamed out of its sight; trial folders renamed or moved aside."""
    for name in plan.set_aside:
        path = plan.folder / name
        if path.is_file():
            path.rename(path.with_name(f".{name}.unreadable"))
    for source, target in plan.moves:
        (plan.folder / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(plan.folder / source), plan.folder / target)


def make_tuner(plan: Plan, data: FashionMNIST, trainable: Callable, hooks: list):
    """(the Tuner, the plan it carries out): Tune's restore for a `resume`; a new Tuner otherwise,
    or when Tune's files do not restore after all (cut short, another Ray's)."""
    if plan.mode == "resume":
        resume = callbacks.ApplyOnResume(tuner.trial_resources(plan.grid, plan.settings), plan.settings.max_failures,
                                         plan.settings.keep_checkpoints)
        try:
            return tuner.restore_tuner(storage.experiment_uri(plan.settings.storage_path, plan.settings.name),
                                       plan.grid, plan.settings, data, trainable, [*hooks, resume]), plan
        except Exception as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            plan = as_continued(plan, f"Tune's saved state is unusable ({reason})")
            experiment.add_to_last_run(plan.folder, {"mode": plan.mode, "restarted": True})
            prepare_folder(plan)
    return tuner.build_tuner(plan, data, trainable, hooks), plan


def announce(plan: Plan, resources: dict) -> None:
    name = plan.settings.name
    if plan.mode == "extend":
        added = ", ".join(f"{k} {' '.join(map(str, v))}" for k, v in plan.added.items())
        kept = len(plan.steps) - len(plan.to_run)
        print(f"{name}: extended ({added}); {kept} finished trial(s) kept as they are")
    elif plan.mode == "continue":
        print(f"{name}: {plan.why}; continuing every trial from the checkpoints in its folder")
    for key, (old, new) in plan.changed.items():  # said once the checks let them take effect
        print(f"resume: {key} {old} -> {new}")
    print(f"{'resuming' if plan.continuing else 'running'} {name}: {len(plan.to_run)} "
          f"trial(s), {resources['cpu']:g} CPU and {resources['gpu']:g} GPU each; Tune's log: {plan.folder / TUNE_LOG}",
          flush=True)


def run(plan: Plan, data: FashionMNIST, address: str | None = None, trainable: Callable = train_autoencoder,
        command: list[str] | None = None, on_record: Callable[[Path], None] | None = None) -> Outcome:
    """Carry out `plan` to its end, or to the first stop signal; returns where its files are.

    `on_record(folder)` is called once the experiment's record exists (run.py's --dashboard
    starts the page there). The caller holds the experiment folder's lock (lock.py).
    """
    folder = plan.folder
    started = clock = time.perf_counter()
    timings = {}
    watchdog = token_folder = None
    try:
        token_folder = None if address else private_token()
        start_ray(address)
        timings["ray_start_s"] = time.perf_counter() - clock
        resources = tuner.trial_resources(plan.grid, plan.settings)
        check_resources(resources, remote=bool(address))
        check_shared_storage(plan.settings.storage_path)
        folder.mkdir(parents=True, exist_ok=True)
        log_to_folder(folder)
        write_record(plan, data, address, command)
        prepare_folder(plan)
        watchdog = callbacks.PendingWatchdog(plan.settings.pending_timeout_s)
        hooks = [callbacks.Progress(plan.grid.swept(), [s.config for s in plan.to_run], folder=folder), watchdog,
                 callbacks.DashboardLog(folder, plan.grid)]
        if on_record:
            on_record(folder)
        sweep, plan = make_tuner(plan, data, trainable, hooks)
        announce(plan, resources)
        # Tune's newer console output prints a configuration box even at verbose=0; the legacy
        # one is silent there, so Progress's lines are the whole console view.
        os.environ.setdefault(*ray_internals.LEGACY_CONSOLE)
        clock = time.perf_counter()
        timings["checks_s"] = clock - timings["ray_start_s"] - started
        try:
            if plan.to_run:  # an extension or a resume may find every trial finished
                sweep.fit()
        finally:
            signals.fit_ended()
        timings["fit_s"] = time.perf_counter() - clock
    finally:
        timings["shutdown_s"] = stop_ray(token_folder)
    storage.pull(plan.settings.storage_path, plan.settings.name)
    return Outcome(folder=folder, pending_timeout=watchdog.fired, timings=timings)


def stop_ray(token_folder: Path | None) -> float:
    """Ray down and the embedded Ray's token removed, whatever signal comes; returns the seconds it took."""
    with signals.held():  # a second signal must not leave Ray running or the token behind
        clock = time.perf_counter()
        try:
            ray.shutdown()
        finally:
            signals.install()  # ray.shutdown resets SIGTERM's action to the default (death) underneath Python
            if token_folder:
                shutil.rmtree(token_folder, ignore_errors=True)
                os.environ.pop("RAY_AUTH_TOKEN_PATH", None)
    return time.perf_counter() - clock
