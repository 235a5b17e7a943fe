"""Yardsticks for a trained autoencoder: what a linear code of the same width achieves (PCA),
what no code achieves (the mean image), how many hidden units are dead, and how useful the
code is for classification (a linear probe).

All inputs are float tensors (N, 784) in [0, 1]; losses are MSE per pixel, as in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    centred = val_x.double() - mean
    errors = {}
    for k in ks:
        basis = axes[:, : min(k, axes.shape[1])]  # (784, k)
        reconstruction = centred @ basis @ basis.T
        errors[k] = F.mse_loss(reconstruction, centred).item()
    return errors


@torch.inference_mode()
def codes(model: Autoencoder, images: torch.Tensor, chunk: int = 10_000) -> torch.Tensor:
    """Encoder output (N, h) in eval mode (dropout off)."""
    model.eval()
    return torch.cat([model.encode(part) for part in images.split(chunk)])


def dead_units(model: Autoencoder, images: torch.Tensor) -> int:
    """Hidden units never active (ReLU output 0) on any of `images`."""
    return int((codes(model, images).amax(0) <= 0).sum())


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    val_features: torch.Tensor,
    val_labels: torch.Tensor,
    steps: int = 50,  # L-BFGS iterations: accuracy is flat from ~25 on Fashion-MNIST
    weight_decay: float = 1e-4,
) -> float:
    """Softmax regression on standardised features, full-batch L-BFGS; validation accuracy."""
    mean, std = train_features.mean(0), train_features.std(0).clamp_min(1e-6)
    x_train, x_val = (train_features - mean) / std, (val_features - mean) / std
    y_train = train_labels.long()
    generator = torch.Generator().manual_seed(0)
    weight = (torch.randn(x_train.shape[1], NUM_CLASSES, generator=generator) * 0.01).requires_grad_()
    bias = torch.zeros(NUM_CLASSES, requires_grad=True)
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
    return (predicted == val_labels.long()).float().mean().item()
