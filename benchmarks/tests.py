"""The two tiers of tests, timed on this machine: the times the README's Tests section quotes.

    python benchmarks/tests.py [more pytest flags]

From the repository root, with this interpreter: `python -m pytest -q -m "not slow"` (the fast
tier, what you run while working), then `python -m pytest -q` (everything, as CI runs it, on
the 2 workers pyproject.toml sets). Prints the machine and date first, then per tier the tests
run, pytest's own time and the command's wall time (the interpreter and collection included),
and the load average before each. A tier with a failing or skipped test ends this with exit 1:
its time is not the suite's (the real-data tests skip without $TUNE_AE_DATA, the browser test
without Chromium).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIERS = {"fast tier": ["-m", "not slow"], "full suite": []}
SUMMARY = re.compile(r"^=*\s*(?P<counts>\d+ \w+.*) in (?P<seconds>[\d.]+)s")


def whole_pass(summary: str) -> tuple[str, float] | None:
    """(counts, seconds) from pytest's last line when every test it ran passed, else None
    (deselected ones are the other tier's)."""
    found = SUMMARY.match(summary)
    if not found or re.search(r"\b(failed|errors?|skipped|xpassed)\b", found["counts"]):
        return None
    return found["counts"], float(found["seconds"])


def run_tier(extra: list[str]) -> tuple[str, float, float, str]:
    """(pytest's counts, its seconds, the wall seconds, the load average before) of one tier."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", *extra], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    passed = whole_pass(last)
    if done.returncode != 0 or passed is None:
        sys.stdout.write(done.stdout[-3000:] + done.stderr[-2000:])
        raise SystemExit(f"error: pytest {' '.join(extra)} did not pass every test ({last or 'no summary'}); "
                         "its time is not the suite's")
    return *passed, wall, load


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    from tune_ae.bench.measure import machine, machine_line

    print(f"machine: {machine_line(machine())}", flush=True)
    for name, flags in TIERS.items():
        counts, seconds, wall, load = run_tier([*flags, *argv])
        print(f"{name}: {counts} in {seconds:.1f} s (pytest), {wall:.1f} s wall; load average before: {load}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
