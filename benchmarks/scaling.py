"""Wall time of a sweep against its number of trials, and where the time goes.

    python benchmarks/scaling.py --data-dir DIR [--trials 4 12 36 108] [--out scaling]

Runs `python -m tune_ae.run` (the report included) with 2 epochs on 3,000 images, so that
training is small and the overhead shows: 4 trials = the paper grid, 12 = paper x 3 seeds,
36 = the wide grid, 108 = wide x 3 seeds. Per run it prints the wall time and its parts, from
the timings each run records in tune_ae/experiment.json: Ray start, checks, Tune's fit (split into the
trials' training, their end-of-trial analysis (dead units, linear probe), each as the least
wall time it needs on the slots that run at once (tune_ae.bench.measure.training_span), and the rest:
queueing, worker start, reporting), tables, report, Ray shutdown, and the interpreter/imports
before and after. The machine and date come first; a sweep that does not finish every trial
stops the script with exit 1. Then the overhead per extra trial:
the slope of (wall - training) against trials, and of (wall - training - analysis).
Writes OUT/scaling.csv and OUT/scaling.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tune_ae.bench.measure import SweepFailed, machine, machine_line, sweep_slots, timed_sweep, training_span

SIZES = {4: ["--grid", "paper"], 12: ["--grid", "paper", "--seeds", "3"], 36: ["--grid", "wide"],
         108: ["--grid", "wide", "--seeds", "3"]}


def one_run(n: int, data_dir: str, epochs: int, subset: int) -> dict:
    sweep = timed_sweep([*SIZES[n], "--epochs", str(epochs), "--subset", str(subset), "--data-dir", data_dir], name="s")
    trials, timings, slots = sweep.trials, sweep.timings, sweep_slots(sweep)
    # Training and the end-of-trial analysis as the least wall time they need on the slots
    # that run at once (tune_ae.bench.measure.training_span, the one definition the benchmark uses too).
    training = training_span(trials["train_time_s"], slots)
    work = training_span(trials["train_time_s"] + trials["analysis_time_s"], slots)  # dead units + probe
    parts = {"ray_start_s": timings["ray_start_s"], "checks_s": timings["checks_s"],
             "training_s": training, "analysis_s": work - training, "fit_rest_s": timings["fit_s"] - work,
             "tables_s": timings["tables_s"], "report_s": timings["report_s"], "shutdown_s": timings["shutdown_s"]}
    parts["process_s"] = sweep.wall_s - sum(parts.values())  # interpreter, imports, data loading, exit
    return {"trials": n, "slots": slots, "wall_s": sweep.wall_s, **parts}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--trials", type=int, nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--subset", type=int, default=3000)
    p.add_argument("--out", default="scaling")
    args = p.parse_args()
    print(f"machine: {machine_line(machine())}", flush=True)
    rows = []
    for n in args.trials:
        try:
            rows.append(one_run(n, args.data_dir, args.epochs, args.subset))
        except SweepFailed as err:  # a sweep that lost trials did less work: its time is not the grid's
            print(f"error: the {n}-trial sweep failed: {err}", file=sys.stderr)
            return 1
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.1f}"), flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "scaling.csv", index=False)
    print("\n" + table.to_string(index=False, float_format=lambda v: f"{v:.1f}") + "\n")
    if len(table) > 1:
        for label, work in (("training", table["training_s"]),
                            ("training and the trials' analysis", table["training_s"] + table["analysis_s"])):
            slope, intercept = np.polyfit(table["trials"], table["wall_s"] - work, 1)
            print(f"overhead beyond {label}: {intercept:.1f} s fixed + {slope:.2f} s per trial "
                  f"(least squares over {len(table)} runs)")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        parts = ["process_s", "ray_start_s", "checks_s", "training_s", "analysis_s", "fit_rest_s", "tables_s", "report_s",
                 "shutdown_s"]
        ax = table.set_index("trials")[parts].plot.bar(stacked=True, figsize=(7, 4))
        ax.set(ylabel="seconds", title=f"sweep wall time by part ({args.epochs} epochs, {args.subset} images)")
        plt.tight_layout()
        plt.savefig(out / "scaling.png", dpi=150)
    return 0


if __name__ == "__main__":
    sys.exit(main())
