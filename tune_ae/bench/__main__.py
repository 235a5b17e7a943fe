"""`python -m tune_ae.bench`: the report-style pipeline and ours, measured in one run (see tune_ae.bench)."""

from __future__ import annotations

import os
import sys
import time

from tune_ae.args import FAILED, OK, USAGE_ERROR, Parser, exit_now


def main(argv: list[str] | None = None, prog: str = "python -m tune_ae.bench") -> int:
    p = Parser(prog=prog, description="Time the report-style pipeline against tune_ae's loop, with the matmul peak and Ray overhead.")
    p.add_argument("--data-dir", help="Fashion-MNIST folder (else $TUNE_AE_DATA, cache)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 512], help="hidden sizes to time (default 64 512)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement, after one warm-up (default 3)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: this machine's cores)")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"], help="precisions of our loop to time (default both)")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray overhead measurement")
    p.add_argument("--quick", action="store_true", help="6,000 images, 1 timed epoch: a sub-minute check")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    started = time.perf_counter()  # the whole command's time is printed too: the README quotes it
    for name, value in (("--epochs", args.epochs), ("--threads", args.threads), ("--hidden", min(args.hidden))):
        if value < 1:
            p.error(f"{name} must be >= 1, got {value}")
    from tune_ae.bench import measure as bench  # torch loads after the checks
    from tune_ae.data import DataError, load_fashion_mnist

    subset = 6000 if args.quick else None
    try:
        data = load_fashion_mnist(args.data_dir, subset=subset)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    try:
        report = bench.run_benchmark(data, args.hidden, 1 if args.quick else args.epochs, subset, args.threads,
                                     args.precision, not args.no_ray)
    except bench.SweepFailed as err:  # a failed smoke sweep has no overhead to report
        print(f"error: the Ray overhead's smoke sweep failed: {err}", file=sys.stderr)
        return FAILED
    bench.print_report(report)
    print(f"\nthe benchmark took {time.perf_counter() - started:.0f} s (from its arguments on: importing torch and loading the data included)")
    if args.json:
        bench.write_json(report, args.json)
    return OK


if __name__ == "__main__":
    exit_now(main())
