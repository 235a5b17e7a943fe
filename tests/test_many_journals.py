"""many_journals.py: the experiments' own journals as one read-only Optuna storage."""

import shutil

import pytest
from optuna.trial import TrialState

from tune_ae import record
from tune_ae.many_journals import METRIC_NAMES, NOTE_TEXT, TRIAL_BITS, ExperimentsStorage, ReadOnly

from test_journal import BY_HAND, made_experiment


@pytest.fixture
def root(tmp_path):
    folder = made_experiment(tmp_path / "first")
    recorder = record.Recorder(folder, ["hidden"])  # tune_ae's record of the same two trials
    for hidden in (32, 64):
        config = next(c.to_dict() for c in BY_HAND.trial_configs() if c.hidden == hidden)
        recorder.start(f"hidden={hidden}", config)
        recorder.end(f"hidden={hidden}", "done", 3, 1 / (hidden * 3))
    shutil.copytree(tmp_path / "first", tmp_path / "copy")  # its journal still names its study "first"
    (tmp_path / "no-journal").mkdir()
    return tmp_path


def test_each_experiment_is_a_study_answered_from_its_own_journal(root):
    storage = ExperimentsStorage(root)
    studies = {s.study_name: s for s in storage.get_all_studies()}
    assert set(studies) == {"first", "copy"}  # the folder without a journal has no study
    assert len({s._study_id for s in studies.values()}) == 2
    for name, study in studies.items():
        assert storage.get_study_name_from_id(study._study_id) == name
        assert storage.get_study_id_from_name(name) == study._study_id
        trials = storage.get_all_trials(study._study_id)
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
        assert {t._trial_id >> TRIAL_BITS for t in trials} == {study._study_id}  # ids unique across studies
        assert storage.get_trial(trials[1]._trial_id).number == trials[1].number
    with pytest.raises(KeyError):
        storage.get_study_id_from_name("no-journal")


def test_the_page_speaks_the_studys_terms(root):
    storage = ExperimentsStorage(root)
    study = storage.get_study_id_from_name("first")
    trials = storage.get_all_trials(study)
    assert [t.user_attrs["trial"] for t in trials] == ["h=32", "h=64"]
    assert trials[0].values == [float(f"{1 / (32 * 3):.5g}")]  # 5 significant digits, as the tables print
    assert trials[0].intermediate_values[3] == float(f"{1 / (32 * 3):.5g}")
    assert storage.get_best_trial(study).user_attrs["trial"] == "h=64"
    attrs = storage.get_study_system_attrs(study)
    note = attrs[f"{NOTE_TEXT}0"]
    assert attrs[METRIC_NAMES] == ["val_loss"] and "finished, 2/2 trials finished" in note
    assert f"h = 64: best final val_loss {1 / 192:.4g}; PCA at k = h not recorded yet" in note


def test_every_write_is_refused(root):
    storage = ExperimentsStorage(root)
    study = storage.get_study_id_from_name("first")
    for write, args in ((storage.delete_study, (study,)), (storage.set_study_system_attr, (study, "k", "v")),
                        (storage.set_trial_user_attr, (study << TRIAL_BITS, "k", "v")),
                        (storage.create_new_trial, (study,))):
        with pytest.raises(ReadOnly):
            write(*args)
