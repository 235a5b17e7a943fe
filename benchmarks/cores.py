"""Threads per trial: `--cpus-per-trial auto` (the default) against a fixed 1, side by side, on this machine.

    python benchmarks/cores.py --data-dir DIR [--sweeps one paper wide] [--paper-epochs 40] [--one-epochs 10]

Runs each sweep through `python -m tune_ae.run` (its report included) twice, first with auto
and then with 1 CPU per trial, into temporary folders: one trial at h = 512 on the full data,
the paper grid (4 widths) at 40 epochs, and the wide grid (36 trials, 2 epochs on 3,000
images). Per run it prints the wall time of the command and of Tune's fit, the summed
training time (the trials' epochs, validation included), the threads the trials ran with,
the median seconds per epoch at h = 512, and the busy share: the trials' work in core-seconds
(each epoch and end-of-trial analysis times the threads it ran on) over cores x fit wall
time. Then auto's speedup over fixed 1 CPU per sweep. The machine and date come first; a
sweep that does not finish every trial stops the script with exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

from tune_ae.bench.measure import SweepFailed, TimedSweep, machine, machine_line, timed_sweep

SWEEPS = {
    "one": ("one trial, h=512", ["--hidden", "512"]),
    "paper": ("paper grid", ["--grid", "paper"]),
    "wide": ("wide grid, 3,000 images", ["--grid", "wide", "--epochs", "2", "--subset", "3000"]),
}
MODES = {"auto": ["--cpus-per-trial", "auto"], "1 CPU": ["--cpus-per-trial", "1"]}


def busy_share(sweep: TimedSweep, cores: int) -> float:
    """The trials' core-seconds over the cores' seconds during the fit."""
    epochs = sweep.epochs
    work = (epochs["epoch_time_s"] * epochs["threads"]).sum()
    last = epochs.sort_values("epoch").groupby("trial_id").tail(1).set_index("trial_id")["threads"]
    analysis = sweep.trials.set_index("trial_id")["analysis_time_s"].fillna(0.0)
    work += (analysis * last.reindex(analysis.index).fillna(1)).sum()
    return work / (cores * sweep.timings["fit_s"])


def one_row(what: str, mode: str, sweep: TimedSweep, cores: int) -> dict:
    epochs = sweep.epochs
    wide = epochs[epochs["hidden"] == 512]
    return {"sweep": what, "cpus": mode, "trials": len(sweep.trials), "wall_s": sweep.wall_s,
            "fit_s": sweep.timings["fit_s"], "training_s": epochs["epoch_time_s"].sum(),
            "threads": f"{epochs['threads'].min():g}-{epochs['threads'].max():g}",
            "h512_s_per_epoch": wide["epoch_time_s"].median() if len(wide) else float("nan"),
            "busy": busy_share(sweep, cores)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=list(SWEEPS))
    p.add_argument("--one-epochs", type=int, default=10, help="epochs of the one-trial sweep")
    p.add_argument("--paper-epochs", type=int, default=40, help="epochs of the paper grid")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    print(f"machine: {machine_line(machine())}", flush=True)
    epochs = {"one": ["--epochs", str(args.one_epochs)], "paper": ["--epochs", str(args.paper_epochs)], "wide": []}
    rows = []
    for key in args.sweeps:
        what, flags = SWEEPS[key]
        what = f"{what}, {args.one_epochs if key == 'one' else args.paper_epochs if key == 'paper' else 2} epochs"
        for mode, cpus in MODES.items():
            try:
                sweep = timed_sweep([*flags, *epochs[key], *cpus, "--data-dir", args.data_dir], name="cores")
            except SweepFailed as err:  # a sweep that lost trials did less work: its time is not the grid's
                print(f"error: {what} with {mode} failed: {err}", file=sys.stderr)
                return 1
            rows.append(one_row(what, mode, sweep, cores))
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1, float_format=fmt), flush=True)
    table = pd.DataFrame(rows)
    print(f"\nmachine: {machine_line(machine())}\n{table.to_string(index=False, float_format=fmt)}\n")
    for what, pair in table.groupby("sweep", sort=False):
        auto, fixed = pair.set_index("cpus").loc["auto"], pair.set_index("cpus").loc["1 CPU"]
        per_epoch = fixed["h512_s_per_epoch"] / auto["h512_s_per_epoch"]
        print(f"{what}: auto {fixed['wall_s'] / auto['wall_s']:.2f}x the wall speed of 1 CPU per trial, "
              f"{fixed['fit_s'] / auto['fit_s']:.2f}x its fit, {per_epoch:.2f}x its h=512 epoch; "
              f"busy {auto['busy']:.0%} against {fixed['busy']:.0%}")
    return 0


def fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


if __name__ == "__main__":
    sys.exit(main())
