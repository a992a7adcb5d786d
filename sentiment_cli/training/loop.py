"""The training loop, readable top to bottom: batches, forward, BCEWithLogitsLoss, step, evaluate,
early stopping, checkpoint.

The first layer's V x H table gets sparse gradients, and ``optim.Adam`` updates only the
vocabulary rows present in the batch (weight decay included). On CPU the loop runs on one thread:
its operations are small, and on 2 shared cores a second OpenMP thread made steps up to 7x slower
(spin-waiting on a busy core) in our measurements.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from sentiment_cli.config import TrainingConfig
from sentiment_cli.device import resolve_device
from sentiment_cli.distributed import SOLO, World
from sentiment_cli.errors import DataError, TrainingError
from sentiment_cli.model.module import ModelConfig, SparseMLP
from sentiment_cli.model.optim import Adam
from sentiment_cli.shards import ShardedRows
from sentiment_cli.training.averaging import Averaging, parameter_averaging
from sentiment_cli.training.batches import (
    Epoch,
    EpochTensors,
    as_2d,
    evaluate_loss,
    right_answers,
)
from sentiment_cli.training.progress import EpochStats, TrainProgress
from sentiment_cli.training.state import TrainResult, TrainState

__all__ = ["EpochStats", "TrainProgress", "TrainResult", "TrainState",
           "TrainingDiverged", "fit"]


def compute_pos_weight(setting: str | float | None, y: np.ndarray,
                       world: World = SOLO) -> np.ndarray | None:
    """negatives/positives per output on the training rows for "auto", a number, or None.
    ``world``: the ranks whose rows ``y`` are a part of (each rank has its own rows)."""
    if setting is None:
        return None
    n_outputs = 1 if y.ndim == 1 else y.shape[1]
    if setting in ("auto", "balanced"):
        *sums, n_rows = world.sum([*y.reshape(len(y), n_outputs).sum(axis=0).tolist(), len(y)])
        positives = np.array(sums)
        negatives = n_rows - positives
        if (positives == 0).any():
            raise DataError(f"--pos-weight {setting}: a label has no positive rows in the "
                            f"training split")
        if (negatives == 0).any():
            raise DataError(f"--pos-weight {setting}: a label is positive on every training "
                            f"row, so its weight would be 0; use --pos-weight none")
        return (negatives / positives).astype(np.float32)
    value = float(setting)
    if not math.isfinite(value) or value <= 0:
        raise DataError(
            f"--pos-weight must be auto, balanced, none or a positive number, got {setting}")
    return np.full(n_outputs, value, dtype=np.float32)


# Adam's epsilon: below a gradient of about this size a weight moves in proportion to its
# gradient instead of by a full step of the learning rate. With several outputs (multi-label,
# multi-class) most (term, output) pairs carry next to no signal: a term that never occurs with
# a rare label still gets a small gradient for it each time it is seen, and Adam's default of
# 1e-8 turns that into full steps in random directions. At 1e-4, measured on GoEmotions on rows
# split from the training part (benchmarks/results/tuning.md): multi-label macro-F1 0.198 ->
# 0.286 and multi-class accuracy 0.406 -> 0.424 (seed 0), at about 5 times the epochs. One
# output keeps Adam's default: on SST-2 and rt_polarity 1e-4 tied it in twice the epochs.
MULTI_OUTPUT_EPS = 1e-4


def adam_eps(n_outputs: int) -> float:
    """Adam's epsilon for a model with ``n_outputs`` outputs (see MULTI_OUTPUT_EPS)."""
    return 1e-8 if n_outputs == 1 else MULTI_OUTPUT_EPS


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _add_weights(total: dict[str, torch.Tensor] | None,
                 model: nn.Module) -> dict[str, torch.Tensor]:
    """The running sum of epoch-end weights (on CPU, in float64 so many epochs add exactly)."""
    if total is None:
        return {k: v.detach().to("cpu", torch.float64, copy=True)
                for k, v in model.state_dict().items()}
    for k, v in model.state_dict().items():
        total[k] += v.detach().to("cpu", torch.float64)
    return total


