"""The CLI end to end, in subprocesses: smoke sweep, bad input, and a SIGKILLed driver resumed."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from tune_ae import train
from tune_ae.data import load_fashion_mnist
from tune_ae.experiment import read_meta

from conftest import run_cli


def test_smoke_grid_end_to_end(smoke_experiment, real_data_dir):
    folder, done = smoke_experiment
    for name in ("epochs.parquet", "epochs.csv", "trials.parquet", "trials.csv", "tune_ae.json"):
        assert (folder / name).is_file()
        assert str(folder / name) in done.stdout or name == "tune_ae.json"
    epochs = pd.read_parquet(folder / "epochs.parquet")
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 2 and sorted(trials["hidden"]) == [32, 64] and (trials["status"] == "done").all()
    assert len(epochs) == 2 * 3 and sorted(set(epochs["epoch"])) == [1, 2, 3]
    assert epochs[["train_loss", "val_loss"]].map(lambda v: 0 < v < 1).all().all()
    for _, t in epochs.groupby("trial_id"):
        assert t["train_loss"].is_monotonic_decreasing and t["val_loss"].iloc[-1] < t["val_loss"].iloc[0]
    assert pd.read_csv(folder / "trials.csv")["best_val_loss"].tolist() == pytest.approx(trials["best_val_loss"].tolist())
    meta = read_meta(folder)
    assert meta["grid_name"] == "smoke" and meta["grid"]["hidden"] == [32, 64]
    assert meta["runs"][0]["command"][-6:] == ["--data-dir", str(real_data_dir), "--storage-path", str(folder.parent), "--name", "s"]
    assert torch.__version__.startswith(meta["runs"][0]["versions"]["torch"])
    assert meta["data"]["train_images"] == 3000 and meta["data"]["test_images"] == 500
    assert "final_val_loss" in done.stdout  # the summary table


@pytest.mark.parametrize(
    "args, words",
    [
        (["--grid", "papr"], "argument --grid: invalid choice: 'papr'"),
        (["--hidden", "0"], "hidden must be >= 1"),
        (["--hidden", "sixty"], "argument --hidden: invalid int value: 'sixty'"),
        (["--dropout", "1"], "dropout must be in [0, 1)"),
        (["--lr", "0"], "lr must be > 0"),
        (["--epochs", "-3"], "epochs must be >= 1"),
        (["--gpus-per-trial", "lots"], "expected 'auto' or a number"),
        (["--cpus-per-trial", "0"], "cpus-per-trial must be > 0"),
        (["--storage-path", "/etc/hostname/sub"], "storage path /etc/hostname/sub is not writable"),
        (["--resume", "--name", "nope"], "nothing to resume"),
        (["--resume", "--hidden", "64"], "--resume continues the experiment as it was started; drop --hidden"),
        (["--data-dir", "/nonexistent/fmnist"], "Fashion-MNIST not found (looked in /nonexistent/fmnist"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, args, words):
    if "--storage-path" not in args:
        args = [*args, "--storage-path", str(tmp_path / "store")]
    done = run_cli(*args, env={"TUNE_AE_DATA": "", "XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_existing_experiment_is_not_overwritten(tmp_path):
    (tmp_path / "store" / "taken").mkdir(parents=True)
    (tmp_path / "store" / "taken" / "keep.txt").write_text("mine")
    done = run_cli("--name", "taken", "--storage-path", str(tmp_path / "store"), timeout=60)
    assert done.returncode == 2 and "already exists" in done.stderr and "--resume" in done.stderr
    assert (tmp_path / "store" / "taken" / "keep.txt").read_text() == "mine"


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_sigkilled_driver_resumes_to_identical_results(real_data_dir, tmp_path):
    store, folder = tmp_path / "store", tmp_path / "store" / "kill"
    sweep_args = ["--grid", "smoke", "--hidden", "128", "256", "--subset", "6000", "--epochs", "16",
                  "--batch-size", "100", "--checkpoint-every", "2"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "tune_ae.run", *sweep_args, "--data-dir", str(real_data_dir),
         "--storage-path", str(store), "--name", "kill"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        # Kill once every trial has a checkpoint and Tune has saved its experiment state.
        wait_for(lambda: len(list(folder.glob("*/checkpoint_*"))) >= 2 and list(folder.glob("experiment_state-*.json")),
                 timeout=120, what="checkpoints")
        assert driver.poll() is None, "the sweep ended before the kill"
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        # The embedded Ray's own processes share the driver's session: end them too.
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not (folder / "trials.parquet").exists()  # killed before it could write its tables

    resumed = run_cli("--resume", "--name", "kill", "--storage-path", str(store))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    epochs = pd.read_parquet(folder / "epochs.parquet")
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "done").all()
    for _, t in epochs.groupby("trial_id"):
        assert t["epoch"].tolist() == list(range(1, 17))
    assert len(read_meta(folder)["runs"]) == 2  # the record keeps both command lines

    # The same sweep, uninterrupted, in this process with the trials' thread count.
    data = load_fashion_mnist(real_data_dir, subset=6000)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    train_x, val_x = train.to_device(data.train_images, cpu), train.to_device(data.test_images, cpu)
    from tune_ae.grids import resolve

    for config in resolve("smoke", hidden=[128, 256], subset=6000, epochs=16, batch_size=100).trial_configs():
        reference = list(train.train(config, train_x, val_x))
        got = epochs[epochs["hidden"] == config.hidden]
        assert got["train_loss"].tolist() == [m["train_loss"] for m in reference]
        assert got["val_loss"].tolist() == [m["val_loss"] for m in reference]


def test_uri_storage_path_end_to_end(real_data_dir, tmp_path):
    remote = f"file://{tmp_path}/bucket/sweeps"
    done = run_cli("--grid", "smoke", "--data-dir", str(real_data_dir), "--storage-path", remote, "--name", "u",
                   "--no-report", env={"TUNE_AE_MIRROR": str(tmp_path / "mirror")})
    assert done.returncode == 0, done.stderr[-3000:]
    remote_dir, mirror = tmp_path / "bucket" / "sweeps" / "u", tmp_path / "mirror" / "u"
    for folder in (remote_dir, mirror):
        assert (folder / "tune_ae.json").is_file()
        assert len(pd.read_parquet(folder / "epochs.parquet")) == 6
    assert len(list(remote_dir.glob("train_autoencoder_*/checkpoint_*"))) == 2  # Tune wrote the trials there
    again = run_cli("--grid", "smoke", "--storage-path", remote, "--name", "u", timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr
