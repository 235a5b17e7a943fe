"""The Ray Tune function trainable: one trial = one `train.py` run, reported every epoch.

A trial (first start, retry or resumed sweep) continues from the newest checkpoint in its
own folder that loads, whatever Tune's saved state says: that state is written every few
seconds and can be older than the checkpoints (a killed driver) or unreadable (a full disk).
A checkpoint that does not load is set aside (its folder renamed `unreadable-checkpoint_N`)
and the next older one is tried; with none left, the trial starts from epoch 1. Each checkpoint also carries the
trial's reported rows so far, inside state.pt (so they go with the weights) and beside it as
`results.HISTORY_FILE` (for the tables, read without torch): the tables miss no epoch that a
checkpoint holds, even one the driver never logged.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path

import pyarrow.fs
import ray
import torch
from ray import tune

from tune_ae import baselines, ray_internals, storage, train
from tune_ae.config import TrialConfig
from tune_ae.data import FashionMNIST
from tune_ae.model import parameter_count
from tune_ae.results import CHECKPOINT_DIR, HISTORY_FILE, SET_ASIDE_PREFIX, checkpoint_history


def trial_device_and_threads() -> tuple[torch.device, int]:
    """The device Ray's resources allow: CUDA if a GPU share was given and CUDA works, else CPU."""
    resources = tune.get_context().get_trial_resources().required_resources
    threads = max(1, int(resources.get("CPU", 1)))
    # A logical GPU without CUDA (a CPU-only node given num_gpus) falls back to the CPU.
    device = train.pick_device(use_cuda=resources.get("GPU", 0) > 0)
    return device, threads


def trial_storage(experiment: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The file system and path of this trial's folder under the experiment (local or a URI)."""
    name = ray_internals.trial_folder_name(tune.get_context().get_trial_dir())
    if storage.is_uri(experiment):
        fs, base = pyarrow.fs.FileSystem.from_uri(experiment)
    else:
        fs, base = pyarrow.fs.LocalFileSystem(), experiment
    return fs, f"{base}/{name}"


def checkpoint_folders(fs: pyarrow.fs.FileSystem, trial_path: str) -> list[str]:
    found = fs.get_file_info(pyarrow.fs.FileSelector(trial_path, allow_not_found=True))
    return [i.path for i in found if i.type == pyarrow.fs.FileType.Directory and CHECKPOINT_DIR.fullmatch(i.base_name)]


def stored_checkpoints(fs: pyarrow.fs.FileSystem, trial_path: str) -> list[str]:
    """The trial's checkpoint folders that still hold a state.pt, newest index first."""
    folders = checkpoint_folders(fs, trial_path)
    files = fs.get_file_info([f"{p}/{train.STATE_FILE}" for p in folders])
    return sorted((p for p, f in zip(folders, files) if f.type == pyarrow.fs.FileType.File),
                  key=lambda p: int(p.rsplit("_", 1)[-1]), reverse=True)


def set_aside_path(fs: pyarrow.fs.FileSystem, path: str) -> str:
    """Where an unreadable checkpoint folder goes: beside it, under a name neither Tune nor the
    tables take for a checkpoint (Tune may reuse and later delete the old name)."""
    parent, name = path.rsplit("/", 1)
    for n in range(1, 1000):
        aside = f"{parent}/{SET_ASIDE_PREFIX}{name}" + (f"-{n}" if n > 1 else "")
        if fs.get_file_info(aside).type == pyarrow.fs.FileType.NotFound:
            return aside
    raise OSError(f"no free name to set {path} aside")


def move_aside(fs: pyarrow.fs.FileSystem, path: str) -> str:
    """Rename an unreadable checkpoint folder out of the way; returns its new name. Object stores
    cannot move a folder: there it is copied and deleted, or, failing that, left (and skipped)."""
    aside = set_aside_path(fs, path)
    try:
        fs.move(path, aside)
    except (OSError, NotImplementedError):
        try:
            pyarrow.fs.copy_files(path, aside, source_filesystem=fs, destination_filesystem=fs)
            fs.delete_dir(path)
        except (OSError, NotImplementedError):
            return "left in place"
    return aside.rsplit("/", 1)[-1]


def resume_point(experiment: str, trial: TrialConfig, device: torch.device, cuda_graphs: bool):
    """(state, history, set aside) from the newest loadable checkpoint in the trial's folder,
    or (None, [], set aside) when none loads.

    The highest epoch wins, not the highest folder index: Tune numbers checkpoints from its
    saved state, so after a resume an index can come back with an older epoch in it.
    """
    fs, trial_path = trial_storage(experiment)
    best, set_aside = None, []
    for path in stored_checkpoints(fs, trial_path):
        try:
            with tune.Checkpoint(path, filesystem=fs).as_directory() as folder:
                saved_config, state = train.load(Path(folder) / train.STATE_FILE, device, cuda_graphs)
                if saved_config != trial:
                    raise ValueError(f"it holds another configuration ({saved_config})")
                history = state.history or checkpoint_history(Path(folder))  # the file: checkpoints of an older tune_ae
        except (OSError, torch.cuda.OutOfMemoryError):  # the storage or the device, not the file: Tune retries
            raise
        except Exception as err:  # truncated, zeroed, not a checkpoint: keep it for a post-mortem, out of the way
            reason = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:200]
            set_aside.append(f"{path} -> {move_aside(fs, path)} ({reason})")
            continue
        if best is None or state.epoch > best[0].epoch:
            best = (state, history)
    return (*(best or (None, [])), set_aside)


