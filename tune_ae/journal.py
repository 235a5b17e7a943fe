"""An experiment as an Optuna study in a journal file, `dashboard.journal`, for optuna-dashboard.

One study per experiment (named after its folder), one Optuna trial per tune_ae trial: its
swept fields as parameters, its val_loss per epoch as intermediate values (the dashboard's
learning curves), its end as the trial's state: done COMPLETE (value: the final val_loss),
stopped early PRUNED, error FAIL, running or interrupted RUNNING, not started WAITING; its
folder and status as user attributes.

Only the sweep's driver writes it, as results arrive (callbacks.DashboardLog through
`Recorder`), so nodes never write at once. An experiment without one, with one that does not
read (cut short mid-line by a kill or a full disk), or with one behind its tables (cut short
between two lines: a trial the tables hold finished, or with more epochs, shown running with
part of its curve; `lagging`), gets it rebuilt from its tables (`rebuild`).
Optuna is imported here only: a machine without it still sweeps, without the journal.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from tune_ae.config import field_choices, field_type
from tune_ae.grids import Grid

JOURNAL = "dashboard.journal"
STATES = {"done": "COMPLETE", "stopped early": "PRUNED", "error": "FAIL", "interrupted": "RUNNING",
          "not started": "WAITING"}


def path(folder: str | Path) -> Path:
    return Path(folder) / JOURNAL


def distributions(grid: Grid) -> dict:
    """Optuna's distribution of each field the grid sweeps or searches. A numeric axis is an
    interval from its lowest value to its highest, not a category: an --extend that adds a
    value then widens it, which Optuna accepts in the same study (a changed category list it
    does not)."""
    import optuna.distributions as d

    found = {}
    for name in grid.swept():
        r = grid.ranges.get(name)
        kind = field_type(name)
        if kind is str:
            found[name] = d.CategoricalDistribution(list(field_choices(name) or grid.values(name)))
        elif r is not None:
            found[name] = (d.IntDistribution(int(r.low), int(r.high), log=r.log) if kind is int
                           else d.FloatDistribution(float(r.low), float(r.high), log=r.log))
        else:
            values = grid.values(name)
            found[name] = (d.IntDistribution(min(values), max(values)) if kind is int
                           else d.FloatDistribution(float(min(values)), float(max(values))))
    return found


def open_storage(folder: str | Path, file: str | Path | None = None):
    """The experiment's journal as Optuna storage; `file` instead of the folder's own journal
    (one rebuilt elsewhere, for a folder that cannot be written)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(file or path(folder))))


def readable(folder: str | Path) -> bool:
    """Whether the journal exists, ends with a whole line (a kill mid-write leaves half of one)
    and replays into a study of this experiment."""
    import optuna

    file = path(folder)
    try:
        with file.open("rb") as f:
            f.seek(max(0, os.path.getsize(file) - 1))
            if f.read(1) != b"\n":
                return False
        optuna.load_study(study_name=Path(folder).resolve().name, storage=open_storage(folder)).get_trials(deepcopy=False)
        return True
    except Exception:  # missing, empty, not JSON, a study of another name: Optuna's errors are many
        return False


def lagging(folder: str | Path) -> list[str]:
    """The trials (by folder name) that the experiment's tables hold further than its journal:
    missing from it (once begun), running in it but finished in the tables, or with an epoch
    the epochs table has that it lacks. A journal ahead of the tables (a sweep killed before it
    rewrote them) lags nothing. The journal must be readable."""
    import optuna

    from tune_ae import results

    folder = Path(folder).resolve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a damaged table is rebuilt from the trial files by load_table
        trials, epochs = results.load_table(folder, "trials"), results.load_table(folder, "epochs")
    recorded = {t.user_attrs.get("trial_folder"): t for t in
                optuna.load_study(study_name=folder.name, storage=open_storage(folder)).get_trials(deepcopy=False)}
    curves = {Path(d).name: {int(e) for e, v in zip(t["epoch"], t["val_loss"]) if v == v}  # NaN: not on a curve
              for d, t in epochs.groupby("trial_dir")}
    behind = []
    for row in trials.to_dict("records"):
        if not isinstance(row.get("trial_dir"), str) or row["status"] == "not started":
            continue  # the driver records a trial as it starts
        name = Path(row["trial_dir"]).name
        trial = recorded.get(name)
        finished = optuna.trial.TrialState[STATES[row["status"]]].is_finished()
        if (trial is None or (finished and not trial.state.is_finished())
                or not curves.get(name, set()) <= set(trial.intermediate_values)):
            behind.append(name)
    return behind


