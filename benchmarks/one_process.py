"""The four paper widths trained at once on one card: four processes against one process.

    python benchmarks/one_process.py [--data-dir DIR] [--epochs 100] [--modes alone processes turns streams one-graph]

Each mode trains h = 64, 128, 256 and 512 (the paper's config) on the full data, on the
device, a CUDA graph per epoch on CUDA, validating every epoch. The first epoch of each model
(its capture included) is a warm-up; the clock covers the other `--epochs - 1`:
- alone: one model after another, each alone on the card (1 x 1.0 GPU without Ray).
- processes: four processes at once, released together (4 x 0.25 GPU without Ray): the card
  time-slices between their CUDA contexts.
- turns: one process; each epoch, the four models' epochs one after another (train.train_epoch).
- streams: one process; each model's graph replayed on its own CUDA stream, validation kept on
  the device, one sync per epoch of all four (CUDA only).
- one-graph: one process; one CUDA graph holding the four models' training epochs, one launch
  per epoch of all four (CUDA only).
Prints a line per mode as it ends: the wall seconds, the milliseconds per epoch of all four, the
speedup over processes, and whether each width's final val_loss equals alone's bit for bit. On a CPU the
eager loop runs and the CUDA-only modes say so: a rehearsal, not a measurement.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time

import torch

from tune_ae import cuda_graph, train
from tune_ae.config import TrialConfig
from tune_ae.data import load_fashion_mnist

WIDTHS = (64, 128, 256, 512)


def setup(data_dir, epochs: int, threads: int):
    """(configs, train_x, val_x) on the best device, this process's threads set."""
    torch.set_num_threads(threads)
    data = load_fashion_mnist(data_dir)
    device = train.pick_device()
    return ([TrialConfig(hidden=h, epochs=epochs) for h in WIDTHS],
            train.to_device(data.train_images, device), train.to_device(data.test_images, device))


def warm_state(config, train_x, val_x):
    """A run one epoch in (its graph captured), ready for the timed epochs."""
    state = train.init_state(config, train_x.device, cuda_graphs=True)
    train.train_epoch(state, config, train_x, val_x)
    return state


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def alone(configs, train_x, val_x) -> tuple[float, list[float]]:
    wall, final = 0.0, []
    for config in configs:
        state = warm_state(config, train_x, val_x)
        sync(train_x.device)
        started = time.perf_counter()
        while state.epoch < config.epochs:
            row = train.train_epoch(state, config, train_x, val_x)
        took = time.perf_counter() - started
        print(f"     alone: h={config.hidden} {1e3 * took / (config.epochs - 1):.1f} ms per epoch, validation included",
              flush=True)
        wall += took
        final.append(row["val_loss"])
    return wall, final


def one_width(i, data_dir, epochs, threads, barrier, out):
    configs, train_x, val_x = setup(data_dir, epochs, threads)
    config = configs[i]
    state = warm_state(config, train_x, val_x)
    sync(train_x.device)
    barrier.wait()
    while state.epoch < config.epochs:
        row = train.train_epoch(state, config, train_x, val_x)
    out.put((i, row["val_loss"]))


