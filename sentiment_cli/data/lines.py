"""Plain-text files, one text per line: --positive-lines and --negative-lines."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sentiment_cli.data.files import check_encoding, check_path
from sentiment_cli.data.formats import decode_error
from sentiment_cli.data.reading import Dataset
from sentiment_cli.errors import DataError


def read_lines_file(path: str | os.PathLike[str], encoding: str | None = None) -> list[str]:
    """One text per line, split on "\\n" only (never on U+0085 or other Unicode line breaks,
    which latin-1 and cp1252 files contain inside texts), stripped of spaces and "\\r"."""
    path = Path(path)
    check_path(path)
    encoding = check_encoding(encoding)
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from None
    except UnicodeError as err:
        raise DataError(f"{path} cannot be read as {encoding} ({err}); give its "
                        f"--encoding") from None
    return [line.strip(" \t\r") for line in text.split("\n")]


def load_line_files(
    positive: str | os.PathLike[str],
    negative: str | os.PathLike[str],
    encoding: str | None = None,
) -> Dataset:
    """A binary dataset from two plain-text files, one text per line (blank lines skipped and
    counted), labeled "positive" and "negative"."""
    texts: list[str] = []
    labels: list[float] = []
    blank = 0
    for path, label in ((positive, 1.0), (negative, 0.0)):
        lines = read_lines_file(path, encoding)
        kept = [line for line in lines if line]
        blank += len(lines) - len(kept) - (1 if lines and not lines[-1] else 0)
        if not kept:
            raise DataError(f"{path} has no non-blank lines")
        texts += kept
        labels += [label] * len(kept)
    y = np.asarray(labels, dtype=np.float32)
    return Dataset(
        texts=texts,
        y=y,
        label_names=["negative", "positive"],
        source=f"{positive} + {negative}",
        text_column="line",
        label_columns=["file"],
        dropped_rows=blank,
        class_counts={"negative": int((y == 0).sum()), "positive": int((y == 1).sum())},
    )