@contextmanager
def _one_thread_on_cpu(device: torch.device) -> Iterator[None]:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_epoch(
    model: nn.Module,
    optimizer: Adam,
    criterion: nn.Module,
    order: np.ndarray,
    rows: EpochTensors,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    batch_size: int,
    device: torch.device,
    progress: TrainProgress,
    averaging: Averaging,
    multiclass: bool,
) -> list[float]:
    """One pass over a block's rows in ``order``; returns this rank's sums: of the training
    loss, of the weights, of right answers at logit 0, and of answers. ``targets`` and
    ``weights`` are the block's, ``rows`` in ``order``."""
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    weight_sum = 0.0
    n_answers = 0
    for start in range(0, len(order), batch_size):
        end = min(start + batch_size, len(order))
        mine = torch.from_numpy(order[start:end])
        target = targets[mine].to(device, non_blocking=True)
        logits = model(rows.batch(start, end, device))
        per_row = criterion(logits, target).mean(dim=1)
        if weights is None:
            loss = per_row.mean()
            loss_sum += per_row.detach().sum()
            weight_sum += end - start
        else:
            w = weights[mine].to(device, non_blocking=True)
            loss = (per_row * w).sum() / w.sum().clamp_min(1e-12)
            loss_sum += (per_row.detach() * w).sum()
            weight_sum += float(w.sum())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        averaging.step()
        right, answers = right_answers(logits.detach(), target, multiclass)
        correct += right
        n_answers += answers
        progress.batch_end(end - start)
    return [float(loss_sum), weight_sum, float(correct), n_answers]


@dataclass
class _Split:
    """Rows to train or validate on: the matrix, 2-D targets, optional row weights."""

    x: sp.csr_matrix
    y: np.ndarray
    w: np.ndarray | None = None


def _start(options: TrainingConfig, n_inputs: int, n_outputs: int,
           pos_weight: np.ndarray | None, device: torch.device, resume: TrainState | None,
           ) -> tuple[SparseMLP, Adam, nn.BCEWithLogitsLoss, TrainState, torch.Generator]:
    """The seeded model, its optimiser and loss, and the state to go on from: a new run's, or
    the checkpoint's (weights, optimiser moments and random generators as they were)."""
    torch.manual_seed(options.seed)
    shuffle_rng = torch.Generator().manual_seed(options.seed)
    model = SparseMLP(ModelConfig(n_inputs, list(options.hidden), options.dropout, n_outputs),
                      input_dropout=options.input_dropout).to(device)
    # One Adam over all parameters: lazy (touched rows only) for the sparse first-layer table.
    optimizer = Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay,
                     eps=adam_eps(n_outputs))
    criterion = nn.BCEWithLogitsLoss(
        reduction="none",
        pos_weight=None if pos_weight is None else torch.from_numpy(pos_weight).to(device),
    )
    state = TrainState(0, {}, {}, None, math.inf, 0, 0, [], torch.get_rng_state(),
                       shuffle_rng.get_state())
    if resume is not None:
        state = resume
        model.load_state_dict(resume.model_state)
        optimizer.load_state_dict(resume.optimizer_state)
        torch.set_rng_state(resume.torch_rng)
        shuffle_rng.set_state(resume.shuffle_rng)
    return model, optimizer, criterion, state, shuffle_rng


