import json
import subprocess
import sys


def test_quick_benchmark_produces_every_field(real_data_dir, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "tune_ae.bench", "--quick", "--data-dir", str(real_data_dir), "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {"device", "threads", "versions", "matmul_peak_gflops", "results", "ray"} <= set(report)
    assert report["matmul_peak_gflops"]["fp32"] > 0 and report["matmul_peak_gflops"]["bf16"] > 0
    assert {(r["hidden"], r["precision"]) for r in report["results"]} == {(64, "fp32"), (64, "bf16"), (512, "fp32"), (512, "bf16")}
    for r in report["results"]:
        for key in ("baseline_epoch_s", "ours_epoch_s", "speedup", "baseline_images_per_s", "ours_images_per_s",
                    "ours_train_gflops", "fraction_of_peak", "ours_val_gflops"):
            assert r[key] > 0, key
    assert report["ray"]["trials"] == 2 and report["ray"]["sweep_wall_s"] > report["ray"]["trials_train_s"] > 0
    assert "speedup" in done.stdout and "Ray overhead" in done.stdout
