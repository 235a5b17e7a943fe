"""Benchmark: the report-style pipeline and tune_ae's loop, side by side, in one process.

- baseline: torchvision's FashionMNIST over the same IDX files, ToTensor, a shuffling
  DataLoader with batch 1000, an nn.Sequential model, Adam, MSE: what one writes by hand.
- ours: `tune_ae.train.train_epoch` with the same hyperparameters.
- peak: torch.mm on large square matrices with the same thread count, the ceiling for
  both, so "ours" can be read as a fraction of what the machine can do.
- Ray overhead: a smoke sweep through `python -m tune_ae.run`, wall time against the
  least time its trials' own work needs on the slots that train at once (training_span).

Every timing is printed with the machine and the date it was taken on (machine()): a number
in the README names the command that printed it and that machine.

Run as `python -m tune_ae.bench [--quick] [--json PATH]` (the command is __main__.py).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch
from torch import nn

from tune_ae import experiment, labels, results, train
from tune_ae.allocation import concurrent_trials
from tune_ae.config import TrialConfig
from tune_ae.data import PIXELS, STEMS, FashionMNIST, idx_file
from tune_ae.experiment import versions


def cpu_model() -> str:
    """The CPU's name as the kernel gives it ('AMD EPYC 7B13'); platform.processor() says only 'x86_64'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                return value.strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What a timing was taken on, and when: printed beside every benchmark's numbers."""
    return {
        "cpu": cpu_model(), "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": {k: versions()[k] for k in ("python", "torch", "ray")},
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(m: dict) -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores, no GPU; python 3.11.7, torch 2.4.1, ray 2.60.0; 2026-12-01 20:30 UTC'."""
    v = m["versions"]
    return (f"{m['cpu']}, {m['cores']} cores, {m['gpu'] or 'no GPU'}; "
            f"python {v['python']}, torch {v['torch']}, ray {v['ray']}; {m['date']}")


def train_flops(hidden: int, images: int) -> float:
    """Forward (2 matmuls) + backward (3: both weight grads, the code's grad) per image."""
    return 5 * 2 * PIXELS * hidden * images


def val_flops(hidden: int, images: int) -> float:
    return 2 * 2 * PIXELS * hidden * images


def sync(device: torch.device) -> None:
    """Wait for the device: CUDA calls return before the work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    """Best torch.mm rate on `device`; on CUDA, "tf32" is fp32 inputs on the TF32 tensor cores."""
    tf32 = dtype == "tf32"
    dtype = torch.float32 if tf32 else dtype
    a, b = (torch.rand(size, size, device=device).to(dtype) for _ in range(2))
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        torch.mm(a, b)  # warm-up: thread pool, kernel selection
        sync(device)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            torch.mm(a, b)
            sync(device)
            best = min(best, time.perf_counter() - started)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * size**3 / best / 1e9


def peak_dtypes(device: torch.device) -> dict:
    kinds = {"fp32": torch.float32, "bf16": torch.bfloat16}
    return {**kinds, "tf32": "tf32"} if device.type == "cuda" else kinds


def torchvision_root(data: FashionMNIST, into: Path) -> Path:
    """torchvision's FashionMNIST wants raw IDX files under ROOT/FashionMNIST/raw/."""
    raw = into / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in STEMS.values():
        source = idx_file(Path(data.folder), stem)
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return into


