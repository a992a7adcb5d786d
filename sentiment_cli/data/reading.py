"""Reading labeled CSV/TSV files: delimiter and column detection, label normalisation, checks.

Everything here raises :class:`DataError` with a message that names the file, the column or the
rows at fault and the option that fixes it; nothing prints.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_cli.data.labels import (
    canonical_label,
    format_counts,
    resolve_binary_labels,
    rows_text,
)
from sentiment_cli.errors import DataError
from sentiment_cli.text import has_control

if TYPE_CHECKING:
    import pandas as pd

TEXT_COLUMN_NAMES = ("text", "review", "sentence", "content", "comment", "body")
LABEL_COLUMN_NAMES = ("label", "sentiment", "target", "class", "polarity", "y")
DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark
_SNIFF_BYTES = 64 * 1024


@dataclass
class Dataset:
    """Texts with binary (n,) or multi-label (n, k) float32 targets, ready for vectorizing."""

    texts: list[str]
    y: np.ndarray
    label_names: list[str]  # binary: [negative, positive]; multi-label: one name per column
    source: str
    text_column: str
    label_columns: list[str]
    weights: np.ndarray | None = None
    dropped_rows: int = 0
    multilabel: bool = False
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def positive_label(self) -> str:
        return self.label_names[-1]

    def __len__(self) -> int:
        return len(self.texts)


def check_encoding(encoding: str | None, line_by_line: bool = False) -> str:
    """A text encoding Python can decode with (and, ``line_by_line``, one in which a line
    break is the byte 0x0a, as stdin is read)."""
    encoding = encoding or DEFAULT_ENCODING
    try:
        codecs.lookup(encoding)
        sample = "text,label\nGood film, 1\n"  # base64, rot13, idna, "undefined" fail here
        if sample.encode(encoding).decode(encoding) != sample:
            raise ValueError(encoding)
    except (LookupError, UnicodeError, ValueError, TypeError):
        raise DataError(f"unknown or unusable --encoding {encoding!r}; try utf-8, latin-1 or "
                        f"cp1252") from None
    try:
        ascii_lines = b"\n a".decode(encoding) == "\n a"
    except UnicodeError:
        ascii_lines = False
    if line_by_line and not ascii_lines:
        raise DataError(f"--encoding {encoding} cannot be read line by line from stdin; convert "
                        f"the input to UTF-8 first (iconv -f {encoding} -t utf-8)")
    return encoding


def check_delimiter(delimiter: str | None) -> str | None:
    """The delimiter to use ('tab' spelled out is a tab), or None to sniff it."""
    if not delimiter:
        return None
    sep = "\t" if delimiter in ("\\t", "tab", "TAB") else delimiter
    if len(sep) != 1 or not sep.isascii() or sep in "\r\n\"":
        raise DataError(f"--delimiter must be one ASCII character (or 'tab'), other than a "
                        f"quote or a line break, got {delimiter!r}")
    return sep


def check_path(path: Path) -> None:
    """A data file that can be read: it exists, is a file, is readable and is not empty."""
    try:
        _check_path(path)
    except OSError as err:  # a name too long, a loop of links
        raise DataError(f"{path}: {err.strerror or err}; check the path") from None


def _check_path(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file; give the CSV/TSV file inside it")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a pipe or a device?): it is read more "
                        f"than once, so save it to a file first")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path} is not readable (permission denied); check its permissions")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and at least one data row")


def decode_error(path: Path, encoding: str, err: UnicodeDecodeError) -> DataError:
    bad = err.object[err.start : err.start + 1]
    shown = f"byte 0x{bad[0]:02x}" if bad else "a byte"
    name = "UTF-8" if encoding.replace("-", "").lower().startswith("utf8") else encoding
    return DataError(
        f"{path} is not valid {name} text ({shown}); if it was saved as latin-1 or cp1252 "
        f"(common for older review files), pass --encoding latin-1 (or --encoding cp1252)"
    )


def sniff_delimiter(path: Path, encoding: str = DEFAULT_ENCODING) -> str:
    """Guess the delimiter from the header line: tab, comma, semicolon or pipe."""
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    first_line = head.split(b"\n", 1)[0].decode(encoding, errors="replace")
    counts = {sep: first_line.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    if counts[best] == 0:
        return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    return best


def read_table(
    path: str | os.PathLike[str],
    delimiter: str | None = None,
    encoding: str | None = None,
) -> pd.DataFrame:
    """Read a CSV/TSV file as strings, with no value turned into NaN.

    Tab-separated files are read without quote handling (the TSV convention, and what GLUE-style
    corpora need: a review that starts with a quote must not swallow the following lines).
    """
    import pandas as pd

    path = Path(path)
    arguments = _csv_arguments(path, delimiter, encoding)
    with _reading_errors(path, arguments):
        frame = pd.read_csv(path, **arguments)
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise DataError(f"{path} has a header ({', '.join(frame.columns)}) but no data rows")
    return frame


def read_table_chunks(path: str | os.PathLike[str], delimiter: str | None = None,
                      encoding: str | None = None, chunk_rows: int = 50_000,
                      columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """:func:`read_table` a chunk of ``chunk_rows`` rows at a time, for files larger than
    memory; each chunk keeps only ``columns`` (as named in the header after stripping), when
    given. Every column is parsed all the same: pandas' ``usecols`` would let a row with a
    field too many through, shifted, where reading the whole file refuses it."""
    import pandas as pd

    path = Path(path)
    arguments = _csv_arguments(path, delimiter, encoding)
    with _reading_errors(path, arguments), \
            pd.read_csv(path, chunksize=chunk_rows, **arguments) as chunks:
        for frame in chunks:
            frame.columns = [str(c).strip() for c in frame.columns]
            yield frame if columns is None else frame[list(columns)]


def read_header(path: str | os.PathLike[str], delimiter: str | None = None,
                encoding: str | None = None) -> list[str]:
    """The column names of a CSV/TSV file (stripped), read from its header alone."""
    import pandas as pd

    path = Path(path)
    arguments = _csv_arguments(path, delimiter, encoding)
    with _reading_errors(path, arguments):
        frame = pd.read_csv(path, nrows=0, **arguments)
    return [str(c).strip() for c in frame.columns]


def _csv_arguments(path: Path, delimiter: str | None, encoding: str | None) -> dict[str, Any]:
    """pandas.read_csv's arguments for a data file: checked, delimiter sniffed."""
    check_path(path)
    encoding = check_encoding(encoding)
    try:
        sep = check_delimiter(delimiter) or sniff_delimiter(path, encoding)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeError as err:
        raise DataError(f"{path} cannot be read as {encoding} ({err}); give its "
                        f"--encoding") from None
    return dict(sep=sep, encoding=encoding, dtype=str, keep_default_na=False, na_filter=False,
                quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL, engine="c",
                skip_blank_lines=True)


