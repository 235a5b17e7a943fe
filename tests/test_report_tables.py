"""report/tables.py: the numbers and sentences of the report, and what `run --no-report` may import."""

import subprocess
import sys

import pandas as pd

from tune_ae.report import tables


def spread_of(rows):
    columns = ["hidden", "dropout", "output_activation", "n", "epochs_done", "final_mean", "final_sd", "best_mean",
               "best_sd", "dead_units", "pca", "x_pca"]
    table = pd.DataFrame(rows, columns=columns[:6] + ["pca"])
    table["final_sd"] = table["best_sd"] = 0.0001
    table["best_mean"], table["dead_units"] = table["final_mean"], 3.0
    table["x_pca"] = table["final_mean"] / table["pca"]
    return table[columns]


def test_the_finding_follows_the_table():
    spread = spread_of([
        (64, 0.1, "relu", 3, 100, 0.0118, 0.0104), (64, 0.0, "identity", 3, 100, 0.0110, 0.0104),
        (512, 0.1, "relu", 3, 100, 0.0039, 0.0006), (512, 0.0, "identity", 3, 100, 0.00084, 0.0006),
    ])
    assert tables.findings(spread) == [
        "At h = 64 the best configuration (dropout 0, output_activation identity) reaches 1.1x PCA's error "
        "(0.011 against 0.0104, n = 3); the report's recipe (dropout 0.1, output_activation relu) 1.1x.",
        "At h = 512 the best configuration (dropout 0, output_activation identity) reaches 1.4x PCA's error "
        "(0.00084 against 0.0006, n = 3); the report's recipe (dropout 0.1, output_activation relu) 6.5x.",
    ]
    worse = spread.assign(final_mean=spread["final_mean"][::-1].values)  # a different table, a different finding
    worse["x_pca"] = worse["final_mean"] / worse["pca"]
    assert tables.findings(worse) != tables.findings(spread)


def test_no_report_imports_no_plotting_library():
    """`run --no-report` prints the trial overview; that must not load matplotlib or seaborn."""
    code = """
import sys
from pathlib import Path

import pandas as pd

from tune_ae import finish

trials = pd.DataFrame({"hidden": [64, 32], "dropout": [0.1, 0.0], "epochs_done": [3, 1],
                       "final_val_loss": [0.02, None], "best_val_loss": [0.02, None], "status": ["done", "error"],
                       "error": [None, "ValueError: diverged"]})
finish.print_summary(trials, Path("experiment"), {})
print("loaded:", sorted(m for m in ("matplotlib", "seaborn") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "loaded: []", done.stdout
    widths = [line.split()[0] for line in lines if line.split() and line.split()[0] in ("32", "64")]
    assert widths == ["32", "64"]  # the overview was printed, sorted by width


def test_a_data_dir_that_is_not_a_folder_is_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    (tmp_path / "e" / "tune_ae").mkdir(parents=True)
    (tmp_path / "e" / "tune_ae" / "experiment.json").write_text("{}")
    done = subprocess.run([sys.executable, "-m", "tune_ae.report", str(tmp_path / "e"), "--data-dir", str(tmp_path / "no")],
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "--data-dir" in lines[0] and "is not a folder" in lines[0], done.stderr
