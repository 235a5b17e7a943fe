"""`tune-ae compare EXPERIMENT... [--out DIR]`: experiments side by side (report/comparison.py).

Writes into DIR (default ./compare): `compare.md`, a row per width with each experiment's best
final val_loss and its multiple of PCA's error at k = h; `final_vs_h.png`, those against h with
PCA as the reference; `curves.png`, each experiment's best trial per width, val_loss per epoch,
side by side. Prints the table. Reads the experiments, writes nothing into them: one that a
sweep is running is compared as its tables stand. Exit codes: 0 written, 1 an experiment with
no finished trial or a failed write, 2 bad input (not an experiment, one given twice).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tune_ae.args import FAILED, OK, USAGE_ERROR, Parser, exit_now
from tune_ae.config import ConfigError
from tune_ae.experiment import META_FILE, has_record, read_meta


def build_parser(prog: str = "python -m tune_ae.compare") -> Parser:
    p = Parser(prog=prog, description="Compare experiments: best final val_loss per width against PCA, and their "
               "loss curves side by side, as figures and a markdown table.")
    p.add_argument("experiments", nargs="+", help="experiment folders (STORAGE_PATH/NAME); one alone is set against PCA")
    p.add_argument("--out", default="compare", help="folder for compare.md and the figures (default ./compare)")
    return p


def check(folders: list[Path]) -> None:
    for folder in folders:
        if not has_record(folder):
            raise ConfigError(f"{folder} is not a tune_ae experiment (no {META_FILE}); give STORAGE_PATH/NAME of one")
        read_meta(folder)  # a record that does not read: its one line
    twice = sorted({str(f) for f in folders if folders.count(f) > 1})
    if twice:
        raise ConfigError(f"{', '.join(twice)} given twice; compare different experiments")


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.compare") -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    folders = [Path(e).expanduser().resolve() for e in args.experiments]
    try:
        check(folders)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    from tune_ae.report import comparison  # matplotlib and torch load here, after the checks
    from tune_ae.report.tables import ReportError
    from tune_ae.report.write import save_figure
    from tune_ae.experiment import write_text_whole

    try:
        best = comparison.best_by_width(folders)
        empty = [n for n in comparison.names(folders) if n not in set(best["experiment"])]
        if empty:
            print(f"error: {', '.join(empty)} has no finished trial to compare yet", file=sys.stderr)
            return FAILED
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        write_text_whole(out / "compare.md", comparison.markdown(best))
        save_figure(comparison.final_against_width(best), out / "final_vs_h")
        save_figure(comparison.curves_side_by_side(folders, best), out / "curves")
    except (ReportError, OSError, ConfigError) as err:
        where = getattr(err, "filename", None)
        print(f"error: {f'{where}: ' if where else ''}{getattr(err, 'strerror', None) or err}", file=sys.stderr)
        return FAILED
    print(comparison.markdown(best))
    print(f"written: {out / 'compare.md'}, {out / 'final_vs_h.png'}, {out / 'curves.png'}")
    return OK


if __name__ == "__main__":
    exit_now(main())
