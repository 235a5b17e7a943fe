"""Named grids as data, the overrides the CLI lays on top of them, and searches.

A grid gives each TrialConfig field a tuple of values (a field it does not name keeps
TrialConfig's default) and is the Cartesian product of those axes; `seed` is the axis
`--seeds N` sets to 0..N-1. `trial_configs()` expands and validates it without Ray, so a
bad value stops the command before any process starts.

A search (`search` random or optuna) also gives numeric fields a `Range` and samples
`num_samples` configurations at every point of the grid. What is searched and what is a point
follows from each field's kind in TrialConfig: a range is searched; a list of a field with
choices (output_activation, precision) is searched among its values; a list of a numeric field
(hidden, seed, ...) is the points. So `--hidden 64 128 --lr 1e-4:1e-2:log --num-samples 12`
tries 12 learning rates at each width, and the best per width is found by construction.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

from tune_ae import labels
from tune_ae.config import TRIAL_FIELDS, ConfigError, TrialConfig, default, field_choices, field_type

SEARCHES = ("grid", "random", "optuna")


@dataclass(frozen=True)
class Range:
    """A numeric field's searched interval, both ends included; `log`: sampled evenly in log space."""

    low: float
    high: float
    log: bool = False
    text: str | None = field(default=None, compare=False)  # as given on the command line, to be said back

    def __str__(self) -> str:
        return self.text or f"{labels.value(self.low)}:{labels.value(self.high)}" + (":log" if self.log else "")

    @classmethod
    def parse(cls, name: str, text: str) -> "Range":
        """'1e-4:1e-2:log' or '0:0.3' for field `name` (its type: int fields take integer ends).
        Its limits are checked by the Grid it joins."""
        parts = text.split(":")
        kind = field_type(name)
        if kind is str:
            raise ConfigError(f"{name} takes values ({', '.join(field_choices(name) or ())}), not a range")
        if len(parts) not in (2, 3) or len(parts) == 3 and parts[2] != "log":
            raise ConfigError(f"{text!r} is not a range; write LOW:HIGH or LOW:HIGH:log")
        try:
            low, high = kind(parts[0]), kind(parts[1])
        except ValueError:
            raise ConfigError(f"{text!r}: the ends of a {name} range must be "
                              f"{'integers' if kind is int else 'numbers'}") from None
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ConfigError(f"{text!r}: the ends of a range must be finite")
        return cls(low, high, len(parts) == 3, text)

    def to_list(self) -> list:
        return [self.low, self.high, "log" if self.log else "linear"]

    def sample(self, name: str, u: float):
        """The value at quantile `u` in [0, 1): floats kept to 4 significant digits (readable
        folder names and labels; finer is noise for a hyperparameter), ints inclusive of both ends."""
        if field_type(name) is int:
            low, high = (math.log(self.low), math.log(self.high + 1)) if self.log else (self.low, self.high + 1)
            x = low + u * (high - low)
            return min(int(math.floor(math.exp(x) if self.log else x)), int(self.high))
        low, high = (math.log(self.low), math.log(self.high)) if self.log else (self.low, self.high)
        x = low + u * (high - low)
        return self.round(math.exp(x) if self.log else x)

    def round(self, value: float) -> float:
        """`value` kept to 4 significant digits, inside the range (rounding must not leave it)."""
        return min(max(float(f"{value:.4g}"), self.low), self.high)