@contextmanager
def _reading_errors(path: Path, arguments: dict[str, Any]) -> Iterator[None]:
    """pandas' reading errors as one line naming the file and the fix."""
    import pandas as pd

    sep, encoding = arguments["sep"], arguments["encoding"]
    try:
        yield
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from None
    except UnicodeError as err:  # e.g. UTF-16 without its byte-order mark
        raise DataError(f"{path} cannot be read as {encoding} ({err}); give its "
                        f"--encoding") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has no columns; it needs a header row and data rows") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1]
        raise DataError(
            f"{path} is not a well-formed {'TSV' if sep == chr(9) else 'CSV'} file ({detail}); "
            f"check its quoting, or give the right --delimiter"
        ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def pick_column(
    frame: pd.DataFrame, given: str | None, names: Sequence[str], role: str, flag: str, path: Path
) -> str:
    columns = list(frame.columns)
    listing = ", ".join(repr(c) for c in columns)
    if given is not None:
        if given in columns:
            return given
        lowered = {c.lower(): c for c in columns}
        if given.lower() in lowered:
            return lowered[given.lower()]
        raise DataError(f"{path} has no column {given!r} (given by {flag}); columns are: {listing}")
    found = [c for c in columns if c.lower() in names]
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{path}: no {role} column found among {listing}; name it with {flag} COLUMN"
        )
    raise DataError(
        f"{path}: several columns could be the {role} ({', '.join(found)}); choose one with {flag}"
    )


