"""bce-train: options -> a TrainConfig -> run_training -> the summary on stdout."""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from sentiment_cli import interruption
from sentiment_cli.checks import check
from sentiment_cli.cli import DebugOption, LabelListOption, label_columns, new_app, run, show
from sentiment_cli.cli.commands import config_command
from sentiment_cli.cli.spool import copied_stdin, named
from sentiment_cli.config import STDIN, TrainConfig
from sentiment_cli.distributed import environment_rank, job_identity
from sentiment_cli.errors import DataError
from sentiment_cli.options import build

app = new_app()


@config_command(app, TrainConfig,
                help="Train a text classifier from a labeled CSV/TSV or JSON Lines file into a "
                "model folder.")
def train(
    given: dict[str, Any],
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
    label_column: Annotated[
        list[str] | None,
        typer.Option("--label-column", "-l", help="Label column (default: detected from label, "
                     "sentiment, target, class, polarity, y). Repeat for multi-label.",
                     metavar="COLUMN"),
    ] = None,
    label_list: LabelListOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final metrics as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    debug: DebugOption = False,
) -> None:
    if (positive_lines is None) != (negative_lines is None):
        raise DataError("--positive-lines and --negative-lines go together")
    line_files = None if positive_lines is None else (positive_lines, negative_lines)
    if given["data"] is None and line_files is None:
        raise DataError("give the labeled CSV/TSV or JSON Lines file to train on (see "
                        "bce-train --help)")
    config = build(TrainConfig, {**given, "label_columns": label_columns(label_column, label_list),
                                 "line_files": line_files})
    if job_identity() is None:  # a refusal before torch loads; under torchrun the ranks check
        check(config)           # together in run_training, so that one error stops them all
    # Imported here, not above: --help and a refused option answer before torch loads.
    from sentiment_cli.pipeline import run_training
    from sentiment_cli.reporting.console import TrainConsole, print_train_summary

    main_rank = environment_rank() == 0  # under torchrun, rank 0 speaks for the job
    with ExitStack() as held:
        if config.data == STDIN:
            copy = held.enter_context(copied_stdin("bce-train - [OPTIONS]"))
            config = replace(config, data_file=copy)
            # the copy is to be removed: a signal ends the run at its next check instead
            held.enter_context(interruption.deferred())
        else:
            interruption.ending_at_once()  # until there is something to clean up
        console = held.enter_context(TrainConsole(quiet=quiet or not main_rank))
        record = run_training(config, progress=console,
                              note=lambda text: console.note(named(config.data_file, text)))
    if record is not None:
        show(record.summary(), as_json, print_train_summary)


def main() -> None:
    run(app, "bce-train")
