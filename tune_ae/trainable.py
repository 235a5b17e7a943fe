"""The Ray Tune function trainable: one trial = one `train.py` run, reported every epoch."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import ray
import torch
from ray import tune

from tune_ae import baselines, train
from tune_ae.config import TrialConfig
from tune_ae.data import FashionMNIST
from tune_ae.model import parameter_count


def trial_device_and_threads() -> tuple[torch.device, int]:
    """The device Ray's resources allow: CUDA if a GPU share was given and CUDA works, else CPU."""
    resources = tune.get_context().get_trial_resources().required_resources
    threads = max(1, int(resources.get("CPU", 1)))
    # A logical GPU without CUDA (a CPU-only node given num_gpus) falls back to the CPU.
    device = train.pick_device(use_cuda=resources.get("GPU", 0) > 0)
    return device, threads


def train_autoencoder(config: dict, data: FashionMNIST, checkpoint_every: int, cuda_graphs: bool = True) -> None:
    """Train `config` (TrialConfig fields); `data` arrives once per node via the object store.

    A checkpoint written on another device type (a CUDA trial restarted on a CPU-only node)
    resumes with re-derived random streams (train.load_state_dict says what differs).
    """
    started_at = time.time()
    trial = TrialConfig.from_dict(config)
    device, threads = trial_device_and_threads()
    torch.set_num_threads(threads)
    train_x = train.to_device(data.train_images, device)  # converted once, stays on the device
    val_x = train.to_device(data.test_images, device)

    checkpoint = tune.get_checkpoint()
    if checkpoint:  # a retry or a resumed sweep: continue exactly where the checkpoint left off
        with checkpoint.as_directory() as folder:
            _, state = train.load(Path(folder) / train.STATE_FILE, device, cuda_graphs)
    else:
        state = train.init_state(trial, device, cuda_graphs)

    identity = {
        **trial.to_dict(),
        "parameters": parameter_count(trial.hidden),
        "device": str(device),
        "cuda_graphs": state.cuda_graphs,
        "threads": threads,
        "node_id": ray.get_runtime_context().get_node_id(),
        "trial_started_at": started_at,
    }
    for metrics in train.train(trial, train_x, val_x, state):
        result = {**metrics, **identity}
        epoch = metrics["epoch"]
        if epoch == trial.epochs:  # the report's per-trial numbers, here: in parallel, on the trial's device
            result.update(baselines.trial_analysis(state.model, train_x, data.train_labels, val_x, data.test_labels))
        result["reported_at"] = time.time()
        if epoch % checkpoint_every and epoch != trial.epochs:
            tune.report(result)
            continue
        with tempfile.TemporaryDirectory() as folder:
            train.save(state, trial, Path(folder) / train.STATE_FILE)
            tune.report(result, checkpoint=tune.Checkpoint.from_directory(folder))
