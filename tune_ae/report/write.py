"""Write an experiment's report: summary.csv, spread.csv, figures/ and report.md, from
tables.build, figures.FIGURES and markdown.report; and say in one line what went wrong.

matplotlib loads inside write_report, not with this module: the commands import it to say
errors without paying for a plotting library.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from pathlib import Path

import pandas as pd

from tune_ae import labels
from tune_ae.experiment import record_pca, write_text_whole, write_whole
import tune_ae.report.markdown as markdown
import tune_ae.report.tables as tables
from tune_ae.report.tables import ReportError

__all__ = ["ERROR_FILE", "ReportError", "ReportIncomplete", "write_report", "write_report_or_say_why"]

ERROR_FILE = "report-error.txt"  # the traceback of an unexpected failure, for a bug report


class ReportIncomplete(Exception):
    """The report was written, without the trials that could not be read (named in it and here)."""

    def __init__(self, path: Path, left_out: pd.DataFrame):
        names = "; ".join(f"{labels.label(r, ['hidden'])} ({r['reason']}: {r['path']})" for _, r in left_out.iterrows())
        super().__init__(f"{path} leaves out {len(left_out)} trial(s) that could not be read: {names}")
        self.path, self.left_out = path, left_out


def write_report(folder: str | Path, data_dir: str | None = None) -> Path:
    """Tables, figures and report.md into the experiment folder; returns report.md."""
    import tune_ae.report.figures as figures  # matplotlib loads here, for a report, not with the package

    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a left-out trial warns; here report.md and ReportIncomplete name it
        t = tables.build(folder, data_dir)
    record_pca(folder, {int(h): float(v) for h, v in t.summary.groupby("hidden")["pca_val_mse"].first().items()})
    write_whole(folder / "summary.csv", lambda tmp: t.summary.to_csv(tmp, index=False))
    write_whole(folder / "spread.csv", lambda tmp: t.spread.to_csv(tmp, index=False))
    (folder / "figures").mkdir(exist_ok=True)
    for entry in figures.FIGURES:
        if entry.applies(t):
            save_figure(entry.draw(t), folder / "figures" / entry.stem, entry.vector, entry.tight)
    path = folder / "report.md"
    write_text_whole(path, markdown.report(t, figures.FIGURES))
    if not t.left_out.empty:
        raise ReportIncomplete(path, t.left_out)
    return path


def save_figure(fig, stem: Path, vector: bool = True, tight: bool = True) -> list[Path]:
    """A PNG for report.md and, for a figure of lines and text, a PDF to print; then closed.

    `vector` False (pixels) removes an older report's PDF, which would no longer match. `tight`
    crops to what is drawn (one extra draw); a figure that sets its own margins passes False.
    """
    import matplotlib.pyplot as plt

    from tune_ae.report.figures import SCREEN_DPI

    paths = [stem.with_suffix(".png")] + ([stem.with_suffix(".pdf")] if vector else [])
    if not vector:
        stem.with_suffix(".pdf").unlink(missing_ok=True)
    try:
        for path in paths:  # whole or not at all: a full disk leaves the older figure, not an empty file
            write_whole(path, lambda tmp: fig.savefig(tmp, format=path.suffix[1:], dpi=SCREEN_DPI,
                                                      bbox_inches="tight" if tight else None))
    finally:
        plt.close(fig)
    return paths


def write_report_or_say_why(folder: Path, data_dir: str | None = None) -> bool:
    """write_report for the commands: True when written; otherwise one `error:` line on stderr.

    An expected problem (nothing trained yet, the data moved) is said as it is; anything else
    is a bug, said in one line that points at its full traceback in the experiment folder.
    """
    try:
        print(f"  report: {write_report(folder, data_dir)}")
        return True
    except ReportIncomplete as err:
        print(f"  report: {err.path}")
        print(f"error: {err}", file=sys.stderr)
    except ReportError as err:
        print(f"error: report not written: {err}", file=sys.stderr)
    except OSError as err:  # a full disk, a read-only folder: not a bug
        print(f"error: report not written: cannot write {err.filename or folder}: {err.strerror}", file=sys.stderr)
    except Exception as err:
        try:
            write_text_whole(folder / ERROR_FILE, traceback.format_exc())
        except OSError:
            pass
        print(f"error: report not written: unexpected {type(err).__name__}: {err}; this is a bug, "
              f"its traceback is in {folder / ERROR_FILE}", file=sys.stderr)
    return False