class EarlierCheckpoints:
    """Checkpoints an earlier Tuner left in the folder of a trial new to this one (an experiment
    continued by a new Tuner). Tune counts this Tuner's checkpoints from 0 and rotates only its
    own: they are numbered after the earlier ones (none overwritten), and the earlier ones are
    removed, oldest first, as this Tuner's arrive, so that the folder keeps the newest `keep`."""

    def __init__(self, experiment: str, keep: int | None):
        self.fs, trial_path = trial_storage(experiment)
        folders = sorted(checkpoint_folders(self.fs, trial_path), key=lambda p: int(p.rsplit("_", 1)[-1]))
        newest = int(folders[-1].rsplit("_", 1)[-1]) if folders else -1
        self.earlier = folders if ray_internals.number_checkpoints_after(newest) else []
        self.keep, self.written = keep, 0

    def one_written(self) -> None:
        self.written += 1
        if self.keep is None:
            return
        drop = max(0, len(self.earlier) - max(0, self.keep - self.written))
        for path in self.earlier[:drop]:
            try:
                self.fs.delete_dir(path)
            except OSError:  # gone already, or the storage refuses: a folder kept is no harm
                pass
        self.earlier = self.earlier[drop:]


CHECKPOINTED = "checkpointed"  # in a result that comes with a checkpoint: hand_on.py may pause the trial there


class FreedCores:
    """Under --cpus-per-trial auto: whether CPUs came free on this trial's node since the last look
    (a trial ended and none took its cores), so that the trial checkpoints at once and hand_on.py
    can give them to it, instead of letting them idle until its next periodic checkpoint. Once per
    freeing: cores that stay free (none of the trials can use them) cost one checkpoint, not one
    per epoch."""

    def __init__(self, node_id: str, every_s: float = 1.0):
        self.node_id, self.free, self.every_s = node_id, 0.0, every_s
        self.looked = -math.inf

    def came_free(self) -> bool:
        """Asks Ray (~0.3 ms) at most once per `every_s`: a CUDA-graph epoch can take 13 ms."""
        now = time.monotonic()
        if now - self.looked < self.every_s:
            return False
        self.looked = now
        free = ray_internals.free_cpus(self.node_id)
        more = free >= 1 and free > self.free
        self.free = free
        return more


