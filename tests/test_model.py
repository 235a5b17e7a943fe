import pytest
import torch

from tune_ae.model import Autoencoder, parameter_count


@pytest.mark.parametrize("hidden", [1, 64, 512])
def test_shapes_and_parameter_count(hidden):
    model = Autoencoder(hidden)
    x = torch.rand(5, 784)
    assert model.encode(x).shape == (5, hidden)
    assert model.decode(model.encode(x)).shape == (5, 784)
    assert model(x).shape == (5, 784)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(hidden)


def test_layers_are_the_reports():
    model = Autoencoder(32, dropout=0.1)
    linear_in, relu, dropout = model.encoder
    assert (linear_in.in_features, linear_in.out_features) == (784, 32)
    assert isinstance(relu, torch.nn.ReLU) and dropout.p == 0.1
    # PyTorch's default init: uniform in +-1/sqrt(fan_in).
    assert linear_in.weight.abs().max() <= 1 / 784**0.5


@pytest.mark.parametrize(
    "name, check",
    [
        ("relu", lambda y: (y >= 0).all()),
        ("sigmoid", lambda y: ((y > 0) & (y < 1)).all()),
        ("identity", lambda y: (y < 0).any()),
    ],
)
def test_output_activations(name, check):
    torch.manual_seed(0)
    model = Autoencoder(16, output_activation=name).eval()
    assert check(model(torch.randn(64, 784)))


def test_unknown_activation():
    with pytest.raises(ValueError, match="output_activation must be one of"):
        Autoencoder(8, output_activation="tanh")


def test_dropout_only_in_training():
    model = Autoencoder(256, dropout=0.5)
    x = torch.rand(4, 784)
    model.eval()
    assert torch.equal(model.encode(x), model.encode(x))
    model.train()
    assert (model.encode(x) == 0).float().mean() > (model.eval().encode(x) == 0).float().mean()
