"""Several 0/1 label columns: one sigmoid output per label, per-label pos_weight and thresholds."""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, run, write_csv

from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.config import TrainConfig
from sentiment_cli.metrics import best_threshold, score_by_threshold
from sentiment_cli.training.calibration import SHRINK_POSITIVES, calibrate, tune_thresholds

WORDS = {"joy": ["happy", "delighted", "glad"], "anger": ["furious", "angry", "mad"],
         "thanks": ["thanks", "grateful", "appreciate"]}


def multilabel_rows(n: int, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        flags = {name: rng.random() < rate for name, rate in
                 (("joy", 0.4), ("anger", 0.3), ("thanks", 0.15))}
        words = [rng.choice(WORDS[name]) for name, on in flags.items() if on]
        words += rng.sample(["the", "day", "was", "so", "it", "and", "really"], 3)
        rng.shuffle(words)
        rows.append([" ".join(words), *("1" if flags[k] else "0" for k in WORDS)])
    return rows


@pytest.fixture(scope="module")
def multilabel_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ml")
    data = write_csv(folder / "emo.csv", ["text", *WORDS], multilabel_rows(600))
    result = run("bce-train", str(data), "--label-columns", "all-but-text", "-o",
                 str(folder / "m"), "--pos-weight", "auto", "--threshold", "auto", "-q",
                 "--json", "--seed", "0")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["task"] == "multilabel" and summary["labels"] == list(WORDS)
    assert len(summary["pos_weight"]) == 3 and summary["pos_weight"][2] > summary["pos_weight"][0]
    assert summary["validation"]["macro_f1"] > 0.9
    return folder / "m"


@pytest.mark.slow
def test_predict_lists_labels_and_probabilities(multilabel_model: Path) -> None:
    result = run("bce-predict", str(multilabel_model), "so happy and grateful",
                 "angry and mad today")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert set(rows[0]["labels"]) == {"joy", "thanks"} and rows[1]["labels"] == ["anger"]
    assert set(rows[0]["probabilities"]) == set(WORDS)
    table = run("bce-predict", str(multilabel_model), "--format", "csv", "glad")
    header = next(csv.reader(io.StringIO(table.stdout)))
    assert header == ["text", "labels", *WORDS]


@pytest.mark.slow
def test_eval_reports_per_label_and_averages(multilabel_model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "t.csv", ["text", *WORDS], multilabel_rows(200, seed=1))
    result = run("bce-eval", str(multilabel_model), str(data), "--json", "--report",
                 str(tmp_path / "r"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert {"micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"} <= set(metrics)
    assert set(metrics["per_label"]) == set(WORDS)
    assert (tmp_path / "r" / "plots" / "per_label_f1.png").exists()


def test_eval_of_a_multi_label_model_with_one_label_column_says_to_name_all_or_none(
        multilabel_model: Path, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "t.csv", ["text", *WORDS], multilabel_rows(50, seed=1))
    result = run("bce-eval", str(multilabel_model), str(data), "--label-column", "joy")
    assert_clean_error(result, 2, "multi-label model of 3 labels (joy, anger, thanks)",
                       "--label-column named 1", "leave it out")
    every = run("bce-eval", str(multilabel_model), str(data), "--json",
                *(f"--label-column={name}" for name in WORDS))
    assert every.returncode == 0, every.stderr
    assert json.loads(every.stdout)["labels"] == list(WORDS)
    for spelled in (",".join(WORDS), "all-but-text"):  # as bce-train spells them
        listed = run("bce-eval", str(multilabel_model), str(data), "--json", "--label-columns",
                     spelled)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == json.loads(every.stdout)
    reordered = write_csv(tmp_path / "r.csv", ["text", *reversed(WORDS)],
                          [[row[0], *reversed(row[1:])] for row in multilabel_rows(50, seed=1)])
    result = run("bce-eval", str(multilabel_model), str(reordered), "--label-columns",
                 "all-but-text")
    assert_clean_error(result, 2, "do not match", f"--label-columns {','.join(WORDS)}")
    told = run("bce-eval", str(multilabel_model), str(reordered), "--json", "--label-columns",
               ",".join(WORDS))
    assert told.returncode == 0, told.stderr
    assert json.loads(told.stdout)["labels"] == list(WORDS)


@pytest.mark.parametrize("metric", ["f1", "accuracy"])
def test_scores_by_threshold_are_scikit_learns(metric: str) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    prob = np.round(rng.random(500), 2)  # ties, and thresholds equal to a probability
    grid = np.linspace(0.01, 0.99, 99)
    for y in (rng.random(500) < 0.1, np.zeros(500, dtype=bool)):
        expected = [f1_score(y, prob >= t, zero_division=0) if metric == "f1"
                    else accuracy_score(y, prob >= t) for t in grid]
        np.testing.assert_allclose(score_by_threshold(y, prob, grid, metric), expected)


def test_a_rare_labels_threshold_is_drawn_toward_the_common_one() -> None:
    """A label's own best cut found on 4 validation positives gives way to the threshold best
    for all labels together; one found on 1,500 positives stays nearly its own."""
    from sentiment_cli.training.calibration import COMMON_GRID

    rng = np.random.default_rng(0)
    rows = 5000
    y = np.zeros((rows, 2), dtype=bool)
    y[:1500, 0] = True
    y[:4, 1] = True
    prob = np.stack([np.where(y[:, 0], rng.uniform(0.3, 1, rows), rng.uniform(0, 0.7, rows)),
                     rng.uniform(0, 0.5, rows)], axis=1)
    prob[:4, 1] = [0.6, 0.7, 0.8, 0.9]
    own = np.array([best_threshold(y[:, j], prob[:, j]) for j in range(2)])
    together = np.mean([score_by_threshold(y[:, j], prob[:, j], COMMON_GRID) for j in range(2)],
                       axis=0)
    common = COMMON_GRID[int(np.argmax(together))]

    def logit(p: np.ndarray | float) -> np.ndarray:
        return np.log(np.asarray(p) / (1 - np.asarray(p)))

    drawn = np.array(tune_thresholds(prob, y))
    moved = np.abs(logit(drawn) - logit(own)) / np.abs(logit(common) - logit(own))
    assert np.all(np.abs(logit(common) - logit(own)) > 0.1)  # each has a way to go
    np.testing.assert_allclose(moved, [SHRINK_POSITIVES / (1500 + SHRINK_POSITIVES),
                                       SHRINK_POSITIVES / (4 + SHRINK_POSITIVES)])
    assert tune_thresholds(prob[:, :1], y[:, :1]) == own[:1].tolist()  # one output: its own


def test_the_default_threshold_is_each_labels_own_for_several_labels_only() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((400, 3)) < [0.05, 0.2, 0.5]).astype(np.float32)
    logits = (2 * y - 1) * 1.5 + rng.normal(0, 1.5, y.shape) - 1.0  # 0.5 is not the best cut
    _, tuned = calibrate(TrainConfig(), logits, y, 3)
    assert len(tuned) == 3 and all(t != 0.5 for t in tuned)
    assert tuned == calibrate(TrainConfig(threshold="auto"), logits, y, 3)[1]
    assert calibrate(TrainConfig(threshold=0.5), logits, y, 3)[1] == [0.5] * 3
    assert calibrate(TrainConfig(), logits[:, :1], y[:, :1], 1)[1] == [0.5]  # binary: 0.5
    assert calibrate(TrainConfig(), None, None, 3)[1] == [0.5] * 3  # no validation rows


def test_per_label_thresholds_are_stored(multilabel_model: Path) -> None:
    bundle = load_bundle(multilabel_model)
    assert len(bundle.thresholds) == 3 and bundle.multilabel


@pytest.mark.slow
def test_label_without_positives_is_named_or_dropped(tmp_path: Path) -> None:
    rows = [[*row, "0"] for row in multilabel_rows(100)]
    data = write_csv(tmp_path / "e.csv", ["text", *WORDS, "grief"], rows)
    assert_clean_error(run("bce-train", str(data), "--label-columns", "all-but-text", "-o",
                           str(tmp_path / "m")), 2, "grief", "--drop-empty-labels")
    ok = run("bce-train", str(data), "--label-columns", "all-but-text", "-o",
             str(tmp_path / "m"), "--drop-empty-labels", "--json", "--epochs", "2")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["labels"] == list(WORDS)


def test_binary_bundle_without_a_task_field_still_loads(sample_model: Path,
                                                        tmp_path: Path) -> None:
    import shutil

    old = Path(shutil.copytree(sample_model, tmp_path / "old"))
    config = json.loads((old / "config.json").read_text())
    del config["task"]  # an earlier binary-only writer did not record the task
    config["format_version"] = 1  # nor write a manifest
    (old / "config.json").write_text(json.dumps(config))
    (old / "manifest.json").unlink()
    result = run("bce-predict", str(old), "love it")
    assert result.returncode == 0 and json.loads(result.stdout)["label"] in ("positive",
                                                                             "negative")


@pytest.mark.slow
def test_a_single_pos_weight_number_applies_to_every_label(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "emo.csv", ["text", *WORDS], multilabel_rows(120))
    result = run("bce-train", str(data), "--label-columns", "all-but-text", "--pos-weight",
                 "2.5", "-o", str(tmp_path / "m"), "--json", "--epochs", "1", "--no-report")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["pos_weight"] == [2.5, 2.5, 2.5]
