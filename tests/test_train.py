import math

import pytest
import torch

from tune_ae import train
from tune_ae.config import TrialConfig

from conftest import run
from faults import as_if_written_on_cuda, cuda_style_state

CPU = torch.device("cpu")


def test_metrics_and_falling_loss(tensors):
    config = TrialConfig(hidden=32, epochs=8, batch_size=50, lr=3e-3)
    history = run(config, tensors)
    assert [m["epoch"] for m in history] == list(range(1, 9))
    for m in history:
        assert set(m) == {"epoch", "train_loss", "val_loss", "epoch_time_s", "images_per_s"}
        assert all(math.isfinite(v) and v > 0 for v in m.values())
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < 0.5 * history[0]["val_loss"]


def test_val_loss_is_torch_mse_over_the_whole_set(tensors):
    config = TrialConfig(hidden=16, epochs=1, batch_size=64)
    state = train.init_state(config, CPU)
    run(config, tensors, state)
    _, val_x = tensors
    with torch.no_grad():
        expected = torch.nn.MSELoss()(state.model.eval()(val_x), val_x).item()
    assert train.evaluate(state.model, val_x) == pytest.approx(expected, rel=1e-6)


def test_same_seed_same_metrics_other_seed_differs(tensors):
    config = TrialConfig(hidden=16, epochs=3, batch_size=64)
    a, b = run(config, tensors), run(config, tensors)
    c = run(TrialConfig(hidden=16, epochs=3, batch_size=64, seed=1), tensors)

    def losses(history):
        return [(m["train_loss"], m["val_loss"]) for m in history]

    assert losses(a) == losses(b)
    assert losses(a) != losses(c)


def test_save_restore_is_bit_identical(tensors, tmp_path):
    config = TrialConfig(hidden=24, epochs=4, batch_size=64, dropout=0.3)
    straight = run(config, tensors)

    first = train.init_state(config, CPU)
    part1 = run(TrialConfig(**{**config.to_dict(), "epochs": 2}), tensors, first)
    train.save(first, config, tmp_path / "state.pt")
    torch.manual_seed(1234)  # disturb the process-wide RNG: the run must not depend on it
    restored_config, restored = train.load(tmp_path / "state.pt", CPU)
    assert restored_config == config and restored.epoch == 2
    part2 = run(config, tensors, restored)

    keys = ("epoch", "train_loss", "val_loss")
    assert [[m[k] for k in keys] for m in part1 + part2] == [[m[k] for k in keys] for m in straight]


def test_load_model_is_the_trained_model_in_eval_mode(tensors, tmp_path):
    config = TrialConfig(hidden=24, epochs=2, batch_size=64, output_activation="sigmoid")
    state = train.init_state(config, CPU)
    run(config, tensors, state)
    train.save(state, config, tmp_path / "state.pt")
    rng = torch.get_rng_state()
    loaded_config, model = train.load_model(tmp_path / "state.pt", CPU)
    assert torch.equal(torch.get_rng_state(), rng)  # weights loaded, nothing initialised
    assert loaded_config == config and not model.training
    _, val_x = tensors
    with torch.inference_mode():
        assert torch.equal(model(val_x), state.model.eval()(val_x))


def test_runs_do_not_touch_the_process_rng(tensors):
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    run(TrialConfig(hidden=8, epochs=1, batch_size=64), tensors)
    assert torch.equal(torch.rand(3), expected)


def test_bf16_trains_close_to_fp32(tensors):
    fp32 = run(TrialConfig(hidden=32, epochs=6, batch_size=50, lr=3e-3), tensors)
    bf16 = run(TrialConfig(hidden=32, epochs=6, batch_size=50, lr=3e-3, precision="bf16"), tensors)
    # Stated tolerance: bf16 autocast ends within 10% of fp32's val_loss on tiny data.
    assert bf16[-1]["val_loss"] == pytest.approx(fp32[-1]["val_loss"], rel=0.10)


def test_pick_device_falls_back_to_cpu():
    assert train.pick_device(use_cuda=False) == CPU
    if not torch.cuda.is_available():
        assert train.pick_device() == CPU


