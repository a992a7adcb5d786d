"""One training job from a file to a model folder: read, split, vectorize, train, calibrate,
measure, save. Returns a summary dict; progress and notes go through callbacks."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_cli.artifacts.atomic import publish
from sentiment_cli.artifacts.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    save_weights,
    versions,
    write_json,
)
from sentiment_cli.artifacts.folders import check_target, remove_owned
from sentiment_cli.artifacts.locking import FolderLock
from sentiment_cli.data.reading import (
    Dataset,
    check_delimiter,
    check_encoding,
    check_path,
    load_dataset,
    load_line_files,
)
from sentiment_cli.errors import DataError, Interrupted, TrainingError
from sentiment_cli.features import (
    Counters,
    VectorizerOptions,
    count_terms,
    fit_counts,
    select,
    start_counters,
    vectorizer_to_json,
)
from sentiment_cli.memory import check_training_memory
from sentiment_cli.model.architecture import ModelConfig, parameter_shapes
from sentiment_cli.options import TrainOptions
from sentiment_cli.split import related_groups, split_rows
from sentiment_cli.training.checkpoint import (
    check_checkpoint_folder,
    check_resumable,
    checkpoint_path,
    input_digests,
    load_checkpoint,
    save_checkpoint,
    vocabulary_digest,
)
from sentiment_cli.training.progress import EpochStats, TrainProgress
from sentiment_cli.workers import Helper

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "seconds")


@dataclass
class TrainJob:
    data: Path | None  # a CSV/TSV file, or None with line_files
    output: Path
    line_files: tuple[Path, Path] | None = None  # (positive lines, negative lines)
    text_column: str | None = None
    label_columns: list[str] = field(default_factory=list)
    positive_label: str | None = None
    weight_column: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    drop_invalid: bool = False
    val_data: Path | None = None
    val_split: float = 0.1
    # Early stopping needs a few thousand rows, not 10% of a large file: on SST-2 (67k rows)
    # every row moved back into training counted (README, "Choosing the defaults").
    val_max_rows: int = 2000
    val_grouping: str = "contained"  # keep texts contained in others with them, or "none"
    vectorizer: VectorizerOptions = field(default_factory=VectorizerOptions)
    train: TrainOptions = field(default_factory=TrainOptions)
    threshold: str = "0.5"  # a number, or "auto" (tuned on validation)
    threshold_metric: str = "f1"
    calibrate: str = "auto"  # "temperature", "none", or "auto" (temperature when validating)
    force: bool = False
    resume: bool = False
    drop_empty_labels: bool = False
    report: bool = True  # report.md and plots/ in the model folder

    def validate(self) -> None:
        if (self.data is None) == (self.line_files is None):
            raise DataError(
                "give one data file, or --positive-lines and --negative-lines (not both)"
            )
        if not 0 <= self.val_split < 1:
            raise DataError(f"--val-split must be in [0, 1), got {self.val_split}")
        if self.val_max_rows < 0 or self.val_max_rows == 1:
            raise DataError(
                f"--val-max-rows must be 0 (no cap) or at least 2, got {self.val_max_rows}")
        if self.threshold != "auto":
            try:
                value = float(self.threshold)
            except ValueError:
                raise DataError(
                    f"--threshold must be auto or a number in [0, 1], got {self.threshold!r}"
                ) from None
            if not 0 <= value <= 1:
                raise DataError(f"--threshold must be in [0, 1], got {value}")
        if self.val_grouping not in ("contained", "none"):
            raise DataError(f"--val-grouping must be contained or none, got {self.val_grouping!r}")
        if self.threshold_metric not in ("f1", "accuracy"):
            raise DataError("--threshold-metric must be f1 or accuracy")
        if self.calibrate not in ("auto", "none", "temperature"):
            raise DataError("--calibrate must be auto, temperature or none")
        needs_val = self.threshold == "auto" or self.calibrate == "temperature"
        if needs_val and self.val_split == 0 and self.val_data is None:
            raise DataError(
                "--threshold auto and --calibrate temperature need validation rows; "
                "use --val-split > 0 or --val-data FILE"
            )
        self.vectorizer.validate()
        self.train.validate()
        check_encoding(self.encoding)
        check_delimiter(self.delimiter)
        for path in (self.data, self.val_data, *(self.line_files or ())):
            if path is not None:
                check_path(Path(path))
        if self.data is not None and self.val_data is not None and os.path.samefile(
                self.data, self.val_data):
            raise DataError("--val-data is the training file itself; validation needs other "
                            "rows (leave --val-data out to split some off)")


def _subset(data: Dataset, rows: np.ndarray) -> Dataset:
    return Dataset(
        texts=[data.texts[i] for i in rows],
        y=data.y[rows],
        label_names=data.label_names,
        source=data.source,
        text_column=data.text_column,
        label_columns=data.label_columns,
        weights=None if data.weights is None else data.weights[rows],
        multilabel=data.multilabel,
    )


def _keep_labels(data: Dataset, keep: np.ndarray) -> Dataset:
    names = [n for n, k in zip(data.label_names, keep, strict=True) if k]
    return Dataset(
        texts=data.texts, y=data.y[:, keep], label_names=names, source=data.source,
        text_column=data.text_column, label_columns=names, weights=data.weights,
        dropped_rows=data.dropped_rows, multilabel=True,
        class_counts={n: data.class_counts.get(n, 0) for n in names},
    )


def _check_empty_labels(
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
    return _keep_labels(train, keep), None if val is None else _keep_labels(val, keep)


def _history_csv(history: list[EpochStats]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for stats in history:
        writer.writerow({k: ("" if v is None else round(v, 6) if isinstance(v, float) else v)
                         for k, v in asdict(stats).items()})
    return out.getvalue()


def split_metrics(
    data: Dataset, logits: np.ndarray, temperature: float, thresholds: list[float]
) -> dict[str, Any]:
    from sentiment_cli.metrics import binary_metrics, multilabel_metrics, sigmoid

    prob = sigmoid(logits / temperature)
    if data.multilabel:
        return multilabel_metrics(data.y, prob, np.asarray(thresholds), data.label_names)
    return binary_metrics(data.y, prob[:, 0], thresholds[0])


def _write_training_report(
    folder: Path,
    job: TrainJob,
    data: Dataset,
    train_part: Dataset,
    val: Dataset | None,
    train_logits: np.ndarray,
    val_logits: np.ndarray | None,
    temperature: float,
    metrics: dict[str, Any],
    result: Any,
    config: dict[str, Any],
    terms: list[str],
    helper: Helper,
) -> None:
    """Start report.md and plots/ for the kept epoch, on the validation rows (training rows if
    none): the terms are ranked here (they need the model), the drawing is submitted to
    ``helper``, whose ``result()`` the caller waits for."""
    from sentiment_cli.metrics import sigmoid
    from sentiment_cli.reporting.report import top_terms, write_report

    shown, logits, part = (val, val_logits, "validation") if val is not None else (
        train_part, train_logits, "training")
    prob = sigmoid(logits / temperature)
    name = Path(data.source).name if job.line_files is None else "line files"
    shown_name = f"{name} ({part})"
    if val is not None and job.val_data is not None:
        shown_name = f"{Path(job.val_data).name} (validation)"
    helper.submit(
        write_report,
        folder=folder,
        title=f"Model trained on {name}",
        dataset_name=shown_name,
        labels=data.label_names,
        y_true=shown.y,
        prob=prob if data.multilabel else prob[:, 0],
        metrics=metrics["validation"] if val is not None else metrics["train"],
        history=[asdict(h) for h in result.history],
        best_epoch=result.best_epoch,
        averaged_epochs=result.averaged_epochs,
        options={"data": config["data"], "vectorizer": config["vectorizer"],
                 "training": config["training"]},
        top_terms=top_terms(result.model, terms, data.label_names),
        extra_sections={"train": metrics["train"]} if val is not None else None,
    )


def _read_data(job: TrainJob, note: Callable[[str], None]) -> tuple[Dataset, Dataset | None]:
    """The training rows, and the validation file's rows when ``--val-data`` names one."""
    read = dict(
        text_column=job.text_column,
        label_columns=job.label_columns or None,
        weight_column=job.weight_column,
        delimiter=job.delimiter,
        encoding=job.encoding,
        drop_invalid=job.drop_invalid,
    )
    if job.line_files is not None:
        data = load_line_files(*job.line_files, encoding=job.encoding)
        if data.dropped_rows:
            note(f"skipped {data.dropped_rows} blank lines")
    else:
        assert job.data is not None  # validate() checked
        data = load_dataset(job.data, positive_label=job.positive_label, **read)
        if data.dropped_rows:
            note(f"skipped {data.dropped_rows} invalid rows of {job.data} (--drop-invalid)")
    val: Dataset | None = None
    if job.val_data is not None:
        positive = None if data.multilabel else data.positive_label
        val = load_dataset(job.val_data, positive_label=positive, **read)
        if val.label_names != data.label_names and not data.multilabel:
            note(f"validation labels {val.label_names} differ in spelling from {data.label_names}")
    return data, val


