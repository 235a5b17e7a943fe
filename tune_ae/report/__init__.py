"""An experiment folder -> its report: summary.csv, spread.csv, figures/ and report.md.

One concern per module: tables.py reads the folder and computes every table and number once
(`build`); figures.py draws each figure from those tables and lists them in FIGURES;
markdown.py writes report.md's text; write.py saves all of it and says what went wrong.
Run on demand with `python -m tune_ae.report EXPERIMENT_DIR` (the command is __main__.py).

The package itself imports nothing: `python -m tune_ae.report --help` and its usage errors
answer before pandas and torch load, and `run --no-report` reads tables.py through it without
a plotting library. write.py's names are offered here on first use.
"""

_WRITE = ("write_report", "write_report_or_say_why", "save_figure", "ReportError", "ReportIncomplete", "ERROR_FILE")


def __getattr__(name: str):
    if name in _WRITE:
        import tune_ae.report.write as write

        return getattr(write, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
