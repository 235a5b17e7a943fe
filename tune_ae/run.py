"""`python -m tune_ae.run --grid paper`: run (or resume) a sweep and write its results.

The only module that parses arguments. Everything it is given is validated before Ray
starts; a bad value ends the command with one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tune_ae.config import SCHEDULERS, ConfigError, SweepSettings
from tune_ae.grids import GRIDS, Grid, resolve
from tune_ae import experiment, storage

USAGE_ERROR = 2


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(USAGE_ERROR, f"error: {message} (see python -m tune_ae.run --help)\n")


def gpus_arg(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def build_parser() -> Parser:
    grids = "; ".join(f"{name}: hidden {list(g.hidden)}, dropout {list(g.dropout)}, lr {list(g.lr)}, "
                      f"{g.epochs} epochs" for name, g in GRIDS.items())
    p = Parser(prog="python -m tune_ae.run", description="Sweep autoencoders on Fashion-MNIST with Ray Tune.",
               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--grid", choices=GRIDS, default=None, help=f"named grid (default paper). {grids}")
    g = p.add_argument_group("grid overrides (default: the grid's own values)")
    g.add_argument("--hidden", type=int, nargs="+", help="hidden sizes h")
    g.add_argument("--dropout", type=float, nargs="+", help="dropout rates")
    g.add_argument("--lr", type=float, nargs="+", help="Adam learning rates")
    g.add_argument("--epochs", type=int, help="epochs per trial")
    g.add_argument("--batch-size", type=int, help="minibatch size")
    g.add_argument("--seeds", type=int, help="repeats per grid point (seeds 0..N-1)")
    g.add_argument("--subset", type=int, help="training images kept, class-balanced (test: N/6)")
    g.add_argument("--precision", choices=("fp32", "bf16"), help="matmul precision")
    g.add_argument("--output-activation", choices=("relu", "sigmoid", "identity"), help="decoder output")
    r = p.add_argument_group("where and how it runs")
    r.add_argument("--data-dir", help="folder with the Fashion-MNIST IDX files (else $TUNE_AE_DATA, cache, download)")
    r.add_argument("--storage-path", default=str(storage.DEFAULT_STORAGE), help="folder or URI for experiments")
    r.add_argument("--name", help="experiment name (default GRID-DATE-TIME)")
    r.add_argument("--resume", action="store_true", help="continue experiment --name (default: the newest one)")
    r.add_argument("--address", default=None, help="join this Ray cluster (also $RAY_ADDRESS) instead of a local one")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPU cores (torch threads) per trial")
    r.add_argument("--gpus-per-trial", type=gpus_arg, default=None, help="GPU share per trial; auto = split GPUs evenly")
    r.add_argument("--scheduler", choices=SCHEDULERS, default="fifo", help="asha stops poor trials early")
    r.add_argument("--max-failures", type=int, default=3, help="retries per crashed trial, from its checkpoint")
    r.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints")
    r.add_argument("--keep-checkpoints", type=int, default=2, help="checkpoints kept per trial")
    r.add_argument("--no-cuda-graphs", action="store_true", help="on CUDA, run the eager loop instead of replaying each epoch as a CUDA graph")
    r.add_argument("--no-report", action="store_true", help="skip figures and report.md (tables are still written)")
    return p


GRID_FLAGS = ("hidden", "dropout", "lr", "epochs", "batch_size", "seeds", "subset", "precision", "output_activation")


def plan(args: argparse.Namespace) -> tuple[str, Grid, SweepSettings, str | None, bool]:
    """Everything the sweep needs, validated: grid name, grid, settings, data dir, resume?"""
    storage_path = storage.check_storage(args.storage_path)
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in GRID_FLAGS if getattr(args, f) is not None]
        if args.grid or given:
            raise ConfigError(f"--resume continues the experiment as it was started; drop {' '.join(given) or '--grid'}")
        if args.name:
            folder = storage.pull(storage_path, args.name)
        elif storage.is_uri(storage_path):
            raise ConfigError(f"--resume with a URI storage path needs --name (the experiment under {storage_path})")
        else:
            folder = experiment.latest_experiment(storage_path)
        if folder is None or not (folder / experiment.META_FILE).is_file():
            where = storage.experiment_uri(storage_path, args.name) if args.name else storage_path
            raise ConfigError(f"nothing to resume: no tune_ae experiment at {where}; check --storage-path and --name")
        meta = experiment.read_meta(folder)
        grid = Grid(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["grid"].items()})
        settings = SweepSettings(**{**meta["settings"], "storage_path": storage_path, "name": folder.name})
        return meta["grid_name"], grid, settings, args.data_dir or meta["data"]["folder"], True
    grid_name = args.grid or "paper"
    grid = resolve(grid_name, **{f: getattr(args, f) for f in GRID_FLAGS})
    settings = SweepSettings(
        storage_path=storage_path, name=args.name or experiment.default_name(grid_name),
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial, scheduler=args.scheduler,
        max_failures=args.max_failures, checkpoint_every=args.checkpoint_every, keep_checkpoints=args.keep_checkpoints,
        cuda_graphs=not args.no_cuda_graphs,
    )
    if storage.exists(storage_path, settings.name):
        raise ConfigError(f"experiment {settings.name} already exists in {storage_path}; "
                          "pass --resume to continue it or a new --name")
    return grid_name, grid, settings, args.data_dir, False


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        grid_name, grid, settings, data_dir, resuming = plan(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    from tune_ae.data import DataError, load_fashion_mnist  # torch import deferred past flag checks

    try:
        data = load_fashion_mnist(data_dir, subset=grid.subset)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR

    from tune_ae import results, sweep  # ray import deferred past flag checks

    address = args.address or os.environ.get("RAY_ADDRESS")
    try:
        folder = sweep.run(grid_name, grid, settings, data, resuming, address)
    except ConfigError as err:  # found only once Ray is up: storage not shared, no Tune state
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    paths = results.save_tables(folder)
    trials = results.load_table(folder, "trials")
    print_summary(trials, folder, paths)
    status = 0 if (trials["status"] != "error").all() else 1
    if not args.no_report:
        status = make_report(folder, data_dir) or status
    if storage.is_uri(settings.storage_path):  # our files join Tune's at the URI
        ours = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                and (p.parent == folder and p.suffix in (".parquet", ".csv", ".md") or p.parent.name == "figures")]
        storage.push(settings.storage_path, settings.name, ours)
        print(f"  uploaded to {storage.experiment_uri(settings.storage_path, settings.name)}")
    return status


def make_report(folder: Path, data_dir: str | None) -> int:
    """Figures, summary and report.md; a failure here leaves the sweep's tables intact."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    from tune_ae.data import DataError
    from tune_ae.report import write_report

    try:
        print(f"  report: {write_report(folder, data_dir)}")
        return 0
    except (DataError, ValueError, FileNotFoundError) as err:
        print(f"error: report not written: {err}", file=sys.stderr)
        return 1


