"""Cores handed on: when trials end and none waits, the trials still running take the freed CPUs.

Ray reserves a trial's CPUs when its worker starts and never changes them while it runs, so a
trial that is to get more is paused at one of its checkpoints and restarted with the larger
request; it continues from that checkpoint (trainable.resume_point) and sets its threads from
what Ray reserved (trainable.trial_device_and_threads), so Ray's accounting stays true and no
epoch is lost or repeated. This is Tune's ResourceChangingScheduler's mechanism (pause, update
the trial's resources, start it again), written as a small wrapper because that scheduler
refuses `reuse_actors=True`, which the many-trial sweeps need (a new worker per trial costs
seconds each): the pause happens only when no trial waits and the search has no more to
give, and then Tune caches no actor, so the trial restarts on a new worker of its new size.

Decided per node (a trial's node is the `node_id` it reports) by allocation.more_threads at
each checkpoint a trial reports; under auto a trial also checkpoints at the end of the epoch in
which cores came free on its node (trainable.FreedCores), so a freed core idles for about one
epoch (and the second between a trial's looks) of the trials still running, not a whole
checkpoint interval.
"""

from __future__ import annotations

import math

import ray
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from tune_ae import allocation, ray_internals
from tune_ae.trainable import CHECKPOINTED


def alive_nodes() -> dict[str, allocation.Node]:
    """node id -> (CPUs, GPUs) of the cluster's alive nodes, as Ray reports them now (asked at each
    decision: a restored sweep runs on a new Ray, whose nodes have new ids)."""
    return {n["NodeID"]: (n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0))
            for n in ray.nodes() if n["Alive"]}


# A restart costs a new worker's start (Python, torch, Ray, the data: ~3-4 s on 2 cores), and a
# second thread saves a quarter to a half of an epoch: a trial with less work left than this
# finishes sooner as it is (on 2 cores the paper grid's last trial, h = 64, ran 2% slower grown).
MIN_WORK_LEFT_S = 15.0


def work_left_s(trial, result) -> float:
    """The seconds of epochs `trial` has left at the speed of its last one."""
    return (trial.config["epochs"] - result.get("epoch", 0)) * float(result.get("epoch_time_s") or 0.0)


def on_gpu(result) -> bool:
    """Whether the trial trains on a GPU (the device it reports): host threads only launch its work
    on the card, so more of them do not speed it."""
    return not str(result.get("device", "cpu")).startswith("cpu")


class HandOnCores(TrialScheduler):
    """Wraps the sweep's scheduler (FIFO or ASHA); its decisions stand, and a trial that would
    continue after a result with a checkpoint, with at least MIN_WORK_LEFT_S of epochs left, is
    paused to restart with more CPUs when allocation.more_threads gives it some. A trial that
    trains on a GPU never grows (its host threads only launch work on the card; a restart would
    cost a new worker, a CUDA context and a graph capture for nothing); one given a GPU share on a
    node without CUDA trains on the CPU, and does. `enabled` is False for a fixed --cpus-per-trial."""

    def __init__(self, base: TrialScheduler | None = None, enabled: bool = True):
        super().__init__()
        self.base, self.enabled = base or FIFOScheduler(), enabled
        self.growing: dict[str, float] = {}  # trial id -> the CPUs it restarts with, until they are set

    # --- the base scheduler decides what runs and what stops ---
    def set_search_properties(self, metric, mode, **spec) -> bool:
        return self.base.set_search_properties(metric, mode, **spec)

    def on_trial_add(self, tune_controller, trial):
        self.base.on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial):
        self.growing.pop(trial.trial_id, None)
        self.base.on_trial_error(tune_controller, trial)

    def on_trial_complete(self, tune_controller, trial, result):
        self.growing.pop(trial.trial_id, None)
        self.base.on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self.growing.pop(trial.trial_id, None)
        self.base.on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"{self.base.debug_string()} (cores handed on: {'on' if self.enabled else 'off'})"

    # --- and this one grows a trial at its checkpoints ---
    def on_trial_result(self, tune_controller, trial, result) -> str:
        decision = self.base.on_trial_result(tune_controller, trial, result)
        if decision != TrialScheduler.CONTINUE or not self.enabled or not self.at_checkpoint(trial, result):
            return decision
        if on_gpu(result) or work_left_s(trial, result) < MIN_WORK_LEFT_S:
            return decision
        more = self.more_cpus(tune_controller, trial, result)
        if more is None:
            return decision
        self.growing[trial.trial_id] = float(more)
        return TrialScheduler.PAUSE

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        for trial in tune_controller.get_trials():
            cpus = self.growing.get(trial.trial_id)
            if cpus is not None and trial.status == Trial.PAUSED:
                ray_internals.set_resources(trial, {**self.resources(trial), "cpu": cpus})
                del self.growing[trial.trial_id]
        return self.base.choose_trial_to_run(tune_controller)

    @staticmethod
    def at_checkpoint(trial, result) -> bool:
        return bool(result.get(CHECKPOINTED)) and result.get("epoch", 0) < trial.config["epochs"]

    @staticmethod
    def resources(trial) -> dict:
        required = trial.placement_group_factory.required_resources
        return {"cpu": required.get("CPU", 0.0), "gpu": required.get("GPU", 0.0)}

    def cpus(self, trial) -> float:
        return self.resources(trial)["cpu"]

    def more_cpus(self, tune_controller, trial, result) -> int | None:
        """The CPUs `trial` restarts with, or None: only when no trial waits, none is to come and
        no other trial is between its pause and its restart (one at a time, so that Ray's own
        count of the node's free CPUs, which caps the answer, is the count the restart meets).
        A running trial that has not reported yet (no node known) is counted on this node."""
        trials = tune_controller.get_trials()
        waiting = [t for t in trials if t.status in (Trial.PENDING, Trial.PAUSED)]
        if waiting or self.growing or not tune_controller.search_alg.is_finished():
            return None
        node = result.get("node_id")
        total = alive_nodes().get(node, (None, None))[0]
        if total is None:
            return None
        others = [self.cpus(t) for t in trials if t is not trial and t.status == Trial.RUNNING
                  and (t.last_result or {}).get("node_id", node) == node]
        more = allocation.more_threads(total, self.cpus(trial), others)
        if more is None:
            return None
        more = min(more, int(self.cpus(trial) + math.floor(ray_internals.free_cpus(node) + 1e-9)))
        return more if more > self.cpus(trial) else None
