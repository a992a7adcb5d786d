"""bce-eval: options -> an EvalConfig -> evaluate -> a table or JSON on stdout."""

from __future__ import annotations

import sys
from contextlib import ExitStack
from dataclasses import replace
from typing import Annotated, Any

import typer

from sentiment_cli.checks import check
from sentiment_cli.cli import DebugOption, LabelListOption, label_columns, new_app, run, show
from sentiment_cli.cli.commands import config_command
from sentiment_cli.cli.spool import copied_stdin
from sentiment_cli.config import STDIN, EvalConfig
from sentiment_cli.options import build
from sentiment_cli.text import printable

app = new_app()


@config_command(app, EvalConfig,
                help="Evaluate a model folder on a labeled CSV/TSV or JSON Lines file.")
def evaluate(
    given: dict[str, Any],
    label_list: LabelListOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.evaluate import evaluate as evaluate_model
    from sentiment_cli.reporting.console import print_eval

    config = build(EvalConfig, {**given, "label_columns": label_columns(
        given["label_columns"], label_list)})
    check(config)
    with ExitStack() as held:
        if config.data == STDIN:
            copy = held.enter_context(copied_stdin("bce-eval MODEL -"))
            config = replace(config, data_file=copy)
        metrics = evaluate_model(config)
        show(metrics, as_json, print_eval)
        for note in metrics.get("notes", []):
            sys.stderr.write(f"bce-eval: note: {printable(note)}\n")


def main() -> None:
    run(app, "bce-eval")
