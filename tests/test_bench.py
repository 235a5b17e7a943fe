"""The benchmark in-process on tiny data (shrunken config), its command's argument errors, the
Ray overhead's arithmetic over parallel slots, and a failed sweep refused instead of timed."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from tune_ae.bench import measure as bench
from tune_ae.data import load_fashion_mnist


@pytest.mark.slow  # times torchvision's pipeline and ours, 4 configurations
def test_benchmark_produces_every_field_on_tiny_data(tiny_dir, tmp_path):
    data = load_fashion_mnist(tiny_dir, expect_full=False)
    report = bench.run_benchmark(data, [8, 32], epochs=1, subset=None, threads=1, precisions=["fp32", "bf16"],
                                 with_ray=False, peak_size=256)
    assert {"device", "machine", "threads", "versions", "matmul_peak_gflops", "results"} <= set(report) and "ray" not in report
    assert report["machine"]["cores"] == os.cpu_count() and report["machine"]["date"][:2] == "20"
    assert report["device"] == "cpu" and set(report["matmul_peak_gflops"]) == {"fp32", "bf16"}
    assert all(v > 0 for v in report["matmul_peak_gflops"].values())
    assert {(r["hidden"], r["precision"]) for r in report["results"]} == {(8, "fp32"), (8, "bf16"), (32, "fp32"), (32, "bf16")}
    for r in report["results"]:
        for key in ("baseline_epoch_s", "ours_epoch_s", "speedup", "baseline_images_per_s", "ours_images_per_s",
                    "ours_train_gflops", "fraction_of_peak", "ours_val_gflops"):
            assert r[key] > 0, key
        assert r["baseline_images_per_s"] * r["baseline_epoch_s"] == pytest.approx(len(data.train_images))
    bench.write_json(report, tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["hidden"] == 8


def test_peak_is_a_synchronised_rate_on_the_given_device():
    assert bench.matmul_peak_gflops(torch.float32, torch.device("cpu"), size=256, repeats=2) > 0
    assert set(bench.peak_dtypes(torch.device("cpu"))) == {"fp32", "bf16"}
    assert "tf32" in bench.peak_dtypes(torch.device("cuda"))  # on a GPU the tensor-core rate too


def test_bench_usage_errors_name_the_bench_command():
    done = subprocess.run([sys.executable, "-m", "tune_ae.bench", "--epochs", "0"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "python -m tune_ae.bench --help" in done.stderr and "tune_ae.run" not in done.stderr
    assert "--epochs must be >= 1, got 0" in done.stderr  # the flag that is wrong, not a list of candidates


def test_training_span_counts_the_parallel_slots_not_the_sum():
    # Two trials training side by side for 5 s each take 5 s of wall time, not 10 (the old sum).
    assert bench.training_span([5.0, 5.0], slots=2) == 5.0
    assert bench.training_span([3.0, 3.0, 3.0, 3.0], slots=2) == 6.0  # two rounds of two
    assert bench.training_span([1.0, 1.0, 1.0, 5.0], slots=2) == 5.0  # the longest trial cannot be split
    assert bench.training_span([2.0, 4.0], slots=1) == 6.0  # one slot: one after the other
    assert bench.parallel_slots(2, cpus_per_trial=1.0, cpus=2) == 2
    assert bench.parallel_slots(4, cpus_per_trial=1.0, cpus=2) == 2  # the CPUs bound it
    assert bench.parallel_slots(1, cpus_per_trial=1.0, cpus=16) == 1  # and the trials
    assert bench.parallel_slots(4, cpus_per_trial=2.0, cpus=2) == 1
    assert bench.parallel_slots(4, cpus_per_trial=0.5, cpus=2) == 4
    assert bench.parallel_slots(4, cpus_per_trial=1.0, gpus_per_trial=1.0, cpus=16, gpus=1) == 1  # a whole GPU each
    assert bench.parallel_slots(4, cpus_per_trial=1.0, gpus_per_trial=None, cpus=16, gpus=1) == 4  # auto shares it


def test_ray_overhead_is_wall_time_beyond_the_work_on_the_slots(monkeypatch):
    trials = pd.DataFrame({"hidden": [32, 64], "status": ["done", "done"], "train_time_s": [5.0, 5.0],
                           "analysis_time_s": [0.5, 0.5]})
    sweep = bench.TimedSweep(wall_s=8.0, trials=trials, settings={"cpus_per_trial": 1.0, "gpus_per_trial": None},
                             timings={})
    monkeypatch.setattr(bench, "timed_sweep", lambda *args, **kwargs: sweep)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    ray = bench.ray_overhead("unused")
    assert ray["slots"] == 2 and ray["training_span_s"] == 5.0 and ray["work_span_s"] == 5.5
    assert ray["overhead_s"] == pytest.approx(2.5)  # the old sum made it 8 - 10 = -2: Ray "faster than free"
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert bench.ray_overhead("unused")["overhead_s"] == pytest.approx(-3.0)  # one slot: both in turn


def fake_sweep(returncode: int, stderr: str):
    """subprocess.run standing in for `python -m tune_ae.run`: it exits as told and writes nothing."""
    return lambda command, **kwargs: subprocess.CompletedProcess(command, returncode, "", stderr)


def test_a_failed_sweep_is_refused_not_timed(monkeypatch):
    monkeypatch.setattr(bench.subprocess, "run", fake_sweep(1, "2 done...\nerror: trial h=32 failed: RuntimeError: boom\n"))
    with pytest.raises(bench.SweepFailed) as failed:
        bench.ray_overhead("unused")
    assert str(failed.value) == "the sweep exited with 1: error: trial h=32 failed: RuntimeError: boom"
    monkeypatch.setattr(bench.subprocess, "run", fake_sweep(0, ""))
    with pytest.raises(bench.SweepFailed, match="exited with 0 but left no trials"):
        bench.ray_overhead("unused")


def test_a_sweep_that_exits_0_with_a_trial_not_done_is_refused():
    trials = pd.DataFrame({"hidden": [32, 64, 128], "status": ["done", "error", "stopped early"]})
    assert bench.sweep_problem(0, trials, "") == "2 of 3 trials not done: h=64 error, h=128 stopped early"
    assert bench.sweep_problem(0, trials.iloc[:1], "") is None
    assert bench.sweep_problem(130, trials.iloc[:1], None) == "the sweep exited with 130"


def test_the_test_timing_script_takes_only_a_whole_pass_as_a_time():
    """benchmarks/tests.py: the README's test times; a tier with a failure or a skip is not one."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("timing", Path(__file__).parent.parent / "benchmarks" / "tests.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.whole_pass("306 passed in 213.21s (0:03:33)") == ("306 passed", 213.21)
    assert script.whole_pass("262 passed, 44 deselected in 20.31s") == ("262 passed, 44 deselected", 20.31)
    assert script.whole_pass("305 passed, 1 xfailed in 200.00s") == ("305 passed, 1 xfailed", 200.0)  # as expected
    for line in ("1 failed, 305 passed in 200.01s (0:03:20)", "300 passed, 6 skipped in 10.00s", "305 passed, 1 xpassed in 9.00s",
                 "==== 2 errors in 3.10s ====", "no tests ran in 0.01s", "Interrupted: 1 error during collection"):
        assert script.whole_pass(line) is None, line


def test_the_gpu_script_skips_what_its_budget_cannot_hold(tmp_path):
    """benchmarks/gpu.sh runs on a lent GPU machine only: here its bash and its budget, every step skipped."""
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "gpu.sh"
    done = subprocess.run(["bash", str(script), str(tmp_path / "data"), str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "BUDGET_S": "0", "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    skipped = [line[3:].split(":")[0] for line in done.stdout.splitlines() if line.startswith("== ")
               and line.endswith("skipped, 0 s of the budget left")]
    assert skipped[:4] == ["check", "paper", "alone-512", "bench"] and "cores" in skipped, done.stdout
    assert "ray 2.60.0" in done.stdout and not list((tmp_path / "out").iterdir())  # versions said, nothing run
    only = subprocess.run(["bash", str(script), str(tmp_path / "data"), str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "BUDGET_S": "0", "PYTHON": sys.executable,
                                                       "STEPS": "paper cores"})
    assert [line[3:].split(":")[0] for line in only.stdout.splitlines() if "skipped" in line] == ["paper", "cores"]
