"""What the three commands share on the command line: one-line usage errors, exit codes, the
trial-field flags, derived from TrialConfig (one flag per field, each taking several values),
and the sweep-setting flags, derived from SweepSettings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from tune_ae import labels, record
from tune_ae.config import SETTINGS, TRIAL_FIELDS, field_choices, field_help, field_type

OK, FAILED, USAGE_ERROR = 0, 1, 2  # an interruption exits with 128 + its signal


def exit_code(statuses=(), *, usage_error: bool = False, signal: int | None = None, failed: bool = False) -> int:
    """A command's exit code from its outcome, decided here only (the README's table says the same):

    2 bad input, or the experiment in use by another run (nothing ran);
    128 + N interrupted by stop signal N: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (a closed terminal);
    1 a trial failed or did not start, or a write (a full disk), the report or the sweep failed;
    0 every trial in `statuses` finished: done, or stopped early by the scheduler."""
    if usage_error:
        return USAGE_ERROR
    if signal is not None:
        return 128 + signal
    if failed or any(status not in record.FINISHED for status in statuses):
        return FAILED
    return OK


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


def add_trial_flags(group: argparse._ArgumentGroup, skip: tuple[str, ...] = ("seed",), ranges: bool = False) -> list[str]:
    """`--hidden 64 128`, `--dropout 0 0.1`, ...: one flag per TrialConfig field; returns their names.

    With `ranges`, a numeric field also takes one range, LOW:HIGH[:log] (a grids.Range), for a
    search. Defaults stay None, so the caller can tell a flag given from one left out.
    """
    names = [name for name in TRIAL_FIELDS if name not in skip]
    for name in names:
        kind, choices = field_type(name), field_choices(name)
        numeric = kind in (int, float)
        group.add_argument(flag(name), type=_value_or_range(name) if ranges and numeric else kind, nargs="+",
                           choices=choices, metavar=name.upper() if not choices else None,
                           help=field_help(name) + ("; or one range LOW:HIGH[:log] for a search" if ranges and numeric else ""))
    return names


def _value_or_range(name: str):
    kind = field_type(name)

    def read(text: str):
        if ":" not in text:
            return kind(text)  # a ValueError here is argparse's 'invalid int value'
        from tune_ae.grids import Range

        try:
            return Range.parse(name, text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    read.__name__ = kind.__name__  # argparse names the type in its message: 'invalid int value'
    return read


def setting_flag(field) -> str:
    """A SweepSettings field's flag: its own, else --name; a setting on by default is turned off by --no-name."""
    if field.metadata["flag"]:
        return field.metadata["flag"]
    return flag(("no_" if field.default is True else "") + field.name)


def add_setting_flags(group: argparse._ArgumentGroup) -> None:
    """One flag per SweepSettings field that has one; a flag not given is absent from the
    parsed namespace (argparse.SUPPRESS), so `given_settings` tells it from any value."""
    for field in SETTINGS:
        meta, default = field.metadata, field.default
        shown = meta["shown_default"] or labels.value(default)
        common = {"dest": field.name, "default": argparse.SUPPRESS}
        if isinstance(default, bool):  # a switch: the flag sets the other value
            group.add_argument(setting_flag(field), action="store_const", const=not default, help=meta["help"], **common)
        else:
            metavar = None if meta["choices"] else setting_flag(field)[2:].replace("-", "_").upper()  # --pending-timeout: PENDING_TIMEOUT
            group.add_argument(setting_flag(field), type=_flag_type(meta["parse"] or type(default)), choices=meta["choices"],
                               metavar=metavar, help=f"{meta['help']} (default {shown})", **common)


def given_settings(args: argparse.Namespace) -> dict:
    """The sweep settings named on the command line, as SweepSettings holds them."""
    return {field.name: getattr(args, field.name) for field in SETTINGS if hasattr(args, field.name)}


def _flag_type(parse):
    """int and float as argparse says them ('invalid int value'); a parser of our own says its ValueError."""
    if parse in (int, float):
        return parse

    def read(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return read
