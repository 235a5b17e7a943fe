import pytest
import torch

from tune_ae.model import Autoencoder, Dropout, parameter_count


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


@pytest.mark.parametrize("p", [0.1, 0.5, 0.03])
def test_dropout_drops_p_and_keeps_the_expectation(p):
    torch.manual_seed(0)
    x = torch.ones(2000, 513)  # an odd size: the last 64-bit draw is only partly used
    y = Dropout(p).train()(x)
    dropped = (y == 0).float().mean().item()
    assert dropped == pytest.approx(p, abs=0.003)
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)
    zero, kept = torch.unique(y).tolist()
    assert zero == 0.0 and kept == pytest.approx(1 / (1 - p), rel=1e-4)


def test_dropout_masks_are_independent_between_units():
    torch.manual_seed(0)
    kept = Dropout(0.5).train()(torch.ones(20000, 8)) > 0  # (20000, 8)
    # Neighbouring units share a 64-bit draw; their masks must still be uncorrelated.
    correlation = torch.corrcoef(kept.T.float())
    assert (correlation - torch.eye(8)).abs().max() < 0.03


def test_dropout_identity_in_eval_and_at_zero_and_gradient_is_the_mask():
    x = torch.rand(50, 40, requires_grad=True)
    assert Dropout(0.3).eval()(x) is x and Dropout(0.0).train()(x) is x
    y = Dropout(0.3).train()(x)
    y.sum().backward()
    assert torch.allclose(x.grad, (y != 0).float() / (1 - 0.3), rtol=1e-4)
    with pytest.raises(ValueError):
        Dropout(1.0)
