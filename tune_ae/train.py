"""The training loop: plain PyTorch, no Ray, one explicit epoch loop.

The whole data set lives on the training device as one float tensor; an epoch is a
`torch.randperm` from a seeded generator walked in minibatches. There is no DataLoader and
no per-image Python, and the loop never syncs with the host inside an epoch. On CUDA the
epoch's steps can be replayed as one CUDA graph (cuda_graph.py): the same arithmetic,
without a kernel launch per operation.

Reproducibility: initialisation, shuffling and dropout draw from random streams that belong
to the run (`TrainState`), never from whatever the process-wide generators hold. Saving and
restoring that state mid-run therefore gives bit-identical metrics on the same device.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from tune_ae.config import TrialConfig
from tune_ae.model import Autoencoder

STATE_FILE = "state.pt"  # a saved run inside a checkpoint folder
VAL_CHUNK = 10_000  # validation rows per forward pass: the whole test set in one matmul
SHUFFLE_STREAM, DROPOUT_STREAM = 1, 2  # stream ids for derived_seed


def pick_device(use_cuda: bool = True) -> torch.device:
    """CUDA when asked for and usable, otherwise CPU."""
    return torch.device("cuda") if use_cuda and torch.cuda.is_available() else torch.device("cpu")


def to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (N, 784) -> float32 (N, 784) in [0, 1] on `device`; the uint8 copy crosses the bus."""
    return images.to(device, non_blocking=True).float().div_(255.0)


@dataclass
class TrainState:
    model: Autoencoder
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator  # drives the per-epoch permutation, on the training device
    dropout: torch.Generator  # the dropout masks' stream, on the training device
    epoch: int = 0  # epochs completed
    cuda_graphs: bool = False  # replay each epoch as one CUDA graph (CUDA only)
    graph: object = None  # the captured epoch (cuda_graph.GraphedEpoch), built at first use; never saved
    # The caller's per-epoch records (the trainable keeps its reported rows here): saved in the
    # same file as the weights, so a checkpoint always knows the epochs it stands for.
    history: list = field(default_factory=list)


def derived_seed(seed: int, stream: int, epoch: int) -> int:
    """A seed for `stream` at `epoch`, for when a saved random state cannot be carried over.

    A generator's state is device-specific (5056 bytes of Mersenne Twister on the CPU, a
    16-byte Philox seed and offset on CUDA). A run that changes device restarts its streams
    from here: deterministic, but not the draws the first device would have made.
    """
    return (seed * 1_000_003 + stream * 10_007 + epoch) % (2**63)


def make_optimizer(model: Autoencoder, config: TrialConfig, capturable: bool = False) -> torch.optim.Optimizer:
    # The fused kernel updates all parameters in one pass; PyTorch's other Adam defaults
    # (betas, eps) are the report's. `capturable` keeps the step count on the device so that
    # a CUDA graph can replay the update; the arithmetic is the same.
    options = dict(lr=config.lr, weight_decay=config.weight_decay, capturable=capturable)
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **options)
    except RuntimeError:  # fused not available for this device/dtype
        return torch.optim.Adam(model.parameters(), foreach=True, **options)


def init_state(config: TrialConfig, device: torch.device, cuda_graphs: bool = False) -> TrainState:
    """A fresh model and optimizer, with every random stream derived from `config.seed`.

    `cuda_graphs` is honoured on CUDA only; elsewhere the eager loop runs.
    """
    init = torch.Generator(device="cpu").manual_seed(config.seed)
    # Default initialisation draws from the process-wide CPU RNG: fork it, so the run owns it.
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(init.get_state())
        model = Autoencoder(config.hidden, config.dropout, config.output_activation)
        after_init = torch.get_rng_state()
    dropout = torch.Generator(device=device)
    if device.type == "cpu":
        dropout.set_state(after_init)  # CPU masks continue the initialisation's stream
    else:
        dropout.manual_seed(config.seed + 2)
    model = model.to(device)
    graphs = cuda_graphs and device.type == "cuda"
    state = TrainState(
        model=model,
        optimizer=make_optimizer(model, config, capturable=graphs),
        shuffle=torch.Generator(device=device).manual_seed(config.seed + 1),
        dropout=dropout,
        cuda_graphs=graphs,
    )
    for module in model.modules():
        if hasattr(module, "generator"):  # model.Dropout draws its masks from the run's stream
            module.generator = dropout
    return state


