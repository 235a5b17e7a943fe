"""A search's Tune parts: Optuna's TPE and ASHA, each run separately at every point of the grid.

Tune runs one searcher and one scheduler per Tuner. Over a study of several widths that would
be wrong twice: TPE would spend its samples on the width that scores best, and ASHA would stop
every small-width trial because wide ones reach lower losses. So both are kept per point (the
values of the fields that are not searched, grids.Grid.points): each point gets its own
`OptunaSearch` and its own `ASHAScheduler`, and `num_samples` trials. What they do at a point
is exactly Tune's and Optuna's own; only the routing is here.
"""

from __future__ import annotations

import pickle
from typing import Mapping

from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher

from tune_ae.config import field_type
from tune_ae.grids import Grid


def domains(grid: Grid) -> dict:
    """Tune's search space of the searched fields: a Range as (log)uniform or (log)randint, both
    ends included; a choice field's values as tune.choice."""
    space = {}
    for name in grid.searched():
        r = grid.ranges.get(name)
        if r is None:
            space[name] = tune.choice(list(grid.values(name)))
        elif field_type(name) is int:
            space[name] = (tune.lograndint if r.log else tune.randint)(int(r.low), int(r.high) + 1)
        else:
            space[name] = (tune.loguniform if r.log else tune.uniform)(r.low, r.high)
    return space


def point_key(config: Mapping, fields: list[str]) -> tuple:
    return tuple(config.get(name) for name in fields)


