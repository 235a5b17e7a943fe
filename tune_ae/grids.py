"""Named grids as data, and the overrides the CLI lays on top of them.

A grid is the Cartesian product hidden x dropout x lr x seeds; every other training value
is shared by all its trials. `trial_configs()` expands and validates it without Ray, so a
bad value stops the command before any process starts.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

from tune_ae.config import ConfigError, TrialConfig


@dataclass(frozen=True)
class Grid:
    hidden: tuple[int, ...]  # code widths h to sweep
    dropout: tuple[float, ...] = (0.1,)  # dropout rates to sweep
    lr: tuple[float, ...] = (1e-3,)  # Adam learning rates to sweep
    seeds: int = 1  # repeats per grid point, seeds 0..seeds-1
    batch_size: int = 1000
    epochs: int = 400
    subset: int | None = None  # training images kept (class-balanced), None = all 60,000
    output_activation: str = "relu"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("hidden", "dropout", "lr"):
            values = getattr(self, name)
            if not values:
                raise ConfigError(f"{name} needs at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} has repeated values {list(values)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {self.seeds!r}")
        if self.subset is not None and (not isinstance(self.subset, int) or self.subset < 10):
            raise ConfigError(f"subset must be an integer >= 10 (images kept), got {self.subset!r}")
        self.trial_configs()  # every value checked by TrialConfig's own rules

    def trial_configs(self) -> list[TrialConfig]:
        shared = dict(
            batch_size=self.batch_size,
            epochs=self.epochs,
            output_activation=self.output_activation,
            precision=self.precision,
        )
        return [
            TrialConfig(hidden=h, dropout=d, lr=lr, seed=s, **shared)
            for h, d, lr, s in itertools.product(self.hidden, self.dropout, self.lr, range(self.seeds))
        ]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


GRIDS: dict[str, Grid] = {
    # The reference study: four widths, everything else as in the report.
    "paper": Grid(hidden=(64, 128, 256, 512)),
    # The same shape, tiny: a full sweep in seconds on 2 CPU cores (tests, first runs).
    "smoke": Grid(hidden=(32, 64), epochs=3, batch_size=250, subset=3000),
    # Beyond the report: does dropout help, and is 1e-3 the right step size?
    "wide": Grid(hidden=(64, 128, 256, 512), dropout=(0.0, 0.1, 0.2), lr=(3e-4, 1e-3, 3e-3)),
}


def resolve(name: str, **overrides: Any) -> Grid:
    """The named grid with the overrides that are not None; unknown names are errors."""
    if name not in GRIDS:
        raise ConfigError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")
    known = {f.name for f in dataclasses.fields(Grid)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown grid override(s) {', '.join(unknown)}; valid are {', '.join(sorted(known))}")
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(GRIDS[name], **given)
