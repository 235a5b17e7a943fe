"""SIGINT, SIGTERM and SIGHUP: the first asks Tune to stop gracefully, any later one interrupts."""

import os
import signal

import pytest

from tune_ae import signals


@pytest.fixture
def handlers(monkeypatch):
    saved = {sig: signal.getsignal(sig) for sig in (*signals.STOP_SIGNALS, signal.SIGUSR1)}
    monkeypatch.setattr(signals, "received", [])
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "0")
    signals.install()
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_outside_a_sweep_a_signal_interrupts_at_once(handlers, sig, code):
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    with pytest.raises(signals.Interrupted) as raised:
        os.kill(os.getpid(), sig)
    assert raised.value.signum == sig and isinstance(raised.value, KeyboardInterrupt)
    assert signals.exit_code() == code and signals.name() == signal.Signals(sig).name


def test_during_a_fit_the_first_signal_stops_tune_and_the_second_interrupts(handlers):
    stops = []
    signal.signal(signal.SIGUSR1, lambda signum, frame: stops.append(signum))  # what Tune installs in a fit
    os.kill(os.getpid(), signal.SIGTERM)
    assert stops == [signal.SIGTERM] and signals.received == [signal.SIGTERM]
    with pytest.raises(signals.Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
    assert signals.exit_code() == 143  # the first signal names the interruption


def test_held_cleanup_is_not_interrupted(handlers):
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    with signals.held():
        os.kill(os.getpid(), signal.SIGHUP)
    assert signals.received == [signal.SIGHUP] and signals.exit_code() == 129
