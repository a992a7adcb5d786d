"""Classification metrics, computed in one place for training, evaluation and reports.

Plain NumPy so the definitions are visible; the tests check each against scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_EPS = 1e-15


def sigmoid(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    out = np.empty_like(logits)
    positive = logits >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-logits[positive]))
    exp = np.exp(logits[~positive])
    out[~positive] = exp / (1.0 + exp)
    return out


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, int]:
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    return {
        "tn": int((~y_true & ~y_pred).sum()),
        "fp": int((~y_true & y_pred).sum()),
        "fn": int((y_true & ~y_pred).sum()),
        "tp": int((y_true & y_pred).sum()),
    }


def precision_recall_f1(cm: dict[str, int]) -> tuple[float, float, float]:
    precision = _ratio(cm["tp"], cm["tp"] + cm["fp"])
    recall = _ratio(cm["tp"], cm["tp"] + cm["fn"])
    f1 = _ratio(2 * cm["tp"], 2 * cm["tp"] + cm["fp"] + cm["fn"])
    return precision, recall, f1


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks (scipy's ``rankdata``)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    bounds = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])  # tie-run starts, n
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((bounds[:-1] + 1 + bounds[1:]) / 2, np.diff(bounds))
    return ranks


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied scores averaged); None for one class."""
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = average_ranks(np.asarray(scores, dtype=np.float64).reshape(-1))
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _counts_by_threshold(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true positives, false positives, threshold) when predicting positive at score >= each
    distinct score, highest score first."""
    y_true = np.asarray(y_true).reshape(-1) > 0.5
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    tps = np.cumsum(y_true[order])[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return tps, fps, sorted_scores[last_of_tie]


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) at every distinct score, from (0, 0)."""
    tps, fps, _ = _counts_by_threshold(y_true, scores)
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def precision_recall_curve(
    y_true: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at every distinct score, highest threshold first."""
    tps, fps, thresholds = _counts_by_threshold(y_true, scores)
    return tps / (tps + fps), tps / max(tps[-1], 1), thresholds


def log_loss(y_true: np.ndarray, prob: np.ndarray) -> float:
    p = np.clip(np.asarray(prob, dtype=np.float64), _EPS, 1 - _EPS)
    y = np.asarray(y_true, dtype=np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_bins(
    y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10
) -> list[dict[str, float]]:
    """Equal-width probability bins: count, mean predicted probability, observed positive rate."""
    prob = np.asarray(prob, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(prob, edges[1:-1], right=False), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        in_bin = which == b
        count = int(in_bin.sum())
        bins.append({
            "lower": float(edges[b]),
            "upper": float(edges[b + 1]),
            "count": count,
            "mean_probability": float(prob[in_bin].mean()) if count else 0.0,
            "positive_rate": float(y[in_bin].mean()) if count else 0.0,
        })
    return bins


def expected_calibration_error(y_true: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """ECE: the count-weighted gap between predicted probability and observed rate per bin."""
    n = len(prob)
    if n == 0:
        return 0.0
    return float(sum(
        b["count"] / n * abs(b["mean_probability"] - b["positive_rate"])
        for b in calibration_bins(y_true, prob, n_bins)
    ))


def binary_metrics(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Every metric of a binary classifier from its positive-class probabilities."""
    y_true = np.asarray(y_true).reshape(-1) > 0.5
    prob = np.asarray(prob, dtype=np.float64).reshape(-1)
    cm = confusion(y_true, prob >= threshold)
    precision, recall, f1 = precision_recall_f1(cm)
    return {
        "rows": len(y_true),
        "accuracy": _ratio(cm["tp"] + cm["tn"], len(y_true)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "roc_auc": roc_auc(y_true, prob),
        "log_loss": log_loss(y_true, prob),
        "ece": expected_calibration_error(y_true, prob),
        "brier": float(np.mean((prob - y_true) ** 2)) if len(prob) else 0.0,
        "threshold": float(threshold),
        "confusion_matrix": cm,
        "positives": int(y_true.sum()),
        "negatives": int((~y_true).sum()),
    }


def multilabel_metrics(
    y_true: np.ndarray, prob: np.ndarray, thresholds: np.ndarray, label_names: list[str]
) -> dict[str, Any]:
    """Per-label metrics plus micro/macro averages, subset accuracy and Hamming loss."""
    y_true = np.asarray(y_true) > 0.5
    prob = np.asarray(prob, dtype=np.float64)
    predicted = prob >= np.asarray(thresholds)[None, :]
    per_label = {}
    totals = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for j, name in enumerate(label_names):
        cm = confusion(y_true[:, j], predicted[:, j])
        for key in totals:
            totals[key] += cm[key]
        precision, recall, f1 = precision_recall_f1(cm)
        per_label[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "roc_auc": roc_auc(y_true[:, j], prob[:, j]),
            "support": int(y_true[:, j].sum()),
            "threshold": float(thresholds[j]),
        }
    micro_p, micro_r, micro_f1 = precision_recall_f1(totals)
    return {
        "rows": int(y_true.shape[0]),
        "subset_accuracy": float((predicted == y_true).all(axis=1).mean()),
        "hamming_loss": float((predicted != y_true).mean()),
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "micro_f1": micro_f1,
        "macro_precision": float(np.mean([m["precision"] for m in per_label.values()])),
        "macro_recall": float(np.mean([m["recall"] for m in per_label.values()])),
        "macro_f1": float(np.mean([m["f1"] for m in per_label.values()])),
        "log_loss": log_loss(y_true.reshape(-1), prob.reshape(-1)),
        "per_label": per_label,
    }


def class_probabilities(prob: np.ndarray) -> np.ndarray:
    """A multi-class model's per-class sigmoids, normalised to sum to 1 per row (one-vs-rest,
    as fastText's ``-loss ova`` reports them, made a distribution)."""
    prob = np.asarray(prob, dtype=np.float64)
    return prob / np.maximum(prob.sum(axis=1, keepdims=True), 1e-300)


def multiclass_metrics(y_true: np.ndarray, prob: np.ndarray,
                       label_names: list[str]) -> dict[str, Any]:
    """Accuracy of the most probable class, per-class precision/recall/F1, macro and micro F1
    (micro F1 is the accuracy when every row has one class), the log loss of the normalised
    probabilities, and the K x K confusion matrix (rows: true class, columns: predicted)."""
    truth = np.asarray(y_true).argmax(axis=1)
    normalised = class_probabilities(prob)
    predicted = normalised.argmax(axis=1)
    k = len(label_names)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    per_class = {}
    for j, name in enumerate(label_names):
        tp = int(matrix[j, j])
        cm = {"tp": tp, "fp": int(matrix[:, j].sum()) - tp, "fn": int(matrix[j].sum()) - tp}
        precision, recall, f1 = precision_recall_f1(cm)
        per_class[name] = {"precision": precision, "recall": recall, "f1": f1,
                           "support": int(matrix[j].sum())}
    picked = normalised[np.arange(len(truth)), truth]
    return {
        "rows": len(truth),
        "accuracy": float((predicted == truth).mean()) if len(truth) else 0.0,
        "macro_precision": float(np.mean([m["precision"] for m in per_class.values()])),
        "macro_recall": float(np.mean([m["recall"] for m in per_class.values()])),
        "macro_f1": float(np.mean([m["f1"] for m in per_class.values()])),
        "micro_f1": float((predicted == truth).mean()) if len(truth) else 0.0,
        "log_loss": float(-np.mean(np.log(np.clip(picked, 1e-15, 1.0)))) if len(truth) else 0.0,
        "per_label": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def best_threshold(y_true: np.ndarray, prob: np.ndarray, metric: str = "f1") -> float:
    """The probability threshold that maximises F1 (or accuracy) on these rows."""
    tps, fps, thresholds = _counts_by_threshold(y_true, prob)
    positives = tps[-1]
    if metric == "f1":
        score = 2 * tps / np.maximum(tps + fps + positives, 1)
    elif metric == "accuracy":
        negatives = fps[-1]
        score = tps + (negatives - fps)
    else:
        raise ValueError(f"unknown threshold metric {metric!r}; use f1 or accuracy")
    return float(thresholds[int(np.argmax(score))])


def score_by_threshold(y_true: np.ndarray, prob: np.ndarray, thresholds: np.ndarray,
                       metric: str = "f1") -> np.ndarray:
    """F1 (0 where there is no positive, true or predicted) or accuracy of predicting positive
    at ``prob >= t``, for each ``t`` of ``thresholds``."""
    y_true = np.asarray(y_true).reshape(-1) > 0.5
    order = np.argsort(prob, kind="mergesort")
    first = np.searchsorted(np.asarray(prob, dtype=np.float64)[order], thresholds, side="left")
    positives_from = np.r_[np.cumsum(y_true[order][::-1])[::-1], 0]
    tps, predicted, positives = positives_from[first], len(y_true) - first, int(y_true.sum())
    if metric == "f1":
        return 2 * tps / np.maximum(predicted + positives, 1)
    if metric == "accuracy":
        return (tps + (len(y_true) - positives) - (predicted - tps)) / max(len(y_true), 1)
    raise ValueError(f"unknown threshold metric {metric!r}; use f1 or accuracy")


def split_metrics(y: np.ndarray, logits: np.ndarray, temperature: float,
                  thresholds: list[float], label_names: list[str],
                  task: str = "binary") -> dict[str, Any]:
    """The metrics of one split's logits: binary ones for a 1-D ``y``, multi-class or
    multi-label ones else."""
    prob = sigmoid(logits / temperature)
    if task == "multiclass":
        return multiclass_metrics(y, prob, label_names)
    if y.ndim == 2:
        return multilabel_metrics(y, prob, np.asarray(thresholds), label_names)
    return binary_metrics(y, prob[:, 0], thresholds[0])