@dataclass
class Features:
    data: Dataset  # all rows (labels without positive training rows dropped, if asked)
    train_part: Dataset
    val: Dataset | None
    x_train: Any  # CSR matrices over the training rows' vocabulary
    x_val: Any
    vectorizer_json: dict[str, Any]


def _features(
    job: TrainJob,
    data: Dataset,
    val: Dataset | None,
    counters: Counters | None,
    note: Callable[[str], None],
) -> Features:
    """Tokenise every text once (in ``counters`` while torch is imported here), split off the
    validation rows, fit the vocabulary on the training rows and select both matrices.

    A ``--val-data`` file's texts are counted with the training texts and then restricted to
    the training vocabulary, which is what ``transform`` gives (tested equal)."""
    texts = data.texts if val is None else [*data.texts, *val.texts]
    counts = count_terms(texts, job.vectorizer, while_waiting=_import_trainer,
                         counters=counters)
    train_rows: np.ndarray | None = None
    val_rows: np.ndarray | None = None
    groups: np.ndarray | None = None
    train_part = data
    if val is not None:
        train_rows, val_rows = np.arange(len(data)), np.arange(len(data), len(texts))
    elif job.val_split > 0:
        groups = related_groups(counts.counts) if job.val_grouping == "contained" else None
        split = dict(y=data.y, fraction=job.val_split, seed=job.train.seed, groups=groups,
                     source=data.source, max_rows=job.val_max_rows)
        # Without related rows this is scikit-learn's train_test_split, loaded over there.
        train_rows, val_rows = (split_rows(**split) if counters is None
                                else counters.run(split_rows, **split))
        train_part, val = _subset(data, train_rows), _subset(data, val_rows)
    if train_part.multilabel:
        train_part, val = _check_empty_labels(train_part, val, job.drop_empty_labels, note)
        if train_part.label_names != data.label_names:
            data = _keep_labels(data, np.isin(data.label_names, train_part.label_names))
    related = 0 if groups is None else len(data) - int((np.bincount(groups) == 1).sum())
    if related:
        note(f"{related} rows are sub-texts or duplicates of other rows: the validation split "
             f"keeps each with its longest text (--val-grouping none to split rows freely)")
    terms, columns = fit_counts(counts, job.vectorizer, train_rows)
    binary = job.vectorizer.binary
    return Features(
        data=data,
        train_part=train_part,
        val=val,
        x_train=select(counts, train_rows, columns, binary),
        x_val=None if val_rows is None else select(counts, val_rows, columns, binary),
        vectorizer_json=vectorizer_to_json(job.vectorizer, terms),
    )


