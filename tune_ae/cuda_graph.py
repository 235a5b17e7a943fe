"""One training epoch as one CUDA graph: `train.epoch_steps` recorded once, replayed every epoch.

Eager, a step of this small model is launch-bound on a GPU: ~15 kernels of a few
microseconds each, issued one by one from Python. Replaying the recorded epoch issues all
of them with one call. What is recorded is exactly the eager code (same kernels, same
order), so the metrics do not change; only the launches do.

What makes the recording safe:
- Static buffers: the permutation is copied into `order` before each replay (drawn outside
  the graph from the run's shuffle generator); the loss sum lives in `loss_sum`.
- Random numbers: the dropout masks come from the run's own generator, registered with the
  graph, so each replay draws fresh masks and advances that generator as eager code would.
- Adam is created with `capturable=True` (train.init_state), its step count on the device.
- Warm-up: recording needs cuBLAS handles and the optimizer's state to exist already. The
  warm-up steps run on the real model and are then undone in place (parameters, optimizer
  state and dropout generator restored), so building the graph never changes the run.

Only train.py imports this module in the library (it passes its step function in), and only for a
CUDA-graph run on CUDA; benchmarks/one_process.py records several runs in one graph with its parts.
"""

from __future__ import annotations

from typing import Callable

import torch

from tune_ae.config import TrialConfig

WARMUP_STEPS = 3  # the PyTorch CUDA-graph recipe's eager iterations on a side stream


class GraphedEpoch:
    def __init__(self, state, config: TrialConfig, train_x: torch.Tensor, epoch_steps: Callable):
        """Record `epoch_steps(state, config, train_x, order, loss_sum, cache_casts)` (train.py's)."""
        self.order = torch.arange(len(train_x), device=train_x.device)  # filled before each replay
        self.loss_sum = torch.zeros((), device=train_x.device)
        warm_up(state, config, train_x, self.order, self.loss_sum, epoch_steps)
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(state.dropout)
        state.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss_sum.zero_()
            epoch_steps(state, config, train_x, self.order, self.loss_sum, cache_casts=False)

    def replay(self, order: torch.Tensor) -> torch.Tensor:
        """Run one epoch over `order`; returns the device tensor holding the sum of batch losses."""
        self.order.copy_(order)
        self.graph.replay()
        return self.loss_sum


def warm_up(state, config: TrialConfig, train_x: torch.Tensor, order: torch.Tensor, loss_sum: torch.Tensor,
            epoch_steps: Callable) -> None:
    """WARMUP_STEPS eager steps on a side stream (cuBLAS handles and the optimizer's state come
    to exist), then undone in place: the run is where it was, ready to be recorded."""
    saved = snapshot(state)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARMUP_STEPS):
            # One minibatch per warm-up step: `order` is walked in batch_size slices.
            epoch_steps(state, config, train_x, order[: config.batch_size], loss_sum, cache_casts=False)
    torch.cuda.current_stream().wait_stream(side)
    restore(state, saved)


def snapshot(state) -> dict:
    """Copies of everything a warm-up step changes: parameters, optimizer state, dropout stream."""
    return {
        "params": [p.detach().clone() for p in state.model.parameters()],
        "optimizer": {p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
                      for p, s in state.optimizer.state.items()},
        "dropout": state.dropout.get_state(),
    }


def restore(state, saved: dict) -> None:
    """Undo warm-up steps in place: the graph will read these very tensors.

    Optimizer state that the warm-up created (a fresh run's first steps) is zeroed, which is
    exactly the state Adam creates lazily: step 0, both moments 0.
    """
    with torch.no_grad():
        for param, value in zip(state.model.parameters(), saved["params"]):
            param.copy_(value)
        for param, values in state.optimizer.state.items():
            before = saved["optimizer"].get(param, {})
            for key, tensor in values.items():
                if torch.is_tensor(tensor):
                    tensor.copy_(before[key]) if key in before else tensor.zero_()
    state.dropout.set_state(saved["dropout"])
