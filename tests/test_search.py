"""A search's Tune parts: Optuna's TPE and ASHA kept per point (search.py), on the shared Ray."""

import os

from types import SimpleNamespace

import pytest
from ray import tune

from tune_ae import ray_internals, results, search, tuner
from tune_ae.config import SweepSettings
from tune_ae.data import load_fashion_mnist
from tune_ae.grids import Grid, Range
from tune_ae.plan import new as new_plan

from conftest import write_dataset


class StopAfterFirst(tune.Callback):
    """Once one trial has finished, the signal Tune stops on and saves its state (the command
    sends it on Ctrl-C): an interruption."""

    def __init__(self):
        self.sent = False

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), ray_internals.TUNE_STOP_SIGNAL)


def test_an_optuna_search_gives_each_point_its_samples_and_resumes_with_its_searchers_state(ray_session, tmp_path):
    data = load_fashion_mnist(write_dataset(tmp_path / "d", n_train=300, n_test=60), expect_full=False)
    grid = Grid({"hidden": (8, 16), "epochs": (2,), "batch_size": (100,)}, ranges={"lr": Range(1e-4, 1e-2, log=True)},
                search="optuna", num_samples=3, search_seed=7)
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="o", scheduler="asha")
    tuner.build_tuner(new_plan(grid, s), data, callbacks=[StopAfterFirst()]).fit()
    folder = tmp_path / "store" / "o"
    first = results.load_trials(folder)
    assert 1 <= (first["status"] == "done").sum() < 6  # stopped part way

    tuner.restore_tuner(str(folder), grid, s, tuner.trial_resources(s, 6), data).fit()
    trials = results.load_trials(folder)
    # Six trials in all, not six more: the restored searcher knew what it had suggested.
    assert len(trials) == 6 and (trials["status"] == "done").all(), trials[["hidden", "lr", "status"]]
    assert sorted(trials["hidden"]) == [8, 8, 8, 16, 16, 16]
    assert trials["lr"].between(1e-4, 1e-2).all() and trials["lr"].nunique() == 6
    assert set(first["lr"].dropna()) <= set(trials["lr"])  # the trials before the stop are the same ones


def test_a_points_searcher_is_warm_started_with_its_finished_trials():
    grid = Grid({"hidden": (8, 16)}, ranges={"lr": Range(1e-4, 1e-2, log=True)}, search="optuna", num_samples=3)
    finished = [({"hidden": 8, "lr": 1e-3}, 0.5), ({"hidden": 8, "lr": 2e-3}, 0.4)]
    replay = [event for i, (config, value) in enumerate(finished)  # tune_ae's record of them, written by a sweep
              for event in ({"event": "start", "trial": f"f{i}", "config": config},
                            {"event": "end", "trial": f"f{i}", "status": "done", "value": value})]
    kept = {f"f{i}": value for i, (_, value) in enumerate(finished)}  # the plan's: both finished
    searcher = search.PointwiseOptuna(grid, "val_loss", "min", replay, kept)
    assert searcher.left == {(8,): 1, (16,): 3} and searcher.total == 4
    suggested = [searcher.suggest(f"t{i}") for i in range(4)]
    assert sorted(c["hidden"] for c in suggested) == [8, 16, 16, 16]
    assert all(1e-4 <= c["lr"] <= 1e-2 and c["epochs"] == 400 for c in suggested)  # every field, the point's own
    assert searcher.suggest("t5") == search.Searcher.FINISHED
    # The two told, and the one asked (the replay first asked for each, and its sampler drew other values: failed asks)
    assert len([t for t in searcher.searchers[(8,)]._ot_study.trials if t.state.name != "FAIL"]) == 3


def test_a_searcher_rebuilt_from_the_record_stands_where_the_lost_one_stood():
    """Tune's state lost mid-search: the searcher rebuilt from tune_ae's record draws what the
    uninterrupted one draws next, never a sample already begun, and hands out the unfinished
    sample first with its own config."""
    grid = Grid({"hidden": (8,)}, ranges={"lr": Range(1e-4, 1e-2, log=True)}, search="optuna", num_samples=4)
    lost = search.PointwiseOptuna(grid, "val_loss", "min")
    events = []
    for i in range(3):  # three samples begun; the first two finished, the third was running at the kill
        config = lost.suggest(f"t{i}")
        events.append({"event": "start", "trial": f"folder{i}", "config": config})
        if i < 2:
            lost.on_trial_complete(f"t{i}", {"val_loss": 0.1 * (i + 1), "lr": config["lr"]})
            events.append({"event": "end", "trial": f"folder{i}", "status": "done", "value": 0.1 * (i + 1)})
    kept = {e["trial"]: e["value"] for e in events if e["event"] == "end"}  # the plan's: the two finished
    rebuilt = search.PointwiseOptuna(grid, "val_loss", "min", events, kept)
    assert rebuilt.total == 2  # the unfinished one, and the one never begun
    assert rebuilt.suggest("new0") == events[-1]["config"]  # the unfinished sample again, as recorded
    lost.on_trial_complete("t2", {"val_loss": 0.05, "lr": events[-1]["config"]["lr"]})
    rebuilt.on_trial_complete("new0", {"val_loss": 0.05, "lr": events[-1]["config"]["lr"]})
    assert rebuilt.suggest("new1") == lost.suggest("t3")  # the next draw is the same
    assert len({e["config"]["lr"] for e in events if e["event"] == "start"}) == 3
    assert rebuilt.suggest("new2") == search.Searcher.FINISHED


def fake_trial(trial_id, hidden):
    return SimpleNamespace(trial_id=trial_id, config={"hidden": hidden})


def test_asha_compares_a_trial_with_its_own_points_trials_only():
    """Wide trials reach lower losses: one ASHA for all would stop every narrow trial at its first rung."""
    options = {"time_attr": "epoch", "max_t": 8, "grace_period": 1, "reduction_factor": 2}
    pointwise = search.PointwiseASHA(["hidden"], "val_loss", "min", **options)
    shared = search.ASHAScheduler(metric="val_loss", mode="min", **options)
    wide = [fake_trial(f"w{i}", 512) for i in range(4)]
    narrow = fake_trial("n0", 16)
    for scheduler in (pointwise, shared):
        for trial in [*wide, narrow]:
            scheduler.on_trial_add(None, trial)
        for i, trial in enumerate(wide):
            scheduler.on_trial_result(None, trial, {"epoch": 1, "val_loss": 0.01 + i * 0.001})
    result = {"epoch": 1, "val_loss": 0.05}
    assert shared.on_trial_result(None, narrow, result) == "STOP"
    assert pointwise.on_trial_result(None, narrow, result) == "CONTINUE"  # the first of its point


def test_a_step_told_twice_is_told_once(recwarn):
    """A trial restarted from a checkpoint reports some training iterations again: Optuna warns
    of each step reported twice; the searcher tells it each step once."""
    grid = Grid({"hidden": (8,)}, ranges={"lr": Range(1e-4, 1e-2, log=True)}, search="optuna", num_samples=1)
    searcher = search.PointwiseOptuna(grid, "val_loss", "min")
    searcher.suggest("t")
    for step in (1, 2, 1, 2, 3):
        searcher.on_trial_result("t", {"val_loss": 0.1 / step, "training_iteration": step})
    (trial,) = searcher.searchers[()]._ot_study.trials  # one point: its key is ()
    assert trial.intermediate_values == {1: 0.1, 2: 0.05, 3: pytest.approx(0.1 / 3)}
    assert not [w for w in recwarn if "already reported" in str(w.message)]
