"""Shared fixtures: tiny IDX files written by the tests, the real data folder, one Ray start."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_ae.data import IMAGE_MAGIC, LABEL_MAGIC, STEMS
from tune_ae.plan import new as new_plan

# No test may reach the network: every data lookup that misses must fail, not download.
os.environ["TUNE_AE_NO_DOWNLOAD"] = "1"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Nor may a Ray the developer points at (RAY_ADDRESS, read by `tune_ae.run` as its --address)
# take the tests' sweeps: each test starts its own, or names the address it means.
os.environ.pop("RAY_ADDRESS", None)


# The fast tier (`python -m pytest -m "not slow"`) leaves out every test that starts a Ray, a
# sweep or a cluster, or reads the full data set: those are "slow", by the fixtures they use (or
# marked so by hand). The rest, the tables of bad input to the commands included, is the fast tier.
SLOW_FIXTURES = {"ray_session", "smoke_experiment", "local_cluster", "real_data_dir"}  # and what uses them


# Under pytest-xdist (`-n 2 --dist loadgroup`, the suite's default in pyproject.toml), the
# tests that share a session's Ray, its smoke sweep or the module's cluster run on one worker
# each, so that each is started once; everything else spreads over the workers. A fixture that
# uses one of these (quarter_gpu_study uses ray_session) is in its group: fixturenames holds the
# whole closure. Groups are handed out whole, so few and long ones unbalance the workers (the two
# fault sweeps as a fourth group took 334 s, against 300-316 s without, on 2026-12-02).
SHARED = {"ray_session": "ray", "smoke_experiment": "smoke", "local_cluster": "cluster"}
LONGEST = ("test_faults.py",)  # several sweeps per test, killed and resumed


# tryfirst: pytest-xdist reads the xdist_group marks in its own hook of the same name.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures:
            item.add_marker(pytest.mark.slow)
        group = next((group for fixture, group in SHARED.items() if fixture in fixtures), None)
        if group:
            join_group(item, group)
    # The long tests first, the quick ones last (a stable sort: each module's order holds), so
    # that the last tests a worker is handed are short and the two workers end together: the
    # fault sweeps (a minute each) first, then the other slow ones, then the fast tier, its
    # parametrized tables last. pytest-xdist keeps this order (--no-loadscope-reorder, pyproject).
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.path.name not in LONGEST,
                                 hasattr(item, "callspec")))


def join_group(item, group: str) -> None:
    """Put `item` in pytest-xdist's group `group`.

    pytest-xdist (3.8) tells the scheduler a test's group by appending "@group" to the test's
    node id, in a field (`_nodeid`) that pytest 9.2 no longer reads (pytest-xdist issue 1386,
    open): the groups were silently ignored, so each worker started its own Ray and smoke sweep.
    Until it is fixed there, the suffix is written where pytest 9.2 keeps the id; with an older
    pytest the mark alone does it."""
    item.add_marker(pytest.mark.xdist_group(group))
    node_id = getattr(item, "_id", None)
    if node_id is not None and hasattr(type(node_id), "parse") and "@" not in item.nodeid:
        item._id = type(node_id).parse(f"{item.nodeid}@{group}")


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(f">i{array.ndim}i", magic, *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    data = idx_bytes(array, magic)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def tiny_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 images of 10 'classes': a bright bar whose row depends on the class, plus noise.

    Structured enough that an autoencoder's loss visibly falls within a few epochs.
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28))
    for i, c in enumerate(labels):
        images[i, 2 + 2 * c : 5 + 2 * c, 4:24] = 200 + rng.integers(0, 50)
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_dataset(folder: Path, n_train: int = 300, n_test: int = 60, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        images, labels = tiny_images(n, seed)
        write_idx(folder / (STEMS[split, "images"] + suffix), images, IMAGE_MAGIC)
        write_idx(folder / (STEMS[split, "labels"] + suffix), labels, LABEL_MAGIC)
    return folder


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "tiny")


@pytest.fixture
def tensors(tiny_dir):
    """The tiny data set as the loop takes it: (train, validation) float images on the CPU."""
    from tune_ae import train
    from tune_ae.data import load_fashion_mnist

    d = load_fashion_mnist(tiny_dir, expect_full=False)
    return train.to_device(d.train_images, torch.device("cpu")), train.to_device(d.test_images, torch.device("cpu"))


def run(config, tensors, state=None) -> list[dict]:
    """Every epoch's metrics of `config` on `tensors` (from `state` when given)."""
    from tune_ae import train

    return list(train.train(config, *tensors, state=state))


@pytest.fixture(autouse=True)
def isolated_cache(request, tmp_path_factory, monkeypatch):
    """Each test gets an empty user cache, so a developer's own cache cannot leak in (the tests
    on the real data: with_shared_yardsticks)."""
    cache = tmp_path_factory.mktemp("cache")
    if "real_data_dir" in request.fixturenames:
        with_shared_yardsticks(cache, tmp_path_factory)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))


