"""A run's ending, from folders built by hand: the exit code follows tune_ae's record of the
trials, and the README's table of exit codes is args.exit_code's."""

import re
import signal
from pathlib import Path

import pytest

from tune_ae import finish, signals
from tune_ae.args import exit_code
from tune_ae.grids import Grid
from tune_ae.plan import Plan
from tune_ae.sweep import Outcome

from test_plan import make_experiment, make_trial

GRID = Grid({"hidden": (8, 16), "epochs": (4,)})


def ending(tmp_path, ends, monkeypatch, received=()):
    folder = make_experiment(tmp_path, GRID)
    for config, (epochs, end) in zip(GRID.trial_configs(), ends):
        make_trial(folder, config.to_dict(), epochs, ended=end)
    monkeypatch.setattr(signals, "received", list(received))
    plan = Plan("resume", "custom", GRID, finish.experiment.recorded_settings(
        finish.experiment.read_meta(folder), str(tmp_path), "e"), None)
    return finish.after_sweep(plan, Outcome(folder, False, {}), report=False)


@pytest.mark.parametrize("ends, code, said", [
    ([(4, "done"), (2, "stopped early")], 0, ""),
    ([(4, "done"), (2, "error")], 1, "error: 1 trial(s) failed"),
    ([(4, "done"), (2, None)], 1, "interrupted: 1 trial(s) unfinished"),  # no end recorded: never "stopped early"
    ([(4, "done"), (0, None)], 1, "interrupted: 1 trial(s) unfinished"),
])
def test_the_exit_code_is_the_records(tmp_path, monkeypatch, capsys, ends, code, said):
    assert ending(tmp_path, ends, monkeypatch) == code
    assert said in capsys.readouterr().err


def test_a_signal_is_its_exit_code_with_how_to_go_on(tmp_path, monkeypatch, capsys):
    assert ending(tmp_path, [(4, "done"), (2, "interrupted")], monkeypatch, [signal.SIGHUP]) == 129
    err = capsys.readouterr().err
    assert "interrupted (SIGHUP): 1 trial(s) unfinished; continue with:" in err and "--resume --name e" in err


def test_a_closed_terminal_is_129_not_a_full_disk(tmp_path, monkeypatch, capsys):
    """After SIGHUP, a write to the closed terminal fails with EIO: still the signal's exit code."""
    import errno

    monkeypatch.setattr(signals, "received", [signal.SIGHUP])
    gone = OSError(errno.EIO, "Input/output error")
    assert finish.driver_error(gone, tmp_path, "the sweep failed", "resume") == 129
    assert "free space" not in capsys.readouterr().err
    monkeypatch.setattr(signals, "received", [])
    assert finish.driver_error(OSError(errno.ENOSPC, "No space left on device", str(tmp_path)), tmp_path, "x", "y") == 1
    assert "cannot write" in capsys.readouterr().err


def test_the_readmes_exit_codes_are_exit_code():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("#### Exit codes")[1]
    section = section[section.index("| code |"):].split("\n\n")[0]  # the table, to its end
    table = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", section, re.M))
    decided = [(exit_code(["done", "stopped early"]), "every trial finished"),
               (exit_code(["done", "error"]), "a trial failed"), (exit_code(["not started"]), "could not start"),
               (exit_code(["done"], failed=True), "a write failed"), (exit_code(usage_error=True), "bad input"),
               (exit_code(["interrupted"], signal=signal.SIGINT), "Ctrl-C"),
               (exit_code(["done"], signal=signal.SIGTERM), "SIGTERM"), (exit_code(signal=signal.SIGHUP), "SIGHUP")]
    assert sorted(int(c) for c in table) == sorted({c for c, _ in decided}) == [0, 1, 2, 129, 130, 143]
    for code, words in decided:
        assert words in table[str(code)], (code, table[str(code)])
