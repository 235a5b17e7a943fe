"""hand_on.py: a trial still running takes the CPUs of trials that ended, at its next checkpoint."""

import io
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tune_ae import hand_on, ray_internals, results, tuner
from tune_ae.callbacks import Progress
from tune_ae.config import SweepSettings
from tune_ae.data import load_fashion_mnist
from tune_ae.grids import Grid
from tune_ae.plan import new as new_plan

from conftest import write_dataset


class FakeTrial:
    def __init__(self, trial_id, status=Trial.RUNNING, cpus=1.0, node="n", epochs=10, gpus=0.0):
        self.trial_id, self.status, self.config = trial_id, status, {"epochs": epochs}
        self.last_result = {"node_id": node}
        self.placement_group_factory = SimpleNamespace(required_resources={"CPU": cpus, "GPU": gpus})

    def update_resources(self, resources):
        assert self.status != Trial.RUNNING  # as Tune's own: never while it runs
        self.placement_group_factory = SimpleNamespace(required_resources={"CPU": resources["cpu"],
                                                                           "GPU": resources["gpu"]})


class FakeController:
    def __init__(self, trials, finished=True):
        self.trials, self.search_alg = trials, SimpleNamespace(is_finished=lambda: finished)

    def get_trials(self):
        return self.trials


class Decides(FIFOScheduler):
    def __init__(self, decision):
        super().__init__()
        self.decision = decision

    def on_trial_result(self, tune_controller, trial, result):
        return self.decision


@pytest.fixture
def two_cpus(monkeypatch):
    """A node "n" of 2 CPUs; `free["n"]`: what Ray says is free there (set by each test)."""
    free = {"n": 0.0}
    monkeypatch.setattr(hand_on, "alive_nodes", lambda: {"n": (2.0, 0.0)})
    monkeypatch.setattr(ray_internals, "free_cpus", lambda node: free.get(node, 0.0))
    return free


def result(epoch, checkpointed=True, epoch_time_s=10.0):
    return {"epoch": epoch, "node_id": "n", "epoch_time_s": epoch_time_s, **({"checkpointed": True} if checkpointed else {})}


def test_a_trial_grows_at_its_checkpoint_once_the_other_ended(two_cpus):
    a, b = FakeTrial("a"), FakeTrial("b")
    controller, scheduler = FakeController([a, b]), hand_on.HandOnCores()
    assert scheduler.on_trial_result(controller, a, result(2)) == TrialScheduler.CONTINUE  # b holds the other core
    b.status = Trial.TERMINATED
    two_cpus["n"] = 1.0  # Ray has taken b's core back
    assert scheduler.on_trial_result(controller, a, result(3, checkpointed=False)) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(controller, a, result(4)) == TrialScheduler.PAUSE
    assert scheduler.choose_trial_to_run(controller) is None  # still saving: not touched while RUNNING
    a.status = Trial.PAUSED  # Tune paused it after the checkpoint
    assert scheduler.choose_trial_to_run(controller) is a  # and restarts it, with both cores
    assert a.placement_group_factory.required_resources == {"CPU": 2.0, "GPU": 0.0}
    a.status = Trial.RUNNING
    assert scheduler.on_trial_result(controller, a, result(6)) == TrialScheduler.CONTINUE  # has the node


@pytest.mark.parametrize("why", ["a trial waits", "more trials to come", "its last epoch", "fixed CPUs",
                                 "another node", "one not reported yet", "Ray has none free", "little work left",
                                 "a trial on a GPU"])
def test_no_trial_grows_while_others_wait_or_when_fixed(two_cpus, why):
    two_cpus["n"] = 0.0 if why == "Ray has none free" else 1.0
    a = FakeTrial("a", node="elsewhere" if why == "another node" else "n", gpus=0.25 if why == "a trial on a GPU" else 0.0)
    trials = [a, FakeTrial("b", status=Trial.PENDING)] if why == "a trial waits" else [a]
    if why == "one not reported yet":  # running, no result yet: its node unknown, its CPU counted here
        trials.append(FakeTrial("c"))
        trials[-1].last_result = {}
    scheduler = hand_on.HandOnCores(enabled=why != "fixed CPUs")
    controller = FakeController(trials, finished=why != "more trials to come")
    epoch = 10 if why == "its last epoch" else 4
    seconds = hand_on.MIN_WORK_LEFT_S / 7 if why == "little work left" else 10.0  # 6 epochs left: just under it
    device = "cuda:0" if why == "a trial on a GPU" else "cpu"
    assert scheduler.on_trial_result(controller, a, {**result(epoch, epoch_time_s=seconds), "device": device,
                                                     "node_id": a.last_result["node_id"]}) == TrialScheduler.CONTINUE


