"""bce-eval: options -> an EvalConfig -> evaluate -> a table or JSON on stdout."""

from __future__ import annotations

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
    show,
)
from sentiment_cli.config import EvalConfig, check

app = new_app()


@app.command(help="Evaluate a model folder on a labeled CSV/TSV file.")
@handle_errors
def evaluate(
    model: Annotated[
        Path, typer.Argument(help="Model folder written by bce-train.", metavar="MODEL")
    ],
    data: Annotated[Path, typer.Argument(help="Labeled CSV/TSV file.", metavar="DATA")],
    text_column: TextColumnOption = None,
    label_column: Annotated[
        list[str] | None, typer.Option("--label-column", "-l", help="Label column(s).")
    ] = None,
    positive_label: Annotated[
        str | None,
        typer.Option("--positive-label", help="The file's label value that means the model's "
                     "positive class, when the file spells its labels otherwise."),
    ] = None,
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Override the model's stored threshold.")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Skip rows with empty text or bad labels.")
    ] = EvalConfig.drop_invalid,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write report.md and plots/ into this "
                                  "folder.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace an earlier --report folder.")
    ] = EvalConfig.force,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.evaluate import evaluate as evaluate_model
    from sentiment_cli.reporting.console import print_eval

    config = EvalConfig(model=model, data=data, text_column=text_column,
                        label_columns=tuple(label_column or ()),
                        positive_label=positive_label, threshold=threshold,
                        delimiter=delimiter, encoding=encoding, drop_invalid=drop_invalid,
                        report=report, force=force)
    check(config)
    metrics = evaluate_model(config)
    show(metrics, as_json, print_eval)


def main() -> None:
    run(app, "bce-eval")
