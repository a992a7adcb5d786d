"""What a run of the training loop holds between epochs (:class:`TrainState`, what a
checkpoint keeps) and what it returns (:class:`TrainResult`); free of torch imports, so that
the checkpoint and pipeline modules load without it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sentiment_cli.training.progress import EpochStats

if TYPE_CHECKING:
    import torch

    from sentiment_cli.model.module import SparseMLP


@dataclass
class TrainState:
    """Everything needed to continue a run after the last completed epoch."""

    epoch: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    best_state: dict[str, torch.Tensor] | None
    best_val_loss: float
    best_epoch: int
    bad_epochs: int
    history: list[EpochStats]
    torch_rng: torch.Tensor
    shuffle_rng: torch.Tensor
    weight_sum: dict[str, torch.Tensor] | None = None  # sum of the weights of every epoch so far


@dataclass
class TrainResult:
    model: SparseMLP
    history: list[EpochStats]
    best_epoch: int
    stopped_early: bool
    pos_weight: list[float] | None
    device: str
    averaged_epochs: int = 0  # > 0: the model is the mean of epochs 1..averaged_epochs
    train_loss: float | None = None  # of the kept weights
    val_loss: float | None = None
    sent_bytes_per_epoch: float = 0.0  # what each rank sent to the others (several ranks)
