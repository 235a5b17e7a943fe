"""The fault matrix: a sweep ended by SIGTERM and then Ctrl-C while Tune stops, SIGTERM while
Ray starts, a full disk then SIGKILL (its newest checkpoint truncated), a second run on the same
folder, and a copied folder (SIGHUP: during the random search's report in test_run.py). Each
asserts the exit code and readable tables, and each sweep that stopped part way is resumed and
must finish with every epoch once and the metrics of an uninterrupted run. Every stop signal
takes one path (signals.py, its cases in tests/test_signals.py); here SIGTERM is the one sent
with Ray up, to the driver's process group, as Ray's own SIGTERM handling is what tune_ae turns
off and its processes are what a group's signal must not reach (ray_start.start_ray).

One small trial (h = 64, 3,000 images, minibatches of 50, 24 epochs, a checkpoint every 2),
interrupted once its epochs log holds a given number of epochs: no sleeps decide when.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psutil
import pytest
import torch

from tune_ae import ray_internals, record, results, train
from tune_ae.config import TrialConfig
from tune_ae.data import load_fashion_mnist

from tune_ae.experiment import read_meta

from conftest import end_session, run_cli, start_cli, wait_for

EPOCHS = 24
# A fixed thread count: the reproducible mode (metrics depend on the threads; `auto` may change them).
SWEEP = ["--grid", "smoke", "--hidden", "64", "--epochs", str(EPOCHS), "--batch-size", "50", "--checkpoint-every", "2",
         "--cpus-per-trial", "1", "--no-report"]


@pytest.fixture(scope="module")
def reference(real_data_dir):
    """The same trial, uninterrupted, in this process with the trial's one thread."""
    data = load_fashion_mnist(real_data_dir, subset=3000)
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    train_x, val_x = train.to_device(data.train_images, cpu), train.to_device(data.test_images, cpu)
    config = TrialConfig(hidden=64, epochs=EPOCHS, batch_size=50)
    return [(m["train_loss"], m["val_loss"]) for m in train.train(config, train_x, val_x)]


