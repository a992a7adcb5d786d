"""What the training loop reports as it goes (kept free of torch, so renderers import it fast)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float | None
    train_acc: float
    val_acc: float | None
    seconds: float


class TrainProgress:
    """Receives progress events; the default does nothing (library code never prints)."""

    def phase(self, name: str, done: int, total: int | None = None, unit: str = "rows") -> None:
        """``done`` more ``unit`` (rows, bytes, ms) of a step before the epochs (reading the
        data, counting its terms, an --autotune search); ``total`` as known, else None."""

    def epoch_start(self, epoch: int, epochs: int, rows: int) -> None:
        """Epoch ``epoch`` of ``epochs`` begins; ``rows``: what its batch_end calls add up to."""

    def batch_end(self, rows: int) -> None: ...

    def epoch_end(self, stats: EpochStats, is_best: bool) -> None: ...