def fit(
    x_train: sp.csr_matrix | ShardedRows,
    y_train: np.ndarray,
    x_val: sp.csr_matrix | None,
    y_val: np.ndarray | None,
    options: TrainingConfig,
    w_train: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
    progress: TrainProgress | None = None,
    checkpoint: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
    world: World = SOLO,
    multiclass: bool = False,
) -> TrainResult:
    """Train a :class:`SparseMLP` and return it with the best validation epoch's weights, or
    with the mean of every epoch's weights when that has the lower validation loss.

    The mean (with ``options.average_epochs``, a validation set and two epochs or more) costs
    no extra epoch: early stopping has run ``patience`` epochs past the best one anyway, and
    averaging them with the earlier ones smooths the noise of the last steps. On SST-2 it won on
    validation loss in 3 of 3 seeded splits (+0.35 points of validation accuracy), and where it
    does not win (UCI: 3 of 3), the best epoch is kept: validation decides.

    With several ranks (``world``, under torchrun) each rank steps through its own rows (every
    ``world.size``-th of each epoch's shuffle; with --stream, the rows it kept) with its own
    optimiser, and the ranks average their parameters every few steps and at each epoch's end
    (training/averaging.py, local SGD): each ends the epoch with the same model, and
    the sums (pos_weight, metrics) are over all ranks. Each rank draws its own dropout masks.
    """
    device = resolve_device(options.device)
    progress = progress or TrainProgress()
    train = _Split(x_train, as_2d(y_train), w_train)
    val = None if x_val is None or y_val is None else _Split(x_val, as_2d(y_val), w_val)
    with _one_thread_on_cpu(device):
        own_rows = isinstance(x_train, ShardedRows)  # this rank's own rows, not a share
        pos_weight = compute_pos_weight(options.pos_weight, train.y, world if own_rows else SOLO)
        model, optimizer, criterion, state, shuffle_rng = _start(
            options, x_train.shape[1], train.y.shape[1], pos_weight, device, resume)
        ranks = parameter_averaging(world, list(model.parameters()))
        epoch_mean = options.average_epochs and val is not None
        y_tensor = torch.from_numpy(train.y)
        w_tensor = None if w_train is None else torch.from_numpy(w_train.astype(np.float32))
        stopped_early = state.bad_epochs >= options.patience
        while state.epoch < options.epochs and not stopped_early:
            epoch = state.epoch + 1
            started = time.perf_counter()
            world.reseed_epoch(options.seed, epoch, shuffle_rng if own_rows else None)
            rows = Epoch(x_train, len(train.y), options.batch_size, shuffle_rng, world)
            progress.epoch_start(epoch, options.epochs, rows.rows)
            ranks.epoch_start(rows.steps)
            sums = np.zeros(4)
            for matrix, positions, order in rows.blocks():
                sums += _train_epoch(
                    model, optimizer, criterion, order, EpochTensors(matrix, order),
                    y_tensor if positions is None else y_tensor[positions],
                    w_tensor if w_tensor is None or positions is None else w_tensor[positions],
                    options.batch_size, device, progress, ranks, multiclass)
            ranks.epoch_end()
            stats = _measure(sums, model, val, pos_weight, device, world, epoch, started,
                             multiclass)
            if not math.isfinite(stats.train_loss) or not math.isfinite(stats.val_loss or 0.0):
                raise TrainingDiverged(epoch, options.lr, state.best_state, state.history)
            monitored = stats.train_loss if stats.val_loss is None else stats.val_loss
            is_best = _end_epoch(state, model, epoch, monitored, epoch_mean)
            state.history.append(stats)
            progress.epoch_end(stats, is_best)
            stopped_early = val is not None and state.bad_epochs >= options.patience
            state.optimizer_state, state.torch_rng = optimizer.state_dict(), torch.get_rng_state()
            state.shuffle_rng = shuffle_rng.get_state()
            if checkpoint is not None:
                checkpoint(replace(state, model_state=_snapshot(model),
                                   history=list(state.history)))
        averaged, losses = _keep(model, state, train, val, pos_weight, device, world)
    model.to("cpu").eval()
    if options.pos_weight == "balanced" and pos_weight is not None:
        _shift_to_prior(model, pos_weight)
    train_loss, val_loss = (None, None) if losses is None else losses
    return TrainResult(
        model=model, history=state.history, best_epoch=state.best_epoch,
        stopped_early=stopped_early and state.epoch < options.epochs,
        pos_weight=None if pos_weight is None else pos_weight.tolist(), device=str(device),
        averaged_epochs=averaged, train_loss=train_loss, val_loss=val_loss,
        sent_bytes_per_epoch=ranks.bytes_per_epoch)


