"""The training job end to end in-process: the validation file's features, and which process
loads scikit-learn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import toy_rows, write_csv

from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.config import TrainConfig, TrainingConfig
from sentiment_cli.metrics import binary_metrics
from sentiment_cli.parallel import available_cores
from sentiment_cli.pipeline import run_training
from sentiment_cli.predict import Predictor


def test_val_data_metrics_equal_the_saved_models_on_that_file(tmp_path: Path) -> None:
    # The validation file's texts are tokenised with the training texts and restricted to the
    # training vocabulary; the saved model, scoring the file with transform(), must agree.
    rows = toy_rows(160)
    val_rows = [(text + " unseenword", label) for text, label in toy_rows(60, seed=1)]
    data = write_csv(tmp_path / "train.csv", ["review", "sentiment"], rows)
    val = write_csv(tmp_path / "val.csv", ["review", "sentiment"], val_rows)
    summary = run_training(TrainConfig(data=data, output=tmp_path / "model", val_data=val,
                                       training=TrainingConfig(epochs=4, seed=0, device="cpu"))
                           ).summary()
    assert summary["val_rows"] == 60
    bundle = load_bundle(tmp_path / "model")
    assert "unseenword" not in bundle.vectorizer.vocabulary_
    prob = Predictor(bundle).probabilities([t for t, _ in val_rows])[:, 0]
    y = np.array([label == "positive" for _, label in val_rows], dtype=float)
    expected = binary_metrics(y, prob, summary["thresholds"][0])
    for key in ("accuracy", "f1", "roc_auc", "log_loss"):
        assert summary["validation"][key] == pytest.approx(expected[key], abs=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(available_cores() < 2, reason="the pool's worker needs a second core")
@pytest.mark.parametrize("grouping", ["contained", "none"])
def test_the_training_process_never_imports_scikit_learn(tmp_path: Path, grouping: str) -> None:
    # scikit-learn (about 0.7 s to import) is loaded by the pool's worker that tokenises and
    # splits, while this process imports torch; "none" splits with train_test_split. The pool
    # starts above POOL_MIN_BYTES of input: 0 here, so that a small file uses it too.
    data = write_csv(tmp_path / "toy.csv", ["review", "sentiment"], toy_rows(200))
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from sentiment_cli.config import TrainConfig, TrainingConfig\n"
        "from sentiment_cli import in_memory, pipeline\n"
        "in_memory.POOL_MIN_BYTES = 0\n"
        f"summary = pipeline.run_training(TrainConfig(data=Path({str(data)!r}), "
        f"output=Path({str(tmp_path / 'model')!r}), val_grouping={grouping!r}, "
        "training=TrainingConfig(epochs=3, device='cpu'))).summary()\n"
        "print(json.dumps({'sklearn': sorted(m for m in sys.modules if m.startswith('sklearn')),"
        " 'val_rows': summary['val_rows']}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"sklearn": [], "val_rows": 20}
