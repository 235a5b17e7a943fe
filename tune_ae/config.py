"""Configuration of one trial, and of how a sweep runs.

`TrialConfig` is the one place a trial's fields are defined: each field's type, default (the
report's study), help text and allowed values. Grids, Tune's param space, the CLI's
override flags, the tables' columns and the report's labels are all derived from it, so a
new hyperparameter is one field here plus its use in the loop.

Validation happens at construction: a bad value never reaches Ray or the training loop.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

OUTPUT_ACTIVATIONS = ("relu", "sigmoid", "identity")
PRECISIONS = ("fp32", "bf16")
SCHEDULERS = ("fifo", "asha")


class ConfigError(ValueError):
    """A configuration value is unknown or out of range; the message says which and why."""


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None, minimum: float | None = None):
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "minimum": minimum})


@dataclass(frozen=True)
class TrialConfig:
    hidden: int = _field(512, "width of the code layer h; the report trains 64, 128, 256 and 512", minimum=1)
    dropout: float = _field(0.1, "dropout probability on the hidden layer, in [0, 1)")
    lr: float = _field(1e-3, "Adam learning rate (> 0)")
    weight_decay: float = _field(0.0, "Adam weight decay, an L2 penalty added to the gradient (>= 0; report: 0)")
    batch_size: int = _field(1000, "minibatch size, reshuffled every epoch", minimum=1)
    epochs: int = _field(400, "full passes over the training set", minimum=1)
    seed: int = _field(0, "seeds initialisation, shuffling and dropout", minimum=0)
    output_activation: str = _field("relu", "decoder output activation", OUTPUT_ACTIVATIONS)
    precision: str = _field("fp32", "matmul precision (bf16 = autocast)", PRECISIONS)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind, meta = field_type(f.name), f.metadata
            if kind is int:
                _check_int(self, f.name, minimum=meta["minimum"])
            elif kind is float:
                _check_float(self, f.name)
            elif meta["choices"]:
                _check_choice(self, f.name, meta["choices"])
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0.0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not self.weight_decay >= 0.0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], fill_defaults: bool = False) -> "TrialConfig":
        """Build from a plain dict (e.g. Ray Tune's trial config).

        Unknown keys are an error; so are missing ones, unless `fill_defaults` (an older
        record: see `upgraded`).
        """
        unknown = sorted(set(values) - set(TRIAL_FIELDS))
        if unknown:
            raise ConfigError(f"unknown trial config key(s) {', '.join(unknown)}; valid keys are {', '.join(TRIAL_FIELDS)}")
        missing = [name for name in TRIAL_FIELDS if name not in values]
        if missing and not fill_defaults:
            raise ConfigError(f"trial config lacks {', '.join(missing)}")
        return cls(**{**upgraded({}), **values})  # absent fields at their defaults; a None given is refused

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TRIAL_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialConfig))
_TYPES = {"int": int, "float": float, "str": str}


def upgraded(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every trial field of a record written by any tune_ae (a params.json, a reported row,
    Tune's saved config): a field the record lacks was added since, and the run used what is
    now its default. The one place that rule lives; tables, resumes and reports all call it.
    In a record, None or NaN (a table's empty cell) is a field it lacks; any other value
    stays as recorded (checked, if at all, by TrialConfig)."""
    return {name: values[name] if _recorded(values.get(name)) else default(name) for name in TRIAL_FIELDS}


def _recorded(value: Any) -> bool:
    return value is not None and value == value  # NaN (a table's missing cell) is not equal to itself


def field_type(name: str) -> type:
    """int, float or str: the annotation of TrialConfig's field `name`."""
    return _TYPES[TrialConfig.__dataclass_fields__[name].type]


def field_help(name: str) -> str:
    return TrialConfig.__dataclass_fields__[name].metadata["help"]


def field_choices(name: str) -> tuple[str, ...] | None:
    return TrialConfig.__dataclass_fields__[name].metadata["choices"]


def default(name: str) -> Any:
    return TrialConfig.__dataclass_fields__[name].default


def _check_int(config: Any, name: str, minimum: float | None) -> None:
    value = getattr(config, name)
    # bool is an int subclass; True as a hidden size is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")


def _check_float(config: Any, name: str) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    # Normalise ints (e.g. dropout=0) so equal configs compare and serialise equal.
    object.__setattr__(config, name, float(value))


def _check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def auto_or_number(text: str) -> float | None:
    """--cpus-per-trial's and --gpus-per-trial's value: 'auto' (None: shared evenly, allocation.py) or a number."""
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected 'auto' or a number, got {text!r}") from None


def _setting(default: Any, help: str, resumable: bool = True, flag: str | None = None, parse=None,
             choices: tuple[str, ...] | None = None, shown_default: str | None = None):
    """A sweep setting's field: its command-line flag (`flag`, else --name-with-dashes; a bool
    True by default gets --no-NAME), how the flag's text is read (`parse`, else the field's
    type), and whether a resumed sweep may change it."""
    return dataclasses.field(default=default, metadata={"help": help, "resumable": resumable, "flag": flag,
                                                        "parse": parse, "choices": choices,
                                                        "shown_default": shown_default})


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (not what a trial computes): resources, fault tolerance, storage.

    The one place a setting is defined: run.py derives its flag, help and default from the
    field; the resume rule (`resumable`) and the record (tune_ae/experiment.json) come from here too. So
    a new setting is one field here plus its use. `storage_path` and `name` say where the
    experiment is, not how it runs: their flags are run.py's own.
    """

    storage_path: str  # absolute folder (or cloud URI) holding every experiment
    name: str  # experiment folder under storage_path
    cpus_per_trial: float | None = _setting(
        None, "CPU cores (torch threads) per trial, or auto: each node's CPUs split among the trials that can run "
        "at once, and handed on to the trials still running as others end (a number is fixed, and reproducible)",
        parse=auto_or_number, shown_default="auto")
    gpus_per_trial: float | None = _setting(
        None, "GPU share per trial, or auto: the visible GPUs split among the trials that can run at once",
        parse=auto_or_number, shown_default="auto")
    scheduler: str = _setting("fifo", "asha stops poor trials early; fifo runs every trial to its end",
                              resumable=False, choices=SCHEDULERS)
    max_failures: int = _setting(3, "retries per crashed trial, from its checkpoint")
    checkpoint_every: int = _setting(10, "epochs between checkpoints; the last epoch is always saved")
    keep_checkpoints: int = _setting(2, "newest checkpoints kept per trial")
    cuda_graphs: bool = _setting(True, "on CUDA, run the eager loop instead of replaying each epoch as a CUDA graph")
    pending_timeout_s: float = _setting(600.0, "seconds trials may wait with none running before the sweep stops",
                                        flag="--pending-timeout")

    def __post_init__(self) -> None:
        cpus, gpus = self.cpus_per_trial, self.gpus_per_trial
        if cpus is not None and (not _finite_number(cpus) or not cpus > 0):
            raise ConfigError(f"cpus-per-trial must be auto or a finite number > 0, got {cpus!r}")
        if gpus is not None and (not _finite_number(gpus) or gpus < 0 or gpus > 1 and gpus != int(gpus)):
            raise ConfigError(f"gpus-per-trial must be auto, a fraction in [0, 1] or a whole number, got {gpus!r}")
        _check_choice(self, "scheduler", SCHEDULERS)
        _check_int(self, "max_failures", minimum=0)
        _check_int(self, "checkpoint_every", minimum=1)
        _check_int(self, "keep_checkpoints", minimum=1)
        if not _finite_number(self.pending_timeout_s) or not self.pending_timeout_s > 0:
            raise ConfigError(f"pending-timeout must be a finite number of seconds > 0, got {self.pending_timeout_s!r}")
        if not self.name or "/" in self.name or self.name.startswith(".") or self.name != self.name.strip():
            raise ConfigError(f"name must be a plain folder name (no '/', not starting with '.'), got {self.name!r}")
        if len(self.name.encode()) > 200:  # folder names end at 255 bytes; suffixes and temp names need room
            raise ConfigError(f"name must be at most 200 bytes, got {len(self.name.encode())}; pass a shorter --name")
        if any(ord(c) < 32 or ord(c) == 127 for c in self.name):
            raise ConfigError(f"name must not contain control characters (newline, tab, ...), got {self.name!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SweepSettings":
        """From a record; fields added since it was written take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SETTINGS: tuple[dataclasses.Field, ...] = tuple(f for f in dataclasses.fields(SweepSettings) if f.metadata)  # with flags
RESUMABLE_SETTINGS = tuple(f.name for f in SETTINGS if f.metadata["resumable"])


def _finite_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
