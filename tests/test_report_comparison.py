"""report/comparison.py: the table and labels of experiments side by side (figures: test_compare.py)."""

from pathlib import Path

import pandas as pd

from tune_ae.report import comparison


def best(rows):
    return pd.DataFrame(rows, columns=["experiment", "hidden", "val_loss", "pca"]).assign(
        x_pca=lambda t: t["val_loss"] / t["pca"])


def test_a_row_per_width_a_column_per_experiment_and_pca_once_when_the_data_agree():
    table = best([("grid", 64, 0.02, 0.01), ("grid", 512, 0.006, 0.0006), ("search", 64, 0.015, 0.01)])
    assert comparison.same_data(table)
    assert comparison.markdown(table).splitlines() == [
        "| h | grid | search | PCA, k = h |", "|---|---|---|---|",
        "| 64 | 0.02 (2x) | 0.015 (1.5x) | 0.01 |", "| 512 | 0.006 (10x) | - | 0.0006 |"]


def test_experiments_on_other_data_show_each_pca():
    table = best([("full", 64, 0.02, 0.01), ("subset", 64, 0.03, 0.011)])
    assert not comparison.same_data(table)
    assert comparison.markdown(table).splitlines()[-1] == "| 64 | 0.02 (2x) | 0.03 (2.73x) | 0.01 / 0.011 |"


def test_experiments_sharing_a_name_are_told_apart_by_their_storage():
    assert comparison.names([Path("/a/x"), Path("/b/x"), Path("/b/y")]) == ["a/x", "b/x", "y"]


def test_a_ratio_that_cannot_be_taken_is_left_out_and_like_names_get_their_paths():
    table = best([("a", 64, 0.02, 0.0)])
    table["x_pca"] = float("nan")
    assert comparison.markdown(table).splitlines()[-1] == "| 64 | 0.02 | 0 |"
    assert comparison.names([Path("/p1/s/a"), Path("/p2/s/a")]) == ["/p1/s/a", "/p2/s/a"]