def baseline_epoch_times(root: Path, hidden: int, epochs: int, subset: int | None, device: torch.device) -> list[float]:
    """The report-style pipeline, as one would write it from the PyTorch tutorials, on `device`."""
    torch.set_flush_denormal(False)  # the report's pipeline as written: torch's default
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    if subset:
        dataset = Subset(dataset, range(subset))
    loader = DataLoader(dataset, batch_size=1000, shuffle=True)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 784), nn.ReLU()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.MSELoss()
    times = []
    for _ in range(epochs + 1):  # the first epoch is the warm-up
        started = time.perf_counter()
        model.train()
        running_loss = 0.0
        for images, _ in loader:
            x = images.view(-1, 784).to(device)  # (B, 1, 28, 28) -> (B, 784)
            loss = loss_fn(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running_loss += loss.item()  # the tutorials' per-step loss log (a host sync on a GPU)
        sync(device)
        times.append(time.perf_counter() - started)
    return times[1:]


def our_epoch_times(data: FashionMNIST, hidden: int, epochs: int, precision: str, device: torch.device,
                    cuda_graphs: bool = True) -> tuple[list[float], list[float], float]:
    """Training-only epoch times, validation times, and val_loss after the last epoch.

    train_epoch reads its loss back to the host before it stops the clock: the times are synced.
    """
    config = TrialConfig(hidden=hidden, precision=precision, epochs=epochs + 1)
    train_x, val_x = train.to_device(data.train_images, device), train.to_device(data.test_images, device)
    train.flush_denormals()  # as train.train does; the baseline's turns it off again (torch's default)
    state = train.init_state(config, device, cuda_graphs)  # the first (warm-up) epoch captures the graph
    train_times, val_times = [], []
    for _ in range(epochs + 1):
        metrics = train.train_epoch(state, config, train_x, val_x)
        train_time = len(train_x) / metrics["images_per_s"]
        train_times.append(train_time)
        val_times.append(metrics["epoch_time_s"] - train_time)
    return train_times[1:], val_times[1:], metrics["val_loss"]


class SweepFailed(RuntimeError):
    """A timed sweep that did not run every trial to its end: its time is not the grid's time."""


@dataclass
class TimedSweep:
    wall_s: float  # the command from start to exit, as the person who types it waits
    trials: pd.DataFrame  # results' trials table: status, train_time_s, analysis_time_s, wall_time_s per trial
    settings: dict  # the sweep's settings as its record holds them (cpus_per_trial, gpus_per_trial, ...)
    timings: dict  # the seconds of its phases that `tune_ae.run` recorded (ray_start_s, fit_s, ...)
    epochs: pd.DataFrame | None = None  # results' epochs table: epoch_time_s and threads per trial-epoch


def sweep_problem(returncode: int, trials: pd.DataFrame | None, stderr: str | None) -> str | None:
    """Why a sweep's time must not be reported, in one line; None when every trial is done.

    A failed trial ends the command with exit 1 and leaves less work than the grid: timing it
    would make the sweep look faster than it is. "stopped early" (ASHA) is refused too.
    """
    if returncode != 0:
        said = [line for line in (stderr or "").splitlines() if line.strip()]
        return f"the sweep exited with {returncode}" + (f": {said[-1].strip()}" if said else "")
    if trials is None or trials.empty:
        return "the sweep exited with 0 but left no trials"
    unfinished = trials[trials["status"] != "done"]
    if len(unfinished):
        columns = labels.label_columns(trials)
        names = ", ".join(f"{labels.label(row, columns)} {row['status']}" for _, row in unfinished.iterrows())
        return f"{len(unfinished)} of {len(trials)} trials not done: {names}"
    return None


def timed_sweep(run_args: list[str], name: str = "bench", echo: bool = False) -> TimedSweep:
    """`python -m tune_ae.run RUN_ARGS` into a temporary storage path, timed; raises SweepFailed
    unless it exits 0 with every trial done. `echo` lets its output through (a long sweep's
    progress) instead of keeping it for the error line."""
    with tempfile.TemporaryDirectory() as storage:
        command = [sys.executable, "-m", "tune_ae.run", *run_args, "--storage-path", storage, "--name", name]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=not echo, text=True)
        wall = time.perf_counter() - started
        folder = Path(storage) / name
        finished = done.returncode == 0 and experiment.has_record(folder)
        trials = results.load_table(folder, "trials") if finished else None
        problem = sweep_problem(done.returncode, trials, done.stderr)
        if problem:
            raise SweepFailed(problem)
        meta = experiment.read_meta(folder)
        epochs = results.load_table(folder, "epochs")
    return TimedSweep(wall, trials, meta.get("settings", {}), meta["runs"][-1].get("timings", {}), epochs)


def parallel_slots(n_trials: int, cpus_per_trial: float = 1.0, gpus_per_trial: float | None = None,
                   cpus: int | None = None, gpus: int | None = None) -> int:
    """How many trials a local Ray can train at once: the CPUs (and a fixed GPU share, when one
    is asked for) divided among them, never more than there are trials.

    The CPU bound is allocation.concurrent_trials, which tuner's GPU share uses too. `cpus` defaults to os.cpu_count(),
    which is what Ray counts unless a container quota lowers it; a count too high only makes
    the training span shorter and the overhead larger, never the other way round.
    """
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    slots = concurrent_trials(n_trials, cpus, cpus_per_trial)
    if gpus_per_trial:  # None or 0 ("auto", or no GPU): the GPUs do not limit concurrency
        gpus = torch.cuda.device_count() if gpus is None else gpus
        slots = max(1, min(slots, math.floor(gpus / gpus_per_trial)))
    return slots


def training_span(seconds: Iterable[float], slots: int) -> float:
    """The least wall time trials taking `seconds` each can need on `slots` parallel slots.

    This is the work's critical path, a lower bound that no schedule beats: the slots sharing
    the total evenly (sum / slots), and no less than the longest trial, which cannot be split.
    A plain sum of the trials' times would count two trials training side by side for 5 s as
    10 s against a wall time that only held 5 s, and so hide Ray's overhead. Against this bound
    the overhead can only be overstated (by the grid's shape, e.g. 3 equal trials on 2 slots),
    never flattered. Each trial's own seconds are measured while the others run beside it.
    """
    seconds = [float(s) for s in seconds]
    return max(sum(seconds) / slots, max(seconds, default=0.0))


def sweep_slots(sweep: TimedSweep) -> int:
    """parallel_slots for a timed sweep, from the resources its record says it asked for (auto
    CPUs: as many at once as at one thread each, which is what allocation.py starts with)."""
    gpus, cpus = sweep.settings.get("gpus_per_trial"), sweep.settings.get("cpus_per_trial", 1.0)
    return parallel_slots(len(sweep.trials), float(cpus) if isinstance(cpus, (int, float)) else 1.0,
                          gpus if isinstance(gpus, (int, float)) else None)


