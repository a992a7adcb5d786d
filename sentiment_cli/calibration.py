"""Post-training choices fitted on the validation split: temperature scaling and thresholds."""

from __future__ import annotations

import numpy as np

from .metrics import best_threshold, log_loss, sigmoid


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the log loss of sigmoid(logits / T): one scalar, so the ranking (and
    ROC-AUC) is unchanged while over- or under-confident probabilities are stretched or shrunk."""
    from scipy.optimize import minimize_scalar

    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    targets = np.asarray(y, dtype=np.float64).reshape(-1)

    def loss(log_t: float) -> float:
        return log_loss(targets, sigmoid(logits / np.exp(log_t)))

    result = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(result.x))


def tune_thresholds(prob: np.ndarray, y: np.ndarray, metric: str = "f1") -> list[float]:
    """One threshold per output, each maximising ``metric`` on these rows."""
    prob = np.asarray(prob).reshape(len(prob), -1)
    targets = np.asarray(y).reshape(len(y), -1)
    return [best_threshold(targets[:, j], prob[:, j], metric) for j in range(prob.shape[1])]
