"""The command-line flags derived from TrialConfig and SweepSettings: one flag per field, with
its help, default and resume rule taken from the field."""

import dataclasses

import pytest

from tune_ae.args import Parser, add_setting_flags, given_settings, setting_flag
from tune_ae.config import RESUMABLE_SETTINGS, SETTINGS, SweepSettings


def parser() -> Parser:
    p = Parser(prog="t")
    add_setting_flags(p.add_argument_group("how it runs"))
    return p


def test_every_setting_but_where_the_experiment_is_has_a_flag():
    named = {f.name for f in dataclasses.fields(SweepSettings)} - {"storage_path", "name"}
    assert {f.name for f in SETTINGS} == named
    flags = {a.dest: a.option_strings for a in parser()._actions if a.dest in named}
    assert flags["pending_timeout_s"] == ["--pending-timeout"] and flags["cuda_graphs"] == ["--no-cuda-graphs"]
    assert flags["cpus_per_trial"] == ["--cpus-per-trial"] and set(flags) == named


def test_flags_left_out_are_not_given_and_values_are_the_settings_own():
    assert given_settings(parser().parse_args([])) == {}
    given = given_settings(parser().parse_args(["--gpus-per-trial", "auto", "--max-failures", "0", "--no-cuda-graphs",
                                                "--pending-timeout", "5", "--scheduler", "asha"]))
    assert given == {"gpus_per_trial": None, "max_failures": 0, "cuda_graphs": False, "pending_timeout_s": 5.0,
                     "scheduler": "asha"}
    SweepSettings(storage_path="/x", name="n", **given)  # what the flags give, the settings take


def test_help_shows_each_default_from_the_field():
    text = parser().format_help()
    for field in SETTINGS:
        assert setting_flag(field) in text
    assert "(default 600)" in text and "(default auto)" in text and "(default fifo)" in text


@pytest.mark.parametrize("args, words", [(["--gpus-per-trial", "lots"], "expected 'auto' or a number, got 'lots'"),
                                         (["--max-failures", "x"], "invalid int value: 'x'")])
def test_a_bad_flag_value_is_one_line(capsys, args, words):
    with pytest.raises(SystemExit) as ended:
        parser().parse_args(args)
    assert ended.value.code == 2 and words in capsys.readouterr().err


def test_only_the_scheduler_is_fixed_on_resume():
    assert set(RESUMABLE_SETTINGS) == {f.name for f in SETTINGS} - {"scheduler"}