def start(real_data_dir, store: Path, name: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return start_cli(*SWEEP, "--data-dir", str(real_data_dir), "--storage-path", str(store), "--name", name, *extra,
                     env=env)


def logged_epochs(folder: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in folder.glob("*/" + results.EPOCHS_LOG))


def stop(driver: subprocess.Popen, sig: int, at_epoch: int, folder: Path, then: int | None = None
         ) -> tuple[int, str, str]:
    """Send `sig` to the driver's process group, as a shell, a terminal or `timeout` signals a job,
    once `at_epoch` epochs are logged (and `then` 0.2 s later, while Tune stops: e.g. a person
    pressing Ctrl-C); returns (exit code, stdout, stderr). Nothing of that Ray is left writing
    when this returns."""
    family = []
    try:
        wait_for(lambda: logged_epochs(folder) >= at_epoch or driver.poll() is not None, f"epoch {at_epoch}")
        assert driver.poll() is None, "the sweep ended before the signal: " + driver.communicate()[1][-2000:]
        family = psutil.Process(driver.pid).children(recursive=True)
        os.killpg(driver.pid, sig)
        if then is not None:
            time.sleep(0.2)
            os.killpg(driver.pid, then)
        out, err = driver.communicate(timeout=120)
        return driver.returncode, out, err
    finally:
        end_session(driver.pid)
        psutil.wait_procs(family, timeout=30)


def assert_complete(folder: Path, reference) -> pd.DataFrame:
    """One trial, each epoch once, bit for bit the uninterrupted run's losses."""
    epochs = results.load_table(folder, "epochs")
    trials = results.load_table(folder, "trials")
    assert len(trials) == 1 and trials["status"].tolist() == ["done"], trials[["hidden", "status", "error"]]
    assert epochs["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert list(zip(epochs["train_loss"], epochs["val_loss"])) == reference
    return epochs


def redone(folder: Path) -> int:
    """Epochs trained more than once (reported again after a resume): the cost of the fault."""
    reports = [r["epoch"] for d in results.trial_dirs(folder) for r in results.json_lines(d / results.EPOCHS_LOG)]
    return len(reports) - len(set(reports))


def checkpoints_named_by_tune(folder: Path) -> set[str]:
    """The checkpoint folders Tune's newest saved state refers to."""
    state = json.loads(ray_internals.state_files(folder)[-1].read_text())
    return set().union(*(ray_internals.checkpoint_names(m) for _, m in ray_internals.state_trials(state)))


def resume(store: Path, name: str, *extra: str):
    done = run_cli("--resume", "--name", name, "--storage-path", str(store), "--no-report", *extra)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def test_sigterm_then_ctrl_c_the_folder_locked_a_resume_with_new_settings_and_a_copy_resumed(real_data_dir, tmp_path,
                                                                                               reference):
    store, folder = tmp_path / "store", tmp_path / "store" / "c"
    driver = start(real_data_dir, store, "c")
    wait_for(lambda: logged_epochs(folder) >= 1, "the first epoch")
    # A second sweep on the same folder, new or resumed, ends at once naming the holder.
    for args in (SWEEP, ["--resume"]):
        second = run_cli(*args, "--data-dir", str(real_data_dir), "--storage-path", str(store), "--name", "c",
                         timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 2 and len(lines) == 1, second.stderr
        assert "is in use by another run" in lines[0] and f"pid {driver.pid}" in lines[0], lines[0]

    # SIGTERM (Ray's own handler, which prints "SIGTERM received" and kills, is off), then Ctrl-C
    # while Tune stops: faster, still an interruption, and the first signal's. Both to the
    # driver's process group, as `timeout` or a shell sends them: Ray's processes, in sessions
    # of their own, get neither (the group's SIGTERM stopped the GCS, and the driver waited 60 s
    # for it and died with exit 1).
    code, out, err = stop(driver, signal.SIGTERM, 7, folder, then=signal.SIGINT)
    command = f"python -m tune_ae.run --resume --name c --storage-path {store}"
    assert code == 143 and "interrupted (SIGTERM)" in err, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err and "SIGTERM received" not in err, err[-2000:]
    assert f"continue with:\n  {command}" in err
    trials = pd.read_parquet(folder / "trials.parquet")
    assert trials["status"].tolist() == ["interrupted"] and 6 <= trials["epochs_done"].item() < EPOCHS

    # A copy resumes from its own place and never reads or writes the original, even with its
    # newest checkpoint gone (Tune's saved state names it; Tune alone would fail the trial for good).
    copy = tmp_path / "elsewhere" / "c"
    shutil.copytree(folder, copy)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    (trial_dir,) = results.trial_dirs(copy)
    for name in checkpoints_named_by_tune(copy):  # e.g. rotated out by --keep-checkpoints after Tune's last save
        shutil.rmtree(trial_dir / name)
    resumed = resume(copy.parent, "c")
    assert "Tune's saved state is unusable (it names checkpoints that are gone" in resumed.stdout
    epochs = assert_complete(copy, reference)
    assert all(Path(d).is_relative_to(copy) for d in epochs["trial_dir"])
    assert all(Path(c).is_relative_to(copy) for c in results.load_table(copy, "trials")["checkpoint"])
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} == before
    assert redone(copy) <= 2  # at most the epochs since the last checkpoint

    # The original's resume may change resources, retries and checkpointing; a grid flag or the scheduler may not.
    refused = run_cli("--resume", "--name", "c", "--storage-path", str(store), "--scheduler", "asha", timeout=60)
    assert refused.returncode == 2 and "--scheduler cannot change on --resume" in refused.stderr
    resumed = resume(store, "c", "--cpus-per-trial", "2", "--max-failures", "0", "--checkpoint-every", "5",
                     "--keep-checkpoints", "3")
    assert "resume: cpus_per_trial 1.0 -> 2.0" in resumed.stdout
    assert "saved state is unusable" not in resumed.stdout  # Tune's restore, not a new Tuner, took the new settings
    meta = read_meta(folder)
    assert meta["settings"]["cpus_per_trial"] == 2.0 and meta["settings"]["max_failures"] == 0
    assert meta["runs"][-1]["changed_settings"] == {"cpus_per_trial": [1.0, 2.0], "max_failures": [3, 0],
                                                     "checkpoint_every": [2, 5], "keep_checkpoints": [2, 3]}
    epochs = pd.read_parquet(folder / "epochs.parquet")
    assert epochs["epoch"].tolist() == list(range(1, EPOCHS + 1))
    assert epochs["threads"].iloc[-1] == 2  # the resumed trial ran with the new CPU share
    # ...and kept the new number of checkpoints (Tune restores each trial's own rotation)
    assert len(list((folder / epochs["trial_dir"].iloc[0]).glob("checkpoint_*"))) == 3
    assert (pd.read_parquet(folder / "trials.parquet")["status"] == "done").all()

    # Tune's files there but not restoring (its pickled Tuner cut short): the trials' own folders
    # carry the sweep, and the one finished trial is not counted as one to run.
    tuner_file = folder / "tuner.pkl"  # ray/tune/impl/tuner_internal.py, _TUNER_PKL
    tuner_file.write_bytes(tuner_file.read_bytes()[:100])
    again = resume(store, "c")
    assert "Tune's saved state is unusable (UnpicklingError" in again.stdout
    assert "resuming c: 0 trial(s)" in again.stdout and " started (" not in again.stdout, again.stdout
    assert pd.read_parquet(folder / "epochs.parquet")["epoch"].tolist() == list(range(1, EPOCHS + 1))


def test_sigterm_while_ray_starts_is_an_interruption_that_leaves_nothing(real_data_dir, tmp_path):
    store = tmp_path / "store"
    driver = start(real_data_dir, store, "early")
    try:
        # Ray's first processes exist: ray.init is under way, with its own SIGTERM handlers.
        wait_for(lambda: driver.poll() is not None or psutil.Process(driver.pid).children(), "Ray's start")
        driver.send_signal(signal.SIGTERM)
        out, err = driver.communicate(timeout=120)
    finally:
        end_session(driver.pid)
    lines = err.strip().splitlines()
    assert driver.returncode == 143 and len(lines) == 1 and lines[0].startswith("interrupted (SIGTERM)"), err
    assert not (store / "early").exists()  # nothing was saved, so nothing is left to collide with


# SIGHUP during the report: test_run.py's random search (one sweep for both).


# Where a tmpfs cannot be mounted (no root), ENOSPC is injected instead: every Python write
# under the storage path fails once the trigger file exists, in the driver and in Ray's workers
# (which inherit PYTHONPATH). Tune's own C++ writes then still succeed; a tmpfs fails them too.
INJECT = """
import builtins, errno, io, os
_store, _trigger, _open = os.environ["FULL_DISK_STORE"], os.environ["FULL_DISK_TRIGGER"], io.open
def _full_open(file, mode="r", *args, **kwargs):
    named = isinstance(file, (str, bytes, os.PathLike))  # not a file descriptor
    if named and any(c in mode for c in "wax+") and os.fsdecode(os.fspath(file)).startswith(_store) \
            and os.path.exists(_trigger):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fsdecode(os.fspath(file)))
    return _open(file, mode, *args, **kwargs)
builtins.open = io.open = _full_open
"""


@contextmanager
def small_disk(tmp_path: Path):
    """(storage folder, fill, free): a 32 MB tmpfs filled to the last byte, or the injected ENOSPC."""
    store = tmp_path / "small"
    store.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(store)], capture_output=True)
    filler = store / "filler"
    if mounted.returncode == 0:
        def fill():
            try:
                with open(filler, "wb") as f:  # everything that is left, so that the next write fails
                    f.write(b"\0" * shutil.disk_usage(store).free)
            except OSError:  # full already (seen twice under load, at the file's creation): that is the aim
                pass
        try:
            yield store, {}, fill, filler.unlink
        finally:
            subprocess.run(["umount", "-l", str(store)], capture_output=True)
        return
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    trigger = tmp_path / "disk-is-full"
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(inject), os.environ.get("PYTHONPATH")])),
           "FULL_DISK_STORE": str(store), "FULL_DISK_TRIGGER": str(trigger)}
    yield store, env, trigger.touch, trigger.unlink


