"""The benchmark in-process on tiny data (shrunken config), and its command's argument errors."""

import json
import subprocess
import sys

import pytest
import torch

from tune_ae import bench
from tune_ae.data import load_fashion_mnist


def test_benchmark_produces_every_field_on_tiny_data(tiny_dir, tmp_path):
    data = load_fashion_mnist(tiny_dir, expect_full=False)
    report = bench.run_benchmark(data, [8, 32], epochs=1, subset=None, threads=1, precisions=["fp32", "bf16"],
                                 with_ray=False)
    assert {"device", "threads", "versions", "matmul_peak_gflops", "results"} <= set(report) and "ray" not in report
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
