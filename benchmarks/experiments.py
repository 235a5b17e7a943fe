"""How long `tune-ae list` and the storage page take on many experiments.

    python benchmarks/experiments.py EXPERIMENT [--copies 100 200]

Copies EXPERIMENT (a finished experiment folder: its record, its trials' record, its journal
and tables; no checkpoints) N times into a temporary storage path, then prints, per N: the
wall time of `python -m tune_ae list STORAGE` (the whole command, a new interpreter included),
of catalog.scan alone in this process, and of the storage page's first load: the first answer
to GET / from `python -m tune_ae dashboard STORAGE`, once it serves, and the study list its
optuna-dashboard view fetches (/api/studies). Medians of 5, with the machine and date.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

KEPT = ("tune_ae", "dashboard.journal", "trials.parquet", "epochs.parquet")


def copies(source: Path, root: Path, n: int) -> None:
    for i in range(n):
        target = root / f"{source.name}-{i:03d}"
        target.mkdir(parents=True)
        for name in KEPT:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, target / name)
            elif path.is_file():
                shutil.copy2(path, target / name)


def timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page_times(root: Path) -> tuple[float, float]:
    port = free_port()
    page = subprocess.Popen([sys.executable, "-m", "tune_ae", "dashboard", str(root), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        page.stdout.readline()  # its address, once it serves
        first = timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60).read(), repeat=1)
        studies = timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=60).read())
        return first, studies
    finally:
        page.terminate()
        page.communicate(timeout=30)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", type=Path)
    p.add_argument("--copies", type=int, nargs="+", default=[100, 200])
    args = p.parse_args(argv)
    from tune_ae import catalog
    from tune_ae.bench.measure import machine, machine_line

    print(f"machine: {machine_line(machine())}")
    for n in args.copies:
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch) / "store"
            copies(args.experiment.resolve(), root, n)
            command = timed(lambda: subprocess.run([sys.executable, "-m", "tune_ae", "list", str(root)],
                                                   capture_output=True, check=True))
            scan = timed(lambda: catalog.scan(root))
            first, studies = page_times(root)
            print(f"{n} experiments: `tune-ae list` {command:.2f} s (catalog.scan {scan:.3f} s); "
                  f"the page's first GET / {first:.2f} s, /api/studies {studies:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
