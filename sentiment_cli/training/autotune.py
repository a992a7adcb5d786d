"""``--autotune DURATION``: search the training options on the validation rows within a
wall-time budget, as fastText's ``-autotune-duration`` does.

Each trial trains on the training rows with one set of options and is scored by its validation
log loss (unweighted by ``--pos-weight``, so that trials compare; the rows' own weights count):
the quantity early stopping already watches, and smoother than accuracy on a few hundred rows.
The first trial is the options as given, so the search never keeps worse options than those
on the rows it can see. Later trials are drawn at random from :data:`SPACE` (the first few, and
one in three afterwards) or near the best so far (one or two options moved to a neighbouring
value, the learning rate by a random factor), seeded by ``--seed``. A trial still running when
the budget ends is stopped at its next batch and discarded. The vectorizer's options, the
epochs, patience, ``--pos-weight`` and the seed stay as given.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from sentiment_cli import interruption
from sentiment_cli.config import TrainingConfig
from sentiment_cli.data.reading import Dataset
from sentiment_cli.errors import DataError, Interrupted
from sentiment_cli.model.module import predict_logits
from sentiment_cli.training.batches import as_2d, right_answers
from sentiment_cli.training.loop import TrainingDiverged, fit
from sentiment_cli.training.progress import TrainProgress

# What the search draws from. Hidden sizes include none (a linear model); dropout matters only
# with a hidden layer.
SPACE: dict[str, list[Any]] = {
    "hidden": [(), (16,), (64,), (128,), (64, 32)],
    "dropout": [0.2, 0.3, 0.4, 0.5, 0.6],
    "input_dropout": [0.0, 0.1, 0.2, 0.3, 0.5],
    "weight_decay": [0.0, 1e-6, 1e-5, 1e-4],
    "batch_size": [64, 128, 256, 512],
}
LR_RANGE = (1e-3, 5e-2)  # drawn log-uniformly
SEARCHED = ("hidden", "lr", "dropout", "input_dropout", "weight_decay", "batch_size")
RANDOM_TRIALS = 4  # drawn from the whole space before any trial is drawn near the best


@dataclass(frozen=True)
class Trial:
    """One finished trial: its options (the searched ones), validation loss and accuracy."""

    number: int
    options: dict[str, Any]
    val_loss: float
    val_accuracy: float
    epochs: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.number, **self.options, "hidden": list(self.options["hidden"]),
                "val_loss": round(self.val_loss, 6), "val_accuracy": round(self.val_accuracy, 6),
                "epochs": self.epochs, "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class Search:
    """What :func:`search` found: the options to train with and every finished trial."""

    chosen: TrainingConfig
    trials: list[Trial]
    best: int | None  # the number of the best trial; None when none finished
    budget: float
    seconds: float
    stopped: int  # trials stopped by the budget (discarded)

    def to_dict(self) -> dict[str, Any]:
        return {"budget_seconds": self.budget, "seconds": round(self.seconds, 3),
                "best_trial": self.best, "stopped_trials": self.stopped,
                "trials": [trial.to_dict() for trial in self.trials]}


class _OutOfTime(Exception):
    """The budget ended during a trial."""


class _Clock(TrainProgress):
    """Stops a trial at the first batch after the deadline; moves the bar with the time."""

    def __init__(self, deadline: float, tick: Callable[[], None]) -> None:
        self.deadline, self.tick = deadline, tick

    def batch_end(self, rows: int) -> None:
        self.tick()
        if time.perf_counter() >= self.deadline:
            raise _OutOfTime


def searched(options: TrainingConfig) -> dict[str, Any]:
    return {name: getattr(options, name) for name in SEARCHED}


def described(options: dict[str, Any]) -> str:
    """Searched options as command-line flags (dropout only with a hidden layer)."""
    hidden = ",".join(map(str, options["hidden"])) or "none"
    parts = [f"--hidden {hidden}", f"--lr {options['lr']:.3g}"]
    if options["hidden"]:
        parts.append(f"--dropout {options['dropout']:g}")
    parts += [f"--input-dropout {options['input_dropout']:g}",
              f"--weight-decay {options['weight_decay']:g}",
              f"--batch-size {options['batch_size']}"]
    return " ".join(parts)


def _draw(rng: random.Random) -> dict[str, Any]:
    low, high = LR_RANGE
    drawn = {name: rng.choice(values) for name, values in SPACE.items()}
    return {**drawn, "lr": _rounded(math.exp(rng.uniform(math.log(low), math.log(high))))}


def _rounded(lr: float) -> float:
    """Three significant digits: what the notes print is exactly what was tried."""
    return float(f"{lr:.3g}")


def _near(best: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The best options with the learning rate moved and one or two others stepped."""
    moved = dict(best)
    low, high = LR_RANGE
    moved["lr"] = _rounded(min(max(best["lr"] * math.exp(rng.gauss(0.0, 0.5)), low / 2),
                               high * 2))
    for name in rng.sample(sorted(SPACE), rng.choice((1, 2))):
        values = SPACE[name]
        at = values.index(best[name]) if best[name] in values else rng.randrange(len(values))
        moved[name] = values[min(max(at + rng.choice((-1, 1)), 0), len(values) - 1)]
    return moved


