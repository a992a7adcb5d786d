"""bce-predict: options -> a PredictConfig -> scored batches -> rows on stdout."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import replace
from typing import Any

from sentiment_cli.checks import check
from sentiment_cli.cli import DebugOption, new_app, run
from sentiment_cli.cli.commands import config_command
from sentiment_cli.cli.spool import copied_stdin
from sentiment_cli.config import STDIN, PredictConfig
from sentiment_cli.options import build

app = new_app()


@config_command(app, PredictConfig, help="Score texts with a trained model folder: arguments, "
                "stdin lines (one text per line) or a CSV/TSV column.")
def predict(given: dict[str, Any], debug: DebugOption = False) -> None:
    config = build(PredictConfig, given)
    check(config)
    with contextlib.ExitStack() as held:
        if config.input_file == STDIN:  # a CSV/TSV, JSON Lines or Parquet file on stdin
            copy = held.enter_context(copied_stdin("bce-predict MODEL --input -"))
            config = replace(config, input_file=copy)
        _predict(config)


def _predict(config: PredictConfig) -> None:
    from sentiment_cli.artifacts.bundle import load_bundle
    from sentiment_cli.parallel import available_cores
    from sentiment_cli.predict import Predictor, input_batches, records, score_stream
    from sentiment_cli.reporting.console import Stdout, print_records_table, stdin_hint
    from sentiment_cli.reporting.rows import RowWriter

    jobs = config.jobs or available_cores()
    fmt = config.output_format or ("table" if sys.stdout.isatty() else "jsonl")
    predictor = Predictor(load_bundle(config.model), threshold=config.threshold,
                          device=config.device, top_k=config.top_k, explain=config.explain)
    reads_stdin = config.input_file is None and config.texts in ((), ("-",))
    if reads_stdin and sys.stdin.isatty():
        stdin_hint()
    batches = input_batches(config, sys.stdin.buffer)
    labels, task = predictor.bundle.labels, predictor.task
    scored = score_stream(predictor, batches, jobs)
    with contextlib.closing(scored):
        if fmt == "table":
            out = Stdout()
            for chunk, _, scores in scored:  # the table shows the text, not kept columns
                print_records_table(records(chunk, scores, labels, task, None,
                                            predictor.top_k), out)
            return
        writer = RowWriter(sys.stdout, fmt, labels, task, predictor.top_k)
        for chunk, extra, scores in scored:
            writer.write(chunk, scores, extra)


def main() -> None:
    run(app, "bce-predict")
