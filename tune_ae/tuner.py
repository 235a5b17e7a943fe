"""Build (or restore) the one `tune.Tuner` that runs a grid: param space, resources, scheduler, run config.

Nothing here starts Ray or touches the experiment folder; sweep.py drives the whole sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import BasicVariantGenerator

from tune_ae import allocation, ray_internals, results, search, storage
from tune_ae.callbacks import EpochLog, TrialRecord
from tune_ae.config import TRIAL_FIELDS, SweepSettings
from tune_ae.hand_on import HandOnCores, alive_nodes
from tune_ae.data import FashionMNIST
from tune_ae.grids import Grid
from tune_ae.plan import SAMPLE, Plan, folder_name
from tune_ae.trainable import train_autoencoder

METRIC, MODE = "val_loss", "min"


def trial_resources(settings: SweepSettings, n_trials: int) -> dict:
    """{"cpu", "gpu"} of each of `n_trials` trials on the cluster Ray is connected to
    (allocation.trial_resources). Always names the CPUs: a GPU-only request asks Ray for 0 CPUs."""
    return allocation.trial_resources(list(alive_nodes().values()), n_trials, settings.cpus_per_trial,
                                      settings.gpus_per_trial)


def trials_to_run(plan: Plan) -> int:
    """The trials a plan runs (at least one): what the CPUs and GPUs are shared among."""
    return max(1, len(plan.to_run))


def param_space(grid: Grid) -> dict:
    """Every TrialConfig field: the swept ones as grid_search, the others as constants.

    Every field is named, so a trial never falls back to a default the grid did not choose
    (the trainable refuses a config that lacks one).
    """
    space = {}
    for name in TRIAL_FIELDS:
        values = list(grid.values(name))
        if name == "hidden":
            values.sort(reverse=True)  # widest first: the longest trials start at once, not last
        space[name] = tune.grid_search(values) if len(values) > 1 else values[0]
    return space


def trial_folder_name(trial) -> str:
    return folder_name(trial.config)


class SampleFolders:
    """An optuna search's trial folder names: a sample that continues gets the folder the record
    names for it (its config says which: each is handed out once); a new one its config and
    Tune's trial id (TPE may suggest a config twice, and two trials must not share a folder)."""

    def __init__(self, continued: list[tuple[dict, str]] = ()):
        self.continued = [(results.config_key(config), name) for config, name in continued]

    def __call__(self, trial) -> str:
        key = results.config_key(trial.config)
        for i, (config, name) in enumerate(self.continued):
            if config == key:
                del self.continued[i]
                return name
        return f"{folder_name(trial.config)},trial={trial.trial_id}"


def wrapped_trainable(settings: SweepSettings, resources: dict, data: FashionMNIST, trainable: Callable):
    # with_parameters puts `data` in the object store once; each trial fetches it from there.
    # `experiment`: where each trial finds its checkpoints (trainable.resume_point).
    fn = tune.with_parameters(trainable, data=data, checkpoint_every=settings.checkpoint_every,
                              cuda_graphs=settings.cuda_graphs, keep_checkpoints=settings.keep_checkpoints,
                              hand_on=settings.cpus_per_trial is None,
                              experiment=storage.experiment_uri(settings.storage_path, settings.name))
    return tune.with_resources(fn, resources)


def run_config(grid: Grid, settings: SweepSettings, callbacks: list) -> tune.RunConfig:
    # The epochs log and the trials' record are what the tables read: every Tuner of tune_ae writes them.
    folder = storage.local_folder(settings.storage_path, settings.name)
    log = [EpochLog(folder), TrialRecord(folder, grid.point_fields(), settings.scheduler)]
    return tune.RunConfig(
        name=settings.name,
        storage_path=settings.storage_path,
        failure_config=tune.FailureConfig(max_failures=settings.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=settings.keep_checkpoints),
        callbacks=[*log, *callbacks],
        stop=next((c for c in callbacks if isinstance(c, tune.Stopper)), None),
        verbose=0,  # progress comes from callbacks.Progress, one line per event
    )


