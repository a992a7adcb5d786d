"""How the ranks' parameters meet under torchrun: local SGD (:class:`LocalSGD`), every
``AVERAGE_EVERY`` steps and at each epoch's end; for one process (:class:`Averaging`) nothing
is exchanged. The training loop calls ``step`` after each optimiser step and ``epoch_end``
after each epoch; both are where an interruption stops the run."""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sentiment_cli import interruption
from sentiment_cli.distributed import World
from sentiment_cli.errors import Interrupted

if TYPE_CHECKING:
    import torch

# Steps between two exchanges of the ranks' changes (:class:`LocalSGD`). On SST-2 with 2 ranks,
# every 8 and every 32 steps gave the same dev accuracy as one process (mean of 4 seeds: 82.1
# and 82.5 against 82.2); every step or 4 steps cost 3.7 and 1.8 s of training against 1.1 s,
# as the ranks wait for each other at each exchange (benchmarks/results/distributed.md).
AVERAGE_EVERY = 32


def parameter_averaging(world: World, params: Sequence[torch.nn.Parameter]) -> Averaging:
    """How this rank's parameters meet the others' (:class:`LocalSGD`); nothing to do for one
    process."""
    return LocalSGD(world, params, AVERAGE_EVERY) if world.distributed else Averaging()


class Averaging:
    """One process: its parameters are the model's; nothing is exchanged. A Ctrl-C or SIGTERM
    (:mod:`.interruption`) stops it after the step it lands in."""

    bytes_per_epoch: float = 0.0  # what a rank sent over the network in the last epoch

    def epoch_start(self, steps: int) -> None:
        """This rank takes ``steps`` optimiser steps in the coming epoch."""

    def step(self) -> None:
        """An optimiser step was taken."""
        interruption.check()

    def epoch_end(self) -> None:
        """The epoch's steps are done: every rank has the same parameters after it."""
        interruption.check()


class LocalSGD(Averaging):
    """Local SGD (Lin et al. 2018, "Don't use large mini-batches, use local SGD"): each rank
    steps through its own rows with its own optimiser, and every ``period`` steps, and at the end
    of each epoch, the ranks' changes since the last exchange are averaged: one dense
    all-reduce of the model's size (twice: the changes and which of them are changes).

    Each parameter moves by the mean change of the ranks that changed it. For the dense layers
    that is every rank (the mean of the models, as torch's ``PeriodicModelAverager``); for the
    first layer's vocabulary rows it is the ranks whose rows had the term. A plain mean would
    halve (with 2 ranks) every step of a term one rank saw: on SST-2 that took twice the epochs
    and lost 0.7 points of dev accuracy (benchmarks/results/distributed.md).

    Why not DistributedDataParallel's all-reduce of every step's gradient: the first layer's
    gradient is sparse, and DDP's sparse-gradient path on gloo corrupted memory in long runs
    (SIGSEGV, ``malloc(): unaligned tcache chunk`` in ``backward``; reproduced with plain torch,
    DDP and an EmbeddingBag) and took 2.6x the time of one process on 2 cores. This moves a
    fixed number of bytes per exchange, whatever the batch, and nothing in ``backward``.

    The ranks agree, at each epoch's start, on how many steps every rank takes: the exchanges
    are in the first ``min(steps)`` steps; a rank with a step or two more takes them alone,
    before the epoch's last exchange. Each exchange also tells whether a rank was interrupted
    (Ctrl-C reaches every rank, but not in the same step): then every rank stops there."""

    def __init__(self, world: World, params: Sequence[torch.nn.Parameter], period: int) -> None:
        import torch.distributed as dist

        self.world, self.params, self.period = world, list(params), period
        self.shared_steps = self.taken = self.exchanges = 0
        for param in self.params:  # every rank starts from rank 0's parameters
            dist.broadcast(param.data, src=0)
        self.base = self._flat()
        # a ring all-reduce sends 2 (n - 1) / n of the buffer (changes and counts) from each rank
        self.bytes_per_exchange = 2 * (world.size - 1) / world.size * 2 * self.base.nbytes

    def _flat(self) -> torch.Tensor:
        import torch

        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def epoch_start(self, steps: int) -> None:
        self.shared_steps = min(self.world.everyone(steps))
        self.taken = self.exchanges = 0

    def step(self) -> None:
        self.taken += 1
        if self.taken <= self.shared_steps and self.taken % self.period == 0:
            self._exchange()

    def epoch_end(self) -> None:
        self._exchange()
        self.bytes_per_epoch = self.exchanges * self.bytes_per_exchange

    def _exchange(self) -> None:
        import torch
        import torch.distributed as dist

        change = self._flat() - self.base
        stopping = [float(interruption.received() is not None)]
        both = torch.cat([change, (change != 0).to(change.dtype), change.new_tensor(stopping)])
        dist.all_reduce(both)
        total, changed_by, stopped = both.split([len(change), len(change), 1])
        if stopped.item():
            raise Interrupted(interruption.received() or signal.SIGTERM)
        self.base += total / changed_by.clamp_min(1)
        at = 0
        with torch.no_grad():
            for param in self.params:
                param.copy_(self.base[at : at + param.numel()].view_as(param))
                at += param.numel()
        self.exchanges += 1
