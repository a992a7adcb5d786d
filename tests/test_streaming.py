"""Training from files larger than memory: chunks, two passes, shards on disk."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from sentiment_cli import streaming
from sentiment_cli.config import TrainConfig, TrainingConfig, VectorizerConfig
from sentiment_cli.errors import DataError
from sentiment_cli.features import build_vectorizer
from tests.conftest import SAMPLE, SHARED_DATA, assert_clean_error, command, run


def _streamed(tmp_path: Path, data: Path, **options: object) -> streaming.Streamed:
    config = TrainConfig(data=data, output=tmp_path / "model", **options)  # type: ignore[arg-type]
    folder = tmp_path / "shards"
    folder.mkdir(exist_ok=True)
    return streaming.stream_rows(config, folder, note=lambda message: None)


@pytest.mark.parametrize("vectorizer", [
    VectorizerConfig(),
    VectorizerConfig(min_df=2, max_features=300),
    VectorizerConfig(binary=True, max_df=0.5, ngram_range=(1, 1), stop_words="english"),
])
def test_the_vocabulary_and_rows_equal_scikit_learn_s_on_the_whole_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vectorizer: VectorizerConfig) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 97)  # seven chunks of the sample
    rows = _streamed(tmp_path, SAMPLE, val_split=0.0, vectorizer=vectorizer)
    texts = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)["review"].tolist()
    expected = build_vectorizer(vectorizer)
    matrix = expected.fit_transform(texts).tocsr()
    assert rows.vectorizer["terms"] == expected.get_feature_names_out().tolist()
    assert len(rows.x_train.paths) == 7
    import scipy.sparse as sp

    shards = sp.vstack([block for block, _ in rows.x_train.blocks()], format="csr")
    assert sorted(rows.source_rows.tolist()) == list(range(len(texts)))
    assert (shards != matrix[rows.source_rows]).nnz == 0
    assert len(rows.train) == len(texts) and rows.val is None


def test_validation_rows_are_chosen_by_a_seeded_hash_of_the_text(tmp_path: Path) -> None:
    first = _streamed(tmp_path, SAMPLE, val_split=0.2)
    again = _streamed(tmp_path, SAMPLE, val_split=0.2)
    other = _streamed(tmp_path, SAMPLE, val_split=0.2, training=TrainingConfig(seed=1))
    assert first.val is not None and again.val is not None and other.val is not None
    assert first.val.texts == again.val.texts != other.val.texts
    assert 0.1 < len(first.val) / 675 < 0.3
    assert len(first.train) + len(first.val) == 675


def test_a_bad_row_in_a_later_chunk_is_named_by_its_row_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 50)
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(200)
    frame.loc[170, "review"] = "   "
    data = tmp_path / "bad.csv"
    frame.to_csv(data, index=False, quoting=csv.QUOTE_MINIMAL)
    with pytest.raises(DataError, match=r"empty text in column 'review' at rows 171 "):
        _streamed(tmp_path, data)
    rows = _streamed(tmp_path, data, drop_invalid=True)
    assert rows.data.dropped_rows == 1 and len(rows.data) == 199


def test_it_streams_on_its_own_when_the_file_would_not_fit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = TrainConfig(data=SAMPLE)
    size = SAMPLE.stat().st_size
    monkeypatch.setattr(streaming, "available_bytes", lambda: 100 * size)
    assert not streaming.wanted(config)
    monkeypatch.setattr(streaming, "available_bytes", lambda: 30 * size)
    assert streaming.wanted(config)
    assert not streaming.wanted(TrainConfig(data=SAMPLE, stream=False))


def test_bce_train_stream_trains_predicts_and_leaves_no_shards(tmp_path: Path) -> None:
    result = run("bce-train", str(SAMPLE), "-o", str(tmp_path / "model"), "--stream",
                 "--seed", "0", "--json", "--no-report")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["train_rows"] + summary["val_rows"] == 675
    assert "streaming 675 rows" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    predicted = run("bce-predict", str(tmp_path / "model"), "a wonderful, lovely phone")
    assert json.loads(predicted.stdout)["label"] == "positive"


@pytest.mark.parametrize("options, what", [
    (["--weight-column", "text"], "--weight-column"),
    (["--drop-empty-labels"], "--drop-empty-labels"),
])
def test_what_stream_cannot_do_yet_is_refused_before_reading(
        tmp_path: Path, options: list[str], what: str) -> None:
    result = run("bce-train", str(SAMPLE), "-o", str(tmp_path / "model"), "--stream", *options)
    assert_clean_error(result, 2, f"--stream does not support {what} yet")
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sst2_train.csv").is_file(), reason="needs SST-2")
def test_an_interrupted_stream_removes_its_shards(tmp_path: Path) -> None:
    big = tmp_path / "sst2_x4.csv"
    base = pd.read_csv(SHARED_DATA / "sst2_train.csv", dtype=str, keep_default_na=False)
    pd.concat([base] * 4, ignore_index=True).to_csv(big, index=False)
    job = subprocess.Popen([command("bce-train"), str(big), "-o", str(tmp_path / "model"),
                            "--stream", "--hidden", "32"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".model.shards-*/shard-00001.npz")):
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(job.pid, signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 143, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sst2_x4.csv"]


def test_a_row_with_a_field_too_many_is_refused_as_in_memory(tmp_path: Path) -> None:
    data = tmp_path / "shifted.csv"
    data.write_text("text,label\ngood film,1\nbad, really bad,0\nfine,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="not a well-formed CSV file"):
        _streamed(tmp_path, data)


def test_what_it_cannot_do_keeps_a_run_in_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "available_bytes", lambda: 1)
    assert streaming.wanted(TrainConfig(data=SAMPLE))
    assert not streaming.wanted(TrainConfig(data=SAMPLE, weight_column="w"))
    assert not streaming.wanted(TrainConfig(data=SAMPLE, drop_empty_labels=True))


def test_a_val_data_file_is_not_counted_among_the_data_rows(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    frame.head(500).to_csv(train, index=False)
    frame.tail(175).to_csv(dev, index=False)
    rows = _streamed(tmp_path, train, val_data=dev)
    assert (len(rows.data), len(rows.train), len(rows.val)) == (500, 500, 175)
    assert sum(rows.data.class_counts.values()) == 500


def test_every_shard_is_a_random_sample_even_of_a_file_sorted_by_label(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 100)
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).sort_values("sentiment")
    data = tmp_path / "sorted.csv"
    frame.to_csv(data, index=False)
    rows = _streamed(tmp_path, data, val_split=0.0)
    assert len(rows.x_train.paths) == 7
    for start, end in zip(rows.x_train.starts[:-1], rows.x_train.starts[1:], strict=True):
        share = rows.train.y[start:end].mean()
        assert 0.25 < share < 0.75  # both classes in every shard, not one shard per class
    assert not list((tmp_path / "shards").glob("piece-*"))


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "sst2_train.csv").is_file(), reason="needs SST-2")
def test_a_streamed_run_resumes_streamed(tmp_path: Path) -> None:
    model = tmp_path / "model"
    job = subprocess.Popen([command("bce-train"), str(SHARED_DATA / "sst2_train.csv"), "-o",
                            str(model), "--stream", "--hidden", "32", "--no-report"],
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while not (tmp_path / "model.checkpoint" / "state.json").is_file():
        assert job.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(job.pid, signal.SIGTERM)
    job.communicate(timeout=60)
    refused = run("bce-train", str(SHARED_DATA / "sst2_train.csv"), "-o", str(model), "--hidden",
                  "32", "--no-report", "--resume", "--no-stream")
    assert_clean_error(refused, 2, "the checkpoint was made --stream")
    resumed = run("bce-train", str(SHARED_DATA / "sst2_train.csv"), "-o", str(model), "--hidden",
                  "32", "--no-report", "--resume")  # the checkpoint's mode, not the file size's
    assert resumed.returncode == 0, resumed.stderr
    assert "streaming" in resumed.stderr and "resuming after epoch" in resumed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("value, message", [
    ("", r"1 blank label\(s\) in column 'sentiment' at rows 121 "),
    ("neutral", r"labels other than 'negative'/'positive' \('neutral' \(1\)\) in column "
                r"'sentiment' at rows 121 "),
])
def test_a_bad_label_is_named_as_reading_in_memory_names_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 50)
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(150)
    frame.loc[120, "sentiment"] = value
    data = tmp_path / "labels.csv"
    frame.to_csv(data, index=False)
    with pytest.raises(DataError, match=message):
        _streamed(tmp_path, data)


@pytest.mark.parametrize("change", ["append", "rewrite"])
def test_a_file_that_changes_between_the_two_readings_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    data = tmp_path / "growing.csv"
    data.write_bytes(SAMPLE.read_bytes())
    counting = streaming._count_pass

    def changed_first(*args: object, **kwargs: object) -> object:
        lines = SAMPLE.read_text().splitlines(keepends=True)
        if change == "append":  # a writer still at work: more rows than the first reading
            data.write_text("".join(lines) + "".join(lines[1:200]))
        else:  # as many rows, other texts
            data.write_text("".join(lines[:1] + [line.lower() for line in lines[1:]]))
        return counting(*args, **kwargs)

    monkeypatch.setattr(streaming, "_count_pass", changed_first)
    with pytest.raises(DataError, match=r"changed while --stream read it \(675 rows at first\)"):
        _streamed(tmp_path, data, val_split=0.0)
