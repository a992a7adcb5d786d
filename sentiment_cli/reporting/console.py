"""Everything the commands show people: progress and notes on stderr, summaries and tables and
prediction streams on stdout. Library modules return values; this module renders them."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sentiment_cli.explain import shown
from sentiment_cli.text import printable
from sentiment_cli.training.progress import EpochStats, TrainProgress

# Nothing from the data or a file name is read as rich markup ("[link=...]", "[/]") or emoji
# codes (":smile:"), and control characters are shown as escapes (text.printable).
_PLAIN = {"markup": False, "emoji": False, "highlight": False}


class Stdout(Console):
    """rich on stdout; a reader that went away (| head) is BrokenPipeError, which the command
    turns into a quiet exit (rich itself would exit with status 1)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**_PLAIN, **kwargs)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def _cell(value: object, newlines: bool = False) -> Text:
    return Text(printable(str(value), newlines))


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


class TrainConsole(TrainProgress):
    """A progress bar per epoch and a table row per epoch on stderr (plain lines off a terminal)."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.console = Console(stderr=True, soft_wrap=True, **_PLAIN)
        self.interactive = self.console.is_terminal and not quiet
        self._progress: Any = None
        self._task: Any = None
        self._phase: tuple[str, Any] | None = None  # the step before the epochs, and its task
        self._header_done = False

    def __enter__(self) -> TrainConsole:
        if self.interactive:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _amount_column(),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def note(self, message: str) -> None:
        if not self.quiet:
            self.console.print(printable(message))

    def phase(self, name: str, done: int, total: int | None = None, unit: str = "rows") -> None:
        if self._progress is None:
            return
        if self._phase is None or self._phase[0] != name:
            if self._phase is not None:
                self._progress.remove_task(self._phase[1])
            self._phase = (name, self._progress.add_task(name, total=total, unit=unit))
        self._progress.advance(self._phase[1], done)

    def epoch_start(self, epoch: int, epochs: int, rows: int) -> None:
        if self._progress is None:
            return
        if self._phase is not None:
            self._progress.remove_task(self._phase[1])
            self._phase = None
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"epoch {epoch}/{epochs}", total=rows, unit="rows")

    def batch_end(self, rows: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, rows)

    def epoch_end(self, stats: EpochStats, is_best: bool) -> None:
        if self.quiet:
            return
        if not self._header_done:
            self.console.print(
                f"{'epoch':>5} {'train_loss':>10} {'val_loss':>10} {'train_acc':>9} "
                f"{'val_acc':>8} {'seconds':>8}"
            )
            self._header_done = True
        mark = "  *best" if is_best else ""
        self.console.print(
            f"{stats.epoch:>5} {_fmt(stats.train_loss):>10} {_fmt(stats.val_loss):>10} "
            f"{_fmt(stats.train_acc):>9} {_fmt(stats.val_acc):>8} {stats.seconds:>8.2f}{mark}"
        )


def _amount_column() -> Any:
    """A progress column: how much of a task is done of how much, in the task's unit (rows,
    bytes shown as kB/MB/GB, ms shown as seconds, or none for a step without parts)."""
    from rich import filesize
    from rich.progress import ProgressColumn, Task

    def amount(value: float, unit: str) -> str:
        return filesize.decimal(int(value)) if unit == "bytes" else \
            f"{value / 1000:.0f}" if unit == "ms" else f"{int(value):,}"

    class Amount(ProgressColumn):
        def render(self, task: Task) -> Text:
            unit = task.fields.get("unit", "rows")
            if task.total is None:
                return Text("" if task.completed == 0 else f"{amount(task.completed, unit)}")
            shown = {"ms": " s", "bytes": ""}.get(unit, f" {unit}")
            return Text(f"{amount(task.completed, unit)}/{amount(task.total, unit)}{shown}")

    return Amount()


def _kept(summary: dict[str, Any]) -> str:
    averaged = summary.get("averaged_epochs") or 0
    if averaged:
        return (f"the mean of epochs 1-{averaged} (lower validation loss than the best epoch, "
                f"{summary['best_epoch']})")
    return f"epoch {summary['best_epoch']}"


def print_train_summary(summary: dict[str, Any]) -> None:
    val = summary["validation"]
    lines = [
        f"model folder: {summary['output']}",
        f"labels: {', '.join(summary['labels'])}   rows: {summary['train_rows']} train, "
        f"{summary['val_rows']} validation   vocabulary: {summary['vocabulary']}",
        f"kept {_kept(summary)} of {summary['epochs_run']} on {summary['device']} "
        f"in {summary['seconds']['total']:.1f}s",
    ]
    for name, part in (("train", summary["train"]), ("validation", val)):
        if part is None:
            continue
        if "per_label" in part and "accuracy" in part:  # multi-class
            lines.append(
                f"{name:>10}: accuracy {part['accuracy']:.4f}  macro_f1 {part['macro_f1']:.4f}  "
                f"log_loss {part['log_loss']:.4f}"
            )
        elif "accuracy" in part:
            lines.append(
                f"{name:>10}: accuracy {part['accuracy']:.4f}  loss {_fmt(part.get('loss'))}  "
                f"f1 {part['f1']:.4f}  roc_auc {_fmt(part['roc_auc'])}"
            )
        else:
            lines.append(
                f"{name:>10}: micro_f1 {part['micro_f1']:.4f}  macro_f1 {part['macro_f1']:.4f}  "
                f"subset_accuracy {part['subset_accuracy']:.4f}"
            )
    sys.stdout.write("".join(printable(line) + "\n" for line in lines))


def print_eval(metrics: dict[str, Any]) -> None:
    out = Stdout()
    table = Table(title=_cell(f"{metrics['model']} on {metrics['data']}"), show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    if "per_label" in metrics and "accuracy" in metrics:
        _print_multiclass(metrics, table, out)
    elif "accuracy" in metrics:
        for key in ("rows", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                    "ece", "brier", "threshold"):
            value = metrics[key]
            table.add_row(key, str(value) if isinstance(value, int) else _fmt(value))
        out.print(table)
        cm = metrics["confusion_matrix"]
        neg, pos = metrics["labels"]
        matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
        matrix.add_column("")
        matrix.add_column(_cell(neg), justify="right")
        matrix.add_column(_cell(pos), justify="right")
        matrix.add_row(_cell(neg), str(cm["tn"]), str(cm["fp"]))
        matrix.add_row(_cell(pos), str(cm["fn"]), str(cm["tp"]))
        out.print(matrix)
        spelled = metrics.get("data_labels", [neg, pos])
        if spelled != [neg, pos]:
            out.print(_cell(f"the file's label {spelled[0]} is {neg}, its {spelled[1]} is {pos}"))
    else:
        for key in ("rows", "subset_accuracy", "hamming_loss", "micro_f1", "macro_f1",
                    "micro_precision", "micro_recall", "log_loss"):
            value = metrics[key]
            table.add_row(key, str(value) if isinstance(value, int) else _fmt(value))
        out.print(table)
        per = Table(title="per label")
        for column in ("label", "precision", "recall", "f1", "roc_auc", "support"):
            per.add_column(column, justify="left" if column == "label" else "right")
        for name, m in metrics["per_label"].items():
            per.add_row(_cell(name), _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                        _fmt(m["roc_auc"]), str(m["support"]))
        out.print(per)


def _print_multiclass(metrics: dict[str, Any], table: Table, out: Console) -> None:
    for key in ("rows", "accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall",
                "log_loss"):
        value = metrics[key]
        table.add_row(key, str(value) if isinstance(value, int) else _fmt(value))
    out.print(table)
    per = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        per.add_column(column, justify="left" if column == "class" else "right")
    for name, m in metrics["per_label"].items():
        per.add_row(_cell(name), _fmt(m["precision"]), _fmt(m["recall"]), _fmt(m["f1"]),
                    str(m["support"]))
    out.print(per)
    matrix = Table(title="confusion matrix (rows: true, columns: predicted)")
    matrix.add_column("")
    for name in metrics["labels"]:
        matrix.add_column(_cell(name), justify="right")
    for name, row in zip(metrics["labels"], metrics["confusion_matrix"], strict=True):
        matrix.add_row(_cell(name), *map(str, row))
    out.print(matrix)


def print_records_table(records: list[dict[str, Any]], out: Console) -> None:
    table = Table(show_header=True, header_style="bold")
    multilabel = "labels" in records[0]
    table.add_column("text", overflow="fold", ratio=3)
    table.add_column("labels" if multilabel else "label")
    if not multilabel:
        table.add_column("probability", justify="right")
    top, explained = "top" in records[0], "explanation" in records[0]
    if top:
        table.add_column(f"top {len(records[0]['top'])}")
    if explained:
        table.add_column("explanation", overflow="fold", ratio=2)
    for record in records:
        text = _cell(record["text"], newlines=True)
        if multilabel:
            table.add_row(text, _cell(", ".join(record["labels"]) or "-"))
        else:
            best = [_cell(", ".join(f"{t['label']} {t['probability']:.2f}"
                                    for t in record["top"]))] if top else []
            why = [_cell(shown(record["explanation"]))] if explained else []
            table.add_row(text, _cell(record["label"]), f"{record['probability']:.4f}", *best,
                          *why)
    out.print(table)


def stdin_hint() -> None:
    """Someone at a terminal may not know the command waits for them."""
    Console(stderr=True, **_PLAIN).print("reading texts from stdin, one per line (Ctrl-D to end)")
