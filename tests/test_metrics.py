"""Our metrics against scikit-learn's on fixed inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from sentiment_cli.metrics import (
    best_threshold,
    binary_metrics,
    expected_calibration_error,
    multilabel_metrics,
    precision_recall_curve,
    roc_curve,
    sigmoid,
)
from sentiment_cli.training.calibration import fit_temperature


@pytest.fixture
def scored() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.4).astype(int)
    prob = np.clip(0.35 * y + rng.random(500) * 0.65, 0, 1)
    prob[:20] = 0.5  # ties
    return y, prob


def test_binary_metrics_equal_sklearn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, prob = scored
    m = binary_metrics(y, prob, threshold=0.5)
    pred = (prob >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, prob))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, prob))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, prob))
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    assert m["confusion_matrix"] == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}


def test_curves_equal_sklearn(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, prob = scored
    fpr, tpr = roc_curve(y, prob)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, prob, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    precision, recall, thresholds = precision_recall_curve(y, prob)
    sk_p, sk_r, sk_t = skm.precision_recall_curve(y, prob, drop_intermediate=False)
    # scikit-learn lists thresholds ascending and appends the (1, 0) end point.
    assert np.allclose(precision, sk_p[:-1][::-1]) and np.allclose(recall, sk_r[:-1][::-1])
    assert np.allclose(thresholds, sk_t[::-1])


def test_ece_by_hand() -> None:
    y = np.array([1, 0, 1, 1])
    prob = np.array([0.05, 0.05, 0.95, 0.85])
    # bin [0, .1): mean .05, rate .5 ; bin [.8, .9): .85 vs 1 ; bin [.9, 1]: .95 vs 1
    expected = 0.5 * 0.45 + 0.25 * 0.15 + 0.25 * 0.05
    assert expected_calibration_error(y, prob) == pytest.approx(expected)


def test_best_threshold_maximises_f1(scored: tuple[np.ndarray, np.ndarray]) -> None:
    y, prob = scored
    chosen = best_threshold(y, prob, "f1")
    best = max(skm.f1_score(y, prob >= t) for t in np.unique(prob))
    assert skm.f1_score(y, prob >= chosen) == pytest.approx(best)
    chosen = best_threshold(y, prob, "accuracy")
    best = max(skm.accuracy_score(y, prob >= t) for t in np.unique(prob))
    assert skm.accuracy_score(y, prob >= chosen) == pytest.approx(best)


def test_multilabel_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((200, 4)) < [0.5, 0.2, 0.1, 0.05]).astype(int)
    prob = np.clip(y * 0.4 + rng.random((200, 4)) * 0.6, 0, 1)
    m = multilabel_metrics(y, prob, np.full(4, 0.5), ["a", "b", "c", "d"])
    pred = (prob >= 0.5).astype(int)
    assert m["micro_f1"] == pytest.approx(skm.f1_score(y, pred, average="micro"))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, pred))
    assert m["per_label"]["c"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[:, 2], prob[:, 2]))


def test_temperature_recovers_overconfidence() -> None:
    rng = np.random.default_rng(2)
    true_logits = rng.normal(0, 2, 20_000)
    y = (rng.random(20_000) < sigmoid(true_logits)).astype(float)
    temperature = fit_temperature(true_logits * 3, y)  # a model three times too confident
    assert temperature == pytest.approx(3.0, rel=0.05)


def test_average_ranks_match_scipy_with_ties() -> None:
    from scipy.stats import rankdata

    from sentiment_cli.metrics import average_ranks

    rng = np.random.default_rng(4)
    for values in (rng.integers(0, 5, 200).astype(float), rng.normal(size=50), np.ones(7),
                   np.array([3.0])):
        assert np.allclose(average_ranks(values), rankdata(values))


def test_temperature_equals_scipy_bounded_minimum() -> None:
    from scipy.optimize import minimize_scalar

    from sentiment_cli.metrics import log_loss

    rng = np.random.default_rng(5)
    logits = rng.normal(0, 3, 2_000)
    y = (rng.random(2_000) < sigmoid(logits / 2.5)).astype(float)
    reference = minimize_scalar(lambda t: log_loss(y, sigmoid(logits / np.exp(t))),
                                bounds=(np.log(0.05), np.log(20.0)), method="bounded",
                                options={"xatol": 1e-8})
    assert fit_temperature(logits, y) == pytest.approx(float(np.exp(reference.x)), rel=1e-4)
    assert fit_temperature(np.zeros(10), np.r_[np.zeros(5), np.ones(5)]) > 0  # flat: any T