def _import_trainer() -> None:
    """Load torch and the training code (1.1-1.6 s), and what the steps after tokenising use,
    while the helper tokenises (it takes longer: this process would wait anyway)."""
    import scipy.sparse.csgraph  # noqa: F401  (the split's grouping, 0.07 s)
    from safetensors import torch as _  # noqa: F401



def _check_job(job: TrainJob) -> tuple[Path, Path]:
    """Fail before reading on options, output and device that cannot work; the model folder's
    real path and its checkpoint folder's."""
    job.validate()
    output = check_target(job.output, "model", job.force, "--output")
    if job.train.device.strip().lower().startswith("cuda"):
        from sentiment_cli.training.loop import resolve_device

        resolve_device(job.train.device)  # a CUDA request that cannot work fails before reading
    check_training_memory(job.train, vocab_size=1, n_outputs=1)  # --hidden alone too big
    return output, checkpoint_path(output)


def _fingerprint_options(job: TrainJob) -> dict[str, Any]:
    """What must not change between a run and its --resume, as known before reading the data
    (JSON types: tuples become lists, as read back from the checkpoint)."""
    return json.loads(json.dumps({
        "data": None if job.data is None else str(job.data),
        "val_data": None if job.val_data is None else str(job.val_data),
        "reading": {"positive_label": job.positive_label, "weight_column": job.weight_column,
                    "delimiter": job.delimiter, "encoding": job.encoding,
                    "drop_invalid": job.drop_invalid, "drop_empty_labels": job.drop_empty_labels},
        "val_split": job.val_split,
        "val_max_rows": job.val_max_rows,
        "val_grouping": job.val_grouping,
        "vectorizer": asdict(job.vectorizer),
        "train": {k: v for k, v in asdict(job.train).items() if k not in ("epochs", "device")},
    }))


