"""tune_ae.labels: one way to name a value, a trial and a configuration everywhere."""

import subprocess
import sys

import numpy as np
import pandas as pd

from tune_ae import labels


def test_values_print_as_a_reader_writes_them():
    assert [labels.value(v) for v in (0.1, 3e-4, 0.0, np.float64(0.5), 64, np.int64(64), "relu")] == [
        "0.1", "0.0003", "0", "0.5", "64", "64", "relu"]


def test_one_label_function_gives_every_form():
    config = {"hidden": 512, "dropout": 0.1, "seed": 2, "lr": 1e-3}
    assert labels.label(config, ["hidden", "dropout", "seed"]) == "h=512 dropout=0.1 seed=2"  # progress lines
    row = pd.Series({"hidden": 64, "dropout": 0.0, "output_activation": "identity"})
    assert labels.trial_label(row, ["dropout"]) == "h = 64\ndropout = 0"  # beside the reconstructions
    assert labels.configuration_label(row, ["dropout", "output_activation"]) == "dropout 0, output_activation identity"
    assert labels.configuration_label(row, []) == "autoencoder"
    assert labels.panel_title(["dropout", "lr"], (0.2, 0.003)) == "dropout = 0.2 | lr = 0.003"
    assert labels.panel_title([], (None, None)) == ""


def test_varying_fields_of_a_table_or_a_mapping():
    table = pd.DataFrame({"hidden": [32, 64, 32], "dropout": [0.1, 0.1, 0.1], "lr": [1e-3, 3e-3, float("nan")],
                          "seed": [0, 1, 0]})
    assert labels.varying(table) == ["lr", "seed"]  # hidden is not among the others; dropout has one value
    assert labels.label_columns(table) == ["hidden", "lr", "seed"]
    assert labels.varying(table.assign(lr=[1e-3, float("nan"), float("nan")])) == ["seed"]  # NaN is no value
    assert labels.varying({"dropout": [0.0, 0.2], "weight_decay": [0, 0]}) == ["dropout"]
    assert labels.varying(table, ["hidden"]) == ["hidden"]


def test_labels_need_no_pandas():
    code = "import sys; import tune_ae.labels; print('pandas' in sys.modules, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "False"], done.stderr[-2000:]