def current(folder: str | Path) -> bool:
    """Whether the journal can be shown as it is: readable, and behind the tables in nothing."""
    return readable(folder) and not lagging(folder)


def rebuild(folder: str | Path, grid: Grid, file: str | Path | None = None) -> None:
    """Write the journal afresh from the experiment's tables (every trial, its epochs, its status),
    whole or not at all: into `file` if given (outside a folder that cannot be written), else
    into the folder's own."""
    import optuna

    from tune_ae import results  # pandas: not at import, which the dashboard command does before its Ctrl-C handling

    folder = Path(folder).resolve()
    target = Path(file) if file else path(folder)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        study = optuna.create_study(study_name=folder.name, direction="minimize",
                                    storage=JournalStorage(JournalFileBackend(str(tmp))))
        epochs = results.load_epochs(folder)
        trials = results.summarise_trials(epochs, folder)
        dists = distributions(grid)
        curves = {d: dict(zip(t["epoch"], t["val_loss"])) for d, t in epochs.groupby("trial_dir")}
        for row in trials.to_dict("records"):
            state = optuna.trial.TrialState[STATES[row["status"]]]
            params = {n: _plain(row[n]) for n in dists if row.get(n) is not None and row[n] == row[n]}
            curve = {int(e): float(v) for e, v in curves.get(row.get("trial_dir"), {}).items() if v == v}
            value = float(row["final_val_loss"]) if state == optuna.trial.TrialState.COMPLETE else None
            study.add_trial(optuna.trial.create_trial(
                state=state, value=value, params=params, distributions={n: dists[n] for n in params},
                intermediate_values=curve,
                user_attrs={"trial_folder": Path(row["trial_dir"]).name if isinstance(row.get("trial_dir"), str) else "",
                            "status": row["status"], "error": row.get("error") or ""}))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _plain(value):
    return value.item() if hasattr(value, "item") else value


class Recorder:
    """The driver's writer: a trial's start, each epoch, its end, into the experiment's journal."""

    def __init__(self, folder: str | Path, grid: Grid):
        import optuna

        from tune_ae import results

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.folder = Path(folder).resolve()
        # Cut short, behind the tables, or missing where trials ran already (an experiment from
        # before the journal, resumed or extended): first what the tables hold, then this run's results.
        if (path(self.folder).exists() or results.trial_dirs(self.folder)) and not current(self.folder):
            rebuild(self.folder, grid)
        self.storage = open_storage(self.folder)
        study = optuna.create_study(study_name=self.folder.name, direction="minimize", storage=self.storage,
                                    load_if_exists=True)
        self.study_id = self.storage.get_study_id_from_name(self.folder.name)
        self.dists = distributions(grid)
        self.open: dict[str, int] = {}  # trial folder -> Optuna trial id, for trials not finished
        for trial in study.get_trials(deepcopy=False):
            if not trial.state.is_finished():
                self.open[trial.user_attrs.get("trial_folder", "")] = trial._trial_id

    def _trial(self, name: str, config: dict) -> int:
        if name not in self.open:
            trial_id = self.storage.create_new_trial(self.study_id)
            for field in self.dists:
                if field in config:
                    dist = self.dists[field]
                    self.storage.set_trial_param(trial_id, field, dist.to_internal_repr(config[field]), dist)
            self.storage.set_trial_user_attr(trial_id, "trial_folder", name)
            self.open[name] = trial_id
        return self.open[name]

    def start(self, name: str, config: dict) -> None:
        self.storage.set_trial_user_attr(self._trial(name, config), "status", "running")

    def epoch(self, name: str, config: dict, epoch: int, val_loss: float) -> None:
        self.storage.set_trial_intermediate_value(self._trial(name, config), int(epoch), float(val_loss))

    def end(self, name: str, config: dict, status: str, value: float | None = None, error: str = "") -> None:
        from optuna.trial import TrialState

        trial_id = self._trial(name, config)
        self.storage.set_trial_user_attr(trial_id, "status", status)
        if error:
            self.storage.set_trial_user_attr(trial_id, "error", error[:500])
        state = TrialState[STATES[status]]
        if state.is_finished():
            self.storage.set_trial_state_values(trial_id, state, [value] if state == TrialState.COMPLETE else None)
            del self.open[name]

