"""Data files told by their content: compression (gzip, bz2, xz) whatever their name, JSON Lines
beside CSV/TSV, and malformed rows refused, or skipped and counted with --drop-invalid."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE, assert_clean_error, run, toy_rows, write_csv

from sentiment_cli.data.files import read_header, read_table, read_table_chunks
from sentiment_cli.data.reading import load_dataset
from sentiment_cli.errors import DataError

COMPRESSORS = {"gzip": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}


def _jsonl(path: Path, rows: list[tuple[str, str]], compress: str | None = None) -> Path:
    text = "".join(json.dumps({"review": t, "sentiment": s}) + "\n" for t, s in rows)
    data = text.encode()
    path.write_bytes(COMPRESSORS[compress](data) if compress else data)
    return path


@pytest.mark.parametrize("method", sorted(COMPRESSORS))
def test_compression_is_told_by_content_not_name(tmp_path: Path, method: str) -> None:
    plain = write_csv(tmp_path / "plain.csv", ["review", "sentiment"], toy_rows(50))
    packed = tmp_path / "packed.csv"  # a compressed file with a plain name
    packed.write_bytes(COMPRESSORS[method](plain.read_bytes()))
    assert read_table(packed).equals(read_table(plain))
    assert read_header(packed) == ["review", "sentiment"]
    chunks = list(read_table_chunks(packed, chunk_rows=20))
    assert [len(c) for c in chunks] == [20, 20, 10]


def test_a_truncated_gzip_file_is_one_clear_error(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "plain.csv", ["review", "sentiment"], toy_rows(2000))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(plain.read_bytes())[:3000])
    with pytest.raises(DataError, match="cut.csv.gz"):
        read_table(cut)


def test_json_lines_read_as_the_same_rows_as_csv(tmp_path: Path) -> None:
    rows = toy_rows(40)
    from_csv = load_dataset(write_csv(tmp_path / "r.csv", ["review", "sentiment"], rows))
    for path in (_jsonl(tmp_path / "r.jsonl", rows), _jsonl(tmp_path / "r.gz", rows, "gzip")):
        data = load_dataset(path)
        assert data.texts == from_csv.texts and np.array_equal(data.y, from_csv.y)
        assert (data.text_column, data.label_columns) == ("review", ["sentiment"])


def test_json_lines_values_missing_keys_and_numbers(tmp_path: Path) -> None:
    path = tmp_path / "v.jsonl"
    path.write_text('{"text": "good", "label": 1, "tags": ["a", "é"]}\n\n'
                    '{"label": 0, "text": "bad", "extra": 1}\n{"text": null, "label": true}\n'
                    '{"label": 0.5, "tags": {"k": 1}}\n')
    frame = read_table(path)
    assert list(frame.columns) == ["text", "label", "tags"]  # the first object's keys
    assert frame.values.tolist() == [["good", "1", '["a", "é"]'], ["bad", "0", ""],
                                     ["", "true", ""], ["", "0.5", '{"k": 1}']]
    assert read_header(path) == ["text", "label", "tags"]
    assert list(next(read_table_chunks(path, chunk_rows=1)).columns) == ["text", "label", "tags"]


@pytest.mark.parametrize(("line", "says"), [
    ('{"text": "oops", ', "line 2 is not JSON"),
    ("[1, 2]", "line 2 is an array, not an object"),
    ('"just text"', "line 2 is a string, not an object"),
])
def test_a_bad_json_line_is_refused_or_skipped(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "b.jsonl"
    path.write_text('{"text": "good", "label": 1}\n' + line + '\n{"text": "bad", "label": 0}\n')
    with pytest.raises(DataError, match="--drop-invalid") as error:
        read_table(path)
    assert says in str(error.value)
    frame = read_table(path, skip_malformed=True)
    assert len(frame) == 2 and frame.attrs["malformed"] == 1


def test_malformed_csv_rows_are_counted_with_drop_invalid(tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    rows = len(lines) - 1
    lines[10] = "a,b,c,d,e\n"
    lines[20] = "x,y,z\n"
    path = tmp_path / "m.csv"
    path.write_text("".join(lines))
    with pytest.raises(DataError, match="Expected 2 fields in line 11.*--drop-invalid"):
        load_dataset(path)
    data = load_dataset(path, drop_invalid=True)
    assert data.dropped_rows == 2 and len(data) == rows - 2
    chunks = list(read_table_chunks(path, chunk_rows=15, skip_malformed=True))
    assert sum(c.attrs["malformed"] for c in chunks) == 2
    assert sum(len(c) for c in chunks) == rows - 2


def test_commands_read_compressed_json_lines_end_to_end(tmp_path: Path) -> None:
    frame = read_table(SAMPLE)  # the sample, as gzip-compressed JSON Lines
    data = _jsonl(tmp_path / "reviews.data", list(zip(frame["review"], frame["sentiment"],
                                                      strict=True)), "gzip")
    for extra in ([], ["--stream"]):
        out = tmp_path / f"model{len(extra)}"
        result = run("bce-train", str(data), "-o", str(out), "--quiet", "--epochs", "2",
                     *extra)
        assert result.returncode == 0, result.stderr
    evaluated = run("bce-eval", str(tmp_path / "model0"), str(data), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["rows"] == len(frame)
    predicted = run("bce-predict", str(tmp_path / "model0"), "--input", str(data),
                    "--format", "jsonl")
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.splitlines()) == len(frame)


def test_the_train_command_skips_malformed_rows_only_when_asked(tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    lines[5] = "one,two,three\n"
    path = tmp_path / "m.csv"
    path.write_text("".join(lines))
    refused = run("bce-train", str(path), "-o", str(tmp_path / "a"), "--epochs", "1")
    assert_clean_error(refused, 2, "Expected 2 fields in line 6", "--drop-invalid")
    assert not (tmp_path / "a").exists()
    for extra in ([], ["--stream"]):
        kept = run("bce-train", str(path), "-o", str(tmp_path / f"b{len(extra)}"),
                   "--epochs", "1", "--drop-invalid", *extra)
        assert kept.returncode == 0, kept.stderr
        assert "1 invalid rows" in kept.stderr + kept.stdout


def test_zstd_and_parquet_read_as_the_same_rows(tmp_path: Path) -> None:
    zstandard = pytest.importorskip("zstandard")
    pytest.importorskip("pyarrow")
    frame = read_table(SAMPLE)
    packed = tmp_path / "reviews.csv"
    packed.write_bytes(zstandard.ZstdCompressor().compress(SAMPLE.read_bytes()))
    assert read_table(packed).equals(frame)
    table = frame.assign(stars=[i % 5 + 0.5 for i in range(len(frame))], none=None)
    parquet = tmp_path / "reviews.data"
    table.to_parquet(parquet)
    read = read_table(parquet)
    assert list(read.columns) == ["review", "sentiment", "stars", "none"]
    assert read[["review", "sentiment"]].values.tolist() == frame.values.tolist()
    assert read["stars"].tolist()[:2] == ["0.5", "1.5"] and set(read["none"]) == {""}
    chunks = list(read_table_chunks(parquet, chunk_rows=100, columns=["review"]))
    assert sum(len(c) for c in chunks) == len(frame) and list(chunks[0].columns) == ["review"]
    assert read_header(parquet) == list(read.columns)
    assert load_dataset(parquet).texts == load_dataset(SAMPLE).texts


def test_without_the_optional_readers_one_line_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "p.parquet"
    read_table(SAMPLE).to_parquet(parquet)
    packed = tmp_path / "p.csv.zst"
    packed.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 20)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(DataError, match="install pyarrow"):
        read_table(parquet)
    with pytest.raises(DataError, match="install zstandard"):
        read_table(packed)


def test_a_damaged_parquet_file_is_one_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "p.parquet"
    read_table(SAMPLE).to_parquet(parquet)
    parquet.write_bytes(parquet.read_bytes()[:500])
    with pytest.raises(DataError, match="cannot read it as Parquet"):
        read_table(parquet)
