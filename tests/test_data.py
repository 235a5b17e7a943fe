import gzip
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tune_ae import data
from tune_ae.data import DataError, IMAGE_MAGIC, LABEL_MAGIC, load_fashion_mnist, read_idx

from conftest import idx_bytes, tiny_images, write_dataset, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images, labels = tiny_images(12, seed=3)
    got = read_idx(write_idx(tmp_path / name, images, IMAGE_MAGIC), IMAGE_MAGIC)
    assert got.dtype == torch.uint8 and got.shape == (12, 784)
    assert np.array_equal(got.numpy(), images.reshape(12, 784))
    got_labels = read_idx(write_idx(tmp_path / ("l" + name), labels, LABEL_MAGIC), LABEL_MAGIC)
    assert np.array_equal(got_labels.numpy(), labels)


def corrupt(tmp_path: Path, case: str) -> Path:
    images, _ = tiny_images(4, seed=0)
    good = idx_bytes(images, IMAGE_MAGIC)
    path = tmp_path / "x-idx3-ubyte.gz"
    payload = {
        "bad magic": gzip.compress(idx_bytes(images, LABEL_MAGIC + 7)),
        "truncated data": gzip.compress(good[:-10]),
        "extra bytes": gzip.compress(good + b"\0" * 5),
        "truncated header": gzip.compress(good[:9]),
        "not gzip": good,
        "truncated gzip": gzip.compress(good)[:40],
        "wrong image size": gzip.compress(idx_bytes(np.zeros((2, 27, 28)), IMAGE_MAGIC)),
    }[case]
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize(
    "case, words",
    [
        ("bad magic", "bad magic number 2056, expected 2051"),
        ("truncated data", "truncated: header promises 3136 bytes of data, file has 3126"),
        ("extra bytes", "wrong size: header promises 3136 bytes of data, file has 3141"),
        ("truncated header", "truncated header"),
        ("not gzip", "named .gz but is not gzip-compressed"),
        ("truncated gzip", "corrupt or truncated gzip data"),
        ("wrong image size", "images are 27x28, expected 28x28"),
    ],
)
def test_corrupt_files_name_the_file_and_the_problem(tmp_path, case, words):
    path = corrupt(tmp_path, case)
    with pytest.raises(DataError) as err:
        read_idx(path, IMAGE_MAGIC)
    message = str(err.value)
    assert message.startswith(str(path)) and words in message


def test_mismatched_counts_and_full_size_check(tmp_path):
    folder = write_dataset(tmp_path / "d")
    with pytest.raises(DataError, match="train split has 300 images, Fashion-MNIST has 60000"):
        load_fashion_mnist(folder)
    _, labels = tiny_images(10, seed=0)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", labels, LABEL_MAGIC)
    with pytest.raises(DataError, match="test split has 60 images but 10 labels"):
        load_fashion_mnist(folder, expect_full=False)


def test_raw_and_gz_folders_load_the_same(tmp_path):
    gz = load_fashion_mnist(write_dataset(tmp_path / "gz"), expect_full=False)
    raw = load_fashion_mnist(write_dataset(tmp_path / "raw", gz=False), expect_full=False)
    assert torch.equal(gz.train_images, raw.train_images) and torch.equal(gz.test_labels, raw.test_labels)
    assert gz.train_images.shape == (300, 784) and gz.test_images.shape == (60, 784)


def test_search_order_argument_alone_else_env_then_cache(tmp_path, monkeypatch):
    arg, env, cache = tmp_path / "arg", tmp_path / "env", data.cache_dir()
    for folder in (arg, env, cache):
        write_dataset(folder)
    monkeypatch.setenv("TUNE_AE_DATA", str(env))
    assert data.find_data_dir(arg) == arg.resolve()
    assert data.find_data_dir(None) == env.resolve()
    # A folder given explicitly is the only place looked: no silent fallback to other data.
    (arg / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        data.find_data_dir(arg)
    assert f"looked in {arg.resolve()}, the folder given: it lacks t10k-labels-idx1-ubyte[.gz]" in str(err.value)
    monkeypatch.delenv("TUNE_AE_DATA")
    assert data.find_data_dir(None) == cache.resolve()


def test_offline_gives_one_clear_error_naming_every_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_AE_NO_DOWNLOAD")
    monkeypatch.setenv("TUNE_AE_DATA", str(tmp_path / "env"))
    calls = []

    def offline(folder):
        calls.append(folder)
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "download", offline)
    with pytest.raises(DataError) as err:
        load_fashion_mnist()
    message = str(err.value)
    assert calls == [data.cache_dir()]
    for folder in (tmp_path / "env", data.cache_dir()):
        assert str(folder) in message
    assert "download failed (network is unreachable)" in message and "--data-dir" in message


def test_download_fills_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_AE_NO_DOWNLOAD")
    monkeypatch.delenv("TUNE_AE_DATA", raising=False)
    monkeypatch.setattr(data, "download", lambda folder: write_dataset(folder))
    got = load_fashion_mnist(expect_full=False)
    assert Path(got.folder) == data.cache_dir() and len(got.train_images) == 300


def test_no_download_switch(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNE_AE_DATA", raising=False)
    monkeypatch.setattr(data, "download", lambda folder: pytest.fail("must not download"))
    with pytest.raises(DataError, match="downloading is off"):
        load_fashion_mnist()


def test_stratified_subset_is_balanced_deterministic_and_ordered(tmp_path):
    folder = write_dataset(tmp_path / "d")
    a = load_fashion_mnist(folder, subset=100, expect_full=False)
    b = load_fashion_mnist(folder, subset=100, expect_full=False)
    assert torch.equal(a.train_images, b.train_images)
    assert a.train_images.shape == (100, 784) and a.test_images.shape == (16, 784)
    assert torch.bincount(a.train_labels.long()).tolist() == [10] * 10
    labels = torch.tensor([3, 3, 3, 1, 1, 2])
    assert data.stratified_first(labels, 3).tolist() == [0, 3, 5]


def test_real_data_full_set(real_data_dir):
    started = time.perf_counter()
    full = load_fashion_mnist(real_data_dir, allow_download=False)
    elapsed = time.perf_counter() - started
    assert full.train_images.shape == (60_000, 784) and full.test_images.shape == (10_000, 784)
    assert torch.bincount(full.train_labels.long()).tolist() == [6_000] * 10
    assert torch.bincount(full.test_labels.long()).tolist() == [1_000] * 10
    # Pixel mean of the training set, as the data's README states it.
    assert abs(full.train_images.float().mean().item() / 255 - 0.2861) < 1e-3
    print(f"loaded the full set in {elapsed:.2f} s")


def test_missing_data_is_said_without_importing_torch(tmp_path):
    """Where the files are, or that they are not, needs no torch (~1.5 s to import): a wrong
    --data-dir is answered at once."""
    code = ("import sys\nfrom tune_ae import data\ntry:\n    data.find_data_dir(sys.argv[1], allow_download=False)\n"
            "except data.DataError as err:\n    print('torch' in sys.modules, 'not found' in str(err))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["False", "True"], done.stdout + done.stderr[-2000:]