def scheduler(grid: Grid, settings: SweepSettings) -> HandOnCores:
    """The sweep's scheduler (ASHA or FIFO), wrapped to hand cores on under --cpus-per-trial auto."""
    return HandOnCores(asha(grid) if settings.scheduler == "asha" else None, enabled=settings.cpus_per_trial is None)


def asha(grid: Grid):
    # Epochs, not Tune's training_iteration: a trial resumed from a checkpoint newer than
    # Tune's saved state counts iterations from that state, epochs from the checkpoint.
    options = {"time_attr": "epoch", "max_t": grid.max_epochs, "grace_period": min(10, grid.max_epochs)}
    if grid.search == "grid":
        return ASHAScheduler(**options)
    return search.PointwiseASHA(grid.point_fields(), METRIC, MODE, **options)  # a search: trials meet their point's


def to_run(plan: Plan) -> tuple[dict, object, int]:
    """(param space, search algorithm, trials) for a new Tuner: a new grid's product as
    grid_search; the listed configs of the plan's trials to run (a random search, or an
    experiment continued or extended: the trials kept are left as they are); or the per-point
    Optuna searcher, rebuilt from the record's events."""
    grid = plan.grid
    if grid.search == "optuna":
        searcher = search.PointwiseOptuna(grid, METRIC, MODE, list(plan.replay), plan.kept)
        return {}, searcher, searcher.total
    if grid.search == "grid" and plan.mode == "new":
        return param_space(grid), None, 1
    todo = sorted((step.config for step in plan.to_run), key=lambda c: -c["hidden"])
    # Each listed config replaces one sample of a space that names every field (Tune refuses a
    # preset key its space lacks) with no value of its own (None: nothing to check it against).
    space = {name: None for name in TRIAL_FIELDS}
    return space, BasicVariantGenerator(points_to_evaluate=todo), len(todo)  # widest first, as param_space


def build_tuner(plan: Plan, data: FashionMNIST, trainable: Callable = train_autoencoder,
                callbacks: list | None = None, resources: dict | None = None) -> tune.Tuner:
    """A new Tuner of the plan's trials to run, each asking for `resources` (by default
    trial_resources of the cluster Ray is connected to)."""
    resources = resources or trial_resources(plan.settings, trials_to_run(plan))
    grid, settings = plan.grid, plan.settings
    space, search_alg, num_samples = to_run(plan)
    continued = [(s.config, s.folder) for s in plan.to_run if s.folder and s.action != SAMPLE]
    return tune.Tuner(
        wrapped_trainable(settings, resources, data, trainable),
        param_space=space,
        # Reuse: a trial with the same resources as a finished one runs in its process, skipping
        # a worker start and `import torch` (~3 s each). Results cannot depend on what ran there
        # before: each trial sets its threads, owns its random streams and builds its own state.
        tune_config=tune.TuneConfig(metric=METRIC, mode=MODE, scheduler=scheduler(grid, settings),
                                    search_alg=search_alg, num_samples=num_samples, reuse_actors=True,
                                    trial_dirname_creator=trial_folder_name if grid.known_in_advance
                                    else SampleFolders(continued)),
        run_config=run_config(grid, settings, callbacks or []),
    )


def restore_tuner(experiment_dir: str | Path, grid: Grid, settings: SweepSettings, resources: dict,
                  data: FashionMNIST, trainable: Callable = train_autoencoder, callbacks: list | None = None) -> tune.Tuner:
    """Continue an interrupted sweep; unfinished and errored trials restart from their checkpoints.

    `settings` may differ from the recorded ones in resources, retries and checkpointing:
    Tune restores its own pickled RunConfig and TuneConfig, so the new RunConfig's fields and
    a new scheduler (the one pickled holds no state yet: Tune pickles it before the fit) are
    put in their place (the callbacks.ApplyOnResume callback carries the per-trial part:
    `resources`, retries).
    """
    tuner = tune.Tuner.restore(
        str(experiment_dir),
        trainable=wrapped_trainable(settings, resources, data, trainable),
        resume_unfinished=True,
        resume_errored=True,
    )
    ray_internals.replace_run_config(tuner, run_config(grid, settings, callbacks or []),
                                     ("failure_config", "checkpoint_config", "callbacks", "stop", "verbose"))
    ray_internals.replace_scheduler(tuner, scheduler(grid, settings))
    return tuner
