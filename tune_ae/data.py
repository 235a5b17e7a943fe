"""Fashion-MNIST from the four original IDX files, as uint8 tensors.

The loader never decodes images one by one: each file is read in one go and viewed as an
(N, 784) uint8 tensor. Conversion to float happens once, on the training device (train.py).

Where the files are looked for: the folder passed in, and only there; without one,
`$TUNE_AE_DATA`, then the user cache (`$XDG_CACHE_HOME/tune_ae/fashion-mnist`, default
`~/.cache/...`). When neither holds the files, the official ones are downloaded into the
cache with torchvision, unless `$TUNE_AE_NO_DOWNLOAD` is set (air-gapped machines and tests).
"""

from __future__ import annotations

import gzip
import os
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where tensors are made: finding the files, and saying
    import torch  # they are not there, needs none (a wrong --data-dir is answered at once)

IMAGE_MAGIC = 2051  # IDX: unsigned byte, 3 dimensions
LABEL_MAGIC = 2049  # IDX: unsigned byte, 1 dimension
SIDE = 28
PIXELS = SIDE * SIDE
NUM_CLASSES = 10
FULL_SIZES = {"train": 60_000, "test": 10_000}
STEMS = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


class DataError(Exception):
    """The data could not be found or a file is not valid IDX; the message says which and why."""


@dataclass(frozen=True)
class FashionMNIST:
    train_images: torch.Tensor  # (60000, 784) uint8
    train_labels: torch.Tensor  # (60000,) uint8
    test_images: torch.Tensor  # (10000, 784) uint8; the report's validation set
    test_labels: torch.Tensor  # (10000,) uint8
    folder: str  # where the files were read from (recorded with every experiment)


def read_idx(path: str | Path, expected_magic: int) -> torch.Tensor:
    """One IDX file (.gz or raw) -> uint8 tensor: images (N, 784), labels (N,)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise DataError(f"{path}: corrupt or truncated gzip data ({err})") from None
    elif path.suffix == ".gz":
        raise DataError(f"{path}: named .gz but is not gzip-compressed; re-download it or drop the .gz suffix")

    ndim = 3 if expected_magic == IMAGE_MAGIC else 1
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated header ({len(raw)} bytes, need {header_len})")
    magic = struct.unpack(">i", raw[:4])[0]
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGE_MAGIC else "labels"
        raise DataError(f"{path}: bad magic number {magic}, expected {expected_magic} for an IDX {kind} file")
    dims = struct.unpack(f">{ndim}i", raw[4:header_len])
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise DataError(f"{path}: images are {dims[1]}x{dims[2]}, expected {SIDE}x{SIDE}")
    expected = int(np.prod(dims))
    found = len(raw) - header_len
    if found != expected:
        what = "truncated" if found < expected else "wrong size"
        raise DataError(f"{path}: {what}: header promises {expected} bytes of data, file has {found}")
    import torch

    flat = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
    # (N, 28, 28) stored row-major -> (N, 784): one image per row, as the model consumes it.
    shape = (dims[0], PIXELS) if ndim == 3 else (dims[0],)
    return torch.from_numpy(flat.reshape(shape).copy())


def idx_file(folder: Path, stem: str) -> Path | None:
    """The file for `stem` in `folder`, compressed or not; None when absent."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def has_dataset(folder: Path) -> bool:
    return all(idx_file(folder, stem) is not None for stem in STEMS.values())


def cache_dir(part: str = "fashion-mnist") -> Path:
    """tune_ae's folder `part` in the user cache ($XDG_CACHE_HOME, else ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tune_ae" / part


def candidate_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched: the argument alone when given (never a silent fallback), else $TUNE_AE_DATA, user cache."""
    if data_dir:
        return [Path(data_dir).expanduser().resolve()]
    found = []
    if os.environ.get("TUNE_AE_DATA"):
        found.append(Path(os.environ["TUNE_AE_DATA"]))
    found.append(cache_dir())
    return [p.expanduser().resolve() for p in found]


