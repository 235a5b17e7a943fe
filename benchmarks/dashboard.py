"""What the dashboard's journal costs the sweep's driver, and how fresh the page is.

    python benchmarks/dashboard.py [--trials 4] [--epochs 100]

1. Cost: journal.Recorder, as callbacks.DashboardLog calls it, records `--trials` trials of
   `--epochs` epochs each into a journal in a temporary experiment folder; prints the time per
   epoch recorded (mean, 95th percentile, max) and the journal's bytes per epoch.
2. Freshness: `python -m tune_ae.dashboard` serves that folder; an epoch is recorded, then its
   API (what the page fetches) is asked until the epoch is there; prints the seconds from the
   record to the API, 20 times. The page itself asks every 10 s (optuna-dashboard's live
   update), which a person waits on top.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=100)
    args = p.parse_args(argv)

    from tune_ae import experiment, journal
    from tune_ae.bench.measure import machine, machine_line
    from tune_ae.config import SweepSettings
    from tune_ae.grids import GRIDS

    print(f"machine: {machine_line(machine())}")
    grid = GRIDS["paper"]
    with tempfile.TemporaryDirectory(prefix="tune_ae-dashboard-bench-") as tmp:
        folder = Path(tmp) / "bench"
        experiment.write_meta(folder, "paper", grid, SweepSettings(storage_path=tmp, name="bench"),
                              {"folder": "-", "subset": None, "train_images": 60000, "test_images": 10000},
                              experiment.this_run(None))
        recorder = journal.Recorder(folder, grid)
        configs = [c.to_dict() for c in grid.trial_configs()][: args.trials]
        for i, config in enumerate(configs):
            recorder.start(f"trial-{i}", config)
        times = []
        for epoch in range(1, args.epochs + 1):
            for i, config in enumerate(configs):
                started = time.perf_counter()
                recorder.epoch(f"trial-{i}", config, epoch, 0.05 / epoch)
                times.append(time.perf_counter() - started)
        size = journal.path(folder).stat().st_size
        times.sort()
        print(f"cost: {len(times)} epochs recorded ({args.trials} trials x {args.epochs}): mean "
              f"{statistics.mean(times) * 1e3:.2f} ms, 95th percentile {times[int(0.95 * len(times))] * 1e3:.2f} ms, "
              f"max {times[-1] * 1e3:.2f} ms per epoch; {size / len(times):.0f} bytes of journal per epoch")

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        page = subprocess.Popen([sys.executable, "-m", "tune_ae.dashboard", str(folder), "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}/api/studies/0"
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(url, timeout=5).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            latencies = []
            for k in range(20):
                epoch = args.epochs + 1 + k
                recorded = time.perf_counter()
                recorder.epoch("trial-0", configs[0], epoch, 0.01)
                while True:
                    study = json.loads(urllib.request.urlopen(url, timeout=5).read())
                    steps = {v["step"] for t in study["trials"] for v in t["intermediate_values"]}
                    if epoch in steps:
                        latencies.append(time.perf_counter() - recorded)
                        break
                    time.sleep(0.01)
            print(f"freshness: an epoch recorded is in the page's API after {statistics.median(latencies) * 1e3:.0f} ms "
                  f"(median of {len(latencies)}, max {max(latencies) * 1e3:.0f} ms); the page asks every 10 s")
        finally:
            page.terminate()
            page.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
