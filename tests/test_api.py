"""The Python API: train and load_model, with the commands' options, checks and errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT, SAMPLE

import sentiment_cli
from sentiment_cli.errors import BundleError, DataError


def test_the_readme_example_runs(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"## Python\n.*?```python\n(.*?)```", readme, flags=re.S)
    assert example is not None and len(example.group(1).strip().splitlines()) <= 6
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE, tmp_path / "data" / "reviews.csv")
    done = subprocess.run([sys.executable, "-c", example.group(1)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    accuracy, predictions = done.stdout.split(" ", 1)
    assert 0.5 < float(accuracy) <= 1
    assert "'label': 'positive'" in predictions and "'label': 'negative'" in predictions
    config = json.loads((tmp_path / "models" / "reviews" / "config.json").read_text())
    assert config["training"]["epochs"] == 10


def test_train_from_a_dataframe_with_options_and_predict(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE)
    summary = sentiment_cli.train(frame, tmp_path / "m", hidden=(16,), epochs=3, seed=1)
    assert summary["labels"] == ["negative", "positive"] and summary["epochs_run"] <= 3
    model = sentiment_cli.load_model(tmp_path / "m")
    assert model.task == "binary" and model.labels == ["negative", "positive"]
    assert model.config["model"]["hidden"] == [16]
    rows = model.predict(["a wonderful phone", "it broke, refund"])
    assert [r["text"] for r in rows] == ["a wonderful phone", "it broke, refund"]
    assert all(0 <= r["probability"] <= 1 for r in rows)
    assert model.predict("one text")[0]["text"] == "one text"
    why = model.predict("a wonderful phone", explain=2)[0]
    assert len(why["explanation"]) == 2 and {"logit", "bias"} <= set(why)
    assert "explanation" not in model.predict("a wonderful phone")[0]


def test_errors_are_the_commands_own(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^--lr must be a number > 0, got -1"):
        sentiment_cli.train(SAMPLE, tmp_path / "m", lr=-1)
    with pytest.raises(DataError, match="no option 'speed'"):
        sentiment_cli.train(SAMPLE, tmp_path / "m", speed=2)
    with pytest.raises(DataError, match="output="):
        sentiment_cli.train(pd.read_csv(SAMPLE))
    with pytest.raises(BundleError, match="does not exist"):
        sentiment_cli.load_model(tmp_path / "absent")
    assert not (tmp_path / "m").exists()


def test_importing_the_package_loads_no_heavy_library() -> None:
    code = ("import sys, sentiment_cli; from sentiment_cli import train, load_model; "
            "print(sorted(m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "[]"
    assert sentiment_cli.__all__ == ["__version__", "load_model", "train"]