def test_chaos_a_full_disk_then_four_sigkills_and_a_truncated_checkpoint_end_as_if_never(real_data_dir, tmp_path,
                                                                                         reference):
    """Faults in a row on one trial (each fault's own sweep would cost a Ray start more): a full
    disk ends it in one line; its resumes are SIGKILLed (a lost machine: the whole process
    group) at four seeded random epochs, and then its newest checkpoint cut short; the next
    resume sets that aside, continues from the older one and finishes with every epoch once and
    the losses of an uninterrupted run: the chaos test's one trial."""
    with small_disk(tmp_path) as (store, env, fill, free):
        folder = store / "full"
        driver = start(real_data_dir, store, "full", "--max-failures", "0", env=env)  # no retries into a full disk
        try:
            wait_for(lambda: logged_epochs(folder) >= 5, "epoch 5")
            fill()
            out, err = driver.communicate(timeout=180)
        finally:
            end_session(driver.pid)
        lines = err.strip().splitlines()
        assert driver.returncode == 1 and "Traceback" not in err, err[-3000:]
        assert any(line.startswith("error: cannot write") and "No space left on device" in line for line in lines), err
        assert f"--resume --name full --storage-path {store}" in err
        free()

        # At checkpoint epochs (every 2nd): the kill lands while the next epoch trains, never while a
        # checkpoint is written, so the checkpoint cut short below is the newest whole one.
        for epoch in kill_points(epochs_done(folder) + 1, EPOCHS - 2, step=2):
            kill_at(start_cli("--resume", "--name", "full", "--storage-path", str(store), "--no-report", env=env),
                    folder, epoch)
        (trial_dir,) = results.trial_dirs(folder)
        newest = results.latest_checkpoint(trial_dir)
        kept_epoch = max(results.checkpoint_epoch(p) for p in trial_dir.glob("checkpoint_*") if p != newest)
        with open(newest / train.STATE_FILE, "r+b") as f:
            f.truncate(100)  # a node lost mid-write
        # Epochs the driver never logged, and the kept checkpoint's rows file lost: state.pt carries them too.
        log = trial_dir / results.EPOCHS_LOG
        log.write_text("".join(line + "\n" for line in log.read_text().splitlines()[:kept_epoch - 2]))
        kept = next(p for p in trial_dir.glob("checkpoint_*") if results.checkpoint_epoch(p) == kept_epoch)
        (kept / results.HISTORY_FILE).write_text("")
        done = resume(store, "full")
        # Set aside, not deleted. Under its own name plus "-2" if the full disk's resume already set
        # aside a cut-short checkpoint of that index (Tune may number a later checkpoint the same).
        (aside,) = [a for a in trial_dir.glob(results.SET_ASIDE_PREFIX + newest.name + "*")
                    if (a / train.STATE_FILE).is_file() and (a / train.STATE_FILE).stat().st_size == 100]
        assert f"unreadable checkpoint(s) set aside: {newest} -> {aside.name} (" in done.stdout
        assert f"continues from its checkpoint at epoch {kept_epoch}" in done.stdout
        assert_complete(folder, reference)  # one trial: no phantom from a state file cut short
        assert len(record.trials(folder)) == 1
        # --keep-checkpoints 2 held across Tuners (a new Tuner rotates the earlier one's out), none
        # overwritten by an older epoch. (One more may stay where Tune's restore found a checkpoint
        # written after its last save: it is overwritten only by a newer one.)
        kept = sorted(results.checkpoint_epoch(p) for p in trial_dir.glob("checkpoint_*"))
        assert 2 <= len(kept) <= 3 and kept[-2:] == [EPOCHS - 2, EPOCHS] and len(set(kept)) == len(kept), kept


