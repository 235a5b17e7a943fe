"""The experiment as an Optuna study (journal.py): the driver's Recorder, the rebuild from the
tables, and which journals count as readable. The page that serves it: tests/test_dashboard.py."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from tune_ae import journal, results
from tune_ae.config import SweepSettings, field_choices
from tune_ae.experiment import read_meta, recorded_grid, write_meta
from tune_ae.grids import Grid, Range

from conftest import journal_trials

GRID = Grid({"hidden": (64, 512), "lr": (1e-3, 3e-3), "output_activation": ("relu", "identity")})
BY_HAND = Grid({"hidden": (32, 64), "epochs": (3,), "batch_size": (10,)})  # made_experiment's


def made_experiment(folder: Path) -> Path:
    """A finished two-trial sweep of BY_HAND (h = 32, 64; 3 epochs each, both done) as its driver
    leaves the folder, made by hand without Ray: its record, each trial's folder (params.json,
    the epochs log), the saved tables, and the journal recorded live, trial after trial."""
    write_meta(folder, "custom", BY_HAND, SweepSettings(storage_path=str(folder.parent), name=folder.name),
               {"folder": "/d"}, {"command": []})
    recorder = journal.Recorder(folder, BY_HAND)
    for config in (c.to_dict() for c in BY_HAND.trial_configs()):
        name = f"hidden={config['hidden']}"
        (folder / name).mkdir()
        (folder / name / "params.json").write_text(json.dumps(config))
        recorder.start(name, config)
        for epoch in (1, 2, 3):
            loss = 1 / (config["hidden"] * epoch)
            row = {"trial_id": name, **config, "epoch": epoch, "train_loss": loss, "val_loss": loss,
                   "epoch_time_s": 1.0, "images_per_s": 10.0, "parameters": 5, "device": "cpu", "threads": 1,
                   "node_id": "n", "trial_started_at": 100.0, "reported_at": 100.0 + epoch}
            with open(folder / name / results.EPOCHS_LOG, "a") as log:
                log.write(json.dumps(row) + "\n")
            recorder.epoch(name, config, epoch, loss)
        recorder.end(name, config, "done", loss)
    results.save_tables(folder)
    return folder


def cut_between_lines(folder: Path, lines: int) -> None:
    """The journal without its last `lines` lines: a kill between two appended lines."""
    kept = journal.path(folder).read_bytes().splitlines(keepends=True)[:-lines]
    journal.path(folder).write_bytes(b"".join(kept))


def config(hidden: int, **kw) -> dict:
    return {"hidden": hidden, "lr": 1e-3, "output_activation": "relu", **kw}


def test_each_swept_field_is_an_interval_or_its_choices():
    assert journal.distributions(GRID) == {
        "hidden": IntDistribution(64, 512), "lr": FloatDistribution(1e-3, 3e-3),
        # every choice TrialConfig allows, so that an --extend adding one stays in the same study
        "output_activation": CategoricalDistribution(list(field_choices("output_activation")))}
    search = Grid({"hidden": (64,)}, ranges={"lr": Range(1e-4, 1e-2, log=True), "epochs": Range(2, 4)},
                  search="random", num_samples=2)
    assert journal.distributions(search) == {"lr": FloatDistribution(1e-4, 1e-2, log=True),
                                             "epochs": IntDistribution(2, 4)}


def test_a_trial_is_recorded_as_it_starts_learns_and_ends(tmp_path):
    recorder = journal.Recorder(tmp_path, GRID)
    recorder.start("a", config(64))
    for epoch, loss in ((1, 0.3), (2, 0.2)):
        recorder.epoch("a", config(64), epoch, loss)
    (running,) = journal_trials(tmp_path)
    assert running.state == TrialState.RUNNING and running.user_attrs == {"trial_folder": "a", "status": "running"}
    assert running.params == config(64) and running.intermediate_values == {1: 0.3, 2: 0.2}

    recorder.end("a", config(64), "done", 0.2)
    recorder.start("b", config(512, lr=3e-3))
    recorder.end("b", config(512, lr=3e-3), "error", error="CUDA out of memory " + "x" * 600)
    recorder.start("c", config(64, output_activation="identity"))
    recorder.end("c", config(64, output_activation="identity"), "stopped early")
    recorder.start("d", config(512))
    recorder.end("d", config(512), "interrupted")  # resumed later: not finished
    done, failed, pruned, interrupted = journal_trials(tmp_path)
    assert (done.state, done.value) == (TrialState.COMPLETE, 0.2)
    assert failed.state == TrialState.FAIL and failed.value is None
    assert failed.user_attrs["error"].startswith("CUDA out of memory") and len(failed.user_attrs["error"]) == 500
    assert pruned.state == TrialState.PRUNED and pruned.user_attrs["status"] == "stopped early"
    assert interrupted.state == TrialState.RUNNING and interrupted.user_attrs["status"] == "interrupted"

    # The next run's driver takes the unfinished trial up again: one Optuna trial per tune_ae trial.
    again = journal.Recorder(tmp_path, GRID)
    again.epoch("d", config(512), 1, 0.5)
    again.end("d", config(512), "done", 0.5)
    trials = journal_trials(tmp_path)
    assert len(trials) == 4 and trials[-1].state == TrialState.COMPLETE and trials[-1].intermediate_values == {1: 0.5}


def test_an_extended_grid_widens_its_intervals_in_the_same_study(tmp_path):
    journal.Recorder(tmp_path, Grid({"hidden": (64, 128)})).end("a", {"hidden": 64}, "done", 0.1)
    wider = journal.Recorder(tmp_path, Grid({"hidden": (64, 128, 1024)}))
    wider.end("b", {"hidden": 1024}, "done", 0.05)
    assert [(t.params, t.value) for t in journal_trials(tmp_path)] == [({"hidden": 64}, 0.1), ({"hidden": 1024}, 0.05)]


def test_only_a_whole_journal_of_this_experiment_is_readable(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    assert not journal.readable(folder)  # none yet
    journal.Recorder(folder, GRID).end("a", config(64), "done", 0.1)
    assert journal.readable(folder)
    whole = journal.path(folder).read_bytes()
    journal.path(folder).write_bytes(whole[:-1])  # its last line without its end: a kill mid-write
    assert not journal.readable(folder)
    journal.path(folder).write_bytes(b"")
    assert not journal.readable(folder)
    journal.path(folder).write_bytes(b"not json\n")
    assert not journal.readable(folder)
    renamed = tmp_path / "y"  # a copied experiment under another name: the study is x's
    renamed.mkdir()
    journal.path(renamed).write_bytes(whole)
    assert not journal.readable(renamed)
    journal.Recorder(renamed, GRID)  # rebuilt from its own tables (none here): a study of its own
    assert journal.readable(renamed) and journal_trials(renamed) == []


def test_the_drivers_journal_is_what_the_tables_rebuild(smoke_experiment, tmp_path):
    """Written live by the driver, or rebuilt from the tables: the same trials, states, curves."""
    folder = tmp_path / "s"
    shutil.copytree(smoke_experiment[0], folder)
    live = sorted(journal_trials(folder), key=lambda t: t.params["hidden"])
    journal.rebuild(folder, recorded_grid(read_meta(folder)))
    rebuilt = sorted(journal_trials(folder), key=lambda t: t.params["hidden"])
    assert [t.params for t in live] == [t.params for t in rebuilt] == [{"hidden": 32}, {"hidden": 64}]
    assert [t.state.name for t in live] == [t.state.name for t in rebuilt] == ["COMPLETE", "COMPLETE"]
    assert [t.intermediate_values for t in live] == [t.intermediate_values for t in rebuilt]
    assert [sorted(t.intermediate_values) for t in live] == [[1, 2, 3], [1, 2, 3]]
    epochs = pd.read_parquet(folder / "epochs.parquet")
    assert live[0].value == pytest.approx(epochs[(epochs["hidden"] == 32) & (epochs["epoch"] == 3)]["val_loss"].item())


def test_a_driver_resuming_an_experiment_without_a_journal_first_writes_what_the_tables_hold(smoke_experiment, tmp_path):
    """An experiment from before the journal, resumed or extended: its trials are on the page too."""
    folder = tmp_path / "s"
    shutil.copytree(smoke_experiment[0], folder)
    journal.path(folder).unlink()
    journal.Recorder(folder, recorded_grid(read_meta(folder)))
    assert sorted(t.params["hidden"] for t in journal_trials(folder)) == [32, 64]
    fresh = tmp_path / "fresh"  # a new sweep's folder: nothing to rebuild, an empty study
    fresh.mkdir()
    journal.Recorder(fresh, recorded_grid(read_meta(folder)))
    assert journal_trials(fresh) == []


def test_a_journal_cut_between_two_lines_is_behind_the_tables_and_a_resuming_driver_rebuilds_it(tmp_path):
    """Cut at a line boundary it still reads, but a finished trial shows running with part of its
    curve: the tables (trial statuses, epochs done) tell, and the journal is rebuilt from them."""
    folder = made_experiment(tmp_path / "exp")
    assert journal.current(folder) and journal.lagging(folder) == []
    whole = journal.path(folder).read_bytes()
    cut_between_lines(folder, 3)  # h=64's last epoch and its end
    narrow, wide = journal_trials(folder)
    assert journal.readable(folder)  # it parses: a journal cut at a line end is still a journal
    assert narrow.state == TrialState.COMPLETE and sorted(narrow.intermediate_values) == [1, 2, 3]
    assert wide.state == TrialState.RUNNING and sorted(wide.intermediate_values) == [1, 2]
    assert journal.lagging(folder) == ["hidden=64"] and not journal.current(folder)

    journal.Recorder(folder, BY_HAND)  # a driver resuming the experiment starts from what the tables hold
    assert [(t.state, sorted(t.intermediate_values), t.params) for t in journal_trials(folder)] == [
        (TrialState.COMPLETE, [1, 2, 3], {"hidden": 32}), (TrialState.COMPLETE, [1, 2, 3], {"hidden": 64})]
    assert journal.current(folder)

    journal.path(folder).write_bytes(whole)
    cut_between_lines(folder, 1)  # only h=64's end: every epoch there, the trial still running
    assert journal.lagging(folder) == ["hidden=64"]
    journal.path(folder).write_bytes(whole)
    cut_between_lines(folder, 14)  # h=32 begun, without an epoch; h=64 not begun at all
    assert journal.lagging(folder) == ["hidden=32", "hidden=64"]


def test_a_journal_ahead_of_the_tables_is_kept(tmp_path):
    """The tables are written at a run's end: a trial the driver has recorded since is not in them,
    and the journal stays as it is (it lags nothing)."""
    folder = made_experiment(tmp_path / "exp")
    journal.Recorder(folder, BY_HAND).start("hidden=128", {"hidden": 128, "epochs": 3, "batch_size": 10})
    assert journal.current(folder)
    journal.Recorder(folder, BY_HAND)  # not rebuilt: that would drop h=128
    assert [t.user_attrs["trial_folder"] for t in journal_trials(folder)] == ["hidden=32", "hidden=64", "hidden=128"]


def test_a_journal_is_rebuilt_into_a_file_outside_the_folder_when_asked(tmp_path):
    folder = made_experiment(tmp_path / "exp")
    cut_between_lines(folder, 3)
    before = journal.path(folder).read_bytes()
    elsewhere = tmp_path / "elsewhere" / journal.JOURNAL
    elsewhere.parent.mkdir()
    journal.rebuild(folder, BY_HAND, elsewhere)
    assert journal.path(folder).read_bytes() == before  # the folder's own untouched
    storage = journal.open_storage(folder, elsewhere)
    import optuna

    trials = optuna.load_study(study_name="exp", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == [journal.JOURNAL]  # no temporary left
