"""Property-based tests: the reader and the label normaliser either return well-formed results
or raise our own DataError, whatever the input."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentiment_cli.data.files import read_table
from sentiment_cli.data.labels import resolve_binary_labels
from sentiment_cli.data.reading import load_dataset
from sentiment_cli.errors import DataError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# Any text, including quotes, separators, line breaks, emoji and other scripts; no NUL (a C
# string terminator that no text export contains).
TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
               max_size=40)
LABEL = st.sampled_from(["0", "1", "pos", "neg", "yes", "no", "", " 1 ", "maybe", "TRUE"])


def write_rows(rows: list[tuple[str, str]], delimiter: str = ",") -> Path:
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8",
                                     newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)  # RFC 4180: CRLF, so "\r" is quoted
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return Path(handle.name)


@SETTINGS
@given(st.lists(st.tuples(TEXT, LABEL), min_size=1, max_size=25))
def test_reader_returns_the_written_rows_or_our_error(rows: list[tuple[str, str]]) -> None:
    path = write_rows(rows)
    try:
        frame = read_table(path, delimiter=",")
    except DataError:
        return
    finally:
        path.unlink()
    assert list(frame.columns) == ["text", "label"]
    assert list(zip(frame["text"], frame["label"], strict=True)) == rows


@SETTINGS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_escape_as_other_exceptions(blob: bytes) -> None:
    path = Path(tempfile.mkstemp(suffix=".csv")[1])
    path.write_bytes(blob)
    try:
        data = load_dataset(path)
    except DataError:
        return
    finally:
        path.unlink()
    assert len(data.texts) == len(data.y) > 0
    assert set(np.unique(data.y)) == {0.0, 1.0}


@SETTINGS
@given(st.lists(LABEL | TEXT, min_size=1, max_size=30), st.none() | LABEL)
def test_label_normaliser_is_total(values: list[str], positive: str | None) -> None:
    try:
        y, names, valid = resolve_binary_labels(values, positive, "label", "f.csv")
    except DataError:
        return
    assert len(y) == len(valid) == len(values) and len(names) == 2
    assert names[0] != names[1]
    assert set(np.unique(y[valid])) <= {0.0, 1.0}
    assert not y[~valid].any()