def test_resume_command_is_quoted_for_the_shell():
    from tune_ae.config import SweepSettings
    from tune_ae.finish import resume_command

    command = resume_command(SweepSettings(storage_path="/data/my results", name="my sweep"))
    assert shlex.split(command) == ["python", "-m", "tune_ae.run", "--resume", "--name", "my sweep", "--storage-path",
                                    "/data/my results"]


def test_an_experiment_state_cut_short_is_set_aside(tmp_path):
    from tune_ae import plan, ray_internals, sweep
    from tune_ae.config import SweepSettings
    from tune_ae.grids import GRIDS

    (tmp_path / ray_internals.TUNER_FILE).write_bytes(b"")
    good = {"trial_data": [[json.dumps({"config": {"hidden": 64}}), "{}"]]}
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(good))
    (tmp_path / "experiment_state-2026-01-02_00-00-00.json").write_text(json.dumps(good)[:40])
    # Set aside; the older one is whole, but the newer may live on at a URI: a new Tuner, not Tune's restore.
    why, aside, _, _ = plan.tune_state(tmp_path)
    assert why == "Tune's saved state is unusable (experiment_state-2026-01-02_00-00-00.json: JSONDecodeError)"
    assert aside == ("experiment_state-2026-01-02_00-00-00.json",)
    settings = SweepSettings(storage_path=str(tmp_path.parent), name=tmp_path.name)
    sweep.prepare_folder(plan.Plan("continue", "paper", GRIDS["paper"], settings, None, set_aside=aside))  # carried out
    assert [p.name for p in tmp_path.glob("experiment_state-*")] == ["experiment_state-2026-01-01_00-00-00.json"]
    assert plan.tune_state(tmp_path)[0] == ""  # what is left is whole
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_text("")
    assert "experiment_state-2026-01-01_00-00-00.json: JSONDecodeError" in plan.tune_state(tmp_path)[0]


