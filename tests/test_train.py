import math

import pytest
import torch

from tune_ae import train
from tune_ae.config import TrialConfig
from tune_ae.data import load_fashion_mnist

CPU = torch.device("cpu")


@pytest.fixture
def tensors(tiny_dir):
    d = load_fashion_mnist(tiny_dir, expect_full=False)
    return train.to_device(d.train_images, CPU), train.to_device(d.test_images, CPU)


def run(config, tensors, state=None):
    return list(train.train(config, *tensors, state=state))


def test_metrics_and_falling_loss(tensors):
    config = TrialConfig(hidden=32, epochs=8, batch_size=50, lr=3e-3)
    history = run(config, tensors)
    assert [m["epoch"] for m in history] == list(range(1, 9))
    for m in history:
        assert set(m) == {"epoch", "train_loss", "val_loss", "epoch_time_s", "images_per_s"}


def test_bf16_trains_close_to_fp32(tensors):
    fp32 = run(TrialConfig(hidden=32, epochs=6, batch_size=50, lr=3e-3), tensors)
    bf16 = run(TrialConfig(hidden=32, epochs=6, batch_size=50, lr=3e-3, precision="bf16"), tensors)
    # Stated tolerance: bf16 autocast ends within 10% of fp32's val_loss on tiny data.
    assert bf16[-1]["val_loss"] == pytest.approx(fp32[-1]["val_loss"], rel=0.10)


def test_pick_device_falls_back_to_cpu():
    assert train.pick_device(use_cuda=False) == CPU
    if not torch.cuda.is_available():
        assert train.pick_device() == CPU
