"""Carry out a run's plan (plan.py) from start to end: Ray up (ray_start.py), checks that
nothing can hang, the experiment's record, the folder's changes the plan lists, the Tuner's fit
(tuner.py), Ray down. It decides nothing the plan has not; what it finds wrong before a trial
runs is a ConfigError with one line to say so.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tune_ae import baselines, callbacks, experiment, preflight, ray_internals, ray_start, record, signals, storage, tuner
from tune_ae.config import ConfigError
from tune_ae.data import FashionMNIST
from tune_ae.plan import Plan, as_continued, shown
from tune_ae.trainable import train_autoencoder

TUNE_LOG = "tune.log"  # Tune's and Ray's driver log, inside the experiment folder


@dataclass
class Outcome:
    folder: Path  # the local experiment folder (a mirror for URI storage)
    pending_timeout: bool  # the watchdog stopped a sweep whose trials could not start
    timings: dict  # seconds per phase: ray_start_s, checks_s, fit_s, shutdown_s


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
    if not experiment.has_record(plan.folder):  # a new record's data entry (a resume keeps the one it has)
        pca = baselines.cached_pca_mse(data.train_images, data.train_labels, data.test_images, data.test_labels,
                                       sorted(set(plan.grid.values("hidden"))))
        if pca:  # tune-ae list's reference; otherwise the report records it
            data_info["pca_val_mse"] = {str(k): v for k, v in pca.items()}
    this_run = {**experiment.this_run(address, command), "mode": plan.mode, "changed_settings": plan.changed,
                "restarted": plan.mode in ("continue", "extend")}
    if plan.added is not None:
        this_run["extended"] = plan.added
    experiment.write_meta(plan.folder, plan.grid_name, plan.grid, plan.settings, data_info, this_run,
                          new_grid=plan.added is not None)
    storage.push(plan.settings.storage_path, plan.settings.name, [experiment.META_FILE])


def prepare_folder(plan: Plan) -> None:
    """The plan's changes to the folder before a Tuner sees it: Tune state files that do not parse,
    and a former Tuner's files where a new Tuner runs, renamed out of its sight (so that a kill
    before the new one's first save leaves no state of another grid to restore); trial folders
    renamed or moved aside."""
    renames = [(name, f".{name}.{why}") for names, why in ((plan.set_aside, "unreadable"),
                                                         (plan.superseded, "superseded")) for name in names]
    for source, target in renames:
        if (plan.folder / source).is_file():
            (plan.folder / source).rename(plan.folder / target)
    storage.rename_remote(plan.settings.storage_path, plan.settings.name, renames)  # where Tune reads them
    for source, target in plan.moves:
        (plan.folder / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(plan.folder / source), plan.folder / target)


def make_tuner(plan: Plan, resources: dict, data: FashionMNIST, trainable: Callable, hooks: list):
    """(the Tuner, the plan it carries out): Tune's restore for a `resume`; a new Tuner otherwise,
    or when Tune's files do not restore after all (cut short, another Ray's)."""
    if plan.mode == "resume":
        resume = callbacks.ApplyOnResume(resources, plan.settings.max_failures, plan.settings.keep_checkpoints)
        try:
            return tuner.restore_tuner(storage.experiment_uri(plan.settings.storage_path, plan.settings.name),
                                       plan.grid, plan.settings, resources, data, trainable, [*hooks, resume]), plan
        except Exception as err:
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            plan = as_continued(plan, f"Tune's saved state is unusable ({reason})")
            experiment.add_to_last_run(plan.folder, {"mode": plan.mode, "restarted": True})
            prepare_folder(plan)
    return tuner.build_tuner(plan, data, trainable, hooks, resources), plan


def announce(plan: Plan, resources: dict) -> None:
    name = plan.settings.name
    if plan.mode == "extend":
        added = ", ".join(f"{k} {' '.join(map(str, v))}" for k, v in plan.added.items())
        kept = len(plan.steps) - len(plan.to_run)
        print(f"{name}: extended ({added}); {kept} finished trial(s) kept as they are")
    elif plan.mode == "continue":
        print(f"{name}: {plan.why}; continuing every trial from the checkpoints in its folder")
    auto = " (auto: more as others end)" if plan.settings.cpus_per_trial is None else ""
    for key, (old, new) in plan.changed.items():  # said once the checks let them take effect
        print(f"resume: {key} {shown(old)} -> {shown(new)}")
    print(f"{'resuming' if plan.continuing else 'running'} {name}: {len(plan.to_run)} "
          f"trial(s), {resources['cpu']:g} CPU{auto} and {resources['gpu']:g} GPU each; Tune's log: {plan.folder / TUNE_LOG}",
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
        token_folder = None if address else ray_start.private_token()
        ray_start.start_ray(address)
        timings["ray_start_s"] = time.perf_counter() - clock
        resources = tuner.trial_resources(plan.settings, tuner.trials_to_run(plan))
        check_resources(resources, remote=bool(address))
        check_shared_storage(plan.settings.storage_path)
        folder.mkdir(parents=True, exist_ok=True)
        log_to_folder(folder)
        write_record(plan, data, address, command)
        record.begin(folder)  # before prepare_folder sets a former Tuner's state aside
        prepare_folder(plan)
        watchdog = callbacks.PendingWatchdog(plan.settings.pending_timeout_s)
        hooks = [callbacks.Progress(plan.grid.swept(), [s.config for s in plan.to_run], folder=folder), watchdog,
                 callbacks.DashboardLog(folder, plan.grid)]
        if on_record:
            on_record(folder)
        sweep, plan = make_tuner(plan, resources, data, trainable, hooks)
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
        timings["shutdown_s"] = ray_start.stop_ray(token_folder)
        try:  # a URI's copy of the driver's logs, however the fit ended: the next run pulls it
            storage.push(plan.settings.storage_path, plan.settings.name,
                         storage.own_logs(plan.settings.storage_path, plan.settings.name))
        except Exception:  # the run's own outcome is what to report; the mirror keeps the logs for the next push
            pass
    storage.pull(plan.settings.storage_path, plan.settings.name)
    return Outcome(folder=folder, pending_timeout=watchdog.fired, timings=timings)
