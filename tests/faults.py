"""Fault injection for sweep tests: a trainable that crashes once, mid-training, per trial."""

from pathlib import Path

from tune_ae import train, trainable


def crash_once_at_epoch(epoch: int, marker_dir: str):
    """A trainable that raises after `epoch` epochs the first time each trial runs."""

    def flaky(config, data, checkpoint_every):
        marker = Path(marker_dir) / f"crashed-h{config['hidden']}-s{config['seed']}"
        real_epoch = train.train_epoch

        def crashing_epoch(state, *args):
            if state.epoch == epoch and not marker.exists():
                marker.touch()
                raise RuntimeError(f"injected fault after epoch {epoch}")
            return real_epoch(state, *args)

        train.train_epoch = crashing_epoch  # train.train looks it up at call time
        try:
            trainable.train_autoencoder(config, data, checkpoint_every)
        finally:
            train.train_epoch = real_epoch

    return flaky
