"""The model folder: round trip, atomic replacement, and refusal of damaged or foreign files."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from sentiment_cli.bundle import load_bundle, write_folder_atomically
from sentiment_cli.errors import BundleError, DataError
from sentiment_cli.pipeline import TrainJob, run_training
from sentiment_cli.predict import Predictor
from sentiment_cli.train import TrainOptions


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import toy_rows, write_csv

    folder = tmp_path_factory.mktemp("bundle")
    data = write_csv(folder / "toy.csv", ["review", "sentiment"], toy_rows(200))
    job = TrainJob(data=data, output=folder / "model",
                   train=TrainOptions(hidden=[8], epochs=8, lr=0.01, seed=0))
    run_training(job)
    return folder / "model"


@pytest.fixture
def model_copy(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "copy"))


def test_round_trip_predicts_the_same_and_keeps_labels(trained: Path, model_copy: Path) -> None:
    a, b = Predictor(load_bundle(trained)), Predictor(load_bundle(model_copy))
    texts = ["great wonderful phone", "awful broken refund", "", "zzz unseen"]
    assert np.array_equal(a.probabilities(texts), b.probabilities(texts))
    assert a.bundle.labels == ["negative", "positive"]
    rows = a.rows(texts[:2])
    assert [r["label"] for r in rows] == ["positive", "negative"]
    config = json.loads((trained / "config.json").read_text())
    assert config["format_version"] == 1 and config["model"]["hidden"] == [8]
    assert {"metrics.json", "history.csv"} <= {p.name for p in trained.iterdir()}
    assert not list(trained.glob("*.pkl")) and not list(trained.glob("*.joblib"))


def test_missing_file_is_refused(model_copy: Path) -> None:
    (model_copy / "vocabulary.json").unlink()
    with pytest.raises(BundleError, match="missing vocabulary.json"):
        load_bundle(model_copy)


def test_newer_format_is_refused(model_copy: Path) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    config["format_version"] = 99
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="newer sentiment-cli"):
        load_bundle(model_copy)


def test_truncated_weights_are_refused(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(BundleError, match="not a valid safetensors"):
        load_bundle(model_copy)


def test_weights_of_the_wrong_shape_are_refused(model_copy: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(model_copy / "model.safetensors"))
    state["first.bias"] = torch.zeros(3)
    save_file(state, str(model_copy / "model.safetensors"))
    with pytest.raises(BundleError, match="first.bias has shape"):
        load_bundle(model_copy)


def test_vocabulary_of_the_wrong_size_is_refused(model_copy: Path) -> None:
    vocab = json.loads((model_copy / "vocabulary.json").read_text())
    vocab["terms"] = vocab["terms"][:-1]
    (model_copy / "vocabulary.json").write_text(json.dumps(vocab))
    with pytest.raises(BundleError, match="terms the model expects"):
        load_bundle(model_copy)


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def test_pickle_payload_in_place_of_weights_is_not_executed(
    model_copy: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"first.bias": _Payload(marker)})
    (model_copy / "model.safetensors").write_bytes(payload)
    torch.save({"x": _Payload(marker)}, model_copy / "config.json.pt")  # a decoy .pt beside
    with pytest.raises(BundleError):
        load_bundle(model_copy)
    assert not marker.exists()


def test_existing_folder_needs_force_and_a_failed_write_keeps_it(tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("old")

    def fill(folder: Path) -> None:
        (folder / "config.json").write_text("new")

    with pytest.raises(DataError, match="--force"):
        write_folder_atomically(target, fill, force=False)

    def broken(folder: Path) -> None:
        (folder / "config.json").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_folder_atomically(target, broken, force=True)
    assert (target / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left

    write_folder_atomically(target, fill, force=True)
    assert (target / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