def test_a_trial_with_a_gpu_share_that_trains_on_the_cpu_grows(two_cpus):
    """A GPU share on a node without CUDA: the trial falls back to the CPU, where threads count."""
    two_cpus["n"] = 1.0
    a = FakeTrial("a", gpus=0.5)
    assert hand_on.HandOnCores().on_trial_result(FakeController([a]), a, {**result(4), "device": "cpu"}) \
        == TrialScheduler.PAUSE


def test_one_trial_at_a_time_between_its_pause_and_its_restart(monkeypatch):
    free = {"n": 8.0}
    monkeypatch.setattr(hand_on, "alive_nodes", lambda: {"n": (16.0, 0.0)})
    monkeypatch.setattr(ray_internals, "free_cpus", lambda node: free["n"])
    b, c, d = FakeTrial("b", cpus=4.0), FakeTrial("c", cpus=4.0), FakeTrial("d", cpus=4.0)
    controller, scheduler = FakeController([b, c, d]), hand_on.HandOnCores()
    assert scheduler.on_trial_result(controller, c, result(4)) == TrialScheduler.PAUSE  # 4 + up to 16/3 -> 6
    assert scheduler.growing == {"c": 6.0}
    assert scheduler.on_trial_result(controller, d, result(4)) == TrialScheduler.CONTINUE  # c first
    c.status = Trial.PAUSED
    scheduler.choose_trial_to_run(controller)
    c.status, free["n"] = Trial.RUNNING, 2.0
    assert scheduler.on_trial_result(controller, d, result(6)) == TrialScheduler.PAUSE  # then d, to 6: 16 in all
    assert scheduler.growing == {"d": 6.0}


def test_the_base_schedulers_stop_stands(two_cpus):
    a = FakeTrial("a")
    scheduler = hand_on.HandOnCores(Decides(TrialScheduler.STOP))
    assert scheduler.on_trial_result(FakeController([a]), a, result(4)) == TrialScheduler.STOP


def test_a_trial_left_alone_on_two_cpus_moves_to_two_threads_and_keeps_every_epoch_once(ray_session, tmp_path,
                                                                                        monkeypatch):
    """A 2-CPU Ray (ray_session): two trials at one thread each; the 2-epoch one ends, and the
    long one checkpoints at the end of the epoch in which the core came free (its periodic
    checkpoints are past its end) and restarts from there with both CPUs."""
    monkeypatch.setattr(hand_on, "MIN_WORK_LEFT_S", 0.0)  # its epochs take milliseconds: worth growing here
    data = load_fashion_mnist(write_dataset(tmp_path / "d"), expect_full=False)
    n = 200  # ~20 ms an epoch (30 steps of 10 images); free cores are looked for once a second
    grid = Grid({"hidden": (8,), "epochs": (n, 2), "batch_size": (10,)})
    s = SweepSettings(storage_path=str(tmp_path / "store"), name="handed", checkpoint_every=1000, gpus_per_trial=0.0)
    assert tuner.trial_resources(s, 2) == {"cpu": 1.0, "gpu": 0.0}
    out = io.StringIO()
    progress = Progress(grid.swept(), [c.to_dict() for c in grid.trial_configs()], out=out)
    tuner.build_tuner(new_plan(grid, s), data, callbacks=[progress]).fit()
    folder = tmp_path / "store" / "handed"
    assert f"epochs={n}  restarted with 2 CPUs (freed by trials that ended)" in out.getvalue(), out.getvalue()
    assert (results.load_trials(folder)["status"] == "done").all()
    epochs = results.load_epochs(folder)
    long = epochs[epochs["epochs"] == n].sort_values("epoch")
    assert long["epoch"].tolist() == list(range(1, n + 1))  # every epoch once
    threads = long["threads"].tolist()
    assert threads[0] == 1 and threads[-1] == 2, threads  # the thread column shows the change
    grown = threads.index(2)
    assert threads == [1] * grown + [2] * (n - grown)  # for good, from the checkpoint it restarted at
    logged = results.json_lines(next(d for d in results.trial_dirs(folder) if f"epochs={n}" in d.name) / results.EPOCHS_LOG)
    assert [r["epoch"] for r in logged] == list(range(1, n + 1))  # none trained twice
    checkpointed = [r["epoch"] for r in logged if r.get("checkpointed")]
    assert grown in checkpointed and checkpointed[-1] == n  # the freed core's (and the last)
