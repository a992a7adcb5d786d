"""Scoring a labeled file with a saved model folder: the metrics, as a dict."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .bundle import load_bundle
from .data import canonical_label, load_dataset
from .errors import DataError
from .metrics import binary_metrics, calibration_bins, multilabel_metrics
from .predict import Predictor


def evaluate_file(
    model_dir: str | os.PathLike[str],
    data_path: str | os.PathLike[str],
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    drop_invalid: bool = False,
    threshold: float | None = None,
    batch_size: int = 4096,
) -> dict[str, Any]:
    """Metrics of the model in ``model_dir`` on the labeled rows of ``data_path``."""
    bundle = load_bundle(model_dir)
    predictor = Predictor(bundle, threshold=threshold)
    if bundle.multilabel and not label_columns:
        label_columns = list(bundle.config["data"]["label_columns"])
    data = load_dataset(
        data_path,
        text_column=text_column,
        label_columns=label_columns,
        positive_label=None if bundle.multilabel else bundle.labels[1],
        delimiter=delimiter,
        encoding=encoding,
        drop_invalid=drop_invalid,
    )
    if bundle.multilabel:
        if data.label_names != bundle.labels:
            raise DataError(
                f"{data_path}: label columns {data.label_names} do not match the model's "
                f"{bundle.labels}; name them with --label-column"
            )
    elif [canonical_label(x) for x in data.label_names] != [
        canonical_label(x) for x in bundle.labels
    ]:
        raise DataError(
            f"{data_path}: labels {data.label_names} do not match the model's {bundle.labels}"
        )
    prob = np.concatenate(
        [predictor.probabilities(data.texts[i : i + batch_size])
         for i in range(0, len(data), batch_size)]
    )
    if bundle.multilabel:
        metrics = multilabel_metrics(data.y, prob, predictor.thresholds, bundle.labels)
    else:
        metrics = binary_metrics(data.y, prob[:, 0], float(predictor.thresholds[0]))
        metrics["calibration"] = calibration_bins(data.y, prob[:, 0])
    metrics.update({
        "model": str(model_dir),
        "data": str(data_path),
        "labels": bundle.labels,
        "temperature": bundle.temperature,
        "dropped_rows": data.dropped_rows,
    })
    return metrics
