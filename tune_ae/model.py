"""The report's autoencoder: 784 -> h -> 784, fully connected, PyTorch default initialisation."""

from __future__ import annotations

import torch
from torch import nn

from tune_ae.data import PIXELS

OUTPUT_LAYERS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


class Autoencoder(nn.Module):
    def __init__(self, hidden: int, dropout: float = 0.1, output_activation: str = "relu"):
        super().__init__()
        if output_activation not in OUTPUT_LAYERS:
            raise ValueError(f"output_activation must be one of {', '.join(OUTPUT_LAYERS)}, got {output_activation!r}")
        # Dropout sits on the code itself, as in the report: the decoder learns to cope with
        # missing hidden units, the encoder's output at eval time is the plain ReLU code.
        self.encoder = nn.Sequential(nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Dropout(dropout))
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
