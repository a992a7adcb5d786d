"""The training options, kept free of torch so the CLI and the pipeline import them fast."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sentiment_cli.errors import DataError

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Bounds of what a user can ask for, also what a model folder may hold (schema.py).
MAX_NGRAM = 10  # word n-grams; a text of n tokens has n * MAX_NGRAM of them at most
MAX_HIDDEN = 100_000
MAX_LAYERS = 16
MAX_SEED = 2**32 - 1  # what NumPy's and scikit-learn's seeding accept


def finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@dataclass
class TrainOptions:
    # Defaults measured on validation splits of the training data only (README, "Choosing the
    # defaults"; benchmarks/tune.py): no hidden layer matched or beat every MLP we tried on
    # rt_polarity, SST-2 and UCI, and lr 0.02 with patience 2 had the best validation accuracy
    # on all three, in fewer epochs than lr 0.01.
    hidden: list[int] = field(default_factory=list)
    dropout: float = 0.2
    lr: float = 0.02
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 30
    patience: int = 2
    pos_weight: str | float | None = None  # None, "auto", "balanced" or a number
    device: str = "auto"
    seed: int = 0
    # keep the mean of all epochs' weights when its validation loss beats the best epoch's
    average_epochs: bool = True

    def validate(self) -> None:
        weight = self.pos_weight
        checks = [
            (finite(self.lr) and self.lr > 0, f"--lr must be a positive number, got {self.lr}"),
            (finite(self.weight_decay) and self.weight_decay >= 0,
             f"--weight-decay must be a number >= 0, got {self.weight_decay}"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.patience >= 1, "--patience must be at least 1"),
            (finite(self.dropout) and 0 <= self.dropout < 1,
             f"--dropout must be in [0, 1), got {self.dropout}"),
            (len(self.hidden) <= MAX_LAYERS, f"--hidden takes at most {MAX_LAYERS} layer sizes"),
            (all(1 <= h <= MAX_HIDDEN for h in self.hidden),
             f"--hidden sizes must be whole numbers from 1 to {MAX_HIDDEN:,}, got "
             f"{','.join(map(str, self.hidden))}"),
            (weight in (None, "auto", "balanced") or (finite(weight) and weight > 0),
             f"--pos-weight must be auto, balanced, none or a positive number, got {weight}"),
            (0 <= self.seed <= MAX_SEED, f"--seed must be a whole number from 0 to {MAX_SEED}, "
                                         f"got {self.seed}"),
            (DEVICE_PATTERN.fullmatch(self.device.strip().lower()) is not None,
             f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DataError(message)
