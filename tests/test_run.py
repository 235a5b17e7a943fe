"""The CLI end to end, in subprocesses: smoke sweep, bad input, and a SIGKILLed driver resumed."""

import os
import shutil
import signal
import subprocess
import sys
import time

from pathlib import Path

import pandas as pd
import pytest
import torch

from tune_ae.experiment import read_meta

from conftest import end_session, run_cli, start_cli


def test_smoke_grid_end_to_end(smoke_experiment, real_data_dir):
    folder, done = smoke_experiment
    for name in ("epochs.parquet", "epochs.csv", "trials.parquet", "trials.csv", "tune_ae/experiment.json"):
        assert (folder / name).is_file()
        assert str(folder / name) in done.stdout or name == "tune_ae/experiment.json"
    epochs = pd.read_parquet(folder / "epochs.parquet")
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 2 and sorted(trials["hidden"]) == [32, 64] and (trials["status"] == "done").all()
    assert len(epochs) == 2 * 3 and sorted(set(epochs["epoch"])) == [1, 2, 3]
    assert epochs[["train_loss", "val_loss"]].map(lambda v: 0 < v < 1).all().all()
    for _, t in epochs.groupby("trial_id"):
        assert t["train_loss"].is_monotonic_decreasing and t["val_loss"].iloc[-1] < t["val_loss"].iloc[0]
    assert pd.read_csv(folder / "trials.csv")["best_val_loss"].tolist() == pytest.approx(trials["best_val_loss"].tolist())
    meta = read_meta(folder)
    assert meta["grid_name"] == "smoke" and meta["grid"]["axes"]["hidden"] == [32, 64]
    assert meta["runs"][0]["command"][-6:] == ["--data-dir", str(real_data_dir), "--storage-path", str(folder.parent), "--name", "s"]
    assert torch.__version__.startswith(meta["runs"][0]["versions"]["torch"])
    assert meta["data"]["train_images"] == 3000 and meta["data"]["test_images"] == 500
    assert "final_val_loss" in done.stdout and "2 done (of 2 trials)" in done.stdout  # the summary
    # The progress view: one line per trial event, no Tune status boxes.
    assert done.stdout.count(" started (") == 2 and done.stdout.count(" done  val_loss") == 2
    assert "╭" not in done.stdout and "Trial status" not in done.stdout and "+---" not in done.stdout
    assert (folder / "tune.log").stat().st_size > 0  # Tune's own log, kept with the experiment


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
        (["--cpus-per-trial", "0"], "cpus-per-trial must be auto or a finite number > 0"),
        (["--storage-path", "/etc/hostname/sub"], "storage path /etc/hostname/sub is not writable"),
        (["--resume", "--name", "nope"], "nothing to resume"),
        (["--resume", "--hidden", "64"], "--resume continues the experiment as it was started; drop --hidden"),
        (["--data-dir", "/nonexistent/fmnist"], "Fashion-MNIST not found (looked in /nonexistent/fmnist"),
        # Requests nothing could ever satisfy: refused before a trial is queued, not pending forever.
        (["--gpus-per-trial", "nan"], "gpus-per-trial must be auto, a fraction in [0, 1] or a whole number, got nan"),
        (["--gpus-per-trial", "inf"], "gpus-per-trial must be auto, a fraction in [0, 1] or a whole number, got inf"),
        (["--cpus-per-trial", "inf"], "cpus-per-trial must be auto or a finite number > 0, got inf"),
        (["--resume", "--name", "../other"], "name must be a plain folder name"),
        (["--name", ""], "name must be a plain folder name"),
        (["--hidden", "64", "--dropout", "2"], "dropout must be in [0, 1)"),
        (["--name", "n" * 256], "name must be at most 200 bytes, got 256"),
        (["--address", "10.0.0.5"], "--address '10.0.0.5' is not HOST:PORT"),
        (["--address", "ray://10.0.0.5:10001"], "Ray Client (ray://) is not supported"),
        (["--address", "RAY://10.0.0.5:10001"], "--address 'RAY://10.0.0.5:10001': Ray Client (ray://) is not supported"),
        (["--name", "a\nb"], "name must not contain control characters"),
        # Searches: ranges checked against the field's limits before anything starts.
        (["--search", "random", "--lr", "1e-2:1e-4"], "--lr 1e-2:1e-4: the low end must be below the high end"),
        (["--search", "random", "--dropout", "0:2"], "--dropout 0:2: dropout must be in [0, 1), got 2.0"),
        (["--search", "random", "--lr", "a:b"], "argument --lr: 'a:b': the ends of a lr range must be numbers"),
        (["--search", "optuna", "--weight-decay", "0:1e-3:log"], "--weight-decay 0:1e-3:log: a log range needs a low end > 0"),
        (["--search", "random", "--hidden", "8:x"], "the ends of a hidden range must be integers"),
        (["--lr", "1e-4:1e-2"], "a range (--lr 1e-4:1e-2) needs a search: add --search random or --search optuna"),
        (["--search", "optuna"], "--search optuna has nothing to search"),
        (["--search", "random", "--lr", "1e-4:1e-2", "3e-3"], "--lr takes one range or a list of values, not both"),
        (["--search", "random", "--output-activation", "relu:sigmoid"], "argument --output-activation: invalid choice"),
        (["--search", "random", "--lr", "1e-4:1e-2", "--num-samples", "0"], "num-samples must be an integer >= 1"),
        (["--extend", "--seeds", "2"], "--extend adds trials to an existing experiment: give --name"),
        (["--extend", "--name", "nope"], "nothing to resume: no tune_ae experiment"),
        (["--dashboard", "70000"], "--dashboard takes a port in 1..65535, got 70000"),
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