class SavedWhole:
    """Tune saves a searcher's and a scheduler's state with the experiment and restores it on
    --resume: here, everything the object holds (the inner OptunaSearch and ASHA objects pickle)."""

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str):
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class PointwiseOptuna(SavedWhole, Searcher):
    """One OptunaSearch (TPE, seeded) per point, `num_samples` suggestions each.

    `replay`: tune_ae's record of the experiment so far (record.py's events, in order), for a
    new Tuner on an experiment whose Tune state is lost, or an extension; `kept`: the run's
    plan of which of those trial folders are finished, with the value to tell (plan.Plan.kept:
    the plan decides, not the events). Each sample begun is asked of its point's sampler again,
    in the order it began, and each kept one told where its end came (or at the end of the
    replay, if its end never reached the record), so the samplers stand where they stood (a
    seeded sampler draws the same values again); a sample not kept is handed out first, with
    its recorded config, into its own folder (tuner.SampleFolders). A recorded config its
    sampler would not draw again (a record of another tune_ae) is told to it as an evaluated
    point instead."""

    def __init__(self, grid: Grid, metric: str, mode: str, replay: list[dict] = (), kept: dict | None = None):
        """`kept` (trial folder -> value) is required with `replay`: without it, nothing is kept."""
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(metric=metric, mode=mode)
        self.points = grid.points()
        self.key_fields = grid.point_fields()
        self.ranges = dict(grid.ranges)
        self.space = domains(grid)
        self.searchers, self.left = {}, {}
        for i, point in enumerate(self.points):
            key = point_key(point, self.key_fields)
            # Each point its own seed (and so its own random start-up samples), all from the search seed.
            self.searchers[key] = OptunaSearch(space=self.space, metric=metric, mode=mode,
                                               seed=grid.search_seed * 100_003 + i)
            self.left[key] = grid.num_samples
        self.trial_point: dict[str, tuple] = {}
        self.alias: dict[str, str] = {}  # a Tune trial id -> the id its sampler knows it by (a replayed sample)
        self.steps: dict[str, int] = {}  # the last step told per trial: a restarted trial repeats some
        self.queued: list[tuple[tuple, str | None, dict]] = []  # (point, sampler's id, config) of samples to finish
        self.unbacked: set[str] = set()  # trials of a recorded config their sampler did not draw
        self._replay(list(replay), kept or {})

    def _replay(self, events: list[dict], kept: dict) -> None:
        begun: dict[str, tuple[tuple, str | None, dict]] = {}  # folder -> (point, sampler's id or None, config)
        finished = set()
        for event in events:
            name, config = event["trial"], event.get("config") or {}
            if (event["event"] == "start" or event.get("status") == "not started") and name not in begun:
                key = point_key(config, self.key_fields)
                if key not in self.searchers or self.left[key] == 0:
                    continue  # not a sample of this grid's points
                self.left[key] -= 1
                inner = f"replay:{name}"
                suggested = self.searchers[key].suggest(inner)
                same = isinstance(suggested, dict) and all(
                    self.rounded(k, v) == config.get(k) for k, v in suggested.items())
                if not same and isinstance(suggested, dict):
                    self.searchers[key].on_trial_complete(inner, error=True)
                begun[name] = (key, inner if same else None, config)
            elif event["event"] == "end" and event.get("status") in ("done", "stopped early") and name in begun \
                    and name in kept and name not in finished:
                finished.add(name)
                self._tell(*begun[name], kept[name])
        for name in [n for n in begun if n in kept and n not in finished]:  # kept, its end not recorded
            self._tell(*begun[name], kept[name])
        self.queued = [(key, inner, config) for name, (key, inner, config) in begun.items() if name not in kept]

    def _tell(self, key: tuple, inner: str | None, config: dict, value: float | None) -> None:
        if inner:
            self.searchers[key].on_trial_complete(inner, {self.metric: value} if value is not None else None)
        elif value is not None:
            self.searchers[key].add_evaluated_point({k: config[k] for k in self.space}, value)

    @property
    def total(self) -> int:
        return sum(self.left.values()) + len(self.queued)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # given at construction; the param space is the points' and the searched fields'

    def suggest(self, trial_id: str):
        if self.queued:  # samples begun before, not finished: each again, as recorded
            key, inner, config = self.queued.pop(0)
            self.trial_point[trial_id] = key
            if inner:
                self.alias[trial_id] = inner
            else:
                self.unbacked.add(trial_id)
            return {name: config[name] for name in config}
        open_points = [(left, i) for i, left in enumerate(self.left.values()) if left > 0]
        if not open_points:
            return Searcher.FINISHED
        # The point with most samples left, first in order on a tie: the points fill up evenly.
        _, i = max(open_points, key=lambda t: (t[0], -t[1]))
        point = self.points[i]
        key = point_key(point, self.key_fields)
        suggested = self.searchers[key].suggest(trial_id)
        if suggested is None or suggested == Searcher.FINISHED:
            return suggested
        self.left[key] -= 1
        self.trial_point[trial_id] = key
        # 4 significant digits, as a random search's samples: readable labels and folder names, and
        # finer is noise for a hyperparameter (TPE keeps the exact value it drew).
        return {**point, **{k: self.rounded(k, v) for k, v in suggested.items()}}

    def rounded(self, name: str, value):
        if not isinstance(value, float):
            return value
        return self.ranges[name].round(value)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        inner = self.alias.get(trial_id, trial_id)
        step = result.get("training_iteration", 0)
        if trial_id in self.trial_point and trial_id not in self.unbacked and step > self.steps.get(inner, 0):
            # Optuna warns of a step told twice: a trial restarted from a checkpoint repeats some
            self.steps[inner] = step
            self.searchers[self.trial_point[trial_id]].on_trial_result(inner, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.trial_point:
            searcher = self.searchers[self.trial_point[trial_id]]
            if trial_id not in self.unbacked:
                searcher.on_trial_complete(self.alias.get(trial_id, trial_id), result, error=error)
            elif result and result.get(self.metric) is not None:  # a sample its sampler never drew (see _replay)
                searcher.add_evaluated_point({k: result[k] for k in self.space}, result[self.metric])


class PointwiseASHA(SavedWhole, FIFOScheduler):
    """Tune's ASHAScheduler, one per point: a trial is compared with the trials of its own point."""

    def __init__(self, key_fields: list[str], metric: str, mode: str, **asha):
        super().__init__()
        self.key_fields, self.metric_, self.mode_, self.asha = key_fields, metric, mode, asha
        self.by_point: dict[tuple, ASHAScheduler] = {}
        self.trial_point: dict[str, tuple] = {}

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True

    def scheduler(self, trial) -> ASHAScheduler:
        key = self.trial_point.setdefault(trial.trial_id, point_key(trial.config, self.key_fields))
        if key not in self.by_point:
            self.by_point[key] = ASHAScheduler(metric=self.metric_, mode=self.mode_, **self.asha)
        return self.by_point[key]

    def on_trial_add(self, tune_controller, trial):
        self.scheduler(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result) -> str:
        return self.scheduler(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        self.scheduler(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self.scheduler(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"ASHA per point: {len(self.by_point)} point(s)"

