"""Every signal that ends a sweep is an interruption: SIGINT (Ctrl-C), SIGTERM (kill, Slurm,
Kubernetes, systemd) and SIGHUP (the terminal closed) all stop it the same way.

The first signal during a sweep asks Ray Tune to stop: Tune saves its state, the trials keep
their checkpoints, and the command writes its tables and exits with 128 + the signal's number
(130, 143, 129). Any later signal, or one outside the sweep, raises `Interrupted` at once:
faster, and still an interruption. Tune's own stop handler is the one it installs on SIGUSR1
while a fit runs; tune_ae keeps SIGINT to itself (TUNE_DISABLE_SIGINT_HANDLER), so that all
three signals take one path.
"""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager

from tune_ae.ray_internals import DISABLE_TUNE_SIGINT, TUNE_STOP_SIGNAL

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
received: list[int] = []  # signal numbers, in the order they came
_held = 0  # > 0: inside held(), where a signal is recorded but raises nothing


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; `signum` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum, frame):
    received.append(signum)
    if _held:
        return
    tune_stop = signal.getsignal(TUNE_STOP_SIGNAL)  # Ray Tune's "end the run gracefully", during a fit only
    if len(received) == 1 and callable(tune_stop) and tune_stop is not _handler:
        tune_stop(signum, frame)
        return
    raise Interrupted(signum)


def install() -> None:
    """Route the stop signals here. Called again after ray.init, whose C++ core installs its
    own SIGTERM handler (it prints a stack and kills the process)."""
    os.environ[DISABLE_TUNE_SIGINT] = "1"
    for sig in STOP_SIGNALS:
        signal.signal(sig, _handler)


def fit_ended() -> None:
    """Tune leaves its SIGUSR1 handler behind after a fit; a later signal must not go there."""
    signal.signal(TUNE_STOP_SIGNAL, signal.SIG_DFL)


@contextmanager
def held():
    """Cleanup that must finish (Ray's shutdown, removing the token, writing the tables): a
    signal here is recorded, and acted on by the exit code, but interrupts nothing."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1


def exit_code() -> int:
    """128 + the first stop signal's number (130 when none was recorded: a plain KeyboardInterrupt)."""
    return 128 + (received[0] if received else signal.SIGINT)


def name() -> str:
    return signal.Signals(received[0]).name if received else "SIGINT"
