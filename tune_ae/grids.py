"""Named grids as data, and the overrides the CLI lays on top of them.

A grid gives each TrialConfig field a tuple of values (a field it does not name keeps
TrialConfig's default) and is the Cartesian product of those axes; `seed` is the axis
`--seeds N` sets to 0..N-1. `trial_configs()` expands and validates it without Ray, so a
bad value stops the command before any process starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping

from tune_ae import labels
from tune_ae.config import TRIAL_FIELDS, ConfigError, TrialConfig, default


@dataclass(frozen=True)
class Grid:
    axes: Mapping[str, tuple] = field(default_factory=dict)  # TrialConfig field -> values swept
    subset: int | None = None  # training images kept (class-balanced), None = all 60,000

    def __post_init__(self) -> None:
        unknown = sorted(set(self.axes) - set(TRIAL_FIELDS))
        if unknown:
            raise ConfigError(f"unknown grid field(s) {', '.join(unknown)}; valid are {', '.join(TRIAL_FIELDS)}")
        object.__setattr__(self, "axes", {name: tuple(values) for name, values in self.axes.items()})
        for name, values in self.axes.items():
            if not values:
                raise ConfigError(f"{name} needs at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} has repeated values {list(values)}")
        if self.subset is not None and (isinstance(self.subset, bool) or not isinstance(self.subset, int) or self.subset < 10):
            raise ConfigError(f"subset must be an integer >= 10 (images kept), got {self.subset!r}")
        self.trial_configs()  # every value checked by TrialConfig's own rules

    def values(self, name: str) -> tuple:
        return self.axes.get(name, (default(name),))

    @property
    def seeds(self) -> int:
        return len(self.values("seed"))

    @property
    def max_epochs(self) -> int:
        return max(self.values("epochs"))

    def swept(self) -> list[str]:
        """The fields with more than one value, in TrialConfig's order."""
        return [name for name in TRIAL_FIELDS if len(self.values(name)) > 1]

    def trial_configs(self) -> list[TrialConfig]:
        axes = [self.values(name) for name in TRIAL_FIELDS]
        return [TrialConfig(**dict(zip(TRIAL_FIELDS, point))) for point in itertools.product(*axes)]

    def to_dict(self) -> dict[str, Any]:
        return {"axes": {name: list(values) for name, values in self.axes.items()}, "subset": self.subset}

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Grid":
        """From `to_dict`, or from the flat form of records written before grids had axes."""
        if "axes" in record:
            return cls(axes=record["axes"], subset=record.get("subset"))
        axes = {name: tuple(v) if isinstance(v, list) else (v,) for name, v in record.items() if name in TRIAL_FIELDS}
        axes["seed"] = tuple(range(record.get("seeds", 1)))
        return cls(axes=axes, subset=record.get("subset"))

    def describe(self) -> str:
        """'hidden 64/128/256/512, dropout 0.1, ..., 400 epochs': every field, once."""
        parts = [f"{name} {'/'.join(labels.value(v) for v in self.values(name))}"
                 for name in TRIAL_FIELDS if name != "seed"]
        subset = f"{self.subset} training images" if self.subset else "all 60,000 training images"
        return ", ".join(parts) + f", {self.seeds} seed(s), {subset}"


GRIDS: dict[str, Grid] = {
    # The reference study: four widths, everything else as in the report.
    "paper": Grid({"hidden": (64, 128, 256, 512)}),
    # The same shape, tiny: a full sweep in seconds on 2 CPU cores (tests, first runs).
    "smoke": Grid({"hidden": (32, 64), "epochs": (3,), "batch_size": (250,)}, subset=3000),
    # Beyond the report: does dropout help, and is 1e-3 the right step size?
    "wide": Grid({"hidden": (64, 128, 256, 512), "dropout": (0.0, 0.1, 0.2), "lr": (3e-4, 1e-3, 3e-3)}),
    # Why the report's autoencoder loses to PCA: its ReLU output and the dropout on its code,
    # each switched off, at the paper's widths (24 configurations; add --seeds 3 for the spread).
    "ablation": Grid({"hidden": (64, 128, 256, 512), "output_activation": ("relu", "identity", "sigmoid"),
                      "dropout": (0.0, 0.1)}),
}


def resolve(name: str, overrides: Mapping[str, Any] | None = None, seeds: int | None = None,
            subset: int | None = None) -> Grid:
    """The named grid with `overrides` (field -> value or list of values), seeds and subset."""
    if name not in GRIDS:
        raise ConfigError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")
    base = GRIDS[name]
    axes = dict(base.axes)
    for field_name, value in (overrides or {}).items():
        if value is not None:
            axes[field_name] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}")
        axes["seed"] = tuple(range(seeds))
    return dataclasses.replace(base, axes=axes, subset=subset if subset is not None else base.subset)
