"""allocation.py: CPUs, trials and GPU shares -> each trial's threads and share."""

import pytest

from tune_ae import allocation


@pytest.mark.parametrize("nodes, n_trials, gpus, threads", [
    ([(2, 0)], 4, 0.0, 1),  # the paper grid on 2 cores: 2 at a time, one thread each
    ([(2, 0)], 1, 0.0, 2),  # one trial takes the machine
    ([(2, 0)], 3, 0.0, 1),
    ([(16, 0)], 4, 0.0, 4),
    ([(16, 0)], 3, 0.0, 5),  # whole threads: 15 of 16
    ([(16, 0)], 36, 0.0, 1),
    ([(16, 1)], 4, 0.25, 4),  # the GPU machine: four quarter-card trials, 4 threads each
    ([(16, 1)], 4, 1.0, 16),  # a whole card each: one at a time, with every core
    ([(16, 0), (8, 0)], 4, 0.0, 5),  # per node: 3 trials on the first, 1 on the second
    ([(16, 0), (8, 0)], 2, 0.0, 8),
    ([(4, 0), (0, 0)], 2, 0.0, 2),  # a head node without CPUs counts for nothing
    ([(16, 0), (8, 1)], 2, 0.5, 4),  # GPU trials fit only where the card is
    ([(16, 0)], 2, 0.5, 1),  # nothing fits at all: 1 (the check before the sweep says why)
])
def test_threads_are_the_nodes_cpus_shared_among_the_trials_that_run_at_once(nodes, n_trials, gpus, threads):
    assert allocation.threads_per_trial(nodes, n_trials, gpus) == threads
    fits = allocation.slots(nodes, threads, gpus)
    if fits:  # never more in all than the nodes have: every trial that can run at once still runs
        assert fits >= min(n_trials, allocation.slots(nodes, 1, gpus))


def test_trial_resources_auto_and_fixed():
    one_card = [(16.0, 1.0)]
    assert allocation.trial_resources(one_card, 4, None, None) == {"cpu": 4.0, "gpu": 0.25}
    assert allocation.trial_resources(one_card, 4, 1.0, None) == {"cpu": 1.0, "gpu": 0.25}  # a number is kept
    assert allocation.trial_resources([(2.0, 1.0)], 4, None, None) == {"cpu": 1.0, "gpu": 0.5}  # 2 at a time
    assert allocation.trial_resources([(2.0, 1.0)], 4, 0.5, None) == {"cpu": 0.5, "gpu": 0.25}
    assert allocation.trial_resources([(2.0, 0.0)], 1, None, None) == {"cpu": 2.0, "gpu": 0.0}
    assert allocation.trial_resources(one_card, 3, None, None) == {"cpu": 5.0, "gpu": 0.3333}  # shares fit the card
    assert allocation.trial_resources(one_card, 4, None, 1.0) == {"cpu": 16.0, "gpu": 1.0}


@pytest.mark.parametrize("node, mine, others, new", [
    (2, 1, [], 2),  # the other trial ended: take its core
    (2, 1, [1], None),  # both still run
    (2, 2, [], None),  # has the node already
    (16, 4, [4], 8),  # two of four left: half each
    (16, 4, [8], 8),  # the other took its half first
    (16, 5, [5, 5], 6),  # 3 trials at 5: the first to ask takes the 16th core
    (16, 5, [6, 5], None),
    (16, 6, [5], 8),  # then one ends: 8 each
    (16, 5, [8], 8),
    (16, 1, [], 16),
    (3, 1, [1, 1], None),
    (4, 1, [2], 2),  # never more than is free
])
def test_a_running_trial_takes_the_free_cpus_up_to_an_even_share(node, mine, others, new):
    got = allocation.more_threads(node, mine, others)
    assert got == new
    if got is not None:
        assert got + sum(others) <= node


def test_concurrent_trials():
    assert allocation.concurrent_trials(4, 2, 1.0) == 2
    assert allocation.concurrent_trials(1, 16, 1.0) == 1
    assert allocation.concurrent_trials(4, 2, 4.0) == 1  # at least one