def start_point(trial: TrialConfig, device: torch.device, cuda_graphs: bool, experiment: str | None):
    """(state or None, history, set aside): where this start of the trial begins."""
    if experiment is not None:
        return resume_point(experiment, trial, device, cuda_graphs)
    if tune.get_checkpoint():
        with tune.get_checkpoint().as_directory() as folder:
            _, state = train.load(Path(folder) / train.STATE_FILE, device, cuda_graphs)
            return state, state.history or checkpoint_history(Path(folder)), []
    return None, [], []


def train_autoencoder(config: dict, data: FashionMNIST, checkpoint_every: int, cuda_graphs: bool = True,
                      experiment: str | None = None, keep_checkpoints: int | None = None, hand_on: bool = False) -> None:
    """Train `config` (TrialConfig fields); `data` arrives once per node via the object store.

    A checkpoint every `checkpoint_every` epochs and at the last; with `hand_on` (--cpus-per-trial
    auto) also right after an epoch at whose end CPUs came free on the trial's node (FreedCores).
    `experiment` is the experiment folder (or URI) whose trial folders hold the checkpoints;
    without it the trial resumes only from the checkpoint Tune hands it. A checkpoint written
    on another device type (a CUDA trial restarted on a CPU-only node) resumes with re-derived
    random streams (train.load_state_dict says what differs).
    """
    started_at = time.time()
    trial = TrialConfig.from_dict(config)
    device, threads = trial_device_and_threads()
    torch.set_num_threads(threads)
    train_x = train.to_device(data.train_images, device)  # converted once, stays on the device
    val_x = train.to_device(data.test_images, device)

    state, history, set_aside = start_point(trial, device, cuda_graphs, experiment)
    earlier = EarlierCheckpoints(experiment, keep_checkpoints) if experiment is not None else None
    resumed_from = state.epoch if state else 0
    state = state or train.init_state(trial, device, cuda_graphs)
    # Rows reported before the checkpoint: the rest of this run's history is appended below.
    history = [row for row in history if row.get("epoch", 0) <= resumed_from]
    state.history = history  # saved with every checkpoint from here on

    identity = {
        **trial.to_dict(),
        "parameters": parameter_count(trial.hidden),
        "device": str(device),
        "cuda_graphs": state.cuda_graphs,
        "threads": threads,
        "node_id": ray.get_runtime_context().get_node_id(),
        "trial_started_at": started_at,
        "trial_id": tune.get_context().get_trial_id(),
    }
    freed = FreedCores(identity["node_id"]) if hand_on and device.type == "cpu" else None  # see hand_on.on_gpu
    # For the driver's progress lines (callbacks.Progress), in this start's first result only.
    start = {"resumed_from_epoch": resumed_from, **({"set_aside": "; ".join(set_aside)} if set_aside else {})}
    if state.epoch >= trial.epochs and history:  # finished before this start: report its end again, train nothing
        tune.report({**history[-1], **start, "reported_at": time.time()})
        return
    for metrics in train.train(trial, train_x, val_x, state):
        result = {**metrics, **identity}
        epoch = metrics["epoch"]
        if epoch == trial.epochs:  # the report's per-trial numbers, here: in parallel, on the trial's device
            result.update(baselines.trial_analysis(state.model, train_x, data.train_labels, val_x, data.test_labels))
        result["reported_at"] = time.time()
        history.append(json.loads(json.dumps(result, default=str)))  # plain types: state.pt loads weights_only
        result, start = {**result, **start}, {}
        came_free = freed is not None and freed.came_free()  # looked at every epoch: its count stays current
        if epoch % checkpoint_every and epoch != trial.epochs and not came_free:
            tune.report(result)
            continue
        with tempfile.TemporaryDirectory() as folder:
            train.save(state, trial, Path(folder) / train.STATE_FILE)
            (Path(folder) / HISTORY_FILE).write_text("".join(json.dumps(row, default=str) + "\n" for row in history))
            tune.report({**result, CHECKPOINTED: True}, checkpoint=tune.Checkpoint.from_directory(folder))
        if earlier is not None:
            earlier.one_written()
