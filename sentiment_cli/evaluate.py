"""Scoring a labeled file with a saved model folder: the metrics, as a dict."""

from __future__ import annotations

import os
import shlex
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_cli import interruption
from sentiment_cli.artifacts.atomic import publish
from sentiment_cli.artifacts.bundle import Bundle, load_bundle, write_json
from sentiment_cli.artifacts.folders import check_target
from sentiment_cli.artifacts.locking import FolderLock
from sentiment_cli.config import STDIN, EvalConfig
from sentiment_cli.data.reading import Dataset, load_dataset
from sentiment_cli.errors import DataError
from sentiment_cli.metrics import (
    binary_metrics,
    calibration_bins,
    class_probabilities,
    multiclass_metrics,
    multilabel_metrics,
)
from sentiment_cli.predict import Predictor
from sentiment_cli.reporting.report import top_terms, write_report


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Metrics of the model ``config.model`` on the labeled rows of ``config.data``; with
    ``config.report``, also report.md and plots there (a folder of its own: an earlier report
    is replaced only with ``config.force``, anything else never). The report folder is checked
    and locked before the model or the data is read."""
    if config.report is None:
        return _evaluate(config, None)
    report = check_target(Path(config.report), "report", config.force, "--report")
    # deferred first: a signal that lands while the lock file is made is noted, not fatal
    with interruption.deferred(), FolderLock(report, "--report", writer="bce-eval"):
        interruption.check()
        check_target(report, "report", config.force, "--report")
        return _evaluate(config, report)


def _check_labels_match(bundle: Bundle, data: Dataset, data_path: Path | str,
                        model_dir: Path) -> None:
    """The file's label columns are the ones the model scores."""
    if data.multilabel and not bundle.multilabel:
        raise DataError(f"{data_path}: {model_dir} is a {bundle.task} model and scores one "
                        f"label column; name it with one --label-column")
    if bundle.multilabel and data.label_names != bundle.labels:
        raise DataError(
            f"{data_path}: label columns {data.label_names} do not match the model's "
            f"{bundle.labels}; name them with --label-columns {','.join(bundle.labels)}"
        )


def _evaluate(config: EvalConfig, report: Path | None) -> dict[str, Any]:
    """The metrics (and the report, written whole into ``report``, the --report folder's real
    path, when given)."""
    model_dir, data_path, force = config.model, config.data_path, config.force
    named = str(config.data_name)  # as the output and the report show it
    label_columns = list(config.label_columns) or None
    bundle = load_bundle(model_dir)
    predictor = Predictor(bundle, threshold=config.threshold)
    if bundle.multilabel and not label_columns:
        label_columns = list(bundle.spec.label_columns)
    elif bundle.multilabel:
        _check_label_count(label_columns, bundle.labels, model_dir)
    multiclass = bundle.task == "multiclass"
    if bundle.task != "binary" and config.positive_label is not None:
        raise DataError(f"--positive-label is for a binary model; {model_dir} is "
                        f"{bundle.task.replace('multi', 'multi-')} (leave --positive-label out)")
    data = load_dataset(data_path, text_column=config.text_column, label_columns=label_columns,
                        positive_label=config.positive_label, delimiter=config.delimiter,
                        encoding=config.encoding, drop_invalid=config.drop_invalid,
                        classes=None if bundle.task != "binary" else bundle.labels,
                        class_names=bundle.labels if multiclass else None)
    _check_labels_match(bundle, data, data_path, model_dir)
    notes = _seen_rows_note(bundle, config.data, named, model_dir)
    parts = []
    for start in range(0, len(data), config.batch_size):
        parts.append(predictor.probabilities(data.texts[start : start + config.batch_size]))
        interruption.check()  # with --report (deferred): stop here, the lock released
    prob = np.concatenate(parts)
    if bundle.multilabel:
        metrics = multilabel_metrics(data.y, prob, predictor.thresholds, bundle.labels)
    elif multiclass:
        metrics = multiclass_metrics(data.y, prob, bundle.labels)
    else:
        metrics = binary_metrics(data.y, prob[:, 0], float(predictor.thresholds[0]))
        metrics["calibration"] = calibration_bins(data.y, prob[:, 0])
    metrics.update({
        "model": str(model_dir),
        "data": named,
        "labels": bundle.labels,
        "data_labels": data.label_names,
        "temperature": bundle.temperature,
        "dropped_rows": data.dropped_rows,
    })
    if notes:
        metrics["notes"] = notes
    if report is not None:
        interruption.check()

        def fill(folder: Path) -> None:
            _write_eval_report(folder, bundle, named, data.y, prob, metrics)

        publish(report, fill, "report", replace=force)
        interruption.check(f"interrupted while writing {report}; the report folder was "
                           f"completed")
        metrics["report"] = str(Path(config.report) / "report.md")
    return metrics


def _seen_rows_note(bundle: Bundle, data: Path | None, named: str,
                    model_dir: Path) -> list[str]:
    """A note when DATA is the file the model was trained on, or the --val-data file that
    chose its kept epoch and calibration: their figures are not those of new text."""
    if data is None or data == STDIN:
        return []
    recorded = bundle.config.get("data", {})
    real = str(Path(data).resolve())
    model = shlex.quote(str(model_dir))
    if real == recorded.get("path"):
        rows = recorded.get("train_rows")
        some = f"{rows:,} of its rows were" if type(rows) is int else "its rows were"
        return [f"{named} is the file {model} was trained on ({some} training rows): these "
                f"figures overstate how it does on new text; bce-info {model} shows its "
                f"validation rows' figures"]
    if real == recorded.get("val_path"):
        return [f"{named} is the --val-data file {model} was validated on (it chose the kept "
                f"epoch and the calibration): these figures are somewhat better than on new "
                f"text"]
    return []


def _check_label_count(given: list[str], labels: list[str], model_dir: Path) -> None:
    """A multi-label model scores a 0/1 column per label: --label-column names all or none."""
    if [c.lower() for c in given] == ["all-but-text"] or len(given) == len(labels):
        return
    shown = ", ".join(labels[:4]) + (", ..." if len(labels) > 4 else "")
    raise DataError(f"{model_dir} is a multi-label model of {len(labels)} labels ({shown}) and "
                    f"--label-column named {len(given)}: leave it out to read the model's own "
                    f"label columns from DATA, or name all {len(labels)}")


def _write_eval_report(folder: Path, bundle: Bundle, data_path: str | os.PathLike[str],
                       y: np.ndarray, prob: np.ndarray, metrics: dict[str, Any]) -> None:
    write_json(folder / "report.json", {
        "format": "sentiment-cli-report", "model": str(bundle.path), "data": str(data_path),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    terms = bundle.vectorizer.get_feature_names_out().tolist()
    write_report(
        folder,
        title=f"{bundle.path.name} evaluated on {Path(data_path).name}",
        dataset_name=Path(data_path).name,
        labels=bundle.labels,
        y_true=y,
        prob=prob if bundle.multilabel else class_probabilities(prob)
        if bundle.task == "multiclass" else prob[:, 0],
        metrics=metrics,
        options={"model": str(bundle.path), "data": str(data_path),
                 "threshold": [float(t) for t in metrics.get("thresholds", [])] or
                 metrics.get("threshold"),
                 "temperature": bundle.temperature,
                 "training": bundle.config.get("training", {})},
        top_terms=top_terms(bundle.model, terms, bundle.labels),
    )
