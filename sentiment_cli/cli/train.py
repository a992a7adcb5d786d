"""bce-train: options -> a TrainConfig -> run_training -> the summary on stdout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sentiment_cli import interruption
from sentiment_cli.cli import (
    DebugOption,
    DelimiterOption,
    EncodingOption,
    TextColumnOption,
    handle_errors,
    new_app,
    parse_ints,
    run,
    show,
)
from sentiment_cli.config import TrainConfig, TrainingConfig, VectorizerConfig
from sentiment_cli.distributed import environment_rank
from sentiment_cli.errors import DataError

app = new_app()
T, V, C = TrainingConfig, VectorizerConfig, TrainConfig  # the defaults, stated there once


def _listed(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values)) or "none"


def _parse_ngram(value: str) -> tuple[int, int]:
    parts = parse_ints(value, "--ngram-range")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise DataError(f"--ngram-range takes MIN,MAX like 1,2, got {value!r}")
    return parts[0], parts[1]


def _parse_pos_weight(value: str) -> str | float | None:
    lowered = value.strip().lower()
    if lowered in ("none", "off", ""):
        return None
    if lowered in ("auto", "balanced"):
        return lowered
    try:
        return float(lowered)
    except ValueError:
        raise DataError(
            f"--pos-weight must be auto, balanced, none or a number, got {value!r}") from None


def _parse_threshold(value: str) -> float | str:
    lowered = value.strip().lower()
    if lowered == "auto":
        return lowered
    try:
        return float(lowered)
    except ValueError:
        raise DataError(f"--threshold must be auto or a number in [0, 1], got {value!r}") from None


@app.command(help="Train a text classifier from a labeled CSV/TSV file into a model folder.")
@handle_errors
def train(
    data: Annotated[
        Path | None,
        typer.Argument(help="Labeled CSV/TSV file.", show_default=False, metavar="DATA"),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Model folder to write [default: models/<data stem>]."),
    ] = None,
    positive_lines: Annotated[
        Path | None,
        typer.Option("--positive-lines", help="Instead of DATA: a plain-text file of positive "
                     "texts, one per line (use with --negative-lines)."),
    ] = None,
    negative_lines: Annotated[
        Path | None,
        typer.Option("--negative-lines", help="A plain-text file of negative texts, one per "
                     "line."),
    ] = None,
    text_column: TextColumnOption = None,
    label_column: Annotated[
        list[str] | None,
        typer.Option("--label-column", "-l", help="Label column (default: detected from label, "
                     "sentiment, target, class, polarity, y). Repeat for multi-label."),
    ] = None,
    label_columns: Annotated[
        str | None,
        typer.Option("--label-columns", help="Several 0/1 label columns for multi-label: "
                     "a,b,c or all-but-text."),
    ] = None,
    drop_empty_labels: Annotated[
        bool, typer.Option("--drop-empty-labels", help="Multi-label: drop label columns without "
                           "a positive training row instead of stopping.")
    ] = C.drop_empty_labels,
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="Which label value is the positive class, when it "
                     "is not one of 1/true/yes/pos/positive."),
    ] = None,
    weight_column: Annotated[
        str | None, typer.Option("--weight-column", help="Column of per-row loss weights.")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Skip rows with an empty text or unusable "
                           "label (and count them) instead of stopping.")
    ] = C.drop_invalid,
    val_data: Annotated[
        Path | None, typer.Option("--val-data", help="Separate validation file (same columns).")
    ] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", help="Stratified validation fraction when no "
                            "--val-data (0: none, no early stopping).")
    ] = C.val_split,
    val_max_rows: Annotated[
        int, typer.Option("--val-max-rows", help="At most this many validation rows from "
                          "--val-split; the rest train (0: no cap).")
    ] = C.val_max_rows,
    val_grouping: Annotated[
        str, typer.Option("--val-grouping", help="contained: a text whose words all occur in a "
                          "longer text (a sub-phrase, a duplicate) goes to the same side of the "
                          "validation split; none: split rows freely.")
    ] = C.val_grouping,
    ngram_range: Annotated[
        str, typer.Option("--ngram-range", help="n-gram sizes MIN,MAX.")
    ] = _listed(V.ngram_range),
    min_df: Annotated[
        float, typer.Option("--min-df", help="Drop terms in fewer documents (count, or fraction "
                            "< 1).")
    ] = V.min_df,
    max_df: Annotated[
        float, typer.Option("--max-df", help="Drop terms in more documents (fraction, or count).")
    ] = V.max_df,
    max_features: Annotated[
        int | None, typer.Option("--max-features", help="Keep the most frequent N terms.")
    ] = V.max_features,
    binary: Annotated[
        bool, typer.Option("--binary/--no-binary", help="Presence (1) instead of counts.")
    ] = V.binary,
    lowercase: Annotated[bool, typer.Option("--lowercase/--no-lowercase")] = V.lowercase,
    stop_words: Annotated[
        str | None, typer.Option("--stop-words", help="'english' (negations are kept) or none.")
    ] = V.stop_words,
    token_pattern: Annotated[
        str | None, typer.Option("--token-pattern", help="Regular expression for tokens "
                                 "[default: keeps negations, one-letter words, ! and ?].")
    ] = None,
    hidden: Annotated[
        str, typer.Option("--hidden", help="Hidden layer sizes of the MLP, e.g. 64 or 64,32; "
                          "'none' for a linear model.")
    ] = _listed(T.hidden),
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout after hidden layers.")
                       ] = T.dropout,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = T.lr,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="L2 penalty.")
                            ] = T.weight_decay,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per step.")
                          ] = T.batch_size,
    epochs: Annotated[int, typer.Option("--epochs", help="Most epochs to run.")] = T.epochs,
    patience: Annotated[
        int, typer.Option("--patience", help="Stop after this many epochs without a better "
                          "validation loss.")
    ] = T.patience,
    pos_weight: Annotated[
        str, typer.Option("--pos-weight", help="Positive-class loss weight: auto "
                          "(negatives/positives), balanced (auto, then the output bias shifted "
                          "back to the data's class balance), a number, or none.")
    ] = str(T.pos_weight or "none"),
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")
                      ] = T.device,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, init and order.")
                    ] = T.seed,
    average_epochs: Annotated[
        bool, typer.Option("--average-epochs/--no-average-epochs", help="Keep the mean of all "
                           "epochs' weights when its validation loss beats the best epoch's.")
    ] = T.average_epochs,
    threshold: Annotated[
        str, typer.Option("--threshold", help="Decision threshold stored in the model: a "
                          "number, or auto (best --threshold-metric on validation).")
    ] = f"{C.threshold:g}",
    threshold_metric: Annotated[
        str, typer.Option("--threshold-metric", help="f1 or accuracy, for --threshold auto.")
    ] = C.threshold_metric,
    calibrate: Annotated[
        str, typer.Option("--calibrate", help="Temperature scaling of the probabilities, "
                          "fitted on the validation rows: auto (when there are any), "
                          "temperature, or none.")
    ] = C.calibrate,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace an existing model folder (and discard "
                           "the checkpoint of an interrupted run).")
    ] = C.force,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last "
                           "completed epoch (same data and options).")
    ] = C.resume,
    stream: Annotated[
        bool | None, typer.Option("--stream/--no-stream", help="Read DATA in chunks into "
                                  "shards on disk, for files larger than memory (default: when "
                                  "DATA would take over half of the free memory).",
                                  show_default=False)
    ] = C.stream,
    write_report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.md and plots/ into the "
                           "model folder.")
    ] = C.report,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final metrics as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.pipeline import run_training
    from sentiment_cli.reporting.console import TrainConsole, print_train_summary

    labels = list(label_column or [])
    if label_columns:
        labels += [c.strip() for c in label_columns.split(",") if c.strip()]
    if (positive_lines is None) != (negative_lines is None):
        raise DataError("--positive-lines and --negative-lines go together")
    line_files = None if positive_lines is None else (positive_lines, negative_lines)
    if data is None and line_files is None:
        raise DataError("give the labeled CSV/TSV file to train on (see bce-train --help)")
    config = TrainConfig(
        data=data,
        line_files=line_files,  # type: ignore[arg-type]
        output=output,
        text_column=text_column,
        label_columns=tuple(labels),
        positive_label=positive_label,
        weight_column=weight_column,
        delimiter=delimiter,
        encoding=encoding,
        drop_invalid=drop_invalid,
        drop_empty_labels=drop_empty_labels,
        val_data=val_data,
        val_split=val_split,
        val_max_rows=val_max_rows,
        val_grouping=val_grouping.strip().lower(),
        vectorizer=VectorizerConfig(
            ngram_range=_parse_ngram(ngram_range),
            min_df=min_df,
            max_df=max_df,
            max_features=max_features,
            binary=binary,
            lowercase=lowercase,
            stop_words=None if (stop_words or "none").lower() == "none" else stop_words.lower(),
            token_pattern=V.token_pattern if token_pattern is None else token_pattern,
        ),
        training=TrainingConfig(
            hidden=tuple(parse_ints(hidden, "--hidden")),
            dropout=dropout,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            pos_weight=_parse_pos_weight(pos_weight),
            device=device,
            seed=seed,
            average_epochs=average_epochs,
        ),
        threshold=_parse_threshold(threshold),
        threshold_metric=threshold_metric,
        calibrate=calibrate.strip().lower(),
        force=force,
        resume=resume,
        report=write_report,
        stream=stream,
    )
    interruption.ending_at_once()  # until there is something to clean up
    main_rank = environment_rank() == 0  # under torchrun, rank 0 speaks for the job
    with TrainConsole(quiet=quiet or not main_rank) as console:
        record = run_training(config, progress=console, note=console.note)
    if record is not None:
        show(record.summary(), as_json, print_train_summary)


def main() -> None:
    run(app, "bce-train")