# The chaos test: the driver and its Ray SIGKILLed at seeded random points, a resume after each.
CHAOS_SEED = 29
SEARCH_EPOCHS = 12
SEARCH = ["--grid", "smoke", "--hidden", "64", "--epochs", str(SEARCH_EPOCHS), "--batch-size", "50",
          "--checkpoint-every", "2", "--search", "optuna", "--lr", "1e-4:1e-2:log", "--cpus-per-trial", "1", "--no-report"]


def epochs_done(folder: Path) -> int:
    """Distinct (trial, epoch) pairs the trials' epochs logs hold: the experiment's progress."""
    return sum(len({r.get("epoch") for r in results.json_lines(p)}) for p in folder.glob("*/" + results.EPOCHS_LOG))


def kill_at(driver: subprocess.Popen, folder: Path, progress: int) -> None:
    """SIGKILL the driver and every process of its Ray once `progress` epochs are done (a lost machine)."""
    try:
        wait_for(lambda: epochs_done(folder) >= progress or driver.poll() is not None, f"{progress} epochs")
        assert driver.poll() is None, "the sweep ended before the kill: " + driver.communicate()[1][-2000:]
        end_session(driver.pid)  # the group and every process of its Ray, sessions of their own included
        driver.communicate(timeout=120)
        assert driver.returncode == -signal.SIGKILL  # never an exit code that claims an end
    finally:
        end_session(driver.pid)


def kill_points(low: int, high: int, step: int = 1) -> list[int]:
    """Four points of progress in [low, high), multiples of `step`, seeded: where the chaos tests kill."""
    import random

    return sorted(random.Random(CHAOS_SEED).sample(range(low + -low % step, high, step), 4))


def chaos(first: list[str], folder: Path, total: int, later=lambda i: ["--resume"]) -> subprocess.CompletedProcess:
    """`first`, SIGKILLed at 4 seeded random points of `total` epochs, each time run again with
    `later(i)`; returns the last run, left to its end."""
    store, name = str(folder.parent), folder.name
    args = first
    for i, progress in enumerate(kill_points(2, total - 1)):
        kill_at(start_cli(*args, "--storage-path", store, "--name", name), folder, progress)
        args = later(i)
    return run_cli(*args, "--storage-path", store, "--name", name)


