"""bce-predict --explain: the terms behind each logit, exact for a linear model."""

from __future__ import annotations

import csv
import io
import json
import math
import random
from pathlib import Path

import pytest
from conftest import SAMPLE, SHARED_DATA, assert_clean_error, needs_shared, run, write_csv

from sentiment_cli.data.reading import load_dataset


def test_a_linear_models_terms_add_up_to_its_logit(sample_model: Path) -> None:
    """On the bundled reviews: bias + every contribution = the logit, whose sigmoid is the
    probability reported."""
    texts = load_dataset(SAMPLE).texts[:40]
    result = run("bce-predict", str(sample_model), *texts, "--explain", "0", "-F", "jsonl")
    assert result.returncode == 0, result.stderr
    for row in map(json.loads, result.stdout.splitlines()):
        total = row["bias"] + sum(e["contribution"] for e in row["explanation"])
        assert total == pytest.approx(row["logit"], abs=1e-4)
        assert 1 / (1 + math.exp(-row["logit"])) == pytest.approx(row["probability"], abs=1e-5)
        sizes = [abs(e["contribution"]) for e in row["explanation"]]
        assert sizes == sorted(sizes, reverse=True)
    top = json.loads(run("bce-predict", str(sample_model), texts[0], "--explain", "2").stdout)
    assert len(top["explanation"]) == 2


def test_an_mlp_ranks_a_planted_term_first(tmp_path: Path) -> None:
    rng = random.Random(0)
    filler = ["the", "phone", "movie", "food", "it", "was", "and", "really", "service", "day"]
    rows = []
    for i in range(400):
        words = rng.sample(filler, 5) + (["zqxv"] if i % 2 else [])
        rng.shuffle(words)
        rows.append((" ".join(words), "positive" if i % 2 else "negative"))
    data = write_csv(tmp_path / "planted.csv", ["text", "label"], rows)
    trained = run("bce-train", str(data), "-o", str(tmp_path / "m"), "--hidden", "16", "-q")
    assert trained.returncode == 0, trained.stderr
    result = run("bce-predict", str(tmp_path / "m"), "the movie zqxv was really fine",
                 "--explain", "3", "-F", "csv")
    header, row = list(csv.reader(io.StringIO(result.stdout)))
    assert header[-3:] == ["logit", "bias", "explanation"]
    first = row[-1].split("; ")[0]
    assert first.startswith("zqxv +"), row[-1]


def test_explain_refusals(tmp_path: Path) -> None:
    rows = [(f"t {i}", str(i % 2), str((i // 2) % 2)) for i in range(40)]
    data = write_csv(tmp_path / "ml.csv", ["text", "a", "b"], rows)
    assert run("bce-train", str(data), "-o", str(tmp_path / "m"), "--label-columns", "a,b",
               "-q", "--epochs", "2").returncode == 0
    assert_clean_error(run("bce-predict", str(tmp_path / "m"), "x", "--explain", "2"), 2,
                       "multi-label model")
    assert_clean_error(run("bce-predict", str(tmp_path / "m"), "x", "--explain", "-1"), 2,
                       "--explain must be")


@needs_shared
def test_exact_on_real_reviews(tmp_path: Path) -> None:
    """rt_polarity: a linear model's bias and contributions add up to each review's logit."""
    data = SHARED_DATA / "rt_polarity.csv"
    assert run("bce-train", str(data), "-o", str(tmp_path / "m"), "-q", "--no-report"
               ).returncode == 0
    texts = load_dataset(data).texts[::500]
    rows = run("bce-predict", str(tmp_path / "m"), *texts, "--explain", "0").stdout
    for row in map(json.loads, rows.splitlines()):
        total = row["bias"] + sum(e["contribution"] for e in row["explanation"])
        assert total == pytest.approx(row["logit"], abs=1e-4)
    assert len(rows.splitlines()) == len(texts) > 20
