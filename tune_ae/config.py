"""Configuration of one trial: a frozen dataclass whose defaults are the report's study.

Everything that changes what a trial computes lives here, so a trial is fully described by
`dataclasses.asdict(config)`. Validation happens at construction: a bad value never reaches
Ray or the training loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

OUTPUT_ACTIVATIONS = ("relu", "sigmoid", "identity")
PRECISIONS = ("fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message says which and why."""


@dataclass(frozen=True)
class TrialConfig:
    hidden: int = 512  # width of the code layer h; the report trains 64, 128, 256 and 512
    dropout: float = 0.1  # dropout probability on the hidden layer (report: 0.1)
    lr: float = 1e-3  # Adam learning rate; the report keeps PyTorch's default 1e-3
    batch_size: int = 1000  # minibatch size, reshuffled every epoch (report: 1000)
    epochs: int = 400  # full passes over the training set (report: 400)
    seed: int = 0  # seeds initialisation, shuffling and dropout; same seed, same run on CPU
    output_activation: str = "relu"  # decoder output: "relu" as in the report, or sigmoid/identity
    precision: str = "fp32"  # "fp32", or "bf16" autocast for the matmuls

    def __post_init__(self) -> None:
        _check_int(self, "hidden", minimum=1)
        _check_float(self, "dropout")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        _check_float(self, "lr")
        if not self.lr > 0.0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        _check_int(self, "batch_size", minimum=1)
        _check_int(self, "epochs", minimum=1)
        _check_int(self, "seed", minimum=0)
        _check_choice(self, "output_activation", OUTPUT_ACTIVATIONS)
        _check_choice(self, "precision", PRECISIONS)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a plain dict (e.g. Ray Tune's trial config); unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown trial config key(s) {', '.join(unknown)}; "
                f"valid keys are {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_int(config: TrialConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    # bool is an int subclass; True as a hidden size is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def _check_float(config: TrialConfig, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    # Normalise ints (e.g. dropout=0) so equal configs compare and serialise equal.
    object.__setattr__(config, name, float(value))


def _check_choice(config: TrialConfig, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


SCHEDULERS = ("fifo", "asha")


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (not what a trial computes): resources, fault tolerance, storage."""

    storage_path: str  # absolute folder (or cloud URI) holding every experiment
    name: str  # experiment folder under storage_path
    cpus_per_trial: float = 1.0  # CPU cores per trial; also its torch thread count
    gpus_per_trial: float | None = None  # GPU fraction per trial; None = share visible GPUs evenly
    scheduler: str = "fifo"  # "fifo" runs every trial to the end; "asha" stops poor ones early
    max_failures: int = 3  # retries of a crashed trial, each from its latest checkpoint
    checkpoint_every: int = 10  # epochs between checkpoints (and always at the last epoch)
    keep_checkpoints: int = 2  # newest checkpoints kept per trial
    cuda_graphs: bool = True  # on CUDA, replay each training epoch as one CUDA graph (eager if False)

    def __post_init__(self) -> None:
        if isinstance(self.cpus_per_trial, bool) or not isinstance(self.cpus_per_trial, (int, float)) or not self.cpus_per_trial > 0:
            raise ConfigError(f"cpus-per-trial must be > 0, got {self.cpus_per_trial!r}")
        gpus = self.gpus_per_trial
        if gpus is not None and (gpus < 0 or gpus > 1 and gpus != int(gpus)):
            raise ConfigError(f"gpus-per-trial must be auto, a fraction in [0, 1] or a whole number, got {gpus!r}")
        _check_choice(self, "scheduler", SCHEDULERS)
        _check_int(self, "max_failures", minimum=0)
        _check_int(self, "checkpoint_every", minimum=1)
        _check_int(self, "keep_checkpoints", minimum=1)
        if not self.name or "/" in self.name or self.name in (".", ".."):
            raise ConfigError(f"name must be a plain folder name, got {self.name!r}")
