"""Reading labeled CSV/TSV files: delimiter and column detection, label normalisation, checks.

Everything here raises :class:`DataError` with a message that names the file, the column or the
rows at fault and the option that fixes it; nothing prints.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sentiment_cli import interruption
from sentiment_cli.data.files import read_header, read_table
from sentiment_cli.data.labels import (
    canonical_label,
    format_counts,
    multiclass_keys,
    resolve_binary_labels,
    resolve_classes,
    rows_text,
)
from sentiment_cli.errors import DataError
from sentiment_cli.text import has_control

if TYPE_CHECKING:
    import pandas as pd

TEXT_COLUMN_NAMES = ("text", "review", "sentence", "content", "comment", "body")
LABEL_COLUMN_NAMES = ("label", "sentiment", "target", "class", "polarity", "y")


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
    multiclass: bool = False  # one-hot (n, classes) targets of one label column

    @property
    def task(self) -> str:
        return "multilabel" if self.multilabel else "multiclass" if self.multiclass else "binary"

    @property
    def positive_label(self) -> str:
        return self.label_names[-1]

    def __len__(self) -> int:
        return len(self.texts)


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
        several = (" (several 0/1 label columns, multi-label: --label-columns A,B,... or "
                   "all-but-text)" if flag == "--label-column" and len(columns) > 2 else "")
        raise DataError(
            f"{path}: no {role} column found among {listing}; name it with {flag} COLUMN"
            f"{several}"
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
    """The label columns: given, every column but the text's (all-but-text), detected by name,
    or the only column beside the text (``text,stars``)."""
    others = [c for c in frame.columns if c not in (text_col, weight_col)]
    all_but_text = bool(given) and [c.lower() for c in given or []] == ["all-but-text"]
    if all_but_text or (not given and len(others) == 1):
        label_cols = others
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
            known = "/".join(map(repr, names)) if len(names) <= 6 else f"its {len(names)} classes"
            what = (f"{counts['']} blank label(s)" if set(counts) == {""} else
                    f"labels other than {known} ({format_counts(counts)})")
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


def header_columns(path: Path, text_column: str | None, label_columns: Sequence[str] | None,
                   delimiter: str | None, encoding: str | None) -> tuple[str, list[str]]:
    """The text column and the label columns of a file, from its header alone (as
    :func:`load_dataset` picks them from the whole file)."""
    import pandas as pd

    header = pd.DataFrame(columns=read_header(path, delimiter, encoding))
    text = pick_column(header, text_column, TEXT_COLUMN_NAMES, "text", "--text-column", path)
    return text, label_columns_of(header, label_columns, text, None, path)


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
    class_names: Sequence[str] | None = None,
    read_bytes: Callable[[int], None] | None = None,
    task: str = "auto",
) -> Dataset:
    """Read a labeled file into a :class:`Dataset`.

    One label column gives the binary case, or multi-class when it holds three classes or more
    (:func:`~sentiment_cli.data.labels.multiclass_keys`; not with ``positive_label``); several
    give multi-label with one 0/1 target each. ``classes``, a binary model's [negative,
    positive] names, maps the labels onto that model's classes
    (:func:`~sentiment_cli.data.labels.pair_for_model`), as evaluation does; ``class_names``,
    a multi-class model's (or training file's) classes, maps them onto those.
    Rows with a blank text or an unusable label are an error naming the rows, or, with
    ``drop_invalid``, skipped and counted. ``read_bytes``: as :func:`read_table`'s.
    """
    path = Path(path)
    frame = read_table(path, delimiter=delimiter, encoding=encoding, skip_malformed=drop_invalid,
                       read_bytes=read_bytes)
    interruption.check()  # pandas' conversion of a large file's columns took seconds
    where = str(path)
    text_col = pick_column(frame, text_column, TEXT_COLUMN_NAMES, "text", "--text-column", path)
    weight_col = (pick_column(frame, weight_column, (), "weight", "--weight-column", path)
                  if weight_column else None)
    label_cols = label_columns_of(frame, label_columns, text_col, weight_col, path)
    multilabel = len(label_cols) > 1
    keys = None
    if not multilabel and positive_label is None:
        keys = ([canonical_label(c) for c in class_names] if class_names is not None else
                None if classes is not None else
                multiclass_keys(Counter(frame[label_cols[0]].tolist()), task == "multiclass",
                                label_cols[0], where))

    def binary(values: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        if keys is not None:
            return resolve_classes(values, keys, label_cols[0], where)
        return resolve_binary_labels(values, positive_label, label_cols[0], where, classes)

    texts, y, names, valid = checked_rows(frame, text_col, label_cols, binary, drop_invalid,
                                          where)
    strange = [name for name in names if has_control(name)]
    if strange:
        what = "column names" if multilabel else "label column"
        raise DataError(f"{where}: the label {strange[0]!r} holds control or "
                        f"line-break characters; clean the {what} first")
    weights = _weights(frame, weight_col, where) if weight_col else None
    dropped = int((~valid).sum()) + frame.attrs.get("malformed", 0)
    if not valid.all():
        texts, y = texts[valid], y[valid]
        weights = weights[valid] if weights is not None else None
        if len(texts) == 0:
            raise DataError(f"{where}: no usable rows remain after dropping {dropped} invalid rows")
    if multilabel or keys is not None:
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
        multiclass=keys is not None,
    )
