"""The rows of one training run: the training file (or line files) and a --val-data file read
with the same options, subsets of them, and multi-label columns without positives."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sentiment_cli.config import TrainConfig
from sentiment_cli.data.lines import load_line_files
from sentiment_cli.data.reading import Dataset, load_dataset
from sentiment_cli.errors import DataError


def read_rows(config: TrainConfig, note: Callable[[str], None],
              phase: Callable[[str, int, int, str], None] | None = None
              ) -> tuple[Dataset, Dataset | None]:
    """The training rows, and the validation file's rows when ``--val-data`` names one;
    ``phase`` (a progress bar's) is told the bytes read from DATA as they are."""
    read = dict(
        text_column=config.text_column,
        label_columns=list(config.label_columns) or None,
        weight_column=config.weight_column,
        delimiter=config.delimiter,
        encoding=config.encoding,
        drop_invalid=config.drop_invalid,
    )
    if config.line_files is not None:
        data = load_line_files(*config.line_files, encoding=config.encoding)
        if data.dropped_rows:
            note(f"skipped {data.dropped_rows} blank lines")
    else:
        assert config.data_path is not None  # config.check made sure
        size = config.data_path.stat().st_size
        reading = phase and (lambda done: phase("reading", done, size, "bytes"))
        data = load_dataset(config.data_path, positive_label=config.positive_label,
                            read_bytes=reading, task=config.task, **read)
        if data.dropped_rows:
            note(f"skipped {data.dropped_rows} invalid rows of {config.data_path} "
                 f"(--drop-invalid)")
        if config.positive_label is not None and data.task == "binary":
            (negative, n_negative), (positive, n_positive) = data.class_counts.items()
            note(f"positive class {positive!r} ({n_positive} rows) against {negative!r} "
                 f"({n_negative} rows)")
    val: Dataset | None = None
    if config.val_data is not None:
        if data.multiclass:  # onto the training file's classes
            val = load_dataset(config.val_data, class_names=data.label_names, **read)
        else:
            # the values --positive-label named (several make one side), else the positive's
            positive = None if data.multilabel else config.positive_label or data.positive_label
            val = load_dataset(config.val_data, positive_label=positive, **read)
        if val.label_names != data.label_names and not data.multilabel:
            note(f"validation labels {val.label_names} differ in spelling from {data.label_names}")
    return data, val


def subset(data: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(
        texts=[data.texts[i] for i in rows],
        y=data.y[rows],
        label_names=data.label_names,
        source=data.source,
        text_column=data.text_column,
        label_columns=data.label_columns,
        weights=None if data.weights is None else data.weights[rows],
        multilabel=data.multilabel,
        multiclass=data.multiclass,
    )


def keep_labels(data: Dataset, keep: np.ndarray) -> Dataset:
    names = [n for n, k in zip(data.label_names, keep, strict=True) if k]
    return Dataset(
        texts=data.texts, y=data.y[:, keep], label_names=names, source=data.source,
        text_column=data.text_column, label_columns=names, weights=data.weights,
        dropped_rows=data.dropped_rows, multilabel=True,
        class_counts={n: data.class_counts.get(n, 0) for n in names},
    )


def check_empty_labels(
    train: Dataset, val: Dataset | None, drop: bool, note: Callable[[str], None]
) -> tuple[Dataset, Dataset | None]:
    """A label with no positive training row cannot be learned: an error, or dropped."""
    empty = train.y.sum(axis=0) == 0
    if not empty.any():
        return train, val
    names = [n for n, e in zip(train.label_names, empty, strict=True) if e]
    if not drop:
        raise DataError(
            f"{train.source}: label column(s) {', '.join(names)} have no positive rows in the "
            f"training split; remove them or pass --drop-empty-labels"
        )
    if empty.all():
        raise DataError(f"{train.source}: no label column has a positive training row")
    note(f"dropped label column(s) without positive training rows: {', '.join(names)}")
    keep = ~empty
    return keep_labels(train, keep), None if val is None else keep_labels(val, keep)
