"""Post-training choices fitted on the validation split: temperature scaling and thresholds."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sentiment_cli.config import TrainConfig
from sentiment_cli.metrics import best_threshold, log_loss, score_by_threshold, sigmoid


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the log loss of sigmoid(logits / T): one scalar, so the ranking (and
    ROC-AUC) is unchanged while over- or under-confident probabilities are stretched or shrunk.

    The log loss is convex in 1 / T, hence unimodal in log T: a golden-section search over
    T in [0.05, 20] finds it to 1e-6 in log T (about 35 evaluations, no SciPy import)."""
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    targets = np.asarray(y, dtype=np.float64).reshape(-1)

    def loss(log_t: float) -> float:
        return log_loss(targets, sigmoid(logits / np.exp(log_t)))

    return float(np.exp(golden_section_min(loss, np.log(0.05), np.log(20.0))))


def fit_class_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """For a multi-class model: the T minimising the log loss of the probabilities it reports,
    sigmoid(logits / T) normalised over the classes, at each row's true class (one-hot ``y``).
    Dividing every logit by one T keeps each row's order of classes, so the prediction does not
    change."""
    logits = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(y).argmax(axis=1)
    rows = np.arange(len(truth))

    def loss(log_t: float) -> float:
        prob = sigmoid(logits / np.exp(log_t))
        prob = prob[rows, truth] / np.maximum(prob.sum(axis=1), 1e-300)
        return float(-np.mean(np.log(np.clip(prob, 1e-15, 1.0))))

    return float(np.exp(golden_section_min(loss, np.log(0.05), np.log(20.0))))


def golden_section_min(f: Callable[[float], float], lo: float, hi: float,
                       tol: float = 1e-6) -> float:
    """The minimiser of a unimodal ``f`` on [lo, hi], to within ``tol``."""
    ratio = (np.sqrt(5.0) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = f(d)
    return (a + b) / 2


# With several labels, each label's own best threshold is drawn toward the one threshold best
# for all labels together, in logit space, as if that one stood for this many validation
# positives: a label with 4 positives keeps a tenth of its own, one with 360 nine tenths. A rare
# label's own best cut, found on a handful of positives, otherwise often lands very low. On
# GoEmotions' choosing rows, 6 seeds: macro-F1 +0.13 to +0.90 points over each label's own
# threshold alone, on every seed (benchmarks/results/thresholds.md).
SHRINK_POSITIVES = 40
COMMON_GRID = np.linspace(0.01, 0.99, 99)  # where the one common threshold is looked for


def tune_thresholds(prob: np.ndarray, y: np.ndarray, metric: str = "f1") -> list[float]:
    """One threshold per output maximising ``metric`` on these rows; with several outputs,
    each drawn toward the common best (see SHRINK_POSITIVES)."""
    prob = np.asarray(prob, dtype=np.float64).reshape(len(prob), -1)
    targets = np.asarray(y).reshape(len(y), -1) > 0.5
    own = np.array([best_threshold(targets[:, j], prob[:, j], metric)
                    for j in range(prob.shape[1])])
    if prob.shape[1] == 1:
        return own.tolist()
    together = np.mean([score_by_threshold(targets[:, j], prob[:, j], COMMON_GRID, metric)
                        for j in range(prob.shape[1])], axis=0)
    common = COMMON_GRID[int(np.argmax(together))]
    positives = targets.sum(axis=0)
    drawn = (positives * _logit(own) + SHRINK_POSITIVES * _logit(common)) / \
        (positives + SHRINK_POSITIVES)
    return sigmoid(drawn).tolist()


def _logit(prob: np.ndarray | float) -> np.ndarray:
    prob = np.clip(prob, 1e-6, 1 - 1e-6)
    return np.log(prob / (1 - prob))


def calibrate(config: TrainConfig, val_logits: np.ndarray | None, val_y: np.ndarray | None,
              n_outputs: int, multiclass: bool = False) -> tuple[float, list[float]]:
    """The temperature (``--calibrate``) and the thresholds (``--threshold``) fitted on the
    validation rows' logits; 1.0 and the given threshold without validation rows. Without
    --threshold: 0.5 for one output; for several (multi-label), each label's own (auto, drawn
    toward the common best: see SHRINK_POSITIVES): on GoEmotions that took validation macro-F1
    from 0.13 to 0.22 (benchmarks/results/mlp_candidates.md). Multi-class models choose the
    most probable class: their thresholds are 0.5 and unused."""
    threshold = config.threshold
    if threshold is None or multiclass:  # multi-class: the most probable class, no threshold
        threshold = 0.5 if multiclass or n_outputs == 1 else "auto"
    temperature = 1.0
    if config.calibrate != "none" and val_logits is not None and val_y is not None:
        fit = fit_class_temperature if multiclass else fit_temperature
        temperature = fit(val_logits, val_y)
    if threshold == "auto" and val_logits is not None and val_y is not None:
        thresholds = tune_thresholds(sigmoid(val_logits / temperature), val_y,
                                     config.threshold_metric)
    else:  # auto without validation rows (a split too small to give any) keeps 0.5
        thresholds = [0.5 if threshold == "auto" else float(threshold)] * n_outputs
    return temperature, thresholds