def processes(data_dir, epochs: int, wait_s: float = 60.0) -> tuple[float, list[float]]:
    ctx = mp.get_context("spawn")  # a CUDA context does not survive fork
    barrier, out = ctx.Barrier(len(WIDTHS) + 1), ctx.Queue()
    threads = max(1, torch.get_num_threads() // len(WIDTHS))
    workers = [ctx.Process(target=one_width, args=(i, data_dir, epochs, threads, barrier, out), daemon=True)
               for i in range(len(WIDTHS))]
    try:
        for w in workers:
            w.start()
        barrier.wait(timeout=wait_s)  # every process has its data and graph: the clock starts for all at once
        started = time.perf_counter()
        final = dict(out.get(timeout=wait_s) for _ in workers)  # a process that died raises queue.Empty here
        wall = time.perf_counter() - started
        return wall, [final[i] for i in range(len(WIDTHS))]
    finally:  # none may stay on the card into the next mode's timing
        for w in workers:
            w.terminate()
            w.join(timeout=10)


def turns(configs, train_x, val_x) -> tuple[float, list[float]]:
    states = [warm_state(c, train_x, val_x) for c in configs]
    sync(train_x.device)
    started = time.perf_counter()
    for _ in range(configs[0].epochs - 1):
        rows = [train.train_epoch(s, c, train_x, val_x) for s, c in zip(states, configs)]
    return time.perf_counter() - started, [r["val_loss"] for r in rows]


def streams(configs, train_x, val_x) -> tuple[float, list[float]]:
    states = []
    for config in configs:
        # cuBLAS keeps a workspace per (handle, stream), and every graph is captured on the same
        # stream: cleared before each capture, each graph records a workspace of its own
        # (Inductor's cudagraph trees do the same), so replays on four streams do not share one.
        torch._C._cuda_clearCublasWorkspaces()
        states.append(warm_state(config, train_x, val_x))
    lanes = [torch.cuda.Stream() for _ in configs]
    torch.cuda.synchronize()
    started = time.perf_counter()
    main = torch.cuda.current_stream()
    for _ in range(configs[0].epochs - 1):
        vals = []
        for state, config, lane in zip(states, configs, lanes):
            lane.wait_stream(main)
            with torch.cuda.stream(lane):
                order = torch.randperm(len(train_x), generator=state.shuffle, device=train_x.device)
                state.graph.replay(order)
                vals.append(train.validation_loss(state.model, val_x, config.precision))
        for lane in lanes:
            main.wait_stream(lane)
        final = [float(v) for v in vals]  # the one sync of the epoch
    return time.perf_counter() - started, final


class FourInOneGraph:
    """The models' training epochs recorded into one CUDA graph (cuda_graph.GraphedEpoch's recipe, for many)."""

    def __init__(self, states, configs, train_x):
        n = len(train_x)
        self.orders = [torch.arange(n, device=train_x.device) for _ in states]
        self.sums = [torch.zeros((), device=train_x.device) for _ in states]
        for state, config, order, loss_sum in zip(states, configs, self.orders, self.sums):
            cuda_graph.warm_up(state, config, train_x, order, loss_sum, train.epoch_steps)
        self.graph = torch.cuda.CUDAGraph()
        for state in states:
            self.graph.register_generator_state(state.dropout)
            state.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            for state, config, order, loss_sum in zip(states, configs, self.orders, self.sums):
                loss_sum.zero_()
                train.epoch_steps(state, config, train_x, order, loss_sum, cache_casts=False)


def one_graph(configs, train_x, val_x) -> tuple[float, list[float]]:
    # Each model's first epoch runs eagerly (no graph of its own): the warm-up, then one capture of all four.
    states = [train.init_state(c, train_x.device, cuda_graphs=True) for c in configs]  # capturable Adam
    for state, config in zip(states, configs):
        state.cuda_graphs = False  # no graph of its own
        train.train_epoch(state, config, train_x, val_x)
    fused = FourInOneGraph(states, configs, train_x)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(configs[0].epochs - 1):
        for state, order in zip(states, fused.orders):
            order.copy_(torch.randperm(len(train_x), generator=state.shuffle, device=train_x.device))
        fused.graph.replay()
        vals = [train.validation_loss(s.model, val_x, c.precision) for s, c in zip(states, configs)]
        final = [float(v) for v in vals]
    return time.perf_counter() - started, final


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=100, help="epochs per width, the first a warm-up (default 100)")
    p.add_argument("--modes", nargs="+", default=["alone", "processes", "turns", "streams", "one-graph"])
    args = p.parse_args()
    if args.epochs < 2:
        p.error("--epochs must be at least 2: the first is a warm-up")
    configs, train_x, val_x = setup(args.data_dir, args.epochs, torch.get_num_threads())
    cuda = train_x.device.type == "cuda"
    print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, torch {torch.__version__}, "
          f"widths {list(WIDTHS)}, {args.epochs - 1} timed epochs each", flush=True)
    runs = {
        "alone": lambda: alone(configs, train_x, val_x),
        "processes": lambda: processes(args.data_dir, args.epochs),
        "turns": lambda: turns(configs, train_x, val_x),
        "streams": lambda: streams(configs, train_x, val_x),
        "one-graph": lambda: one_graph(configs, train_x, val_x),
    }
    unknown = [m for m in args.modes if m not in runs]
    if unknown:
        p.error(f"unknown mode {unknown[0]!r}: choose from {', '.join(runs)}")
    measured = {}
    for mode in args.modes:  # each row as soon as it is measured: a run cut short keeps what it had
        if mode in ("streams", "one-graph") and not cuda:
            print(f"{mode:>10}: needs CUDA", flush=True)
            continue
        try:
            measured[mode] = runs[mode]()
        except Exception as err:  # one mode failing must not cost the others' numbers
            print(f"{mode:>10}: failed ({type(err).__name__}: {err})", flush=True)
            continue
        print(row(mode, *measured[mode], args.epochs - 1, measured), flush=True)
    return 0


def row(mode: str, wall: float, final: list[float], epochs: int, measured: dict) -> str:
    """wall s, ms per epoch of all four, speedup over processes, and whether the final val_loss is alone's."""
    base, reference = measured.get("processes", (None,))[0], measured.get("alone", (None, None))[1]
    speed = f"{base / wall:.2f}x vs processes" if base else "-"
    same = "-" if reference is None else ("val_loss = alone's" if final == reference else f"val_loss differs: {final}")
    return f"{mode:>10}: {wall:7.2f} s, {1e3 * wall / epochs:7.1f} ms per epoch of all four, {speed}, {same}"


if __name__ == "__main__":
    sys.exit(main())
