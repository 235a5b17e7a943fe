"""Fault injection for sweep tests: a trainable that crashes once, mid-training, per trial."""

from pathlib import Path

import torch

from tune_ae import train, trainable


def crash_once_at_epoch(epoch: int, marker_dir: str, before_crash=None):
    """A trainable that raises after `epoch` epochs the first time each trial runs.

    `before_crash(trial_dir)`, if given, runs just before the crash (e.g. to alter a checkpoint).
    """

    def flaky(config, data, checkpoint_every, cuda_graphs=True, experiment=None, keep_checkpoints=None, hand_on=False):
        marker = Path(marker_dir) / f"crashed-h{config['hidden']}-s{config['seed']}"
        real_epoch = train.train_epoch

        def crashing_epoch(state, *args):
            if state.epoch == epoch and not marker.exists():
                marker.touch()
                if before_crash:
                    from ray import tune

                    before_crash(tune.get_context().get_trial_dir())
                raise RuntimeError(f"injected fault after epoch {epoch}")
            return real_epoch(state, *args)

        train.train_epoch = crashing_epoch  # train.train looks it up at call time
        try:
            trainable.train_autoencoder(config, data, checkpoint_every, cuda_graphs, experiment, keep_checkpoints, hand_on)
        finally:
            train.train_epoch = real_epoch

    return flaky


def cuda_style_state(seed: int = 5, offset: int = 40) -> torch.Tensor:
    """A CUDA generator state as torch writes it: 16 bytes, the Philox seed then the offset."""
    return torch.tensor([seed, offset], dtype=torch.int64).view(torch.uint8)


def as_if_written_on_cuda(path, legacy: bool = False) -> None:
    """Rewrite a CPU checkpoint the way a CUDA run writes it (its generator states are 16 bytes)."""
    saved = torch.load(path, weights_only=True)
    saved.update(device="cuda", shuffle=cuda_style_state(1), dropout=cuda_style_state(2))
    if legacy:  # the format before checkpoints named their device: CPU and CUDA dropout states
        del saved["device"], saved["dropout"]
        saved.update(rng_state=torch.get_rng_state(), cuda_rng_state=cuda_style_state(2))
    torch.save(saved, path)
