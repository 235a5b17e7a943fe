"""The yardsticks a trial is compared with: PCA at k = h, the mean image, dead units, the
linear probe, and the per-data-set cache of the references."""

import pytest
import torch

from tune_ae import baselines, results
from tune_ae.model import Autoencoder


def test_the_analysis_reports_what_the_tables_hold():
    model = Autoencoder(8, dropout=0.0)
    x, labels = torch.rand(40, 784), torch.arange(40) % 10
    got = baselines.trial_analysis(model, x, labels, x[:20], labels[:20])
    assert set(got) == {*baselines.ANALYSIS, baselines.ANALYSIS_TIME} == {*results.ANALYSIS_COLUMNS, results.ANALYSIS_TIME}
    assert 0 <= got["dead_units"] <= 8 and 0 <= got["probe_accuracy"] <= 1 and got[baselines.ANALYSIS_TIME] >= 0


def test_pca_matches_a_direct_svd():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.rand(6, 784, generator=generator)
    train_x = torch.rand(200, 6, generator=generator) @ mixing / 6 + 0.01 * torch.rand(200, 784, generator=generator)
    val_x = torch.rand(50, 6, generator=generator) @ mixing / 6
    got = baselines.pca_mse(train_x, val_x, [1, 3, 6, 784])
    mean = train_x.double().mean(0)
    _, _, vh = torch.linalg.svd(train_x.double() - mean, full_matrices=False)
    for k in (1, 3, 6):
        basis = vh[:k].T
        centred = val_x.double() - mean
        direct = ((centred @ basis @ basis.T - centred) ** 2).mean().item()
        assert got[k] == pytest.approx(direct, rel=1e-6)
    assert got[1] > got[3] > got[6] and got[784] < 1e-20
    assert baselines.mean_image_mse(train_x, val_x) == pytest.approx(((val_x - train_x.mean(0)) ** 2).mean().item())


def test_dead_units_and_probe():
    model = Autoencoder(8, dropout=0.0)
    with torch.no_grad():
        model.encoder[0].bias[:3] = -1e3  # three units that can never fire
        model.encoder[0].bias[3:] = 1e3
    assert baselines.dead_units(model, torch.rand(20, 784)) == 3
    labels = torch.arange(200) % 10
    features = torch.nn.functional.one_hot(labels, 10).float() + 0.1 * torch.randn(200, 10)
    assert baselines.linear_probe_accuracy(features[:150], labels[:150], features[150:], labels[150:]) > 0.9


def test_data_references_are_computed_once_per_data_set(tiny_dir):
    from tune_ae.data import load_fashion_mnist

    data = load_fashion_mnist(tiny_dir, expect_full=False)
    first = baselines.data_references(data.train_images, data.train_labels, data.test_images, data.test_labels)
    (entry,) = baselines.cache_dir().glob("*.pt")
    second = baselines.data_references(data.train_images, data.train_labels, data.test_images, data.test_labels)
    assert torch.equal(first["pca_axes"], second["pca_axes"]) and first["mean_image_mse"] == second["mean_image_mse"]
    assert entry.stat().st_mtime_ns == next(baselines.cache_dir().glob("*.pt")).stat().st_mtime_ns  # read, not rewritten
    smaller = load_fashion_mnist(tiny_dir, subset=100, expect_full=False)
    baselines.data_references(smaller.train_images, smaller.train_labels, smaller.test_images, smaller.test_labels)
    assert len(list(baselines.cache_dir().glob("*.pt"))) == 2  # another data set, another entry
    val_x = data.test_images.float() / 255
    direct = baselines.pca_mse(data.train_images.float() / 255, val_x, [4, 16])
    assert baselines.pca_mse_from(first["pca_mean"], first["pca_axes"], val_x, [4, 16]) == pytest.approx(direct)