def with_shared_yardsticks(cache: Path, tmp_path_factory) -> Path:
    """`cache`, whose baselines folder is one shared by the whole test run: the real data set's
    yardsticks that every report needs (baselines.data_references: ~3 CPU-seconds per report
    for the smoke subset, ~10 for the full set) are computed once. Its writes are atomic, so
    pytest-xdist's workers may share it."""
    base = tmp_path_factory.getbasetemp()
    run = base.parent if base.name.startswith("popen-gw") else base  # under pytest-xdist: a folder per worker
    shared = run / "shared-baselines"
    shared.mkdir(exist_ok=True)
    (cache / "tune_ae").mkdir(parents=True)
    (cache / "tune_ae" / "baselines").symlink_to(shared, target_is_directory=True)
    return cache


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The full Fashion-MNIST folder from $TUNE_AE_DATA: required in CI, skipped elsewhere."""
    folder = os.environ.get("TUNE_AE_DATA")
    if folder and all((Path(folder) / (s + ".gz")).is_file() or (Path(folder) / s).is_file() for s in STEMS.values()):
        return Path(folder)
    message = f"real Fashion-MNIST not found (TUNE_AE_DATA={folder!r})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must export TUNE_AE_DATA", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ray_session():
    """One Ray for the whole test run, for the in-process sweep tests: 2 CPUs and one logical
    (CUDA-less) GPU. The CLI tests start their own (the embedded Ray is what they test); the
    one that looks for a cluster (`--address auto`) runs where it cannot see this one."""
    import ray

    import faults

    # Trial workers cannot import the tests' own helpers: ship them by value.
    ray.cloudpickle.register_pickle_by_value(faults)
    from tune_ae import ray_internals

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             _system_config=ray_internals.EMBEDDED_SYSTEM_CONFIG)  # as the command starts its own
    yield ray
    ray.shutdown()


def end_session(pid: int) -> None:
    """Kill what is left of a driver started with start_new_session and of its embedded Ray, whose
    processes are its descendants in sessions of their own."""
    import signal

    import psutil

    try:
        family = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    try:  # the driver first: killed after its Ray, it could notice and exit on its own (1, not -9)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for process in family:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def run_cli(*args: str, env: dict | None = None, timeout: float = 300, **popen):
    """`python -m tune_ae.run ARGS` in a subprocess; returns the CompletedProcess."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tune_ae.run", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, **popen)


def start_cli(*args: str, env: dict | None = None):
    """`python -m tune_ae.run ARGS` started in its own session (end_session ends it and its
    embedded Ray); stdout and stderr are pipes of text."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "tune_ae.run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, **(env or {})})


def journal_trials(folder: Path) -> list:
    """The Optuna trials of an experiment's journal (journal.py), as the dashboard reads them."""
    import optuna

    from tune_ae import journal

    return optuna.load_study(study_name=Path(folder).name, storage=journal.open_storage(folder)).get_trials()


def wait_for(condition, what: str, timeout: float = 120, every: float = 0.05) -> None:
    """Poll `condition` until it holds; an AssertionError naming `what` after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="session")
def smoke_experiment(real_data_dir, tmp_path_factory):
    """One `--grid smoke` sweep through the CLI, shared by the CLI, report and notebook tests."""
    storage = tmp_path_factory.mktemp("smoke")
    cache = with_shared_yardsticks(tmp_path_factory.mktemp("cache"), tmp_path_factory)  # set up before any test's
    done = run_cli("--grid", "smoke", "--data-dir", str(real_data_dir), "--storage-path", str(storage), "--name", "s",
                   env={"XDG_CACHE_HOME": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    return storage / "s", done


@pytest.fixture(scope="session")
def quarter_gpu_study(ray_session, tmp_path_factory):
    """One in-process sweep on tiny data, shared by test_tuner.py (four trials at once on a
    quarter of the logical GPU each) and test_report.py (seed spread, the width figure): 2
    widths x 2 output activations x 2 seeds, 12 epochs (long enough that the first four
    overlap), 0.5 CPU and 0.25 GPU per trial. Its experiment folder."""
    from tune_ae import experiment, tuner
    from tune_ae.config import SweepSettings
    from tune_ae.data import load_fashion_mnist
    from tune_ae.grids import Grid

    root = tmp_path_factory.mktemp("study")
    data = load_fashion_mnist(write_dataset(root / "d", n_train=2000, n_test=200), expect_full=False)
    grid = Grid({"hidden": (64, 256), "output_activation": ("relu", "identity"), "epochs": (12,), "batch_size": (100,),
                 "lr": (3e-3,), "seed": (0, 1)})
    settings = SweepSettings(storage_path=str(root / "store"), name="study", cpus_per_trial=0.5, gpus_per_trial=0.25)
    folder = root / "store" / "study"
    experiment.write_meta(folder, "custom", grid, settings, {"folder": data.folder, "subset": None, "train_images": 2000,
                                                            "test_images": 200}, experiment.this_run(None))
    tuner.build_tuner(new_plan(grid, settings), data).fit()
    return folder
