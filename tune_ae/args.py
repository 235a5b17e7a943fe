"""What the three commands share on the command line: one-line usage errors, exit codes, and the
trial-field flags, derived from TrialConfig (one flag per field, each taking several values).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from tune_ae.config import TRIAL_FIELDS, field_choices, field_help, field_type

OK, FAILED, USAGE_ERROR = 0, 1, 2  # an interruption exits with 128 + its signal (signals.exit_code)


def exit_now(code: int) -> NoReturn:
    """End a command's process with `code`, skipping Python's teardown of its modules.

    Everything a command writes is closed by the time it returns; what remains is the
    interpreter unloading torch, Ray and matplotlib, which takes 0.5-0.9 s and does nothing a
    finished command needs. Logs and the console are flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Parser(argparse.ArgumentParser):
    """argparse with one `error:` line (naming this command's --help) instead of the usage dump."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see {self.prog} --help)\n")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_trial_flags(group: argparse._ArgumentGroup, skip: tuple[str, ...] = ("seed",)) -> list[str]:
    """`--hidden 64 128`, `--dropout 0 0.1`, ...: one flag per TrialConfig field; returns their names.

    Defaults stay None, so the caller can tell a flag given from one left out.
    """
    names = [name for name in TRIAL_FIELDS if name not in skip]
    for name in names:
        kind, choices = field_type(name), field_choices(name)
        group.add_argument(flag(name), type=kind, nargs="+", choices=choices, metavar=name.upper() if not choices else None,
                           help=field_help(name))
    return names