def _weights(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    import pandas as pd

    raw = frame[column]
    numbers = pd.to_numeric(raw.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | (numbers < 0)
    if bad.any():
        raise DataError(
            f"{where}: --weight-column {column!r} needs non-negative numbers; rows "
            f"{rows_text(bad)} are not (e.g. {raw.iloc[int(np.flatnonzero(bad)[0])]!r})"
        )
    if not numbers.any():
        raise DataError(f"{where}: every weight in --weight-column {column!r} is 0, so nothing "
                        f"would be learned; give some rows a positive weight")
    # Relative weights, scaled to a mean of 1 (the losses are weighted means, so nothing else
    # changes): in float32, weights of 1e-45 would make every loss 0 and 1e39 overflow.
    scaled = numbers / numbers.max()
    return (scaled / scaled.mean()).astype(np.float32)


def label_columns_of(frame: pd.DataFrame, given: Sequence[str] | None, text_col: str,
                   weight_col: str | None, path: Path) -> list[str]:
    """The label columns: given, every column but the text's (all-but-text), or detected."""
    if given and [c.lower() for c in given] == ["all-but-text"]:
        label_cols = [c for c in frame.columns if c not in (text_col, weight_col)]
    else:
        label_cols = [pick_column(frame, c, LABEL_COLUMN_NAMES, "label", "--label-column", path)
                      for c in (given or [None])]
    if text_col in label_cols:
        raise DataError(f"{path}: column {text_col!r} cannot be both the text and a label")
    twice = sorted({c for c in label_cols if label_cols.count(c) > 1})
    if twice:
        raise DataError(f"{path}: label column {twice[0]!r} is named twice (--label-column/"
                        f"--label-columns); name each label column once")
    return label_cols


BinaryLabels = Callable[[list[str]], tuple[np.ndarray, list[str], np.ndarray]]


def checked_rows(frame: pd.DataFrame, text_col: str, label_cols: list[str], binary: BinaryLabels,
                 drop_invalid: bool, where: str, offset: int = 0,
                 ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """The rows of a file (or of a chunk, ``offset`` rows into it), checked alike in memory and
    in chunks: their texts, 0/1 targets, label names and which rows are usable. A blank text or
    an unusable label is an error naming the rows in the file, or with ``drop_invalid`` a row
    to skip. Several label columns: 0/1 each; one: ``binary`` maps its values (the pair of
    labels read from the whole file, or chosen before the chunks)."""
    texts = frame[text_col].to_numpy(dtype=object)
    blank = ~np.fromiter((bool(t.strip()) for t in texts), dtype=bool, count=len(texts))
    if len(label_cols) > 1:
        y, names, label_ok = _multilabel_targets(frame, label_cols, drop_invalid, where, offset)
    else:
        column = label_cols[0]
        y, names, label_ok = binary(frame[column].tolist())
        if not drop_invalid and not label_ok.all():
            bad = ~label_ok
            counts = Counter(v.strip() for v in frame[column].to_numpy()[bad])
            what = (f"{counts['']} blank label(s)" if set(counts) == {""} else
                    f"labels other than {names[0]!r}/{names[1]!r} ({format_counts(counts)})")
            raise DataError(
                f"{where}: {what} in column {column!r} at rows {rows_text(bad, offset=offset)} "
                f"(row 1 = first data row); fix them or pass --drop-invalid to skip such rows")
    if not drop_invalid and blank.any():
        raise DataError(
            f"{where}: empty text in column {text_col!r} at rows "
            f"{rows_text(blank, offset=offset)} (row 1 = first data row); fix them or pass "
            f"--drop-invalid to skip such rows")
    return texts, y, names, ~blank & label_ok


def _multilabel_targets(frame: pd.DataFrame, label_cols: list[str], drop_invalid: bool,
                        where: str, offset: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(rows, labels) 0/1 targets, the label names, and which rows hold 0/1 in every column."""
    y = np.zeros((len(frame), len(label_cols)), dtype=np.float32)
    valid = np.ones(len(frame), dtype=bool)
    for j, col in enumerate(label_cols):
        keys = np.asarray([canonical_label(v) for v in frame[col]], dtype=object)
        ok = np.isin(keys, ["0", "1", "false", "true", "no", "yes"])
        if not ok.all() and not drop_invalid:
            example = frame[col].iloc[int(np.flatnonzero(~ok)[0])]
            raise DataError(
                f"{where}: label column {col!r} must hold 0/1 values in multi-label mode; "
                f"rows {rows_text(~ok, offset=offset)} do not (e.g. {example!r}); fix them or "
                f"pass --drop-invalid"
            )
        y[:, j] = np.isin(keys, ["1", "true", "yes"])
        valid &= ok
    return y, list(label_cols), valid


def load_dataset(
    path: str | os.PathLike[str],
    text_column: str | None = None,
    label_columns: Sequence[str] | None = None,
    positive_label: str | None = None,
    weight_column: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    drop_invalid: bool = False,
    classes: Sequence[str] | None = None,
) -> Dataset:
    """Read a labeled file into a :class:`Dataset`.

    One label column gives the binary case; several give multi-label with one 0/1 target each.
    ``classes``, a binary model's [negative, positive] names, maps the labels onto that model's
    classes (:func:`~sentiment_cli.data.labels.pair_for_model`), as evaluation does.
    Rows with a blank text or an unusable label are an error naming the rows, or, with
    ``drop_invalid``, skipped and counted.
    """
    path = Path(path)
    frame = read_table(path, delimiter=delimiter, encoding=encoding)
    where = str(path)
    text_col = pick_column(frame, text_column, TEXT_COLUMN_NAMES, "text", "--text-column", path)
    weight_col = (pick_column(frame, weight_column, (), "weight", "--weight-column", path)
                  if weight_column else None)
    label_cols = label_columns_of(frame, label_columns, text_col, weight_col, path)
    multilabel = len(label_cols) > 1

    def binary(values: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        return resolve_binary_labels(values, positive_label, label_cols[0], where, classes)

    texts, y, names, valid = checked_rows(frame, text_col, label_cols, binary, drop_invalid,
                                          where)
    strange = [name for name in names if has_control(name)]
    if strange:
        what = "column names" if multilabel else "label column"
        raise DataError(f"{where}: the label {strange[0]!r} holds control or "
                        f"line-break characters; clean the {what} first")
    weights = _weights(frame, weight_col, where) if weight_col else None
    dropped = int((~valid).sum())
    if dropped:
        texts, y = texts[valid], y[valid]
        weights = weights[valid] if weights is not None else None
        if len(texts) == 0:
            raise DataError(f"{where}: no usable rows remain after dropping {dropped} invalid rows")
    if multilabel:
        counts = {name: int(y[:, j].sum()) for j, name in enumerate(names)}
    else:
        counts = {names[0]: int((y == 0).sum()), names[1]: int((y == 1).sum())}
        if min(counts.values()) == 0:
            raise DataError(
                f"{where}: after dropping invalid rows one class is left "
                f"({', '.join(f'{k!r}: {v}' for k, v in counts.items())}); both classes are needed"
            )
    return Dataset(
        texts=[str(t) for t in texts],
        y=y,
        label_names=names,
        source=where,
        text_column=text_col,
        label_columns=label_cols,
        weights=weights,
        dropped_rows=dropped,
        multilabel=multilabel,
        class_counts=counts,
    )