@pytest.mark.parametrize("legacy", [False, True])
def test_a_cuda_checkpoint_resumes_on_cpu(tensors, tmp_path, legacy):
    config = TrialConfig(hidden=24, epochs=4, batch_size=64)
    first = train.init_state(config, CPU)
    run(TrialConfig(**{**config.to_dict(), "epochs": 2}), tensors, first)
    train.save(first, config, tmp_path / "state.pt")
    as_if_written_on_cuda(tmp_path / "state.pt", legacy)

    _, restored = train.load(tmp_path / "state.pt", CPU)
    assert restored.epoch == 2
    for name, value in first.model.state_dict().items():  # the weights carry over exactly
        assert torch.equal(restored.model.state_dict()[name], value)
    # The random streams are re-derived from (seed, epoch): deterministic, and they train on.
    again = train.load(tmp_path / "state.pt", CPU)[1]
    assert torch.equal(restored.shuffle.get_state(), again.shuffle.get_state())
    assert torch.equal(restored.shuffle.get_state(),
                       torch.Generator().manual_seed(train.derived_seed(config.seed, train.SHUFFLE_STREAM, 2)).get_state())
    a, b = run(config, tensors, restored), run(config, tensors, again)
    assert [m["val_loss"] for m in a] == [m["val_loss"] for m in b] and len(a) == 2
    assert all(math.isfinite(m["val_loss"]) for m in a)


def test_a_cpu_checkpoint_names_its_device(tensors, tmp_path):
    config = TrialConfig(hidden=8, epochs=1, batch_size=64)
    state = train.init_state(config, CPU)
    run(config, tensors, state)
    train.save(state, config, tmp_path / "state.pt")
    saved = torch.load(tmp_path / "state.pt", weights_only=True)
    assert saved["device"] == "cpu" and train.saved_device(saved) == "cpu"
    del saved["device"]
    assert train.saved_device(saved) == "cpu"  # told apart by the state's size when unnamed
    assert train.saved_device({"shuffle": cuda_style_state()}) == "cuda"


def test_weight_decay_is_adams_and_defaults_to_none(tensors, tmp_path):
    plain = run(TrialConfig(hidden=16, epochs=3, batch_size=64), tensors)
    explicit = run(TrialConfig(hidden=16, epochs=3, batch_size=64, weight_decay=0.0), tensors)
    assert [m["val_loss"] for m in plain] == [m["val_loss"] for m in explicit]
    config = TrialConfig(hidden=16, epochs=3, batch_size=64, weight_decay=0.5)
    state = train.init_state(config, CPU)
    assert state.optimizer.param_groups[0]["weight_decay"] == 0.5
    decayed = run(config, tensors, state)
    assert [m["val_loss"] for m in decayed] != [m["val_loss"] for m in plain]
    reference = train.init_state(TrialConfig(hidden=16, epochs=3, batch_size=64), CPU)
    run(TrialConfig(hidden=16, epochs=3, batch_size=64), tensors, reference)
    assert state.model.encoder[0].weight.norm() < reference.model.encoder[0].weight.norm()  # shrunk
    # A checkpoint written before the field existed opens with it at its default.
    train.save(reference, TrialConfig(hidden=16, epochs=3, batch_size=64), tmp_path / "old.pt")
    saved = torch.load(tmp_path / "old.pt", weights_only=True)
    del saved["config"]["weight_decay"]
    torch.save(saved, tmp_path / "old.pt")
    assert train.load(tmp_path / "old.pt", CPU)[0].weight_decay == 0.0



def test_one_epoch_is_pinned_to_its_numbers():
    """One epoch of a fixed tiny problem, its losses written down (nanodo's pinned test).

    The other tests compare one run with another, so a change that moved every number in
    the same way would pass them. This one fails when the arithmetic changes: initialisation,
    the shuffle, the dropout stream, the loss's normalisation, Adam's update, the data's scaling.
    If that was meant (a deliberate change to the loop, a new torch), put the new numbers here
    and say why in the commit: every earlier experiment's metrics differ from the new code's.
    """
    from conftest import tiny_images

    torch.set_num_threads(1)  # one summation order
    train_x, val_x = (train.to_device(torch.from_numpy(tiny_images(n, seed=s)[0]).reshape(n, 784), CPU)
                      for n, s in ((200, 0), (50, 1)))  # (n, 28, 28) uint8 -> (n, 784) in [0, 1]
    (metrics,) = train.train(TrialConfig(hidden=16, epochs=1, batch_size=50, seed=0), train_x, val_x)
    assert metrics["train_loss"] == pytest.approx(0.0594659186899662, abs=1e-6)
    assert metrics["val_loss"] == pytest.approx(0.05640973772321429, abs=1e-6)


def test_training_treats_subnormal_floats_as_zero_on_the_cpu(tensors):
    """Adam's moments of units without gradient reach the subnormal range within a few hundred
    steps; x86 computes with those 10-100x slower (train.flush_denormals)."""
    supported = torch.set_flush_denormal(False)
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0  # a subnormal, kept
    run(TrialConfig(hidden=8, epochs=1, batch_size=50), tensors)
    assert (torch.tensor([1e-39]) * 1.0).item() == (0.0 if supported else pytest.approx(1e-39))
