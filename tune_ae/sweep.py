"""Build (or restore) the one `tune.Tuner` that runs a grid: resources, storage, fault tolerance."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Callable

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tune_ae import experiment, storage
from tune_ae.config import ConfigError, SweepSettings
from tune_ae.data import FashionMNIST
from tune_ae.grids import Grid
from tune_ae.trainable import train_autoencoder

METRIC, MODE = "val_loss", "min"


def gpus_per_trial(settings: SweepSettings, n_trials: int) -> float:
    """The GPU share of one trial; `None` (auto) shares the cluster's GPUs among concurrent trials.

    Concurrency is bounded by the trial count and by the CPUs: the paper grid (4 trials) on
    one GPU gets 0.25 each, so all four train on the card at once.
    """
    if settings.gpus_per_trial is not None:
        return settings.gpus_per_trial
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 1.0)
    if gpus == 0:
        return 0.0
    concurrent = max(1, min(n_trials, math.floor(cpus / settings.cpus_per_trial)))
    # Rounded down to 1/10000, Ray's resource granularity, so the shares never add up past the card.
    return min(1.0, math.floor(gpus / concurrent * 10_000) / 10_000)


def trial_resources(grid: Grid, settings: SweepSettings) -> dict:
    # Always name the CPUs: a GPU-only request would ask Ray for 0 CPUs per trial.
    return {"cpu": settings.cpus_per_trial, "gpu": gpus_per_trial(settings, len(grid.trial_configs()))}


def param_space(grid: Grid) -> dict:
    """TrialConfig fields; the swept ones as grid_search, the shared ones as constants."""
    return {
        # Widest first: the longest trials start at once instead of running alone at the end.
        "hidden": tune.grid_search(sorted(grid.hidden, reverse=True)),
        "dropout": tune.grid_search(list(grid.dropout)),
        "lr": tune.grid_search(list(grid.lr)),
        "seed": tune.grid_search(list(range(grid.seeds))),
        "batch_size": grid.batch_size,
        "epochs": grid.epochs,
        "output_activation": grid.output_activation,
        "precision": grid.precision,
    }


def wrapped_trainable(grid: Grid, settings: SweepSettings, data: FashionMNIST, trainable: Callable):
    # with_parameters puts `data` in the object store once; each trial fetches it from there.
    fn = tune.with_parameters(trainable, data=data, checkpoint_every=settings.checkpoint_every,
                              cuda_graphs=settings.cuda_graphs)
    return tune.with_resources(fn, trial_resources(grid, settings))


def build_tuner(
    grid: Grid,
    settings: SweepSettings,
    data: FashionMNIST,
    trainable: Callable = train_autoencoder,
) -> tune.Tuner:
    scheduler = None
    if settings.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=grid.epochs, grace_period=min(10, grid.epochs))
    return tune.Tuner(
        wrapped_trainable(grid, settings, data, trainable),
        param_space=param_space(grid),
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=scheduler),
        run_config=tune.RunConfig(
            name=settings.name,
            storage_path=settings.storage_path,
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=settings.keep_checkpoints),
            verbose=1,
        ),
    )


def restore_tuner(
    experiment_dir: str | Path,
    grid: Grid,
    settings: SweepSettings,
    data: FashionMNIST,
    trainable: Callable = train_autoencoder,
) -> tune.Tuner:
    """Continue an interrupted sweep; unfinished and errored trials restart from their checkpoints."""
    return tune.Tuner.restore(
        str(experiment_dir),
        trainable=wrapped_trainable(grid, settings, data, trainable),
        resume_unfinished=True,
        resume_errored=True,
    )


def can_resume(experiment_dir: str | Path) -> bool:
    return tune.Tuner.can_restore(str(experiment_dir))


def start_ray(address: str | None) -> None:
    """Join `address`, or start an embedded single-node Ray sized to this machine."""
    if address:
        ray.init(address=address)
    else:
        ray.init(address="local", include_dashboard=False)


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


def run(
    grid_name: str,
    grid: Grid,
    settings: SweepSettings,
    data: FashionMNIST,
    resuming: bool,
    address: str | None = None,
    trainable: Callable = train_autoencoder,
) -> Path:
    """Run (or resume) the sweep to the end; returns the local experiment folder (a mirror for URIs)."""
    folder = storage.local_folder(settings.storage_path, settings.name)
    uri = storage.experiment_uri(settings.storage_path, settings.name)
    start_ray(address)
    try:
        check_shared_storage(settings.storage_path)
        if resuming and not can_resume(uri):
            raise ConfigError(f"{uri} holds no Tune state to resume (the sweep never started); start it anew")
        data_info = {"folder": data.folder, "subset": grid.subset,
                     "train_images": len(data.train_images), "test_images": len(data.test_images)}
        experiment.write_meta(folder, grid_name, grid, settings, data_info, experiment.this_run(address))
        storage.push(settings.storage_path, settings.name, [experiment.META_FILE])
        if resuming:
            tuner = restore_tuner(uri, grid, settings, data, trainable)
        else:
            tuner = build_tuner(grid, settings, data, trainable)
        tuner.fit()
    finally:
        ray.shutdown()
    storage.pull(settings.storage_path, settings.name)
    return folder