@pytest.mark.parametrize(
    "args, words",
    [
        (["--gpus-per-trial", "1"], "no node can run a trial that asks for 1 CPU(s) and 1 GPU(s): the largest has"),
        (["--cpus-per-trial", "64"], "no node can run a trial that asks for 64 CPU(s) and 0 GPU(s)"),
        (["--address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
        (["--data-dir", "/typo"], "looked in /typo, the folder given"),  # while $TUNE_AE_DATA holds the data
    ],
)
def test_input_refused_once_ray_or_the_data_is_asked(real_data_dir, tmp_path, args, words):
    started = time.monotonic()
    done = run_cli("--grid", "smoke", "--storage-path", str(tmp_path / "store"), "--name", "x", *args,
                   env={"TUNE_AE_DATA": str(real_data_dir)}, timeout=60)
    assert time.monotonic() - started < 30
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and words in lines[0], done.stderr
    assert not (tmp_path / "store" / "x").exists()  # a refused sweep leaves no folder to collide with


def test_refused_commands_create_no_folder_and_a_broken_record_is_one_line(tmp_path):
    done = run_cli("--hidden", "0", "--storage-path", str(tmp_path / "new" / "store"), timeout=60)
    assert done.returncode == 2 and not (tmp_path / "new").exists()  # refused before anything was created
    folder = tmp_path / "store" / "broken"
    folder.mkdir(parents=True)
    for text in ("", "{not json", "[]"):  # an older tune_ae's record at the top, damaged (Tune's sync could empty it)
        (folder / "tune_ae.json").write_text(text)
        for args in (["-m", "tune_ae.run", "--resume", "--name", "broken", "--storage-path", str(tmp_path / "store")],
                     ["-m", "tune_ae.report", str(folder)]):
            done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 2 and len(lines) == 1 and "tune_ae.json" in lines[0], done.stderr


def alone(command: list[str]) -> list[str]:
    """`command` where no other process of the machine is visible: a new PID namespace with its
    own /proc (as root; else inside a user namespace). Ray's `auto` looks for a running Ray in
    the process table (any gcs_server) and in <TMPDIR>/ray's address file, so a Ray beside the
    test (this suite's own, a developer's) would otherwise be found."""
    import subprocess

    for prefix in (["unshare", "--pid", "--fork", "--mount-proc"],
                   ["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc"]):
        if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0:
            return [*prefix, *command]
    pytest.fail("`unshare` cannot make a PID namespace here (needs root or user namespaces); "
                "the --address auto test needs one to hide the machine's other Rays", pytrace=False)


@pytest.mark.slow  # the command end to end, in a PID namespace of its own
def test_address_auto_without_a_cluster(tmp_path):
    command = alone([sys.executable, "-m", "tune_ae.run", "--grid", "smoke", "--address", "auto",
                     "--storage-path", str(tmp_path), "--name", "x"])
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env={**env, "TMPDIR": str(tmp_path)})
    assert done.returncode == 2 and "cannot join the Ray cluster at auto" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_other_commands_name_their_own_help(tmp_path):
    bogus = subprocess.run([sys.executable, "-m", "tune_ae.report", "--bogus"], capture_output=True, text=True)
    assert bogus.returncode == 2 and "see python -m tune_ae.report --help" in bogus.stderr
    assert bogus.stderr.count("\n") == 1


# A trial failing beside one that finishes: test_dashboard.py's browser test (one sweep for both).
# SIGTERM then Ctrl-C, then a resume with new settings: test_faults.py (one sweep for the fault
# matrix's interruption, the lock and a copied folder).


def test_a_sweep_killed_before_tunes_first_save_starts_over_and_its_trials_all_failing_is_one_line_each(
        real_data_dir, tmp_path):
    """The driver died after writing tune_ae.json, before Tune's first save: --resume starts it over.
    Its one trial cannot allocate its model: every trial failed, said in one line each (one sweep
    for both, as each costs a Ray start). A restarted sweep that trains to the end: the copied
    folder's resume in test_faults.py."""
    from tune_ae import experiment, grids
    from tune_ae.config import SweepSettings

    folder = tmp_path / "k"
    one_trial = grids.override(grids.GRIDS["smoke"], {"hidden": 1000000000})  # one trial is enough: a start over
    experiment.write_meta(folder, "smoke", one_trial, SweepSettings(storage_path=str(tmp_path), name="k"),
                          {"folder": str(real_data_dir), "subset": 3000, "train_images": 3000, "test_images": 500},
                          experiment.this_run(None))
    stray = folder / "train_autoencoder_0_hidden=1000000000"
    stray.mkdir()
    (stray / "params.json").write_text("{}")
    fresh = run_cli("--grid", "smoke", "--storage-path", str(tmp_path), "--name", "k", timeout=60)
    assert fresh.returncode == 2 and "already exists" in fresh.stderr and "--resume" in fresh.stderr
    resumed = run_cli("--resume", "--name", "k", "--storage-path", str(tmp_path), "--max-failures", "0")
    assert "it has no Tune state to restore" in resumed.stdout
    assert [p.name for p in folder.glob(".abandoned-*/*")] == [stray.name]  # kept, out of the way
    assert read_meta(folder)["runs"][-1]["restarted"] is True
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    assert resumed.stderr.strip().splitlines() == [
        "error: 1 trial(s) failed (see the error column)",
        f"error: report not written: {folder} has no reported epochs yet (1 trial(s), none trained); nothing to plot",
    ]
    assert pd.read_csv(folder / "trials.csv")["status"].tolist() == ["error"]


def test_existing_experiment_is_not_overwritten(tmp_path):
    (tmp_path / "store" / "taken").mkdir(parents=True)
    (tmp_path / "store" / "taken" / "keep.txt").write_text("mine")
    # No data to be found: were the refusal gone, this would fail at once, not start a sweep.
    done = run_cli("--name", "taken", "--storage-path", str(tmp_path / "store"), timeout=60,
                   env={"TUNE_AE_DATA": "", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 2 and "already exists" in done.stderr and "--resume" in done.stderr
    assert (tmp_path / "store" / "taken" / "keep.txt").read_text() == "mine"


def test_uri_storage_path_end_to_end_under_the_embedded_rays_own_token(real_data_dir, tmp_path):
    """A file:// URI as storage, and token auth on with no token chosen (the sweep's token is
    its own, removed with the run, never ~/.ray/auth_token): one sweep for both, to save a Ray start."""
    import tempfile

    remote = f"file://{tmp_path}/bucket/sweeps"
    home, temp = tmp_path / "home", Path(tempfile.mkdtemp(prefix="tat", dir="/tmp"))  # short: Ray's socket paths
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tune_ae.run", "--grid", "smoke", "--hidden", "32", "--data-dir", str(real_data_dir),
             "--storage-path", remote, "--name", "u", "--no-report"], capture_output=True, text=True, timeout=300,
            env={**env, "TUNE_AE_MIRROR": str(tmp_path / "mirror"), "RAY_AUTH_MODE": "token", "HOME": str(home),
                 "TMPDIR": str(temp)})
        assert done.returncode == 0, done.stderr[-3000:]
        assert not (home / ".ray" / "auth_token").exists()
        assert not list(temp.glob("tune_ae-token-*"))  # removed with the run
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    remote_dir, (mirror,) = tmp_path / "bucket" / "sweeps" / "u", list((tmp_path / "mirror").glob("*/u"))
    for folder in (remote_dir, mirror):
        assert (folder / "tune_ae" / "experiment.json").is_file()
        assert len(pd.read_parquet(folder / "epochs.parquet")) == 3
    assert len(list(remote_dir.glob("hidden=*/checkpoint_*"))) == 1  # Tune wrote the trial there
    again = run_cli("--grid", "smoke", "--storage-path", remote, "--name", "u", timeout=60)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_a_ray_client_address_from_the_environment_is_named_as_such(tmp_path):
    done = run_cli("--storage-path", str(tmp_path), timeout=60, env={"RAY_ADDRESS": "ray://10.0.0.5:10001",
                   "TUNE_AE_DATA": "", "XDG_CACHE_HOME": str(tmp_path / "cache")})  # no data: no sweep, whatever happens
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: RAY_ADDRESS 'ray://10.0.0.5:10001': Ray Client (ray://) is not supported")


def test_a_random_search_samples_its_ranges_at_each_point_and_reports_per_point(real_data_dir, tmp_path):
    """Its report is cut short by SIGHUP (a closed terminal; the fault matrix's third signal, where
    test_faults.py sends SIGINT and SIGTERM): the tables stand, and the command the driver names
    writes the report. One sweep for both, as each costs a Ray start."""
    folder = tmp_path / "r"
    driver = start_cli("--grid", "smoke", "--hidden", "16", "--search", "random", "--lr", "1e-4:1e-2:log",
                       "--dropout", "0:0.3", "--num-samples", "3", "--epochs", "2", "--subset", "300",
                       "--cpus-per-trial", "2",  # one reused worker
                       "--data-dir", str(real_data_dir), "--storage-path", str(tmp_path), "--name", "r")
    try:
        for line in driver.stdout:  # the tables are written and Ray is down: the report comes next
            if "trials.csv:" in line:
                driver.send_signal(signal.SIGHUP)
                break
        out, err = driver.communicate(timeout=120)
    finally:
        end_session(driver.pid)
    assert driver.returncode == 129 and "Traceback" not in err, err[-2000:]
    assert "after every trial ended" in err and f"python -m tune_ae.report {folder}" in err and "--resume" not in err
    assert not (folder / "report.md").exists()
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 3 and (trials["status"] == "done").all() and set(trials["hidden"]) == {16}
    assert trials["lr"].between(1e-4, 1e-2).all() and trials["dropout"].between(0, 0.3).all()
    assert len(trials[["lr", "dropout"]].drop_duplicates()) == 3
    meta = read_meta(folder)
    assert meta["grid"]["search"] == "random" and meta["grid"]["ranges"]["lr"] == [1e-4, 1e-2, "log"]

    report = subprocess.run([sys.executable, "-m", "tune_ae.report", str(folder)], capture_output=True, text=True,
                            timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    report_md = (folder / "report.md").read_text()
    assert "## The search" in report_md and "the best of 3 sampled configurations" in report_md
    assert "### What mattered" in report_md and (folder / "figures" / "search.png").is_file()


def test_extending_a_finished_experiment_by_a_seed_trains_only_the_new_trials(smoke_experiment, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(smoke_experiment[0], folder)  # the shared sweep stays as it is
    logs = {p: p.read_bytes() for p in folder.glob("*/tune_ae_epochs.jsonl")}
    assert len(logs) == 2
    refused = run_cli("--extend", "--name", "s", "--storage-path", str(tmp_path), "--epochs", "5", timeout=60)
    assert refused.returncode == 2 and "--epochs 5 drops epochs 3 of trials already run" in refused.stderr
    # One trial at a time: the second runs in the first's worker (a trial process costs ~7 CPU-seconds to start).
    grown = run_cli("--extend", "--name", "s", "--storage-path", str(tmp_path), "--seeds", "2", "--cpus-per-trial", "2",
                    "--no-report")
    assert grown.returncode == 0, grown.stderr[-3000:]
    assert "extended (seed 1); 2 finished trial(s) kept as they are" in grown.stdout
    assert grown.stdout.count(" started (") == 2  # the two new trials, no others
    assert {p: p.read_bytes() for p in logs} == logs  # the old trials' epochs, byte for byte
    trials = pd.read_parquet(folder / "trials.parquet")
    assert len(trials) == 4 and (trials["status"] == "done").all() and sorted(trials["seed"]) == [0, 0, 1, 1]
    # The report of the grown experiment (written here: a report process costs ~6 CPU-seconds of imports).
    from tune_ae import report

    assert "| 32 | 2 |" in report.write_report(folder).read_text()  # n = 2 seeds per width in the spread table
    meta = read_meta(folder)
    assert meta["grid"]["axes"]["seed"] == [0, 1] and meta["runs"][-1]["extended"] == {"seed": [1]}