def _measure(sums: np.ndarray, model: SparseMLP, val: _Split | None,
             pos_weight: torch.Tensor | None, device: torch.device, world: World, epoch: int,
             started: float, multiclass: bool) -> EpochStats:
    """The epoch's figures: training loss and accuracy summed over the ranks' batches, and the
    validation rows' (None without them)."""
    loss_sum, weight_sum, n_right, n_answers = world.sum(sums.tolist())
    val_loss = val_acc = None
    if val is not None:
        val_loss, val_acc, _ = evaluate_loss(model, val.x, val.y, val.w, pos_weight, device,
                                             world, multiclass)
    return EpochStats(epoch, loss_sum / max(weight_sum, 1e-12), val_loss, n_right / n_answers,
                      val_acc, time.perf_counter() - started)


def _end_epoch(state: TrainState, model: SparseMLP, epoch: int, monitored: float,
               averaging: bool) -> bool:
    """Count the epoch in ``state``: the running weight sum, the best so far; True if best."""
    state.epoch = epoch
    if averaging:
        state.weight_sum = _add_weights(state.weight_sum, model)
    if monitored < state.best_val_loss:
        state.best_val_loss, state.best_epoch, state.bad_epochs = monitored, epoch, 0
        state.best_state = _snapshot(model)
        return True
    state.bad_epochs += 1
    return False


def _keep(model: SparseMLP, state: TrainState, train: _Split, val: _Split | None,
          pos_weight: np.ndarray | None, device: torch.device,
          world: World) -> tuple[int, tuple[float, float | None] | None]:
    """Load the weights to keep into ``model``: the mean of all epochs when its validation loss
    beats the best epoch's, else the best epoch. Returns (epochs averaged or 0, their losses)."""
    history = state.history
    if state.weight_sum is not None and len(history) > 1 and val is not None:
        model.load_state_dict({k: v / len(history) for k, v in state.weight_sum.items()})
        mean_val_loss, _, _ = evaluate_loss(model, val.x, val.y, val.w, pos_weight, device,
                                            world)
        if math.isfinite(mean_val_loss) and mean_val_loss < state.best_val_loss:
            mean_train_loss, _, _ = evaluate_loss(model, train.x, train.y, train.w, pos_weight,
                                                  device, world)
            return len(history), (mean_train_loss, mean_val_loss)
    if state.best_state is not None:
        model.load_state_dict(state.best_state)
    if not history:
        return 0, None
    kept = history[state.best_epoch - 1] if state.best_epoch else history[-1]
    return 0, (kept.train_loss, kept.val_loss)


@torch.no_grad()
def _shift_to_prior(model: SparseMLP, pos_weight: np.ndarray) -> None:
    """Undo what weighting the positives by w does to the optimum: it adds log(w) to each
    output's logit, so subtracting it from the output bias puts probabilities (and the 0.5
    threshold) back on the data's own class balance, while training on the weighted loss
    learned the rare class's terms sooner (``--pos-weight balanced``)."""
    model.output_bias().sub_(torch.from_numpy(np.log(pos_weight)))


class TrainingDiverged(TrainingError):
    """The loss became NaN or infinite; carries the last good weights, if any."""

    def __init__(
        self,
        epoch: int,
        lr: float,
        best_state: dict[str, torch.Tensor] | None,
        history: list[EpochStats],
    ) -> None:
        super().__init__(
            f"training diverged: the loss became NaN/inf in epoch {epoch}; the learning rate "
            f"(--lr {lr:g}) is probably too high: try --lr {lr / 10:g}"
        )
        self.epoch = epoch
        self.best_state = best_state
        self.history = history
