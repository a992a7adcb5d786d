"""bce-predict: options -> a PredictConfig -> scored batches -> rows on stdout."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from sentiment_cli.cli import (
    DebugOption,
    DelimiterOption,
    EncodingOption,
    TextColumnOption,
    handle_errors,
    new_app,
    run,
)
from sentiment_cli.config import PredictConfig, check

app = new_app()
P = PredictConfig  # the defaults, stated there once


@app.command(help="Score texts with a trained model folder: arguments, stdin lines "
             "(one text per line) or a CSV/TSV column.")
@handle_errors
def predict(
    model: Annotated[
        Path, typer.Argument(help="Model folder written by bce-train.", metavar="MODEL")
    ],
    texts: Annotated[
        list[str] | None,
        typer.Argument(help="Texts to score; none or '-' reads one text per line from stdin.",
                       show_default=False, metavar="TEXT"),
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="CSV/TSV file to score a column of.")
    ] = None,
    text_column: TextColumnOption = None,
    keep_columns: Annotated[
        bool, typer.Option("--keep-columns", help="Copy the --input file's other columns into "
                           "the output.")
    ] = P.keep_columns,
    output_format: Annotated[
        str | None,
        typer.Option("--format", "-F", help="jsonl, csv, tsv, label or table [default: table on "
                     "a terminal, jsonl otherwise]."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Override the model's stored threshold.")
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Texts scored (and output flushed) per batch.")
    ] = P.batch_size,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    device: Annotated[str, typer.Option("--device", help="cpu, auto, cuda or cuda:N.")
                      ] = P.device,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Worker processes for long inputs (0: one per "
                          "core; 1: none).")
    ] = P.jobs,
    debug: DebugOption = False,
) -> None:
    config = PredictConfig(model=model, texts=tuple(texts or ()), input_file=input_file,
                           text_column=text_column, keep_columns=keep_columns,
                           output_format=output_format, threshold=threshold,
                           batch_size=batch_size, delimiter=delimiter, encoding=encoding,
                           device=device, jobs=jobs)
    check(config)
    from sentiment_cli.artifacts.bundle import load_bundle
    from sentiment_cli.parallel import available_cores
    from sentiment_cli.predict import Predictor, input_batches, records, score_stream
    from sentiment_cli.reporting.console import Stdout, print_records_table, stdin_hint
    from sentiment_cli.reporting.rows import RowWriter

    jobs = config.jobs or available_cores()
    fmt = config.output_format or ("table" if sys.stdout.isatty() else "jsonl")
    predictor = Predictor(load_bundle(config.model), threshold=config.threshold,
                          device=config.device)
    reads_stdin = config.input_file is None and config.texts in ((), ("-",))
    if reads_stdin and sys.stdin.isatty():
        stdin_hint()
    batches = input_batches(config, sys.stdin.buffer)
    labels, multilabel = predictor.bundle.labels, predictor.multilabel
    scored = score_stream(predictor, batches, jobs)
    with contextlib.closing(scored):
        if fmt == "table":
            out = Stdout()
            for chunk, extra, scores in scored:
                print_records_table(records(chunk, scores, labels, multilabel, extra), out)
            return
        writer = RowWriter(sys.stdout, fmt, labels, multilabel)
        for chunk, extra, scores in scored:
            writer.write(chunk, scores, extra)


def main() -> None:
    run(app, "bce-predict")
