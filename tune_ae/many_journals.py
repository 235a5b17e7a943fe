"""The experiments of a storage path as one read-only Optuna storage, for optuna-dashboard.

Each experiment keeps its own journal (journal.py, written by its sweep's driver); this storage
routes each study to that file instead of copying them into one: a sweep's new lines show at
the page's next poll, nothing is copied, and an experiment whose journal cannot be opened
costs its own study, not the page. optuna-dashboard's study list calls `get_all_studies`,
answered from the records alone (catalog.py: no journal opened); a journal is opened when its
study is. Study ids are given in the order experiments are first seen and kept for the page's
life; a trial's id is its study's id times 2**32 plus its id in its own journal.

What the page shows speaks the study's terms: the objective is named val_loss (optuna's
metric-names attribute), values are rounded to 5 significant digits as the tables print
them, each trial carries its label by the grid's swept fields (user attribute `trial`), and
each study's note gives PCA's error at k = h beside its curves. Every write (deleting a
study, telling a trial, saving a note) raises: only a sweep's driver writes its record.
"""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from tune_ae import catalog, journal, labels
from tune_ae.experiment import read_meta, recorded_grid

TRIAL_BITS = 32
METRIC_NAMES = "study:metric_names"  # optuna's key for study.set_metric_names
NOTE_VERSION, NOTE_TEXT = "dashboard:note_ver", "dashboard:note_str:"  # optuna-dashboard 0.21's study note


class ReadOnly(RuntimeError):
    """A write to the page's storage: refused."""


def rounded(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.5g}")


def attributes(entry: catalog.Entry) -> dict:
    """A study's system attributes: the metric's name, and a note with PCA at k = h beside each
    width's best (where the record holds it)."""
    lines = [f"**{entry.name}**: {entry.kind or 'grid'}, {entry.status}, {entry.finished}/{entry.total} trials finished.", ""]
    for hidden in sorted(set(entry.pca) | set(entry.best)):
        best, pca, ratio = entry.best.get(hidden), entry.pca.get(hidden), entry.ratio(hidden)
        lines.append(f"- h = {hidden}: best final val_loss {'-' if best is None else f'{best:.4g}'}; "
                     f"PCA at k = h {'not recorded yet' if pca is None else f'{pca:.4g}'}"
                     + ("" if ratio is None else f" ({ratio:.3g}x PCA)"))
    body = "\n".join(lines)
    return {METRIC_NAMES: ["val_loss"], NOTE_VERSION: 1,
            **{f"{NOTE_TEXT}{i}": body[i * 2000:(i + 1) * 2000] for i in range(len(body) // 2000 + 1)}}


class ExperimentsStorage(BaseStorage):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.ids: dict[str, int] = {}  # experiment name -> study id
        self.opened: dict[str, tuple[BaseStorage, int, int]] = {}  # name -> (its journal, its study id there, inode)
        self.lock = threading.Lock()  # the page answers each request in a thread
        self.files: dict[str, Path] = {}  # name -> its journal rebuilt elsewhere (a folder the page cannot write)
        self.scanned: tuple[float, list[catalog.Entry]] = (-1.0, [])

    # --- studies: from the records ---
    def experiments(self) -> list[catalog.Entry]:
        """The experiments that have a journal, scanned at most once a second (the page polls)."""
        with self.lock:
            at, found = self.scanned
            if time.monotonic() - at > 1.0:
                found = [e for e in catalog.scan(self.root)  # those whose record reads (a kind), with a journal
                         if e.kind and (e.name in self.files or journal.path(self.root / e.name).is_file())]
                self.scanned = (time.monotonic(), found)
            for entry in sorted(found, key=lambda e: (e.started, e.name)):
                self.ids.setdefault(entry.name, len(self.ids))
            return found

    def name_of(self, study_id: int) -> str:
        for _ in range(2):
            for name, known in self.ids.items():
                if known == study_id:
                    return name
            self.scanned = (-1.0, [])
            self.experiments()  # one begun since
        raise KeyError(f"no study {study_id} under {self.root}")

    def get_all_studies(self) -> list[FrozenStudy]:
        return [FrozenStudy(e.name, None, {}, attributes(e), self.ids[e.name], directions=[StudyDirection.MINIMIZE])
                for e in self.experiments()]

    def get_study_id_from_name(self, study_name: str) -> int:
        self.experiments()
        if study_name not in self.ids:
            raise KeyError(f"no experiment {study_name!r} with a journal under {self.root}")
        return self.ids[study_name]

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.name_of(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return [StudyDirection.MINIMIZE]

    def get_study_user_attrs(self, study_id: int) -> dict:
        return {}

    def get_study_system_attrs(self, study_id: int) -> dict:
        return attributes(catalog.describe(self.root / self.name_of(study_id)))

    # --- trials: from each experiment's own journal ---
    def journal_of(self, study_id: int) -> tuple[BaseStorage, int, str]:
        """The journal of study `study_id`, opened again when its file was replaced (a driver or
        this page rebuilt it): Optuna reads a journal on from where it stopped, in the old file."""
        name = self.name_of(study_id)
        file = self.files.get(name) or journal.path(self.root / name)
        inode = file.stat().st_ino
        if name not in self.opened or self.opened[name][2] != inode:
            storage = journal.open_storage(self.root / name, self.files.get(name))
            # Its one study, by whatever name it had when written (a moved or copied folder keeps the old one).
            self.opened[name] = (storage, storage.get_all_studies()[0]._study_id, inode)
        storage, local, _ = self.opened[name]
        return storage, local, name

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None) -> list[FrozenTrial]:
        storage, local, name = self.journal_of(study_id)
        swept = recorded_grid(read_meta(self.root / name)).swept() or ["hidden"]
        return [self.shown(t, study_id, swept) for t in storage.get_all_trials(local, deepcopy=False, states=states)]

    @staticmethod
    def shown(trial: FrozenTrial, study_id: int, swept: list[str]) -> FrozenTrial:
        trial = copy.copy(trial)  # the journal's own objects stay as they are
        trial._trial_id = (study_id << TRIAL_BITS) + trial._trial_id
        trial._values = None if trial._values is None else [rounded(v) for v in trial._values]
        trial.intermediate_values = {k: rounded(v) for k, v in trial.intermediate_values.items()}
        trial.user_attrs = {**trial.user_attrs, "trial": labels.label(trial.params, [n for n in swept if n in trial.params])}
        return trial

    def get_trial(self, trial_id: int) -> FrozenTrial:
        study_id = trial_id >> TRIAL_BITS
        return next(t for t in self.get_all_trials(study_id) if t._trial_id == trial_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return next(t._trial_id for t in self.get_all_trials(study_id) if t.number == trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self.get_trial(trial_id).number

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        done = [t for t in self.get_all_trials(study_id) if t.state == TrialState.COMPLETE and t.values]
        if not done:
            raise ValueError("no trial has finished yet")
        return min(done, key=lambda t: t.values[0])

    # --- writes: refused ---
    def _refuse(self, *args, **kwargs):
        raise ReadOnly("this page is read-only: only a sweep's driver writes its experiment")

    create_new_study = delete_study = set_study_user_attr = set_study_system_attr = _refuse
    create_new_trial = set_trial_param = set_trial_state_values = set_trial_intermediate_value = _refuse
    set_trial_user_attr = set_trial_system_attr = _refuse


optuna.logging.set_verbosity(optuna.logging.WARNING)