def autocast(device: torch.device, precision: str, cache_casts: bool = True):
    # A CUDA graph must not reuse casts cached outside it: its capture passes cache_casts=False.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=cache_casts)


@torch.inference_mode()
def validation_loss(model: Autoencoder, images: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Mean squared error per pixel over `images` (N, 784), dropout off, as a float64 tensor on
    their device: reading it is the caller's one sync."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=images.device)
    with autocast(images.device, precision):
        for chunk in images.split(VAL_CHUNK):
            total += F.mse_loss(model(chunk).float(), chunk, reduction="sum").double()
    model.train(was_training)
    return total / images.numel()


def evaluate(model: Autoencoder, images: torch.Tensor, precision: str = "fp32") -> float:
    """validation_loss, read."""
    return float(validation_loss(model, images, precision))


def epoch_steps(state: TrainState, config: TrialConfig, train_x: torch.Tensor, order: torch.Tensor,
                loss_sum: torch.Tensor, cache_casts: bool = True) -> None:
    """The minibatch steps of one epoch over `order`, each loss added into `loss_sum` on the device.

    Run eagerly, or recorded once into a CUDA graph and replayed (cuda_graph.py).
    """
    model, optimizer = state.model, state.optimizer
    for batch_idx in order.split(config.batch_size):
        x = train_x.index_select(0, batch_idx)  # (B, 784); 5x faster than train_x[idx] on CPU
        with autocast(train_x.device, config.precision, cache_casts):
            loss = F.mse_loss(model(x).float(), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()  # stays on the device: no host sync per step


def train_epoch(state: TrainState, config: TrialConfig, train_x: torch.Tensor, val_x: torch.Tensor) -> dict:
    """One pass over `train_x` in shuffled minibatches, then the validation loss."""
    n = len(train_x)
    started = time.perf_counter()
    state.model.train()
    order = torch.randperm(n, generator=state.shuffle, device=train_x.device)
    if state.cuda_graphs and state.graph is None:
        state.graph = captured_epoch(state, config, train_x)
    if state.graph is not None:
        loss_sum = state.graph.replay(order)
    else:
        loss_sum = torch.zeros((), device=train_x.device)
        epoch_steps(state, config, train_x, order, loss_sum)
    train_loss = float(loss_sum / -(-n // config.batch_size))  # mean over batches; the epoch's one sync
    train_time = time.perf_counter() - started
    val_loss = evaluate(state.model, val_x, config.precision)
    state.epoch += 1
    return {
        "epoch": state.epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "epoch_time_s": time.perf_counter() - started,
        "images_per_s": n / train_time,
    }


def captured_epoch(state: TrainState, config: TrialConfig, train_x: torch.Tensor):
    """The epoch as a CUDA graph, or None (and the eager loop from here on) if capture fails."""
    from tune_ae import cuda_graph  # CUDA-only code, kept out of the CPU path

    saved = cuda_graph.snapshot(state)
    try:
        return cuda_graph.GraphedEpoch(state, config, train_x, epoch_steps)
    except Exception as err:  # a capture this torch or driver refuses: same arithmetic, eagerly
        warnings.warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); training eagerly", stacklevel=2)
        cuda_graph.restore(state, saved)
        state.cuda_graphs = False
        return None


def flush_denormals() -> None:
    """Treat subnormal floats as zero on the CPU (x86 with SSE3; elsewhere a no-op).

    Adam's moment estimates for units that get no gradient shrink by beta1 every step and
    reach the subnormal range (below 1.2e-38) after a few hundred steps; x86 computes with
    those 10-100x slower. Measured on 2-core Intel Xeon VM (6,000 images, h = 64, identity
    output, lr 2.7e-3, weight decay 1e-5): epochs went from 0.11 s to 1.5 s after epoch 25,
    and stayed at 0.11 s with this, to the same final val_loss. Process-wide: set again by
    every run, as workers are reused."""
    torch.set_flush_denormal(True)


def train(
    config: TrialConfig,
    train_x: torch.Tensor,
    val_x: torch.Tensor,
    state: TrainState | None = None,
    cuda_graphs: bool = False,
) -> Iterator[dict]:
    """Yield each epoch's metrics until `config.epochs`; resumes from `state` when given."""
    flush_denormals()
    state = state or init_state(config, train_x.device, cuda_graphs)
    while state.epoch < config.epochs:
        yield train_epoch(state, config, train_x, val_x)


def state_dict(state: TrainState) -> dict:
    return {
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "device": state.shuffle.device.type,  # the device type the generator states belong to
        "shuffle": state.shuffle.get_state(),
        "dropout": state.dropout.get_state(),
        "epoch": state.epoch,
        "history": state.history,
    }


def saved_device(saved: dict) -> str:
    """The device type a checkpoint's generator states belong to (older checkpoints did not say)."""
    if "device" in saved:
        return saved["device"]
    return "cuda" if saved["shuffle"].numel() == 16 else "cpu"  # a CUDA state is seed + offset


def load_state_dict(state: TrainState, saved: dict, seed: int) -> None:
    """Restore a saved run into `state`.

    On the device type that wrote it, the run continues bit for bit. On the other (a CUDA
    checkpoint opened on a CPU-only machine, or back) the model, optimizer and epoch carry
    over, and the shuffle and dropout streams restart from `derived_seed(seed, ..., epoch)`:
    still deterministic, but later minibatch orders and dropout masks differ from the ones
    an uninterrupted run on the first device would have drawn.
    """
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.epoch = saved["epoch"]
    state.history = list(saved.get("history", []))  # none in checkpoints of an older tune_ae
    device = state.shuffle.device.type
    if saved_device(saved) == device:
        dropout = saved.get("dropout")
        if dropout is None:  # written before the run owned a dropout generator
            dropout = saved["rng_state"] if device == "cpu" else saved["cuda_rng_state"]
        state.shuffle.set_state(saved["shuffle"])
        state.dropout.set_state(dropout)
    else:
        state.shuffle.manual_seed(derived_seed(seed, SHUFFLE_STREAM, state.epoch))
        state.dropout.manual_seed(derived_seed(seed, DROPOUT_STREAM, state.epoch))


def save(state: TrainState, config: TrialConfig, path: str | Path) -> None:
    torch.save({"config": config.to_dict(), **state_dict(state)}, path)


def read_checkpoint(path: str | Path, device: torch.device) -> tuple[dict, TrialConfig]:
    """The saved dict, tensors on `device`, and its config (older checkpoints lack newer fields)."""
    saved = torch.load(path, map_location=device, weights_only=True)
    return saved, TrialConfig.from_dict(saved["config"], fill_defaults=True)


def load_model(path: str | Path, device: torch.device) -> tuple[TrialConfig, Autoencoder]:
    """The trained model of a run saved by `save`, in eval mode, without its optimizer and streams.

    For reading results: building an optimizer costs more than the model (the first one in a
    process imports torch._dynamo, about a second).
    """
    saved, config = read_checkpoint(path, device)
    with torch.device("meta"):  # no initialisation to draw (nor global RNG to disturb): the weights come next
        model = Autoencoder(config.hidden, config.dropout, config.output_activation)
    model.load_state_dict(saved["model"], assign=True)
    return config, model.eval()


def load(path: str | Path, device: torch.device, cuda_graphs: bool = False) -> tuple[TrialConfig, TrainState]:
    """Rebuild a run saved by `save` on `device`, whichever device wrote it."""
    saved, config = read_checkpoint(path, device)
    state = init_state(config, device, cuda_graphs)
    # Generator states are byte tensors that set_state wants on the CPU, whatever map_location did.
    for key in ("shuffle", "dropout", "rng_state", "cuda_rng_state"):
        if saved.get(key) is not None:
            saved[key] = saved[key].cpu()
    load_state_dict(state, saved, config.seed)
    return config, state
