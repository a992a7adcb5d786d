"""The one record of a training run, from which every file and summary about it is derived:
``config.json`` (what loading needs, and how the model was made), ``metrics.json``,
``history.csv``, the options and numbers of ``report.md``, and the ``--json`` summary."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_cli.artifacts.atomic import publish
from sentiment_cli.artifacts.bundle import (
    CONFIG_FILE,
    VOCABULARY_FILE,
    WEIGHTS_FILE,
    save_weights,
    write_json,
)
from sentiment_cli.artifacts.schema import FORMAT_NAME, FORMAT_VERSION
from sentiment_cli.config import STDIN, TrainConfig
from sentiment_cli.training.progress import EpochStats

if TYPE_CHECKING:
    from sentiment_cli.model.module import SparseMLP
    from sentiment_cli.training.autotune import Search

HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "seconds")


def _real_path(path: Path | None) -> str | None:
    return None if path is None or path == STDIN else str(Path(path).resolve())


@dataclass(frozen=True)
class DataSummary:
    """What was read, and how it was split."""

    source: str
    text_column: str
    label_columns: list[str]
    labels: list[str]  # binary: [negative, positive]; multi-label: one per output
    multilabel: bool
    rows: int  # read, dropped rows included
    dropped_rows: int
    train_rows: int
    val_rows: int
    class_counts: dict[str, int]
    multiclass: bool = False  # labels: the classes, one output each

    @property
    def task(self) -> str:
        return "multilabel" if self.multilabel else "multiclass" if self.multiclass else "binary"


@dataclass
class RunRecord:
    config: TrainConfig
    data: DataSummary
    vocabulary: int
    model: dict[str, Any]  # the architecture (ModelConfig.to_dict)
    vectorizer: dict[str, Any]  # the vectorizer's parameters as stored
    history: list[EpochStats]
    best_epoch: int
    averaged_epochs: int
    stopped_early: bool
    device: str
    pos_weight: list[float] | None  # per output, as trained
    temperature: float
    thresholds: list[float]
    train_metrics: dict[str, Any]
    val_metrics: dict[str, Any] | None
    versions: dict[str, str]
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    seconds: dict[str, float] = field(default_factory=dict)
    world_size: int = 1  # processes that trained (torchrun), and their backend
    backend: str | None = None
    sent_bytes_per_epoch: float = 0.0  # by each rank, exchanging the model's changes
    autotune: Search | None = None  # the --autotune search that chose the training options

    def config_json(self) -> dict[str, Any]:
        c = self.config
        separate = c.val_data is not None
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created": self.created,
            "task": self.data.task,
            "labels": self.data.labels,
            "positive_label": None if self.data.task != "binary" else self.data.labels[-1],
            "thresholds": self.thresholds,
            "temperature": self.temperature,
            "model": self.model,
            "vectorizer": self.vectorizer,
            "training": {
                **asdict(c.training),
                "hidden": list(c.training.hidden),
                "val_split": None if separate else c.val_split,
                "val_max_rows": None if separate else c.val_max_rows,
                "val_grouping": None if separate else c.val_grouping,
                "val_data": None if c.val_data is None else str(c.val_data),
                # "auto" or the number, a string as ever; "default" when not given (calibrate)
                "threshold": "default" if c.threshold is None else str(c.threshold),
                "threshold_metric": c.threshold_metric,
                "calibrate": c.calibrate,
                "device_used": self.device,
                "pos_weight_values": self.pos_weight,
                "world_size": self.world_size,
                "backend": self.backend,
                "sent_bytes_per_epoch": round(self.sent_bytes_per_epoch),
                # the search (its trials are in metrics.json); the options above are its choice
                "autotune": None if self.autotune is None else {
                    k: v for k, v in self.autotune.to_dict().items() if k != "trials"},
            },
            "data": {
                "source": c.data_name or self.data.source,
                # the files' real paths, by which bce-eval knows them again (None: stdin)
                "path": _real_path(c.data),
                "val_path": _real_path(c.val_data),
                "text_column": self.data.text_column,
                "label_columns": self.data.label_columns,
                # as given: --task, and the values --positive-label named ("4,5")
                "task_given": c.task,
                "positive_label_given": c.positive_label,
                "weight_column": c.weight_column,
                "encoding": c.encoding,
                "rows": self.data.rows,
                "dropped_rows": self.data.dropped_rows,
                "train_rows": self.data.train_rows,
                "val_rows": self.data.val_rows,
                "class_counts": self.data.class_counts,
            },
            "versions": self.versions,
        }

    def metrics_json(self) -> dict[str, Any]:
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": len(self.history),
            "stopped_early": self.stopped_early,
            "train": self.train_metrics,
            "validation": self.val_metrics,
            "averaged_epochs": self.averaged_epochs,
            "pos_weight": self.pos_weight,
            "temperature": self.temperature,
            "dropped_rows": self.data.dropped_rows,
            **({} if self.autotune is None else {"autotune": self.autotune.to_dict()}),
        }

    def history_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=HISTORY_FIELDS, lineterminator="\n")
        writer.writeheader()
        for stats in self.history:
            writer.writerow({k: "" if v is None else round(v, 6) if isinstance(v, float) else v
                             for k, v in asdict(stats).items()})
        return out.getvalue()

    def report_options(self) -> dict[str, Any]:
        """The options report.md lists (as config.json has them)."""
        config = self.config_json()
        return {key: config[key] for key in ("data", "vectorizer", "training")}

    def summary(self) -> dict[str, Any]:
        """What ``bce-train`` prints (``--json``: this object)."""
        return {
            "output": str(self.config.output),
            "labels": self.data.labels,
            "task": self.data.task,
            "train_rows": self.data.train_rows,
            "val_rows": self.data.val_rows,
            "vocabulary": self.vocabulary,
            "best_epoch": self.best_epoch,
            "averaged_epochs": self.averaged_epochs,
            "epochs_run": len(self.history),
            "device": self.device,
            "world_size": self.world_size,
            **({"sent_mb_per_epoch": round(self.sent_bytes_per_epoch / 1e6, 3)}
               if self.world_size > 1 else {}),
            "thresholds": self.thresholds,
            "temperature": self.temperature,
            "pos_weight": self.pos_weight,
            "train": self.train_metrics,
            "validation": self.val_metrics,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def write_model_folder(output: Path, record: RunRecord, model: SparseMLP, terms: list[str],
                       report: Callable[[Path], object] | None) -> list[str]:
    """Publish the model folder ``output`` (``--output``'s real path) whole (atomic.publish):
    the record's files, the vocabulary, the weights, and ``report`` (report.md and plots/,
    drawn into the staging folder) unless None. Returns publish's notes."""
    def fill(folder: Path) -> None:
        write_json(folder / CONFIG_FILE, record.config_json())
        write_json(folder / VOCABULARY_FILE, {"terms": terms})
        save_weights(model, folder / WEIGHTS_FILE)
        write_json(folder / "metrics.json", record.metrics_json())
        (folder / "history.csv").write_text(record.history_csv(), encoding="utf-8")
        if report is not None:
            report(folder)

    return publish(output, fill, "model", replace=record.config.force)
