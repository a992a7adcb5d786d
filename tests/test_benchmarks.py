"""Smoke test of the benchmark runner (benchmarks/run.py) on a tiny generated dataset.

Timing itself lives in the benchmark, not here: this only checks that a run of ours and the
scikit-learn peers completes and writes results.json and results.md with the expected keys.
It needs neither fastText nor ../shared/data.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from conftest import toy_rows, write_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_run", None)


@pytest.mark.slow
def test_runner_writes_results(bench, tmp_path: Path) -> None:
    # A few dozen rows per class; a text with U+0085 checks that lines are split on "\n" only.
    train_rows = toy_rows(96, seed=1)
    test_rows = toy_rows(40, seed=2)
    test_rows[0] = ("great\u0085 love it", "positive")
    train = write_csv(tmp_path / "tiny_train.csv", ["text", "sentiment"], train_rows)
    test = write_csv(tmp_path / "tiny_test.csv", ["text", "sentiment"], test_rows)

    results = bench.run_benchmarks(
        datasets={"tiny": (train, test)},
        out=tmp_path / "results",
        repeats=1,
        peers=["ours", "sklearn"],
        work=tmp_path / "work",
        throughput_rows=500,
        probe=False,
        log=lambda message: None,
    )

    saved = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(results))
    assert {"config", "machine", "fasttext", "datasets", "profile"} <= set(saved)
    assert {"nproc", "cpu_model", "memory_gib", "versions"} <= set(saved["machine"])

    tiny = saved["datasets"]["tiny"]
    assert tiny["test_rows"] == 40
    assert tiny["positive_label"] == "positive"
    systems = tiny["systems"]
    assert set(systems) == {"ours", "sklearn_cv_ours", "sklearn_unigram", "sklearn_bigram"}
    for name, row in systems.items():
        for key in ("accuracy", "f1", "roc_auc", "train_wall_s", "train_peak_rss_mb",
                    "startup_wall_s", "predict_wall_s", "predict_peak_rss_mb",
                    "predict_throughput"):
            assert key in row, (name, key)
        assert 0.5 < row["accuracy"] <= 1.0, name  # the toy data is easy to learn
        assert row["train_wall_s"] > 0 and row["train_peak_rss_mb"] > 0
    assert set(tiny["ratios"]) == {"sklearn_cv_ours", "sklearn_unigram", "sklearn_bigram"}
    for row in tiny["ratios"].values():
        assert {"accuracy_diff", "train_time_ratio", "throughput_ratio",
                "train_memory_ratio", "predict_memory_ratio"} <= set(row)
    profile = saved["profile"]
    assert profile["dataset"] == "tiny"
    for part in ("startup", "read", "vectorize", "train", "finish", "wall"):
        assert part in profile

    table = (tmp_path / "results" / "results.md").read_text(encoding="utf-8")
    assert "## tiny" in table
    assert "sklearn LR + our CountVectorizer settings" in table
    assert "Where ours spends its training time" in table


def load_script(name: str):  # type: ignore[no-untyped-def]
    """A benchmarks/ script as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_sst2_like(path: Path, rows: int, seed: int = 0) -> Path:
    """Toy rows with SST-2's columns (sentence, label 0/1)."""
    return write_csv(path, ["sentence", "label"],
                     [(text, "1" if label == "positive" else "0")
                      for text, label in toy_rows(rows, seed=seed)])


def test_holdout_script_on_tiny_files(tmp_path: Path) -> None:
    module = load_script("holdout")
    write_sst2_like(tmp_path / "sst2_train.csv", 160)
    write_sst2_like(tmp_path / "sst2_dev.csv", 40, seed=3)
    (row,) = module.run(tmp_path, seeds=1)
    assert set(row) == {"seed", *module.COLUMNS}
    assert all(0.5 < row[column] <= 1.0 for column in module.COLUMNS)  # learnable toy data


def test_valsize_script_on_tiny_files(tmp_path: Path) -> None:
    module = load_script("valsize")
    write_sst2_like(tmp_path / "sst2_train.csv", 300)
    (row,) = module.run(tmp_path, seeds=1, caps=[0, 10])
    assert row["cap 10: validation rows"] == 10
    assert row["cap 0: validation rows"] == 27  # 10% of the 270 rows left after the test part
    for key in ("cap 0: ours", "cap 10: ours", "cap 10: LR, same rows", module.ALL_ROWS):
        assert 0.5 < row[key] <= 1.0, key  # learnable toy data
    assert "capped at 10" in "\n".join(module.table([row], [0, 10]))


@pytest.mark.slow
def test_pairs_script_on_tiny_files(tmp_path: Path) -> None:
    module = load_script("pairs")
    data = write_sst2_like(tmp_path / "tiny.csv", 120)
    rows = module.run_pairs(data, pairs=2)
    assert [r["first"] for r in rows] == ["ours", "peer"]  # alternating
    for row in rows:
        assert row["ours"] > 0 and row["peer"] > 0
        assert row["ratio"] == row["ours"] / row["peer"]
    assert "| median |" in "\n".join(module.table(rows, "wall"))


def test_multiclass_script_scores_scikit_learn_on_our_features() -> None:
    import pandas as pd

    module = load_script("multiclass")
    words = {"red": "apple cherry", "green": "lime leaf", "blue": "sky sea"}
    rows = [(f"{words[c]} {i}", c) for i in range(30) for c in words]
    frame = pd.DataFrame(rows, columns=["text", "label"])
    scored = module.sklearn_peer(frame[:60], frame[60:], one_vs_rest=True)
    assert scored["accuracy"] == 1.0 and scored["macro_f1"] == 1.0  # learnable toy data