@dataclass(frozen=True)
class Grid:
    axes: Mapping[str, tuple] = field(default_factory=dict)  # TrialConfig field -> values swept
    subset: int | None = None  # training images kept (class-balanced), None = all 60,000
    ranges: Mapping[str, Range] = field(default_factory=dict)  # numeric field -> interval searched
    search: str = "grid"  # grid: every combination; random or optuna: num_samples per point
    num_samples: int = 1  # configurations sampled at each point of a search
    search_seed: int = 0  # makes a search's samples (random) or its sampler (optuna) repeatable

    def __post_init__(self) -> None:
        unknown = sorted((set(self.axes) | set(self.ranges)) - set(TRIAL_FIELDS))
        if unknown:
            raise ConfigError(f"unknown grid field(s) {', '.join(unknown)}; valid are {', '.join(TRIAL_FIELDS)}")
        object.__setattr__(self, "axes", {name: tuple(values) for name, values in self.axes.items()
                                          if name not in self.ranges})
        object.__setattr__(self, "ranges", {name: r if isinstance(r, Range) else Range(r[0], r[1], r[2] == "log")
                                            for name, r in self.ranges.items()})
        for name, values in self.axes.items():
            if not values:
                raise ConfigError(f"{name} needs at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{name} has repeated values {list(values)}")
        if self.subset is not None and (isinstance(self.subset, bool) or not isinstance(self.subset, int) or self.subset < 10):
            raise ConfigError(f"subset must be an integer >= 10 (images kept), got {self.subset!r}")
        if self.search not in SEARCHES:
            raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {self.search!r}")
        for name, value in (("num_samples", self.num_samples), ("search_seed", self.search_seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "num_samples" else 0):
                raise ConfigError(f"{name.replace('_', '-')} must be an integer >= {1 if name == 'num_samples' else 0}, "
                                  f"got {value!r}")
        if self.search == "grid" and (self.ranges or self.num_samples > 1):
            given = f"a range ({', '.join(f'--{n} {r}' for n, r in self.ranges.items())})" if self.ranges else "--num-samples"
            raise ConfigError(f"{given} needs a search: add --search random or --search optuna")
        if self.search != "grid" and not self.searched():
            raise ConfigError(f"--search {self.search} has nothing to search: give a numeric field a range "
                              "(e.g. --lr 1e-4:1e-2:log) or a choice field several values")
        for name, r in self.ranges.items():
            self._check_range(name, r)
        self.points()  # every value checked by TrialConfig's own rules
        if self.search == "random":
            self.trial_configs()  # and enough distinct samples per point

    def _check_range(self, name: str, r: Range) -> None:
        flag = f"--{name.replace('_', '-')} {r}"
        if not r.low < r.high:
            raise ConfigError(f"{flag}: the low end must be below the high end")
        if r.log and not r.low > 0:
            raise ConfigError(f"{flag}: a log range needs a low end > 0 (write {name}'s zero as a linear range)")
        for end in (r.low, r.high):
            try:
                TrialConfig(**{name: end})
            except ConfigError as err:
                raise ConfigError(f"{flag}: {err}") from None

    def values(self, name: str) -> tuple:
        return self.axes.get(name, (default(name),))

    @property
    def seeds(self) -> int:
        return len(self.values("seed"))

    @property
    def max_epochs(self) -> int:
        return int(self.ranges["epochs"].high) if "epochs" in self.ranges else max(self.values("epochs"))

    def searched(self) -> list[str]:
        """A search's searched fields: those with a range, and choice fields with several values."""
        if self.search == "grid":
            return []
        return [name for name in TRIAL_FIELDS
                if name in self.ranges or field_choices(name) and len(self.values(name)) > 1]

    def point_fields(self) -> list[str]:
        """The fields with more than one value that are not searched: they tell the points apart."""
        searched = self.searched()
        return [name for name in TRIAL_FIELDS if len(self.values(name)) > 1 and name not in searched]

    def swept(self) -> list[str]:
        """The fields with more than one value, in TrialConfig's order (a search's searched ones too)."""
        searched = self.searched()
        return [name for name in TRIAL_FIELDS if len(self.values(name)) > 1 or name in searched]

    def points(self) -> list[dict]:
        """Every point: all fields but the searched ones, at one combination of the others' values."""
        searched = self.searched()
        names = [name for name in TRIAL_FIELDS if name not in searched]
        points = [dict(zip(names, combo)) for combo in itertools.product(*(self.values(n) for n in names))]
        for point in points:  # checked as a trial: a searched field at its default for now
            TrialConfig(**point)
        return points

    @property
    def n_trials(self) -> int:
        return len(self.points()) * self.num_samples

    @property
    def known_in_advance(self) -> bool:
        """Whether every trial's config follows from the grid alone (not from results: optuna)."""
        return self.search != "optuna"

    def trial_configs(self) -> list[TrialConfig]:
        """Every trial of a grid or a random search, in order; an optuna search's are chosen as it runs."""
        if self.search == "grid":
            axes = [self.values(name) for name in TRIAL_FIELDS]
            return [TrialConfig(**dict(zip(TRIAL_FIELDS, point))) for point in itertools.product(*axes)]
        if self.search == "optuna":
            raise ValueError("an optuna search's configurations are chosen while it runs")
        configs = []
        for point in self.points():
            drawn: list[TrialConfig] = []
            for k in range(self.num_samples):
                # A repeat of an earlier sample of the point would be the same trial twice (one folder):
                # drawn again, from the sample's next stream.
                for attempt in range(100):
                    config = TrialConfig(**point, **self.sample(point, k, attempt))
                    if config not in drawn:
                        break
                else:
                    raise ConfigError(f"the searched values hold fewer than {self.num_samples} distinct configurations "
                                      f"per point (found {len(drawn)}); lower --num-samples or widen the ranges")
                drawn.append(config)
            configs += drawn
        return configs

    def sample(self, point: Mapping, k: int, attempt: int = 0) -> dict:
        """Sample `k` of `point` in a random search: its own stream, seeded by the search seed, the
        point, k (and the attempt, for a sample that repeated an earlier one), so that more samples
        (`--extend --num-samples`) or more points leave the samples already drawn as they were."""
        import numpy as np

        key = zlib.crc32(repr(sorted(point.items())).encode())
        rng = np.random.default_rng([self.search_seed, key, k, attempt] if attempt else [self.search_seed, key, k])
        values = {}
        for name in self.searched():  # in TrialConfig's order: a new field appends a stream, not reshuffles
            if name in self.ranges:
                values[name] = self.ranges[name].sample(name, float(rng.random()))
            else:
                choices = self.values(name)
                values[name] = choices[int(rng.integers(len(choices)))]
        return values

    def to_dict(self) -> dict[str, Any]:
        record = {"axes": {name: list(values) for name, values in self.axes.items()}, "subset": self.subset}
        if self.search != "grid":
            record.update(search=self.search, num_samples=self.num_samples, search_seed=self.search_seed,
                          ranges={name: r.to_list() for name, r in self.ranges.items()})
        return record

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "Grid":
        """From `to_dict`, or from the flat form of records written before grids had axes."""
        if "axes" in record:
            return cls(axes=record["axes"], subset=record.get("subset"), ranges=record.get("ranges", {}),
                       search=record.get("search", "grid"), num_samples=record.get("num_samples", 1),
                       search_seed=record.get("search_seed", 0))
        axes = {name: tuple(v) if isinstance(v, list) else (v,) for name, v in record.items() if name in TRIAL_FIELDS}
        seeds = record.get("seeds", 1)
        if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= 10_000:
            raise ConfigError(f"seeds must be a whole number from 1 to 10000, got {seeds!r}")
        axes["seed"] = tuple(range(seeds))
        return cls(axes=axes, subset=record.get("subset"))

    def describe(self) -> str:
        """'hidden 64/128/256/512, dropout 0.1, ..., 400 epochs': every field, once."""
        parts = [f"{name} {self.ranges[name] if name in self.ranges else '/'.join(labels.value(v) for v in self.values(name))}"
                 for name in TRIAL_FIELDS if name != "seed"]
        subset = f"{self.subset} training images" if self.subset else "all 60,000 training images"
        search = (f", {self.search} search of {self.num_samples} sample(s) per point (seed {self.search_seed})"
                  if self.search != "grid" else "")
        return ", ".join(parts) + f", {self.seeds} seed(s), {subset}" + search


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
            subset: int | None = None, search: str | None = None, num_samples: int | None = None,
            search_seed: int | None = None) -> Grid:
    """The named grid with `overrides` (field -> value, list of values, or Range), seeds, subset and search."""
    if name not in GRIDS:
        raise ConfigError(f"unknown grid {name!r}; choose one of {', '.join(GRIDS)}")
    return override(GRIDS[name], overrides, seeds=seeds, subset=subset, search=search, num_samples=num_samples,
                    search_seed=search_seed)


def override(base: Grid, overrides: Mapping[str, Any] | None = None, seeds: int | None = None,
             subset: int | None = None, search: str | None = None, num_samples: int | None = None,
             search_seed: int | None = None) -> Grid:
    """`base` with what the command line gives in its place; what it leaves out stays as in `base`."""
    axes, ranges = dict(base.axes), dict(base.ranges)
    for field_name, value in (overrides or {}).items():
        if value is None:
            continue
        if isinstance(value, Range):
            ranges[field_name] = value
            axes.pop(field_name, None)
        else:
            axes[field_name] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
            ranges.pop(field_name, None)
    if seeds is not None:
        if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
            raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}")
        axes["seed"] = tuple(range(seeds))
    return dataclasses.replace(base, axes=axes, ranges=ranges, subset=subset if subset is not None else base.subset,
                               search=search or base.search,
                               num_samples=num_samples if num_samples is not None else base.num_samples,
                               search_seed=search_seed if search_seed is not None else base.search_seed)