def ray_overhead(data_dir: str) -> dict:
    """A smoke sweep end to end through the CLI: wall time against the least time its trials'
    own work (training, then the end-of-trial analysis) needs on the parallel slots."""
    sweep = timed_sweep(["--grid", "smoke", "--data-dir", data_dir, "--no-report"])  # auto CPUs: the cores shared
    slots = sweep_slots(sweep)
    trials = sweep.trials
    work = training_span(trials["train_time_s"] + trials[results.ANALYSIS_TIME], slots)
    return {"sweep_wall_s": sweep.wall_s, "trials": len(trials), "slots": slots,
            "training_span_s": training_span(trials["train_time_s"], slots), "work_span_s": work,
            "overhead_s": sweep.wall_s - work}


def run_benchmark(data: FashionMNIST, hidden_sizes: list[int], epochs: int, subset: int | None,
                  threads: int, precisions: list[str], with_ray: bool, peak_size: int = 2048) -> dict:
    """Every figure of the benchmark on `data` (already cut to `subset` training images);
    `peak_size`: the side of the matmuls that measure the peak (smaller in the tests: 2048 takes
    ~9 s on one CPU thread)."""
    torch.set_num_threads(threads)
    device = train.pick_device()
    n_train, n_val = len(data.train_images), len(data.test_images)
    # The sweep runs first, while this process is idle: its own compute threads would compete.
    ray_report = ray_overhead(data.folder) if with_ray else None
    # The peak is measured before and after the timings and the higher kept: a shared
    # machine's slow spell during a short measurement must not flatter "% of peak".
    peaks = {name: matmul_peak_gflops(dtype, device, peak_size) for name, dtype in peak_dtypes(device).items()}
    report = {
        "device": str(device), "machine": machine(), "threads": threads,
        "versions": {k: versions()[k] for k in ("torch", "torchvision", "ray")},
        "epochs_timed": epochs, "train_images": n_train, "val_images": n_val,
        "matmul_peak_gflops": peaks, "results": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = torchvision_root(data, Path(tmp))
        for hidden in hidden_sizes:
            base = statistics.median(baseline_epoch_times(root, hidden, epochs, subset, device))
            for precision in precisions:
                train_times, val_times, val_loss = our_epoch_times(data, hidden, epochs, precision, device)
                ours = statistics.median(train_times)
                report["results"].append({
                    "hidden": hidden, "precision": precision,
                    "baseline_epoch_s": base, "ours_epoch_s": ours, "speedup": base / ours,
                    "baseline_images_per_s": n_train / base, "ours_images_per_s": n_train / ours,
                    "ours_train_gflops": train_flops(hidden, n_train) / ours / 1e9,
                    "ours_val_s": statistics.median(val_times),
                    "ours_val_gflops": val_flops(hidden, n_val) / statistics.median(val_times) / 1e9,
                    "ours_epoch_spread_s": [min(train_times), max(train_times)],
                    f"val_loss_after_{epochs + 1}_epochs": val_loss,
                })
    for name, dtype in peak_dtypes(device).items():
        peaks[name] = max(peaks[name], matmul_peak_gflops(dtype, device, peak_size))
    for r in report["results"]:
        r["fraction_of_peak"] = r["ours_train_gflops"] / peaks[r["precision"]]
    if ray_report:
        report["ray"] = ray_report
    return report


def print_report(report: dict) -> None:
    print(f"machine: {machine_line(report['machine'])}")
    print(f"device {report['device']}, {report['threads']} thread(s)")
    peaks = report["matmul_peak_gflops"]
    print("matmul peak on the device: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peaks.items()))
    print(f"{report['train_images']} training images, median of {report['epochs_timed']} epochs after a warm-up\n")
    header = f"{'h':>5} {'prec':>5} {'baseline s':>11} {'ours s':>8} {'speedup':>8} {'base img/s':>11} {'ours img/s':>11} {'GFLOP/s':>8} {'% peak':>7}"
    print(header)
    for r in report["results"]:
        print(f"{r['hidden']:>5} {r['precision']:>5} {r['baseline_epoch_s']:>11.3f} {r['ours_epoch_s']:>8.3f} "
              f"{r['speedup']:>7.2f}x {r['baseline_images_per_s']:>11.0f} {r['ours_images_per_s']:>11.0f} "
              f"{r['ours_train_gflops']:>8.1f} {100 * r['fraction_of_peak']:>6.1f}%")
    if "ray" in report:
        ray = report["ray"]
        print(f"\nRay overhead, smoke grid ({ray['trials']} trials on {ray['slots']} parallel slot(s)): "
              f"sweep {ray['sweep_wall_s']:.1f} s wall; the trials' training needs at least {ray['training_span_s']:.1f} s "
              f"on the slots, with their end-of-trial analysis {ray['work_span_s']:.1f} s; overhead {ray['overhead_s']:.1f} s")


def write_json(report: dict, path: str) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
