"""Multi-class: a label column with three classes or more, one sigmoid per class under
BCEWithLogitsLoss (one-vs-rest), the most probable class predicted."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, assert_clean_error, needs_shared, run, write_csv

from sentiment_cli.metrics import multiclass_metrics

WORDS = {"negative": ["awful", "hate", "terrible", "boring", "worst"],
         "neutral": ["okay", "average", "fine", "plain", "ordinary"],
         "positive": ["great", "love", "excellent", "wonderful", "perfect"]}


def three_class_rows(n: int = 150, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    filler = ["the", "phone", "movie", "food", "it", "was", "and", "really", "service"]
    rows = []
    for i in range(n):
        label = list(WORDS)[i % 3]
        words = rng.sample(WORDS[label], 2) + rng.sample(filler, 4)
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


@pytest.fixture(scope="module")
def three_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("three")
    data = write_csv(folder / "three.csv", ["review", "sentiment"], three_class_rows())
    result = run("bce-train", str(data), "-o", str(folder / "m"), "--epochs", "8", "--json")
    assert result.returncode == 0, result.stderr
    return folder / "m"


def test_bce_train_writes_a_multiclass_model(three_model: Path) -> None:
    config = json.loads((three_model / "config.json").read_text())
    assert config["task"] == "multiclass" and config["positive_label"] is None
    assert config["labels"] == ["negative", "neutral", "positive"]
    assert config["model"]["n_outputs"] == 3
    metrics = json.loads((three_model / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] >= 0.8
    assert len(metrics["validation"]["confusion_matrix"]) == 3
    report = (three_model / "report.md").read_text()
    assert "| true / predicted | negative | neutral | positive |" in report
    assert "![Confusion matrix](plots/confusion_matrix.png)" in report
    assert (three_model / "plots" / "confusion_matrix.png").stat().st_size > 1000


def test_bce_predict_gives_the_most_probable_class_and_every_probability(
        three_model: Path) -> None:
    texts = ["a wonderful perfect film", "an ordinary average day", "boring and awful"]
    result = run("bce-predict", str(three_model), *texts, "-F", "jsonl")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "neutral", "negative"]
    for row in rows:
        probabilities = row["probabilities"]
        assert list(probabilities) == ["negative", "neutral", "positive"]
        assert abs(sum(probabilities.values()) - 1) < 1e-5
        assert row["probability"] == max(probabilities.values()) == probabilities[row["label"]]
    table = run("bce-predict", str(three_model), *texts, "-F", "csv").stdout
    parsed = list(csv.reader(io.StringIO(table)))
    assert parsed[0] == ["text", "label", "probability", "negative", "neutral", "positive"]
    assert [r[1] for r in parsed[1:]] == ["positive", "neutral", "negative"]
    assert run("bce-predict", str(three_model), *texts, "-F", "label").stdout.split() == \
        ["positive", "neutral", "negative"]
    assert_clean_error(run("bce-predict", str(three_model), "x", "--threshold", "0.3"), 2,
                       "multi-class model", "leave --threshold out")


def test_top_k_lists_the_most_probable_classes(three_model: Path, sample_model: Path) -> None:
    texts = ["a wonderful perfect film", "an ordinary average day"]
    result = run("bce-predict", str(three_model), *texts, "--top-k", "2")
    assert result.returncode == 0, result.stderr
    for row in map(json.loads, result.stdout.splitlines()):
        ranked = sorted(row["probabilities"].items(), key=lambda kv: -kv[1])[:2]
        assert [(t["label"], t["probability"]) for t in row["top"]] == ranked
        assert row["top"][0]["label"] == row["label"]
    parsed = list(csv.reader(io.StringIO(
        run("bce-predict", str(three_model), *texts, "-k", "3", "-F", "csv").stdout)))
    assert parsed[0][-4:] == ["label_2", "probability_2", "label_3", "probability_3"]
    assert len({parsed[1][1], parsed[1][-4], parsed[1][-2]}) == 3  # three distinct classes
    labels = run("bce-predict", str(three_model), *texts, "-k", "9", "-F", "label").stdout
    assert [len(line.split(",")) for line in labels.splitlines()] == [3, 3]  # all there are
    assert_clean_error(run("bce-predict", str(sample_model), "x", "-k", "2"), 2,
                       "--top-k", "binary model")


def test_bce_eval_measures_a_multiclass_model(three_model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "new.csv", ["review", "sentiment"], three_class_rows(60, 1))
    result = run("bce-eval", str(three_model), str(data), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["rows"] == 60 and metrics["accuracy"] >= 0.8
    assert sum(map(sum, metrics["confusion_matrix"])) == 60
    assert set(metrics["per_label"]) == {"negative", "neutral", "positive"}
    table = run("bce-eval", str(three_model), str(data))
    assert "per class" in table.stdout and "confusion matrix" in table.stdout
    info = json.loads(run("bce-info", str(three_model), "--json").stdout)
    assert info["task"] == "multiclass" and info["positive_label"] is None


def test_multiclass_metrics_by_hand() -> None:
    y = np.eye(3)[[0, 1, 2, 2]]
    prob = np.array([[0.9, 0.1, 0.1], [0.2, 0.6, 0.3], [0.1, 0.7, 0.2], [0.1, 0.1, 0.9]])
    m = multiclass_metrics(y, prob, ["a", "b", "c"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert m["per_label"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    normalised = prob / prob.sum(axis=1, keepdims=True)
    assert m["log_loss"] == pytest.approx(-np.mean(np.log(normalised[[0, 1, 2, 3], [0, 1, 2, 2]])))


def test_the_class_temperature_fits_the_reported_probabilities() -> None:
    """One T for all classes, fitted to the log loss of the normalised probabilities: lower
    there than T = 1 or the per-output (binary) fit, and the predicted classes unchanged."""
    from sentiment_cli.metrics import class_probabilities, sigmoid
    from sentiment_cli.training.calibration import fit_class_temperature, fit_temperature

    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 2000)
    y = np.eye(4)[truth]
    logits = 4.0 * (y - 0.5) + rng.normal(0, 2.5, (2000, 4))  # overconfident scores

    def loss(t: float) -> float:
        prob = class_probabilities(sigmoid(logits / t))
        return float(-np.mean(np.log(prob[np.arange(2000), truth])))

    fitted = fit_class_temperature(logits, y)
    assert loss(fitted) < min(loss(1.0), loss(fit_temperature(logits, y)))
    assert loss(fitted) <= min(loss(fitted * 0.9), loss(fitted * 1.1))
    assert (class_probabilities(sigmoid(logits / fitted)).argmax(1) == logits.argmax(1)).all()


def test_multiclass_refusals_are_one_line(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "three.csv", ["review", "sentiment"], three_class_rows(60))
    assert_clean_error(run("bce-train", str(data), "-o", str(tmp_path / "m"),
                           "--threshold", "auto"), 2, "leave --threshold out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.csv"]


def test_stream_trains_a_multiclass_model(tmp_path: Path) -> None:
    """--stream reads the classes in its label pass and maps each chunk onto them, with the
    validation rows split by hash or read from --val-data."""
    data = write_csv(tmp_path / "three.csv", ["review", "sentiment"], three_class_rows(150))
    val = write_csv(tmp_path / "val.csv", ["review", "sentiment"], three_class_rows(30, seed=1))
    for name, extra in (("split", []), ("val", ["--val-data", str(val)])):
        result = run("bce-train", str(data), "-o", str(tmp_path / name), "--stream",
                     "--epochs", "8", *extra)
        assert result.returncode == 0, result.stderr
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["task"] == "multiclass"
        assert config["labels"] == ["negative", "neutral", "positive"]
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["validation"]["accuracy"] > 0.8, metrics["validation"]
        out = run("bce-predict", str(tmp_path / name), "awful terrible boring").stdout
        assert json.loads(out)["label"] == "negative"


def test_positive_label_makes_a_binary_task_of_several_classes(tmp_path: Path) -> None:
    """--positive-label with one class or several (comma-separated) trains that side against
    the rest; bce-eval and bce-predict take the model's two sides as they are."""
    data = write_csv(tmp_path / "three.csv", ["review", "sentiment"], three_class_rows(90))
    trained = run("bce-train", str(data), "-o", str(tmp_path / "m"), "--epochs", "6",
                  "--positive-label", "neutral,positive", "--json")
    assert trained.returncode == 0, trained.stderr
    assert "positive class 'neutral/positive' (60 rows) against 'negative' (30 rows)" in (
        trained.stderr)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["task"] == "binary" and config["labels"] == ["negative", "neutral/positive"]
    scores = json.loads(run("bce-eval", str(tmp_path / "m"), str(data), "--json").stdout)
    assert scores["rows"] == 90 and scores["accuracy"] > 0.9
    out = run("bce-predict", str(tmp_path / "m"), "awful terrible", "great love").stdout
    assert [json.loads(line)["label"] for line in out.splitlines()] == [
        "negative", "neutral/positive"]
    assert_clean_error(run("bce-train", str(data), "-o", str(tmp_path / "m2"),
                           "--positive-label", "positive,great"), 2,
                       "--positive-label 'positive,great': 'great' does not occur")


