"""`tune-ae list [STORAGE] [--json]`: every experiment under a storage path, newest first.

One row each: name, grid or search, status (running, finished, interrupted, failed, not
complete, not an experiment; the last two say why), trials finished of the grid's, the best
final val_loss per width with its multiple of PCA's error at k = h (where the record holds
PCA's), when it started, on which host, and for how long it ran. Reads records only
(catalog.py). Exit codes: 0 listed (an empty folder too), 2 bad input (no such folder).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tune_ae import catalog, storage
from tune_ae.catalog import best_cell, duration
from tune_ae.args import OK, USAGE_ERROR, Parser, exit_now


def build_parser(prog: str = "python -m tune_ae.listing") -> Parser:
    p = Parser(prog=prog, description="List the experiments under a storage path, newest first, from their records.")
    p.add_argument("storage", nargs="?", help=f"the folder holding experiments (default {storage.DEFAULT_STORAGE})")
    p.add_argument("--json", action="store_true", help="one JSON list of the rows, for scripts")
    return p


def rows(entries: list[catalog.Entry]) -> list[list[str]]:
    header = ["NAME", "KIND", "STATUS", "TRIALS", "BEST VAL_LOSS BY WIDTH (x PCA AT K=H)", "STARTED", "HOST", "RAN"]
    body = [[e.name, e.kind or "-", e.status + (f" ({e.why})" if e.why else ""),
             f"{e.finished}/{e.total}" if e.total else "-", best_cell(e), e.started[:19].replace("T", " ") or "-",
             e.host or "-", duration(e.duration_s)] for e in entries]
    return [header, *body]


def table(entries: list[catalog.Entry]) -> str:
    lines = rows(entries)
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in lines)


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.listing") -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    root = Path(args.storage or storage.DEFAULT_STORAGE).expanduser()
    if args.storage and storage.is_uri(args.storage):
        print(f"error: {args.storage} is a URI; list reads a local folder: give the mirror of it, "
              f"{storage.MIRROR}", file=sys.stderr)
        return USAGE_ERROR
    if not root.is_dir():
        print(f"error: no folder at {root}; give the --storage-path your runs used", file=sys.stderr)
        return USAGE_ERROR
    try:
        entries = catalog.scan(root)
    except OSError as err:
        print(f"error: cannot read {root}: {err.strerror or err}", file=sys.stderr)
        return USAGE_ERROR
    sys.stdout.reconfigure(errors="backslashreplace")  # a folder name that is not UTF-8 shows its bytes
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2))
    elif entries:
        print(table(entries))
    else:
        print(f"no experiments in {root}")
    return OK


if __name__ == "__main__":
    exit_now(main())
