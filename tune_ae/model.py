"""The report's autoencoder: 784 -> h -> 784, fully connected, PyTorch default initialisation."""

from __future__ import annotations

import torch
from torch import nn

from tune_ae.data import PIXELS

OUTPUT_LAYERS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}
MASK_LEVELS = 1 << 16  # dropout masks compare 16-bit random integers against a threshold


class Dropout(nn.Module):
    """Inverted dropout like `nn.Dropout(p)`, with masks drawn four at a time.

    nn.Dropout draws one random float per unit (`bernoulli_`, single-threaded on CPU): with
    h = 512 that was 10-18% of a training step. Here one 64-bit random integer gives four
    16-bit ones, and a unit is dropped when its 16-bit draw falls below a threshold. The
    drop probability is p rounded to a multiple of 2^-16 (0.1 -> 0.1000061); kept units are
    scaled by exactly 1 / (1 - that probability), so the expected activation is unchanged.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p
        # The run's own generator (train.py sets it): masks never depend on, or disturb, the
        # process-wide RNG, and a CUDA graph can replay them (it registers this generator).
        self.generator: torch.Generator | None = None
        dropped_levels = round(p * MASK_LEVELS)
        self.threshold = dropped_levels - MASK_LEVELS // 2  # int16 draws are uniform in [-2^15, 2^15)
        self.scale = MASK_LEVELS / (MASK_LEVELS - dropped_levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.threshold == -MASK_LEVELS // 2:
            return x
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(
            -(2**63), 2**63 - 1, generator=self.generator
        )
        keep = words.view(torch.int16)[:n].view_as(x) >= self.threshold  # (n/4,) int64 -> (n,) int16 -> x's shape
        return torch.where(keep, x * self.scale, 0.0)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Autoencoder(nn.Module):
    def __init__(self, hidden: int, dropout: float = 0.1, output_activation: str = "relu"):
        super().__init__()
        if output_activation not in OUTPUT_LAYERS:
            raise ValueError(f"output_activation must be one of {', '.join(OUTPUT_LAYERS)}, got {output_activation!r}")
        # Dropout sits on the code itself, as in the report: the decoder learns to cope with
        # missing hidden units, the encoder's output at eval time is the plain ReLU code.
        self.encoder = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU(), Dropout(dropout))
        self.decoder = nn.Sequential(nn.Linear(hidden, PIXELS), OUTPUT_LAYERS[output_activation]())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)  # (B, 784) -> (B, h)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)  # (B, h) -> (B, 784)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def parameter_count(hidden: int) -> int:
    """Weights and biases of both layers: 784h + h + 784h + 784."""
    return 2 * PIXELS * hidden + hidden + PIXELS