@needs_shared
def test_real_reviews_with_a_neutral_class(tmp_path: Path) -> None:
    """rt_polarity's reviews plus GoEmotions' neutral comments: three classes of real text."""
    with open(SHARED_DATA / "rt_polarity.csv", encoding="utf-8", newline="") as handle:
        reviews = list(csv.DictReader(handle))
    with open(SHARED_DATA / "goemotions_multilabel.csv", encoding="utf-8", newline="") as handle:
        neutral = [r["text"] for r in csv.DictReader(handle) if r["neutral"] == "1"][:600]
    by_label: dict[str, list[str]] = {}
    for row in reviews:
        by_label.setdefault(row["sentiment"], []).append(row["review"])
    rows = [(t, name) for name, texts in by_label.items() for t in texts[:600]]
    rows += [(t, "neutral") for t in neutral]
    random.Random(0).shuffle(rows)
    data = write_csv(tmp_path / "three.csv", ["text", "label"], rows[:1500])
    held = write_csv(tmp_path / "held.csv", ["text", "label"], rows[1500:])
    result = run("bce-train", str(data), "-o", str(tmp_path / "m"), "-q")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(run("bce-eval", str(tmp_path / "m"), str(held), "--json").stdout)
    assert metrics["rows"] == 300 and len(metrics["per_label"]) == 3
    assert metrics["accuracy"] > 0.6  # a third by chance


