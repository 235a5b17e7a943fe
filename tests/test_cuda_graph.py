"""cuda_graph's recording is safe to use: its warm-up undone exactly, a refused capture falling
back to the eager loop. Checked on the CPU with the same functions the CUDA path calls; the
replay itself runs on a GPU only (benchmarks/gpu_check.py)."""

import pytest
import torch

from tune_ae import train
from tune_ae.config import TrialConfig

from conftest import run

CPU = torch.device("cpu")


def test_graph_warmup_is_undone_exactly(tensors):
    """cuda_graph's warm-up steps run on the real model, then are undone in place (checked on CPU)."""
    from tune_ae import cuda_graph

    config = TrialConfig(hidden=16, epochs=3, batch_size=64)
    straight = run(config, tensors)
    for done_epochs in (0, 1):  # a fresh optimizer (lazy state) and one with moments
        state = train.init_state(config, CPU)
        head = run(TrialConfig(**{**config.to_dict(), "epochs": done_epochs}), tensors, state) if done_epochs else []
        saved = cuda_graph.snapshot(state)
        for _ in range(cuda_graph.WARMUP_STEPS):
            train.epoch_steps(state, config, tensors[0], torch.arange(64), torch.zeros(()), cache_casts=False)
        cuda_graph.restore(state, saved)
        tail = run(config, tensors, state)
        assert [m["val_loss"] for m in head + tail] == [m["val_loss"] for m in straight]


def test_a_failed_graph_capture_falls_back_to_the_eager_loop(tensors, monkeypatch):
    """If CUDA refuses the capture, the run goes on eagerly from the state it had (checked on CPU)."""
    from tune_ae import cuda_graph

    config = TrialConfig(hidden=16, epochs=3, batch_size=64)
    straight = run(config, tensors)

    def refuse(state, config, train_x, steps):
        steps(state, config, train_x, torch.arange(64), torch.zeros(()), cache_casts=False)  # half-done work...
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(cuda_graph, "GraphedEpoch", refuse)
    state = train.init_state(config, CPU)
    state.cuda_graphs = True  # as on CUDA
    with pytest.warns(UserWarning, match="CUDA graph capture failed"):
        fallback = run(config, tensors, state)
    assert state.cuda_graphs is False and state.graph is None
    assert [m["val_loss"] for m in fallback] == [m["val_loss"] for m in straight]  # ...undone
