"""The paper grid end to end, as the README's quick start runs it, timed on this machine.

    python benchmarks/paper_grid.py [--data-dir DIR] [any other `python -m tune_ae.run` flags]

Runs `python -m tune_ae.run --grid paper` (the report included; data from --data-dir, else
$TUNE_AE_DATA, else the cache, as tune_ae.run looks) into a temporary storage path that is
deleted afterwards, with its progress on the terminal. Then prints the machine and date, the
command's wall time, each trial's wall and training time from the trials table, the least
time the trials' work needs on the slots that run at once (tune_ae.bench.measure.training_span) and
what is left beyond it. Every flag is passed on to tune_ae.run, so `--grid smoke` times the
smoke grid instead. A sweep that does not finish every trial ends this with exit 1: its time
is not the grid's.
"""

from __future__ import annotations

import sys

SWEEP_OWNS = ("--storage-path", "--name", "--resume")  # the temporary folder is this script's


def main(argv: list[str]) -> int:
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    owned = [a for a in argv if a.split("=")[0] in SWEEP_OWNS]
    if owned:
        print(f"error: {owned[0].split('=')[0]} is set by this script (a fresh temporary experiment)", file=sys.stderr)
        return 2
    run_args = argv if any(a.split("=")[0] == "--grid" for a in argv) else ["--grid", "paper", *argv]

    from tune_ae import labels  # after the checks: torch and pandas take seconds to import
    from tune_ae.bench.measure import SweepFailed, machine, machine_line, sweep_slots, timed_sweep, training_span

    about = machine_line(machine())
    command = "python -m tune_ae.run " + " ".join(run_args)
    print(f"machine: {about}\ncommand: {command} (temporary --storage-path)\n", flush=True)
    try:
        sweep = timed_sweep(run_args, name="timed", echo=True)
    except SweepFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    trials, slots = sweep.trials, sweep_slots(sweep)
    table = trials.assign(trial=[labels.label(row, labels.label_columns(trials)) for _, row in trials.iterrows()])
    table = table[["trial", "device", "epochs_done", "wall_time_s", "train_time_s", "analysis_time_s"]]
    training = training_span(trials["train_time_s"], slots)
    work = training_span(trials["train_time_s"] + trials["analysis_time_s"], slots)
    print(f"\nmachine: {about}")
    print(f"command: {command}")
    print(f"sweep wall time: {sweep.wall_s:.1f} s ({sweep.wall_s / 60:.1f} min), exit 0, {len(trials)} trials done\n")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"\non {slots} parallel slot(s) the trials' training needs at least {training:.1f} s, with their "
          f"end-of-trial analysis {work:.1f} s; beyond that: {sweep.wall_s - work:.1f} s")
    phases = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in sweep.timings.items())
    print(f"phases recorded by tune_ae.run: {phases}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
