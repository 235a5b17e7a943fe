"""Yardsticks for a trained autoencoder: what a linear code of the same width achieves (PCA),
what no code achieves (the mean image), how many hidden units are dead, and how useful the
code is for classification (a linear probe).

All inputs are float tensors (N, 784) in [0, 1]; losses are MSE per pixel, as in training.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tune_ae import data
from tune_ae.data import NUM_CLASSES
from tune_ae.model import Autoencoder


def mean_image_mse(train_x: torch.Tensor, val_x: torch.Tensor) -> float:
    """Predict the training mean image for every validation image."""
    return F.mse_loss(train_x.mean(0).expand_as(val_x), val_x).item()


def pca_components(train_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Training mean (784,) and principal axes (784, 784), strongest first."""
    mean = train_x.double().mean(0)
    centred = train_x.double() - mean
    covariance = centred.T @ centred / len(train_x)  # (784, 784)
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    return mean, vectors.flip(1)


def pca_mse(train_x: torch.Tensor, val_x: torch.Tensor, ks: list[int]) -> dict[int, float]:
    """Validation MSE of PCA reconstructions with k components (fitted on the training set).

    PCA with k components is the best linear autoencoder with a k-wide code (Eckart-Young),
    so it is the bar a ReLU autoencoder with h = k has to clear to justify its nonlinearity.
    """
    mean, axes = pca_components(train_x)
    return pca_mse_from(mean, axes, val_x, ks)


@torch.inference_mode()
def codes(model: Autoencoder, images: torch.Tensor, chunk: int = 10_000) -> torch.Tensor:
    """Encoder output (N, h) in eval mode (dropout off)."""
    model.eval()
    return torch.cat([model.encode(part) for part in images.split(chunk)])


def dead_units(model: Autoencoder, images: torch.Tensor) -> int:
    """Hidden units never active (ReLU output 0) on any of `images`."""
    return int((codes(model, images).amax(0) <= 0).sum())


# L-BFGS iterations of the probe. Measured on the full data set (codes of h = 64..512 after
# 100 epochs): 25 instead of 50 changes the accuracy by at most 0.3 points and halves the time
# (15-18 s -> 8 s at h = 512 on one CPU thread), which at a trial's end can exceed its training.
PROBE_STEPS = 25


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    steps: int = PROBE_STEPS,
    weight_decay: float = 1e-4,
) -> float:
    """Softmax regression on standardised features, full-batch L-BFGS; validation accuracy."""
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-6)
    x_train, x_val = (train_features - mean) / std, (val_features - mean) / std
    y_train = train_labels.long().to(x_train.device)
    generator = torch.Generator().manual_seed(0)  # drawn on the CPU: the same start on any device
    weight = (torch.randn(x_train.shape[1], NUM_CLASSES, generator=generator) * 0.01).to(x_train.device).requires_grad_()
    bias = torch.zeros(NUM_CLASSES, device=x_train.device, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x_train @ weight + bias, y_train) + weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        predicted = (x_val @ weight + bias).argmax(1)
    return (predicted == val_labels.long().to(predicted.device)).float().mean().item()


ANALYSIS = ("dead_units", "probe_accuracy")  # trial_analysis's keys, reported by each trial at its end
ANALYSIS_TIME = "analysis_time_s"  # and the seconds it took (the tables name both: results.py)


def trial_analysis(model: Autoencoder, train_x: torch.Tensor, train_labels: torch.Tensor, val_x: torch.Tensor,
                   val_labels: torch.Tensor) -> dict:
    """What the report shows per trained model, computed where the model is (a trial's end),
    and the seconds it took (the probe's L-BFGS can cost as much as a few short epochs)."""
    started = time.perf_counter()
    found = {
        "dead_units": dead_units(model, val_x),
        "probe_accuracy": linear_probe_accuracy(codes(model, train_x), train_labels, codes(model, val_x), val_labels),
    }
    return {**found, ANALYSIS_TIME: time.perf_counter() - started}


def cache_dir() -> Path:
    return data.cache_dir("baselines")


def references_path(*tensors: torch.Tensor) -> Path:
    """The cache file of data_references for these images and labels."""
    digest = hashlib.sha1(f"probe steps {PROBE_STEPS}".encode())  # a different probe is a different entry
    for tensor in tensors:
        digest.update(tensor.contiguous().numpy().tobytes())
    return cache_dir() / f"{digest.hexdigest()[:20]}.pt"


def cached_pca_mse(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                   test_labels: torch.Tensor, ks: list[int]) -> dict[int, float] | None:
    """PCA's validation MSE at each k in `ks` if this data set's references are cached (a report
    computed them), else None: a few tenths of a second instead of the seconds PCA takes."""
    path = references_path(train_images, train_labels, test_images, test_labels)
    try:
        refs = torch.load(path, weights_only=True)
    except Exception:  # not cached yet, or cut short
        return None
    return pca_mse_from(refs["pca_mean"], refs["pca_axes"], test_images.float() / 255, ks)


def data_references(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                    test_labels: torch.Tensor) -> dict:
    """The data set's own yardsticks, computed once per data set and kept in the user cache:
    PCA's mean and axes, the mean image's MSE and the probe on raw pixels.

    Keyed by a hash of the uint8 images and labels (and the probe's settings), so a subset or
    other files get their own entry.
    """
    path = references_path(train_images, train_labels, test_images, test_labels)
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a cache file cut short: compute it again
            pass
    train_x, val_x = train_images.float() / 255, test_images.float() / 255
    mean, axes = pca_components(train_x)
    found = {
        "pca_mean": mean, "pca_axes": axes,
        "mean_image_mse": mean_image_mse(train_x, val_x),
        "raw_pixel_probe_accuracy": linear_probe_accuracy(train_x, train_labels, val_x, test_labels),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(found, partial)
    partial.replace(path)
    return found


def pca_mse_from(mean: torch.Tensor, axes: torch.Tensor, val_x: torch.Tensor, ks: list[int]) -> dict[int, float]:
    """pca_mse with the components already computed (data_references)."""
    centred = val_x.double() - mean
    errors = {}
    for k in ks:
        basis = axes[:, : min(k, axes.shape[1])]  # (784, k)
        errors[k] = F.mse_loss(centred @ basis @ basis.T, centred).item()
    return errors