def _candidates(given: dict[str, Any], seed: int,
                best: Callable[[], dict[str, Any]]) -> Any:
    """The options to try, in order: the given ones, a few random draws, then mostly near the
    best so far (``best()``, asked each time), a random draw one time in three."""
    rng = random.Random(seed)
    tried: set[str] = set()
    number = redrawn = 0
    while True:
        if number == 0:
            options = given
        elif number <= RANDOM_TRIALS or rng.random() < 1 / 3:
            options = _draw(rng)
        else:
            options = _near(best(), rng)
        if not options["hidden"]:  # no hidden layer, no dropout: keep the given value
            options = {**options, "dropout": given["dropout"]}
        key = repr(sorted(options.items()))
        if key in tried and redrawn < 20:  # tried already: draw again (a few times at most)
            redrawn += 1
            continue
        tried.add(key)
        number, redrawn = number + 1, 0
        yield options


def validation_loss(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None,
                    multiclass: bool = False) -> tuple[float, float]:
    """(mean log loss per label, accuracy (batches.right_answers)) of ``logits`` on the rows,
    the loss weighted by the rows' own weights when given."""
    targets = as_2d(y)
    losses = F.binary_cross_entropy_with_logits(
        torch.from_numpy(logits), torch.from_numpy(targets), reduction="none").mean(dim=1)
    w = np.ones(len(targets)) if weights is None else np.asarray(weights, dtype=np.float64)
    loss = float((losses.numpy() * w).sum() / max(w.sum(), 1e-12))
    right, answers = right_answers(logits, targets, multiclass)
    return loss, float(right) / answers


def search(x_train: Any, y_train: np.ndarray, x_val: sp.csr_matrix, y_val: np.ndarray,
           options: TrainingConfig, budget: float, w_train: np.ndarray | None = None,
           w_val: np.ndarray | None = None,
           progress: TrainProgress | None = None,
           on_trial: Callable[[Trial, bool], None] = lambda trial, best: None,
           multiclass: bool = False) -> Search:
    """Try training options for ``budget`` seconds; the options of the trial with the lowest
    validation loss (``options`` themselves when no trial finished). ``on_trial`` hears of each
    finished trial and whether it is the best so far; ``progress`` gets the elapsed time as an
    ``autotune`` phase, in milliseconds of ``budget``."""
    progress = progress or TrainProgress()
    started = time.perf_counter()
    deadline = started + budget
    shown = [started]

    def tick() -> None:
        now = min(time.perf_counter(), deadline)
        progress.phase("autotune", int(1000 * (now - shown[0])), int(1000 * budget), "ms")
        shown[0] = now

    trials: list[Trial] = []
    best: Trial | None = None
    stopped = 0
    def best_options() -> dict[str, Any]:
        return (best or trials[0]).options

    for candidate in _candidates(searched(options), options.seed, best_options):
        interruption.check()
        if time.perf_counter() >= deadline:
            break
        trial_started = time.perf_counter()
        try:
            result = fit(x_train, y_train, x_val, y_val, replace(options, **candidate),
                         w_train=w_train, w_val=w_val, progress=_Clock(deadline, tick),
                         multiclass=multiclass)
        except _OutOfTime:
            stopped += 1
            break
        except TrainingDiverged:  # the loss became NaN or infinite: these options lose
            loss, accuracy, epochs = math.inf, 0.0, 0
        else:
            loss, accuracy = validation_loss(predict_logits(result.model, x_val), y_val, w_val,
                                             multiclass)
            epochs = len(result.history)
        trial = Trial(len(trials) + 1, candidate, loss, accuracy, epochs,
                      time.perf_counter() - trial_started)
        trials.append(trial)
        is_best = math.isfinite(loss) and (best is None or loss < best.val_loss)
        if is_best:
            best = trial
        on_trial(trial, is_best)
        tick()
    chosen = options if best is None else replace(options, **best.options)
    return Search(chosen, trials, None if best is None else best.number, budget,
                  time.perf_counter() - started, stopped)


def tune(x_train: Any, train: Dataset, x_val: sp.csr_matrix | None, val: Dataset | None,
         options: TrainingConfig, budget: float, progress: TrainProgress | None,
         note: Callable[[str], None]) -> Search:
    """:func:`search` for bce-train: each finished trial and the choice said through ``note``."""
    if val is None or x_val is None:
        raise DataError("--autotune needs validation rows; use --val-split > 0 or --val-data")
    note(f"autotune: trying training options for {budget:g} s on the {len(val)} validation "
         f"rows (lower validation loss is better)")

    def said(trial: Trial, best: bool) -> None:
        note(f"trial {trial.number}: {described(trial.options)}: validation loss "
             f"{trial.val_loss:.4f}, accuracy {trial.val_accuracy:.4f}, {trial.epochs} epochs, "
             f"{trial.seconds:.1f} s" + ("  *best" if best else ""))

    try:
        found = search(x_train, train.y, x_val, val.y, options, budget, train.weights,
                       val.weights, progress, said, train.multiclass)
    except Interrupted as err:
        raise Interrupted(err.signum, "interrupted during --autotune; nothing was saved"
                          ) from None
    if found.best is None:
        note(f"autotune: no trial finished in {budget:g} s; training with the options given")
    else:
        note(f"autotune chose trial {found.best} of {len(found.trials)}: "
             f"{described(found.trials[found.best - 1].options)}")
    return found
