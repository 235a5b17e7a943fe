"""`tune-ae compare`: two finished experiments side by side, as files, and its bad input."""

import shutil
import subprocess
import sys

import pandas as pd


def compare(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tune_ae", "compare", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_two_experiments_side_by_side_and_what_is_refused(smoke_experiment, tmp_path):
    a, b = tmp_path / "store" / "a", tmp_path / "store" / "b"
    shutil.copytree(smoke_experiment[0], a)
    shutil.copytree(smoke_experiment[0], b)
    trials = pd.read_parquet(b / "trials.parquet")
    trials["final_val_loss"] *= 2  # b: twice a's error at every width
    trials.to_parquet(b / "trials.parquet")
    done = compare(str(a), str(b), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out" / "compare.md").read_text().splitlines()
    assert lines[0] == "| h | a | b | PCA, k = h |"
    widths = sorted(pd.read_parquet(a / "trials.parquet")["hidden"].unique())
    assert [int(line.split("|")[1]) for line in lines[2:]] == widths
    for line in lines[2:]:
        _, h, in_a, in_b, pca, _ = line.split("|")
        value_a, ratio_a = in_a.split()
        value_b = in_b.split()[0]
        assert float(value_b) == float(f"{2 * float(value_a):.4g}")
        assert float(ratio_a.strip("(x)")) == float(f"{float(value_a) / float(pca):.3g}")
    assert all((tmp_path / "out" / f"{name}.png").stat().st_size > 10_000 for name in ("final_vs_h", "curves"))
    assert (tmp_path / "out" / "compare.md").read_text() in done.stdout

    for args, code, said in ((["/nonexistent/x", str(a)], 2, "is not a tune_ae experiment"),
                             ([str(a), str(a)], 2, "given twice")):
        refused = compare(*args, "--out", str(tmp_path / "no"))
        assert refused.returncode == code and refused.stderr.count("\n") == 1 and said in refused.stderr, refused.stderr
        assert not (tmp_path / "no").exists()
