"""This rank's rows, batched for an epoch of training (:class:`Epoch`, :class:`EpochTensors`)
and scored whole (:func:`evaluate_loss`): in memory, or in shards on disk (``--stream``); under
torchrun, each rank's share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from sentiment_cli.distributed import SOLO, World
from sentiment_cli.model.module import SparseBatch, SparseMLP, predict_logits
from sentiment_cli.shards import ShardedRows


class EpochTensors:
    """One epoch's rows, in training order, as flat tensors, so batches are cheap slices."""

    def __init__(self, matrix: sp.csr_matrix, order: np.ndarray) -> None:
        shuffled = matrix[order]
        self.indptr = shuffled.indptr.astype(np.int64)
        self.indices = torch.from_numpy(shuffled.indices.astype(np.int64))
        self.values = torch.from_numpy(np.asarray(shuffled.data, dtype=np.float32))

    def batch(self, start: int, end: int, device: torch.device) -> SparseBatch:
        lo, hi = int(self.indptr[start]), int(self.indptr[end])
        offsets = torch.from_numpy(self.indptr[start:end] - lo)
        return SparseBatch(
            indices=self.indices[lo:hi].to(device, non_blocking=True),
            offsets=offsets.to(device, non_blocking=True),
            values=self.values[lo:hi].to(device, non_blocking=True),
        )


class Epoch:
    """This rank's rows in one epoch, as blocks in memory, and the steps it takes over them.

    Rows in memory: one block, a shuffle of every row (the same on every rank), of which each
    rank takes every ``world.size``-th. Rows in shards (``--stream``; under torchrun each
    rank's own): read in a shuffled order a few shards at a time, each block shuffled (a
    bounded buffer)."""

    def __init__(self, x: sp.csr_matrix | ShardedRows, n_rows: int, batch_size: int,
                 generator: torch.Generator, world: World) -> None:
        self.x, self.generator, self.world = x, generator, world
        if isinstance(x, ShardedRows):
            self.order = None
            self.shard_order = torch.randperm(len(x.paths), generator=generator).tolist()
            sizes = x.block_sizes(self.shard_order)
        else:
            self.order = world.share(torch.randperm(n_rows, generator=generator).numpy())
            sizes = [len(self.order)]
        self.steps = sum(-(-n // batch_size) for n in sizes)
        self.rows = sum(sizes)  # this rank's, in the epoch

    def blocks(self) -> Iterator[tuple[sp.csr_matrix, np.ndarray | None, np.ndarray]]:
        """(CSR rows, their positions among all rows or None for all, this rank's order)."""
        if self.order is not None:
            yield self.x, None, self.order
            return
        assert isinstance(self.x, ShardedRows)
        for matrix, positions in self.x.shuffled_blocks(self.shard_order):
            yield matrix, positions, torch.randperm(len(positions), generator=self.generator
                                                    ).numpy()


def as_2d(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1).astype(np.float32)


def right_answers(logits: Any, targets: Any, multiclass: bool) -> tuple[Any, int]:
    """(right answers, answers) of 2-d logits (NumPy or torch) against 0/1 targets: a row's most
    probable class for a multi-class model, else each output at logit 0."""
    if multiclass:
        return (logits.argmax(1) == targets.argmax(1)).sum(), targets.shape[0]
    return ((logits > 0) == (targets > 0.5)).sum(), targets.shape[0] * targets.shape[1]


def evaluate_loss(
    model: SparseMLP,
    matrix: sp.csr_matrix,
    y: np.ndarray,
    weights: np.ndarray | None,
    pos_weight: np.ndarray | None,
    device: torch.device,
    world: World = SOLO,
    multiclass: bool = False,
) -> tuple[float, float, np.ndarray]:
    """(loss as trained, accuracy (:func:`right_answers`), logits) on a whole matrix, in eval
    mode. With
    several ranks each scores its share of the rows, and the loss and accuracy are over all of
    them (the logits are this rank's rows'). Rows in shards are scored a shard at a time."""
    if isinstance(matrix, ShardedRows):
        return _sharded_loss(model, matrix, y, weights, pos_weight, device, world, multiclass)
    rows = world.share(np.arange(matrix.shape[0]))
    matrix, y = matrix[rows], y[rows]
    weights = None if weights is None else weights[rows]
    logits = predict_logits(model, matrix, device)
    targets = as_2d(y)
    loss = F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits),
        torch.from_numpy(targets),
        pos_weight=None if pos_weight is None else torch.from_numpy(pos_weight),
        reduction="none",
    ).mean(dim=1)
    w = torch.ones_like(loss) if weights is None else torch.from_numpy(weights)
    right, answers = right_answers(logits, targets, multiclass)
    loss_sum, weight_sum, n_right, n_cells = world.sum(
        [float((loss * w).sum()), float(w.sum()), float(right), answers])
    return loss_sum / max(weight_sum, 1e-12), n_right / max(n_cells, 1), logits


def _sharded_loss(model: SparseMLP, matrix: ShardedRows, y: np.ndarray,
                  weights: np.ndarray | None, pos_weight: np.ndarray | None,
                  device: torch.device, world: World,
                  multiclass: bool) -> tuple[float, float, np.ndarray]:
    """evaluate_loss over rows in shards: each shard's mean weighed by its rows (weights);
    over every rank's shards when each rank has its own (``world``). The logits: this rank's."""
    loss_sum = weight_sum = right = 0.0
    logits = []
    for block, rows in matrix.blocks():
        w = None if weights is None else weights[rows]
        loss, accuracy, part = evaluate_loss(model, block, y[rows], w, pos_weight, device,
                                             multiclass=multiclass)
        share = float(len(rows) if w is None else w.sum())
        loss_sum, weight_sum = loss_sum + loss * share, weight_sum + share
        right += accuracy * len(rows)
        logits.append(part)
    loss_sum, weight_sum, right, n_rows = world.sum([loss_sum, weight_sum, right,
                                                     matrix.shape[0]])
    return loss_sum / max(weight_sum, 1e-12), right / max(n_rows, 1), np.concatenate(logits)
