"""GPU checks that need no Ray: CUDA-graph epochs against eager ones, and resume on the same card.

    python benchmarks/gpu_check.py [--data-dir DIR]

Prints, for h = 64 and 512 on the full data: median epoch time (validation included) eager
and graphed, the val_loss of both after 5 epochs, and whether a graphed run saved at epoch 3
and resumed in a fresh state gives bit-identical metrics to an uninterrupted one.
On a machine without CUDA it says so and exits 1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

from tune_ae import train
from tune_ae.config import TrialConfig
from tune_ae.data import load_fashion_mnist


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device; this check is for GPU machines", file=sys.stderr)
        return 1
    device = torch.device("cuda")
    data = load_fashion_mnist(args.data_dir)
    train_x, val_x = train.to_device(data.train_images, device), train.to_device(data.test_images, device)
    from tune_ae.bench.measure import machine, machine_line

    print(f"machine: {machine_line(machine())}")
    ok = True
    for hidden in (64, 512):
        config = TrialConfig(hidden=hidden, epochs=args.epochs)
        row = {}
        for graphs in (False, True):
            history = list(train.train(config, train_x, val_x, cuda_graphs=graphs))
            row[graphs] = (statistics.median(m["epoch_time_s"] for m in history[1:]), history[4]["val_loss"],
                           history[-1]["val_loss"])
        (eager_s, eager5, eager_last), (graph_s, graph5, graph_last) = row[False], row[True]
        print(f"h={hidden}: epoch {1e3 * eager_s:.1f} ms eager, {1e3 * graph_s:.1f} ms graphed ({eager_s / graph_s:.2f}x); "
              f"val_loss after 5 epochs {eager5:.6g} / {graph5:.6g}, after {args.epochs} {eager_last:.6g} / {graph_last:.6g}")

        short = TrialConfig(hidden=hidden, epochs=6)
        straight = [m["val_loss"] for m in train.train(short, train_x, val_x, cuda_graphs=True)]
        first = train.init_state(short, device, cuda_graphs=True)
        head = [m["val_loss"] for m in train.train(TrialConfig(hidden=hidden, epochs=3), train_x, val_x, first)]
        with tempfile.TemporaryDirectory() as tmp:
            train.save(first, short, Path(tmp) / "state.pt")
            _, resumed = train.load(Path(tmp) / "state.pt", device, cuda_graphs=True)
            cpu_config, on_cpu = train.load(Path(tmp) / "state.pt", torch.device("cpu"))
        tail = [m["val_loss"] for m in train.train(short, train_x, val_x, resumed)]
        identical = head + tail == straight
        ok &= identical
        print(f"h={hidden}: graphed resume at epoch 3 bit-identical: {identical}; "
              f"the checkpoint opens on the CPU at epoch {on_cpu.epoch}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
