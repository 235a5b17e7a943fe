"""How many CPU threads and what GPU share a trial gets: pure arithmetic over the nodes' resources.

`--cpus-per-trial auto` (the default) shares each node's CPUs among the trials that can run at
once: whole threads, at least one, never more in all than a node has. A number is a fixed
request. When trials end and none waits, `more_threads` says how many of the freed CPUs a
trial still running takes (hand_on.py asks it at the trial's checkpoints).

Nothing here imports Ray or torch: the callers pass the nodes' (CPU, GPU) counts in.
"""

from __future__ import annotations

import math
from typing import Sequence

Node = tuple[float, float]  # (CPUs, GPUs) of one alive node


def concurrent_trials(n_trials: int, cpus: float, cpus_per_trial: float) -> int:
    """How many of `n_trials` trials fit on `cpus` CPUs at once (at least one): what the GPU
    share and the benchmark's parallel slots are divided by."""
    return max(1, min(n_trials, math.floor(cpus / cpus_per_trial)))


def gpu_share(nodes: Sequence[Node], n_trials: int, cpus_per_trial: float) -> float:
    """The GPUs split evenly among the trials that can run at once (each asking for
    `cpus_per_trial` CPUs), rounded down to 1/10000 (Ray's granularity) so the shares never add
    up past a card; 0 without GPUs. The paper grid (4 trials) on one card: 0.25 each."""
    gpus = sum(g for _, g in nodes)
    if gpus == 0:
        return 0.0
    concurrent = concurrent_trials(n_trials, sum(c for c, _ in nodes), cpus_per_trial)
    return min(1.0, math.floor(gpus / concurrent * 10_000) / 10_000)


def slots(nodes: Sequence[Node], threads: int, gpus_per_trial: float) -> int:
    """How many trials of `threads` CPUs and `gpus_per_trial` GPU run at once on `nodes`: Ray
    places a trial on one node, so each node counts for itself."""
    total = 0
    for cpus, gpus in nodes:
        fit = math.floor(cpus / threads)
        if gpus_per_trial > 0:
            fit = min(fit, math.floor(gpus / gpus_per_trial + 1e-9))
        total += fit
    return total


def threads_per_trial(nodes: Sequence[Node], n_trials: int, gpus_per_trial: float = 0.0) -> int:
    """The most whole threads per trial at which the trials that can run at once (at one
    thread each) all still fit: 4 trials on 2 CPUs get 1 (2 at a time), 1 trial gets 2, the
    paper grid on 16 CPUs and a card shared in four gets 4, and 4 trials on nodes of 16 and 8
    CPUs get 5 (3 on the first, 1 on the second)."""
    concurrent = min(n_trials, slots(nodes, 1, gpus_per_trial))
    if concurrent <= 0:
        return 1  # nothing fits at all: the resource check before the sweep says why
    most = max(int(c) for c, _ in nodes)
    return max(t for t in range(1, most + 1) if slots(nodes, t, gpus_per_trial) >= concurrent)


def trial_resources(nodes: Sequence[Node], n_trials: int, cpus_per_trial: float | None,
                    gpus_per_trial: float | None) -> dict:
    """{"cpu": ..., "gpu": ...} for each of `n_trials` trials; None is auto for either.

    With both auto, the GPU share comes first (the trials that can run at once at one thread
    each share the cards), then the threads (the CPUs shared among those trials)."""
    base = 1.0 if cpus_per_trial is None else cpus_per_trial
    gpus = gpu_share(nodes, n_trials, base) if gpus_per_trial is None else gpus_per_trial
    cpus = float(threads_per_trial(nodes, n_trials, gpus)) if cpus_per_trial is None else cpus_per_trial
    return {"cpu": cpus, "gpu": gpus}


def more_threads(node_cpus: float, mine: float, others: Sequence[float]) -> int | None:
    """The threads a running trial moves to when none waits, or None to keep its own.

    `others` are the CPUs of the other trials on its node (running, or about to restart). It
    takes the free whole CPUs up to an even share of the node, rounded up, so that a node
    whose trials cannot split it evenly still leaves no CPU idle (16 CPUs, 3 trials at 5
    threads: the first to ask takes the 16th).
    """
    free = math.floor(node_cpus - mine - sum(others) + 1e-9)
    target = math.ceil(node_cpus / (1 + len(others)) - 1e-9)
    new = int(min(mine + free, max(target, mine)))
    return new if new > mine else None