def report_main(argv: list[str] | None = None) -> int:
    """`python -m tune_ae.report EXPERIMENT_DIR [--data-dir DIR]`: (re)write an experiment's report."""
    p = Parser(prog="python -m tune_ae.report", description="Write figures and report.md for an experiment folder.")
    p.add_argument("experiment", help="experiment folder (holds tune_ae.json)")
    p.add_argument("--data-dir", help="Fashion-MNIST folder, if not where the sweep read it")
    args = p.parse_args(argv)
    folder = Path(args.experiment).expanduser().resolve()
    if not (folder / experiment.META_FILE).is_file():
        print(f"error: {folder} is not a tune_ae experiment (no {experiment.META_FILE}); pass the folder run.py printed", file=sys.stderr)
        return USAGE_ERROR
    return make_report(folder, args.data_dir)


def print_summary(trials, folder: Path, paths: dict) -> None:
    columns = ["hidden", "dropout", "lr", "seed", "epochs_done", "final_train_loss", "final_val_loss",
               "best_val_loss", "best_epoch", "wall_time_s", "device", "status"]
    print("\n" + trials[columns].to_string(index=False, float_format=lambda v: f"{v:.5g}"))
    print(f"\nexperiment: {folder}")
    for name, path in paths.items():
        print(f"  {name}: {path}")

if __name__ == "__main__":
    sys.exit(main())


def bench_main(argv: list[str] | None = None) -> int:
    """`python -m tune_ae.bench`: the baseline pipeline and ours, measured in one run."""
    p = Parser(prog="python -m tune_ae.bench", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
               description="Time the report-style pipeline against tune_ae's loop, with the matmul peak and Ray overhead.")
    p.add_argument("--data-dir", help="Fashion-MNIST folder (else $TUNE_AE_DATA, cache)")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 512], help="hidden sizes to time")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement (after one warm-up)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    p.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"])
    p.add_argument("--no-ray", action="store_true", help="skip the Ray overhead measurement")
    p.add_argument("--quick", action="store_true", help="6,000 images, 1 timed epoch: a sub-minute check")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.threads < 1 or min(args.hidden) < 1:
        p.error("--epochs, --threads and --hidden must be >= 1")
    from tune_ae import bench
    from tune_ae.data import DataError

    try:
        report = bench.run_benchmark(args.data_dir, args.hidden, 1 if args.quick else args.epochs,
                                     6000 if args.quick else None, args.threads, args.precision, not args.no_ray)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return USAGE_ERROR
    bench.print_report(report)
    if args.json:
        bench.write_json(report, args.json)
    return 0