def run_training(
    job: TrainJob,
    progress: TrainProgress | None = None,
    note: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Train on ``job.data`` and write the model folder ``job.output``; return the summary.

    Every option and the output paths are checked first; the output's lock is then held until
    the model folder is written (one writer per folder), before any data is read."""
    output, checkpoints = _check_job(job)
    with FolderLock(output):
        check_target(output, "model", job.force, "--output")  # again, now that we hold it
        check_checkpoint_folder(checkpoints, resume=job.resume, force=job.force)
        return _train_locked(job, output, checkpoints, progress, note)


def _train_locked(
    job: TrainJob,
    output: Path,
    checkpoints: Path,
    progress: TrainProgress | None,
    note: Callable[[str], None],
) -> dict[str, Any]:
    from sentiment_cli.metrics import sigmoid
    from sentiment_cli.training.calibration import fit_temperature, tune_thresholds

    started = time.perf_counter()
    inputs = ({"data": job.data, "val_data": job.val_data} if job.line_files is None else
              {"positive_lines": job.line_files[0], "negative_lines": job.line_files[1]})
    digests = input_digests(inputs)
    if job.resume:
        check_resumable(checkpoints, {**_fingerprint_options(job), **digests})
    # The helpers import scikit-learn while this process reads, tokenise while it imports
    # torch, and run the split; this process never imports scikit-learn. They end with this
    # block, whatever happens in it.
    with contextlib.ExitStack() as helpers:
        if (counters := start_counters()) is not None:
            helpers.callback(counters.close)
        data, val = _read_data(job, note)
        read_seconds = time.perf_counter() - started
        features = _features(job, data, val, counters, note)
    vectorize_seconds = time.perf_counter() - started - read_seconds
    data, train_part, val = features.data, features.train_part, features.val
    x_train, x_val, vectorizer_json = features.x_train, features.x_val, features.vectorizer_json
    note(
        f"{len(train_part)} training rows, {0 if val is None else len(val)} validation rows, "
        f"vocabulary of {x_train.shape[1]} terms"
    )
    n_outputs = 1 if train_part.y.ndim == 1 else train_part.y.shape[1]
    check_training_memory(job.train, x_train.shape[1], n_outputs)
    from sentiment_cli.model.module import predict_logits
    from sentiment_cli.training.loop import TrainingDiverged, TrainState, fit

    fingerprint = {
        **_fingerprint_options(job),
        **digests,
        "text_column": data.text_column,
        "label_columns": data.label_columns,
        "train_rows": len(train_part),
        "vocabulary": vocabulary_digest(vectorizer_json["terms"]),
    }
    shapes = parameter_shapes(ModelConfig(x_train.shape[1], list(job.train.hidden),
                                          job.train.dropout, n_outputs))
    resume_state = load_checkpoint(checkpoints, fingerprint, shapes) if job.resume else None
    if resume_state is not None:
        note(f"resuming after epoch {resume_state.epoch} from {checkpoints}")
    last_saved = [0 if resume_state is None else resume_state.epoch]

    def save_epoch(state: TrainState) -> None:
        save_checkpoint(checkpoints, state, fingerprint)
        last_saved[0] = state.epoch

    from sentiment_cli.reporting.plots import warm_up

    # The report's helper process warms up on the idle core while this one trains. Ctrl-C or
    # SIGTERM from here on (training, or writing the model folder) keeps the epochs saved so
    # far for --resume.
    report_helper = Helper(warm_up, start=job.report)
    try:
        try:
            result = fit(
                x_train,
                train_part.y,
                x_val,
                None if val is None else val.y,
                job.train,
                w_train=train_part.weights,
                w_val=None if val is None else val.weights,
                progress=progress,
                checkpoint=save_epoch,
                resume=resume_state,
            )
        except TrainingDiverged as err:
            if last_saved[0]:
                raise TrainingError(
                    f"{err} (epoch {last_saved[0]} is kept in {checkpoints})") from None
            raise
        train_seconds = time.perf_counter() - started - read_seconds - vectorize_seconds

        model = result.model
        train_logits = predict_logits(model, x_train)
        val_logits = predict_logits(model, x_val) if x_val is not None else None
        temperature = 1.0
        if job.calibrate in ("auto", "temperature") and val is not None and val_logits is not None:
            temperature = fit_temperature(val_logits, val.y)
        n_outputs = model.config.n_outputs
        if job.threshold == "auto" and val is not None and val_logits is not None:
            thresholds = tune_thresholds(sigmoid(val_logits / temperature), val.y,
                                         job.threshold_metric)
        else:
            thresholds = [float(job.threshold)] * n_outputs

        metrics: dict[str, Any] = {
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "stopped_early": result.stopped_early,
            "train": split_metrics(train_part, train_logits, temperature, thresholds),
            "validation": None if val is None or val_logits is None
            else split_metrics(val, val_logits, temperature, thresholds),
        }
        metrics["averaged_epochs"] = result.averaged_epochs
        metrics["train"]["loss"] = result.train_loss
        if metrics["validation"] is not None:
            metrics["validation"]["loss"] = result.val_loss
        metrics["pos_weight"] = result.pos_weight
        metrics["temperature"] = temperature
        metrics["dropped_rows"] = data.dropped_rows

        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "task": "multilabel" if data.multilabel else "binary",
            "labels": data.label_names,
            "positive_label": None if data.multilabel else data.positive_label,
            "thresholds": thresholds,
            "temperature": temperature,
            "model": model.config.to_dict(),
            "vectorizer": vectorizer_json["params"],
            "training": {
                **asdict(job.train),
                "val_split": job.val_split if job.val_data is None else None,
                "val_max_rows": job.val_max_rows if job.val_data is None else None,
                "val_grouping": job.val_grouping if job.val_data is None else None,
                "val_data": None if job.val_data is None else str(job.val_data),
                "threshold": job.threshold,
                "threshold_metric": job.threshold_metric,
                "calibrate": job.calibrate,
                "device_used": result.device,
                "pos_weight_values": result.pos_weight,
            },
            "data": {
                "source": data.source,
                "text_column": data.text_column,
                "label_columns": data.label_columns,
                "weight_column": job.weight_column,
                "encoding": job.encoding,
                "rows": len(data) + data.dropped_rows,
                "dropped_rows": data.dropped_rows,
                "train_rows": len(train_part),
                "val_rows": 0 if val is None else len(val),
                "class_counts": data.class_counts,
            },
            "versions": versions(),
        }

        report_wait = [0.0]

        def fill(folder: Path) -> None:
            if job.report:  # drawn by the helper while the files below are written
                _write_training_report(folder, job, data, train_part, val, train_logits, val_logits,
                                       temperature, metrics, result, config,
                                       vectorizer_json["terms"], report_helper)
            write_json(folder / "config.json", config)
            write_json(folder / VOCABULARY_FILE, {"terms": vectorizer_json["terms"]})
            save_weights(model, folder / WEIGHTS_FILE)
            write_json(folder / "metrics.json", metrics)
            (folder / "history.csv").write_text(_history_csv(result.history), encoding="utf-8")
            if job.report:
                waited = time.perf_counter()
                report_helper.result()
                report_wait[0] = time.perf_counter() - waited

        for message in publish(output, fill, "model", replace=job.force):
            note(message)
    except Interrupted as err:
        if last_saved[0]:
            raise Interrupted(
                err.signum,
                f"interrupted; epoch {last_saved[0]} is saved in {checkpoints}: continue with "
                f"the same command plus --resume",
            ) from None
        raise Interrupted(
            err.signum, "interrupted before the first epoch ended; nothing was saved"
        ) from None
    finally:
        report_helper.close()
    if checkpoints.is_dir():
        remove_owned(checkpoints, "checkpoint")
    total = time.perf_counter() - started
    return {
        "output": str(job.output),
        "labels": data.label_names,
        "task": config["task"],
        "train_rows": len(train_part),
        "val_rows": 0 if val is None else len(val),
        "vocabulary": x_train.shape[1],
        "best_epoch": result.best_epoch,
        "averaged_epochs": result.averaged_epochs,
        "epochs_run": len(result.history),
        "device": result.device,
        "thresholds": thresholds,
        "temperature": temperature,
        "pos_weight": result.pos_weight,
        "train": metrics["train"],
        "validation": metrics["validation"],
        "seconds": {
            "read": round(read_seconds, 3),
            "vectorize": round(vectorize_seconds, 3),
            "train": round(train_seconds, 3),
            "finish": round(total - read_seconds - vectorize_seconds - train_seconds, 3),
            "report_wait": round(report_wait[0], 3),
            "total": round(total, 3),
        },
    }