def download(folder: Path) -> None:
    """Fetch the four official .gz files into `folder` (checked against their MD5s)."""
    from torchvision.datasets import FashionMNIST as TorchvisionFashionMNIST
    from torchvision.datasets.utils import download_url

    folder.mkdir(parents=True, exist_ok=True)
    for filename, md5 in TorchvisionFashionMNIST.resources:
        for mirror in TorchvisionFashionMNIST.mirrors:
            try:
                download_url(mirror + filename, str(folder), filename=filename, md5=md5)
                break
            except Exception as err:  # any network failure: try the next mirror
                last_error = err
        else:
            raise OSError(f"could not download {filename}: {last_error}")


def find_data_dir(data_dir: str | Path | None = None, allow_download: bool = True) -> Path:
    """The first folder holding all four files; downloads into the cache if there is none."""
    candidates = candidate_dirs(data_dir)
    for folder in candidates:
        if has_dataset(folder):
            return folder
    looked = ", ".join(str(p) for p in candidates)
    if data_dir:
        missing = [stem for stem in STEMS.values() if idx_file(candidates[0], stem) is None]
        raise DataError(f"Fashion-MNIST not found (looked in {looked}, the folder given: it lacks "
                        f"{', '.join(missing)}[.gz]); point --data-dir at the folder holding the four IDX files, "
                        "or drop it to use $TUNE_AE_DATA or the cache")
    hint = "pass --data-dir DIR or set TUNE_AE_DATA=DIR to a folder holding the four Fashion-MNIST IDX files"
    if not allow_download or os.environ.get("TUNE_AE_NO_DOWNLOAD"):
        raise DataError(f"Fashion-MNIST not found (looked in {looked}) and downloading is off; {hint}")
    target = cache_dir()
    print(f"tune_ae: Fashion-MNIST not found locally, downloading into {target}", file=sys.stderr)
    try:
        download(target)
    except Exception as err:
        raise DataError(f"Fashion-MNIST not found (looked in {looked}) and the download failed ({err}); {hint}") from None
    return target


def stratified_first(labels: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of n images: the first of every class, then the second, ... (file order kept).

    Deterministic and balanced: with n a multiple of 10 every class gets exactly n/10.
    """
    import torch

    if n >= len(labels):
        return torch.arange(len(labels))
    # Rank of each image within its class, in file order.
    rank = torch.empty_like(labels, dtype=torch.long)
    for c in labels.unique():
        members = (labels == c).nonzero().squeeze(1)
        rank[members] = torch.arange(len(members))
    order = torch.argsort(rank * len(labels) + torch.arange(len(labels)))
    return order[:n].sort().values


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    subset: int | None = None,
    allow_download: bool = True,
    expect_full: bool = True,
) -> FashionMNIST:
    """Load the data set; `subset` keeps n training and n/6 test images, class-balanced."""
    folder = find_data_dir(data_dir, allow_download)
    tensors = {}
    for (split, kind), stem in STEMS.items():
        magic = IMAGE_MAGIC if kind == "images" else LABEL_MAGIC
        tensors[split, kind] = read_idx(idx_file(folder, stem), magic)
    for split in ("train", "test"):
        n_images, n_labels = len(tensors[split, "images"]), len(tensors[split, "labels"])
        if n_images != n_labels:
            raise DataError(f"{folder}: {split} split has {n_images} images but {n_labels} labels")
        if expect_full and n_images != FULL_SIZES[split]:
            raise DataError(
                f"{folder}: {split} split has {n_images} images, Fashion-MNIST has {FULL_SIZES[split]}; "
                "point --data-dir at the complete files"
            )
        if int(tensors[split, "labels"].max()) >= NUM_CLASSES:
            raise DataError(f"{folder}: {split} labels outside 0..{NUM_CLASSES - 1}")
    if subset is not None:
        if subset < 1:
            raise DataError(f"subset must be >= 1, got {subset}")
        for split, n in (("train", subset), ("test", max(1, subset // 6))):
            keep = stratified_first(tensors[split, "labels"], n)
            tensors[split, "images"] = tensors[split, "images"][keep]
            tensors[split, "labels"] = tensors[split, "labels"][keep]
    return FashionMNIST(
        train_images=tensors["train", "images"],
        train_labels=tensors["train", "labels"],
        test_images=tensors["test", "images"],
        test_labels=tensors["test", "labels"],
        folder=str(folder),
    )