def test_epoch_accuracy_of_a_multiclass_model_is_the_most_probable_class() -> None:
    """The epoch table's accuracy is the share of rows whose most probable class is right, as
    bce-eval counts it (it was the share of outputs right at logit 0: 0.91 where 0.62 of the
    rows were right, on 9 GoEmotions classes)."""
    import torch

    from sentiment_cli.training.batches import right_answers

    logits = np.array([[2.0, 1.0, -3.0], [0.5, 1.5, -1.0], [-1.0, -2.0, -0.5]], np.float32)
    targets = np.eye(3, dtype=np.float32)[[0, 0, 2]]
    assert right_answers(logits, targets, multiclass=True) == (2, 3)
    right, answers = right_answers(torch.from_numpy(logits), torch.from_numpy(targets), True)
    assert (int(right), answers) == (2, 3)
    # per output at logit 0 for binary and multi-label models
    assert right_answers(logits, targets, multiclass=False) == (6, 9)


def test_task_multiclass_makes_every_value_a_class(tmp_path: Path) -> None:
    """--task multiclass: a value too rare to be a class by default (2 rows of 92) is one; a
    value of one row, fewer than three values, or --positive-label with it: one line each."""
    rows = [*three_class_rows(90), ("so so meh", "mixed"), ("meh so so", "mixed")]
    data = write_csv(tmp_path / "four.csv", ["review", "sentiment"], rows)
    assert_clean_error(run("bce-train", str(data), "-o", str(tmp_path / "m0")), 2,
                       "labels other than", "'mixed' (2)")
    result = run("bce-train", str(data), "-o", str(tmp_path / "m"), "--task", "multiclass",
                 "--epochs", "3", "--val-grouping", "none")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["labels"] == ["mixed", "negative", "neutral", "positive"]
    assert config["data"]["task_given"] == "multiclass"
    one = write_csv(tmp_path / "one.csv", ["review", "sentiment"], [*rows, ("odd", "rare")])
    assert_clean_error(run("bce-train", str(one), "-o", str(tmp_path / "m1"), "--task",
                           "multiclass"), 2, "class 'rare' of column 'sentiment' has one row")
    two_rows = [(t, "a" if i % 2 else "b") for i, (t, _) in enumerate(three_class_rows(40))]
    two = write_csv(tmp_path / "two.csv", ["review", "sentiment"], two_rows)
    assert_clean_error(run("bce-train", str(two), "-o", str(tmp_path / "m2"), "--task",
                           "multiclass"), 2, "needs three classes or more")
    assert_clean_error(run("bce-train", str(data), "-o", str(tmp_path / "m3"), "--task",
                           "multiclass", "--positive-label", "mixed"), 2, "leave out")
    assert_clean_error(run("bce-train", str(data), "--task", "binary"), 2,
                       "--task must be one of auto, multiclass")
