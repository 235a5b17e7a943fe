"""How a trial, a configuration or a value is named on screen, in figures and in report.md.

One place, so that the progress lines, the report's tables and every figure call a trial the
same thing. Plain Python on mappings and columns (a dict, a pandas row or table all work), so
that the commands can label without importing pandas or a plotting library.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from tune_ae.config import TRIAL_FIELDS

SHORT_NAMES = {"hidden": "h"}  # the code width is h in the paper and in every figure
OTHER_FIELDS = tuple(name for name in TRIAL_FIELDS if name != "hidden")  # what tells trials of one width apart


def value(v: Any) -> str:
    """0.1 -> '0.1', 3e-4 -> '0.0003', 64 -> '64', 'relu' -> 'relu': floats without a float's
    trailing digits (numpy's floats are floats too), everything else as str() says it."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def label(values: Mapping, names: Iterable[str], assign: str = "=", sep: str = " ", shown=value) -> str:
    """'h=512 dropout=0.1' (the defaults); `assign` goes between a name and its value, `sep` between
    pairs, `shown` writes a value (the progress lines pass str: 'dropout=0.0', as the config holds it)."""
    return sep.join(f"{SHORT_NAMES.get(name, name)}{assign}{shown(values.get(name))}" for name in names)


def trial_label(row: Mapping, extra: list[str]) -> str:
    """'h = 64', then one line per other field in `extra`: a row's name beside the reconstructions."""
    return label(row, ["hidden", *extra], assign=" = ", sep="\n")


def panel_title(names: list[str], values: Iterable) -> str:
    """'dropout = 0 | lr = 0.001': a loss-curve panel's fields (never hidden: widths share a panel)."""
    return label(dict(zip(names, values)), names, assign=" = ", sep=" | ")


def configuration_label(row: Mapping, columns: list[str]) -> str:
    """'dropout 0.1, output_activation relu'; 'autoencoder' when the grid varies nothing but h and seed."""
    return label(row, columns, assign=" ", sep=", ") if columns else "autoencoder"


def varying(table, columns: Iterable[str] = OTHER_FIELDS) -> list[str]:
    """Those of `columns` that `table` (column name -> values) holds with more than one value.

    Missing values (None, NaN) are not counted, as pandas' nunique does.
    """
    return [c for c in columns if c in table and len({v for v in table[c] if v is not None and v == v}) > 1]


def label_columns(table) -> list[str]:
    """hidden plus the trial fields that vary in this experiment: what names a trial here."""
    return ["hidden", *varying(table)]
