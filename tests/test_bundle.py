"""The model folder: round trip, atomic replacement, and refusal of damaged or foreign files."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import resign
from safetensors.torch import save_file

from sentiment_cli.artifacts.atomic import publish
from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.config import TrainConfig, TrainingConfig
from sentiment_cli.errors import BundleError, DataError
from sentiment_cli.pipeline import run_training
from sentiment_cli.predict import Predictor


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import toy_rows, write_csv

    folder = tmp_path_factory.mktemp("bundle")
    data = write_csv(folder / "toy.csv", ["review", "sentiment"], toy_rows(200))
    job = TrainConfig(data=data, output=folder / "model",
                   training=TrainingConfig(hidden=[8], epochs=8, lr=0.01, seed=0))
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
    assert config["format_version"] == 2 and config["model"]["hidden"] == [8]
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
    resign(model_copy)
    with pytest.raises(BundleError, match="newer sentiment-cli"):
        load_bundle(model_copy)


def test_truncated_weights_are_refused(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    size = weights.stat().st_size
    weights.write_bytes(weights.read_bytes()[: size // 2])
    with pytest.raises(BundleError, match="damaged model folder .*architecture in config.json"):
        load_bundle(model_copy)
    weights.write_bytes(b"\x00" * size)  # the right size, not safetensors
    with pytest.raises(BundleError, match="does not match its digest"):
        load_bundle(model_copy)
    resign(model_copy)
    with pytest.raises(BundleError, match="damaged model folder .*not a valid safetensors"):
        load_bundle(model_copy)


def test_weights_of_the_wrong_shape_are_refused(model_copy: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(model_copy / "model.safetensors"))
    state["rest.2.weight"] = state["rest.2.weight"].reshape(-1, 1).contiguous()  # same size
    save_file(state, str(model_copy / "model.safetensors"))
    resign(model_copy)
    with pytest.raises(BundleError, match="rest.2.weight has shape"):
        load_bundle(model_copy)


def test_vocabulary_of_the_wrong_size_is_refused(model_copy: Path) -> None:
    vocab = json.loads((model_copy / "vocabulary.json").read_text())
    vocab["terms"] = vocab["terms"][:-1]
    (model_copy / "vocabulary.json").write_text(json.dumps(vocab))
    resign(model_copy)
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


def test_a_failed_write_keeps_the_previous_folder_and_leaves_nothing_beside_it(
        tmp_path: Path) -> None:
    target = tmp_path / "m"

    def fill(text: str):  # type: ignore[no-untyped-def]
        return lambda folder: (folder / "config.json").write_text(text)

    publish(target, fill("old"), "model", replace=False)
    with pytest.raises(DataError, match="--force"):
        publish(target, fill("new"), "model", replace=False)

    def broken(folder: Path) -> None:
        (folder / "config.json").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish(target, broken, "model", replace=True)
    assert (target / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging folder left

    publish(target, fill("new"), "model", replace=True)
    assert (target / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_folder_of_someone_else_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()
    (target / "config.json").write_text("mine")
    with pytest.raises(DataError, match="did not write"):
        publish(target, lambda folder: (folder / "x").write_text("new"), "model", replace=True)
    assert [p.name for p in target.iterdir()] == ["config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