def test_chaos_an_optuna_search_killed_four_times_and_extended_has_every_sample_once(real_data_dir, tmp_path):
    """Three samples, grown to four by an --extend between kills: the samples an uninterrupted
    four-sample search draws, each once, each epoch once, with its uninterrupted metrics."""
    from tune_ae import grids, search

    folder = tmp_path / "store" / "search"
    grow = lambda i: ["--extend", "--num-samples", "4"] if i == 1 else ["--resume"]  # noqa: E731
    last = chaos([*SEARCH, "--num-samples", "3", "--data-dir", str(real_data_dir)], folder, 4 * SEARCH_EPOCHS, grow)
    assert last.returncode == 0, last.stderr[-3000:]
    trials = results.load_table(folder, "trials")
    epochs = results.load_table(folder, "epochs")
    assert len(trials) == 4 and (trials["status"] == "done").all(), trials[["lr", "status", "epochs_done"]]
    assert len(record.trials(folder)) == 4  # four trial folders: no sample begun twice
    grid = grids.override(grids.GRIDS["smoke"], {"hidden": [64], "epochs": [SEARCH_EPOCHS], "batch_size": [50],
                                                 "lr": grids.Range(1e-4, 1e-2, True)}, search="optuna", num_samples=4)
    uninterrupted = search.PointwiseOptuna(grid, "val_loss", "min")  # TPE's first samples are its seeded random ones
    assert sorted(trials["lr"]) == sorted(uninterrupted.suggest(f"t{i}")["lr"] for i in range(4))
    data = load_fashion_mnist(real_data_dir, subset=3000)
    torch.set_num_threads(1)
    train_x, val_x = train.to_device(data.train_images, torch.device("cpu")), train.to_device(data.test_images, torch.device("cpu"))
    for lr, rows in epochs.groupby("lr"):
        assert rows["epoch"].tolist() == list(range(1, SEARCH_EPOCHS + 1))
        config = TrialConfig(hidden=64, epochs=SEARCH_EPOCHS, batch_size=50, lr=lr)
        assert rows["val_loss"].tolist() == [m["val_loss"] for m in train.train(config, train_x, val_x)]


def test_a_closed_terminal_is_an_interruption_not_a_full_disk(real_data_dir, tmp_path):
    """The sweep runs in a terminal that is closed at an epoch: the kernel hangs it up (SIGHUP)
    and every later write to it fails (EIO). Exit 129 and a folder that resumes, never "cannot
    write ...: Input/output error; free space"."""
    import fcntl
    import pty
    import sys
    import termios
    import threading

    store, folder = tmp_path / "store", tmp_path / "store" / "t"
    master, terminal = pty.openpty()

    def own_terminal():  # a session of its own, whose controlling terminal is the pty
        os.setsid()
        fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)

    driver = subprocess.Popen([sys.executable, "-m", "tune_ae.run", *SWEEP, "--data-dir", str(real_data_dir),
                               "--storage-path", str(store), "--name", "t"], stdin=terminal, stdout=terminal,
                              stderr=subprocess.PIPE, preexec_fn=own_terminal, text=True)
    os.close(terminal)
    try:
        def drained():  # a terminal's reader: the driver's output must not block on a full pty
            try:
                while os.read(master, 65536):
                    pass
            except OSError:
                pass
        threading.Thread(target=drained, daemon=True).start()
        wait_for(lambda: logged_epochs(folder) >= 5 or driver.poll() is not None, "epoch 5")
        os.close(master)  # the terminal closes
        err = driver.communicate(timeout=120)[1]
    finally:
        end_session(driver.pid)
    assert driver.returncode == 129, err[-3000:]
    assert "free space" not in err and "Input/output error" not in err and "Traceback" not in err, err[-3000:]
    assert "interrupted (SIGHUP)" in err  # said on stderr, which is not the terminal here
    # Tune's stop may come after the trial's last epochs: interrupted, or done; the tables say which.
    assert pd.read_parquet(folder / "trials.parquet")["status"].tolist() in (["interrupted"], ["done"])
