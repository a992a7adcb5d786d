"""The commands bce-train, bce-predict and bce-eval: options -> library calls -> output.

Heavy libraries (torch, scikit-learn, pandas) are imported inside the commands, so ``--help``
and option errors answer at once. Data goes to stdout; progress, notes and errors to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from sentiment_cli.errors import DataError, SentimentError
from sentiment_cli.options import DEVICE_PATTERN, TrainOptions
from sentiment_cli.text import printable

F = TypeVar("F", bound=Callable[..., Any])
MAX_PREDICT_BATCH = 1_000_000  # texts held (and scored) at once

_APP_SETTINGS: dict[str, Any] = {
    "add_completion": False,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}
train_app = typer.Typer(**_APP_SETTINGS)
predict_app = typer.Typer(**_APP_SETTINGS)
eval_app = typer.Typer(**_APP_SETTINGS)


def error_line(message: str) -> None:
    """The one line a user sees for an error, with control characters from file names or data
    shown as escapes (they must not move the cursor, recolour or retitle a terminal)."""
    prog = Path(sys.argv[0]).name or "sentiment-cli"
    sys.stderr.write(f"{prog}: error: {printable(message)}\n")
    sys.stderr.flush()


def handle_errors(func: F) -> F:
    """Turn our errors into one line and an exit status; --debug shows the traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug"))
        try:
            return func(*args, **kwargs)
        except SentimentError as err:
            if debug:
                raise
            error_line(str(err))
            raise typer.Exit(err.exit_code) from None
        except BrokenPipeError:
            _quiet_broken_pipe()
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(130) from None
        except MemoryError:
            error_line("out of memory; try --max-features, --min-df 2 or a smaller --batch-size")
            raise typer.Exit(1) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except OSError as err:  # the system refused: a full disk, an output that cannot be written
            if debug:
                raise
            where = f" ({err.filename})" if err.filename else " (writing the output)"
            error_line(f"{err.strerror or err}{where}")
            raise typer.Exit(1) from None
        except Exception as err:  # a bug or an unforeseen failure: still one line by default
            if debug:
                raise
            error_line(f"unexpected {type(err).__name__}: {err} (run with --debug for details)")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _quiet_broken_pipe_code() -> int:
    """The reader went away (| head): stop quietly, with the conventional SIGPIPE status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 128 + signal.SIGPIPE


def _quiet_broken_pipe() -> NoReturn:
    raise SystemExit(_quiet_broken_pipe_code())


def _raise_on_signals() -> None:
    """Ctrl-C and SIGTERM become Interrupted, so training can save and say how to resume.

    A signal ignored when we started stays ignored: a shell starts background jobs (``cmd &``)
    with SIGINT ignored so that Ctrl-C at the terminal does not reach them (Python itself leaves
    SIGINT alone then)."""
    from sentiment_cli.errors import Interrupted

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def _parse_ints(value: str, option: str) -> list[int]:
    value = value.strip()
    if value.lower() in ("", "none", "linear", "0"):
        return []
    try:
        return [int(part) for part in value.replace(" ", "").split(",") if part]
    except ValueError:
        raise DataError(
            f"{option} takes comma-separated integers like 64,32, got {value!r}"
        ) from None


def _parse_ngram(value: str) -> tuple[int, int]:
    parts = _parse_ints(value, "--ngram-range")
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


DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the Python traceback of an error.", hidden=True)
]
EncodingOption = Annotated[
    str | None,
    typer.Option("--encoding", help="Text encoding of the input (default UTF-8, BOM allowed); "
                 "e.g. latin-1 or cp1252."),
]
DelimiterOption = Annotated[
    str | None,
    typer.Option("--delimiter", help="Field delimiter (default: sniffed from the header: , "
                 "tab ; |). Use 'tab' for tabs."),
]
TextColumnOption = Annotated[
    str | None,
    typer.Option("--text-column", "-t", help="Text column (default: detected from text, "
                 "review, sentence, content, comment, body)."),
]


@train_app.command(help="Train a text classifier from a labeled CSV/TSV file into a model folder.")
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
    ] = False,
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
    ] = False,
    val_data: Annotated[
        Path | None, typer.Option("--val-data", help="Separate validation file (same columns).")
    ] = None,
    val_split: Annotated[
        float, typer.Option("--val-split", help="Stratified validation fraction when no "
                            "--val-data (0: none, no early stopping).")
    ] = 0.1,
    val_max_rows: Annotated[
        int, typer.Option("--val-max-rows", help="At most this many validation rows from "
                          "--val-split; the rest train (0: no cap).")
    ] = 2000,
    val_grouping: Annotated[
        str, typer.Option("--val-grouping", help="contained: a text whose words all occur in a "
                          "longer text (a sub-phrase, a duplicate) goes to the same side of the "
                          "validation split; none: split rows freely.")
    ] = "contained",
    ngram_range: Annotated[
        str, typer.Option("--ngram-range", help="n-gram sizes MIN,MAX.")
    ] = "1,2",
    min_df: Annotated[
        float, typer.Option("--min-df", help="Drop terms in fewer documents (count, or fraction "
                            "< 1).")
    ] = 1,
    max_df: Annotated[
        float, typer.Option("--max-df", help="Drop terms in more documents (fraction, or count).")
    ] = 1.0,
    max_features: Annotated[
        int | None, typer.Option("--max-features", help="Keep the most frequent N terms.")
    ] = None,
    binary: Annotated[
        bool, typer.Option("--binary/--no-binary", help="Presence (1) instead of counts.")
    ] = True,
    lowercase: Annotated[bool, typer.Option("--lowercase/--no-lowercase")] = True,
    stop_words: Annotated[
        str | None, typer.Option("--stop-words", help="'english' (negations are kept) or none.")
    ] = None,
    token_pattern: Annotated[
        str | None, typer.Option("--token-pattern", help="Regular expression for tokens "
                                 "[default: keeps negations, one-letter words, ! and ?].")
    ] = None,
    hidden: Annotated[
        str, typer.Option("--hidden", help="Hidden layer sizes of the MLP, e.g. 64 or 64,32; "
                          "'none' for a linear model.")
    ] = "none",
    dropout: Annotated[
        float, typer.Option("--dropout", help="Dropout after hidden layers.")
    ] = TrainOptions.dropout,
    lr: Annotated[float, typer.Option("--lr", help="Adam learning rate.")] = TrainOptions.lr,
    weight_decay: Annotated[
        float, typer.Option("--weight-decay", help="L2 penalty.")
    ] = TrainOptions.weight_decay,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Rows per step.")
    ] = TrainOptions.batch_size,
    epochs: Annotated[
        int, typer.Option("--epochs", help="Most epochs to run.")
    ] = TrainOptions.epochs,
    patience: Annotated[
        int, typer.Option("--patience", help="Stop after this many epochs without a better "
                          "validation loss.")
    ] = TrainOptions.patience,
    pos_weight: Annotated[
        str, typer.Option("--pos-weight", help="Positive-class loss weight: auto "
                          "(negatives/positives), balanced (auto, then the output bias shifted "
                          "back to the data's class balance), a number, or none.")
    ] = "none",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Seed for the split, init and order.")] = 0,
    average_epochs: Annotated[
        bool, typer.Option("--average-epochs/--no-average-epochs", help="Keep the mean of all "
                           "epochs' weights when its validation loss beats the best epoch's.")
    ] = TrainOptions.average_epochs,
    threshold: Annotated[
        str, typer.Option("--threshold", help="Decision threshold stored in the model: a "
                          "number, or auto (best --threshold-metric on validation).")
    ] = "0.5",
    threshold_metric: Annotated[
        str, typer.Option("--threshold-metric", help="f1 or accuracy, for --threshold auto.")
    ] = "f1",
    calibrate: Annotated[
        str, typer.Option("--calibrate", help="Temperature scaling of the probabilities, "
                          "fitted on the validation rows: auto (when there are any), "
                          "temperature, or none.")
    ] = "auto",
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace an existing model folder (and discard "
                           "the checkpoint of an interrupted run).")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted run from its last "
                           "completed epoch (same data and options).")
    ] = False,
    write_report: Annotated[
        bool, typer.Option("--report/--no-report", help="Write report.md and plots/ into the "
                           "model folder.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final metrics as one JSON object.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or notes.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.features import SENTIMENT_TOKEN_PATTERN, VectorizerOptions
    from sentiment_cli.pipeline import TrainJob
    from sentiment_cli.reporting.console import TrainConsole, print_train_summary

    labels = list(label_column or [])
    if label_columns:
        labels += [c.strip() for c in label_columns.split(",") if c.strip()]
    if (positive_lines is None) != (negative_lines is None):
        raise DataError("--positive-lines and --negative-lines go together")
    line_files = None if positive_lines is None else (positive_lines, negative_lines)
    if data is None and line_files is None:
        raise DataError("give the labeled CSV/TSV file to train on (see bce-train --help)")
    stem = (data or positive_lines).stem  # type: ignore[union-attr]
    job = TrainJob(
        data=data,
        line_files=line_files,  # type: ignore[arg-type]
        output=output if output is not None else Path("models") / stem,
        text_column=text_column,
        label_columns=labels,
        positive_label=positive_label,
        weight_column=weight_column,
        delimiter=delimiter,
        encoding=encoding,
        drop_invalid=drop_invalid,
        val_data=val_data,
        val_split=val_split,
        val_max_rows=val_max_rows,
        val_grouping=val_grouping.strip().lower(),
        vectorizer=VectorizerOptions(
            ngram_range=_parse_ngram(ngram_range),
            min_df=min_df,
            max_df=max_df,
            max_features=max_features,
            binary=binary,
            lowercase=lowercase,
            stop_words=None if (stop_words or "none").lower() == "none" else stop_words.lower(),
            token_pattern=SENTIMENT_TOKEN_PATTERN if token_pattern is None else token_pattern,
        ),
        threshold=threshold.strip().lower(),
        threshold_metric=threshold_metric,
        calibrate=calibrate.strip().lower(),
        force=force,
        resume=resume,
        drop_empty_labels=drop_empty_labels,
        report=write_report,
    )

    job.train = TrainOptions(
        hidden=_parse_ints(hidden, "--hidden"),
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
    )
    console = TrainConsole(quiet=quiet)
    from sentiment_cli.pipeline import run_training

    _raise_on_signals()
    with console:
        summary = run_training(job, progress=console, note=console.note)
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        print_train_summary(summary)


@predict_app.command(help="Score texts with a trained model folder: arguments, stdin lines "
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
    ] = False,
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
    ] = 1024,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    device: Annotated[str, typer.Option("--device", help="cpu, auto, cuda or cuda:N.")] = "cpu",
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Worker processes for long inputs (0: one per "
                          "core; 1: none).")
    ] = 0,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.data.reading import check_delimiter, check_encoding
    from sentiment_cli.reporting.console import run_predict
    from sentiment_cli.workers import available_cores

    if not 1 <= batch_size <= MAX_PREDICT_BATCH:
        raise DataError(f"--batch-size must be from 1 to {MAX_PREDICT_BATCH:,}, got {batch_size}")
    if not 0 <= jobs <= 4 * available_cores():
        raise DataError(f"--jobs must be from 0 (one per core) to {4 * available_cores()} (four "
                        f"per core), got {jobs}")
    _check_threshold(threshold)
    _check_device(device)
    check_encoding(encoding)
    check_delimiter(delimiter)
    run_predict(
        model=model,
        texts=list(texts or []),
        input_file=input_file,
        text_column=text_column,
        keep_columns=keep_columns,
        output_format=output_format,
        threshold=threshold,
        batch_size=batch_size,
        delimiter=delimiter,
        encoding=encoding,
        device=device,
        jobs=jobs,
    )


@eval_app.command(help="Evaluate a model folder on a labeled CSV/TSV file.")
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
    threshold: Annotated[
        float | None, typer.Option("--threshold", help="Override the model's stored threshold.")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = None,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Skip rows with empty text or bad labels.")
    ] = False,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write report.md and plots/ into this "
                                  "folder.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace an earlier --report folder.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.data.reading import check_delimiter, check_encoding
    from sentiment_cli.evaluate import evaluate_file
    from sentiment_cli.reporting.console import print_eval

    _check_threshold(threshold)
    check_encoding(encoding)
    check_delimiter(delimiter)
    _raise_on_signals()  # SIGTERM ends a --report run through its clean-up, as Ctrl-C does
    metrics = evaluate_file(
        model,
        data,
        text_column=text_column,
        label_columns=label_column or None,
        delimiter=delimiter,
        encoding=encoding,
        drop_invalid=drop_invalid,
        threshold=threshold,
        report_dir=report,
        force=force,
    )
    if as_json:
        sys.stdout.write(json.dumps(metrics, ensure_ascii=False) + "\n")
    else:
        print_eval(metrics)


def _check_threshold(threshold: float | None) -> None:
    if threshold is not None and not 0 <= threshold <= 1:
        raise DataError(f"--threshold must be in [0, 1], got {threshold}")


def _check_device(device: str) -> None:
    if DEVICE_PATTERN.fullmatch(device.strip().lower()) is None:
        raise DataError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")


# The command-line parser's own errors (a bad number, an unknown option): click's, or the copy
# of click that newer Typer releases carry, found from a class both export.
_PARSER_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _open_closed_standard_streams() -> None:
    """A command started with stdin, stdout or stderr closed (``>&-``) gets /dev/null there:
    otherwise the next file it opens (a lock, a model file) would take that descriptor and
    receive what is printed, and Python would have no stream to flush."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def _run(app: typer.Typer, prog: str) -> NoReturn:
    """Run a command, then leave at once with its status.

    A usage error of the parser (a bad number, an unknown option) is one line like ours.
    Everything is written and closed by then, and unwinding the interpreter (torch's and
    scikit-learn's module graphs) would add 0.3-0.9 s to every run, so the output streams are
    flushed and the process ends without that teardown. An unexpected exception still
    propagates and ends the process the usual way, with its traceback.
    """
    _open_closed_standard_streams()
    code: object
    try:
        code = app(prog_name=prog, standalone_mode=False)
    except _PARSER_ERROR as err:
        error_line(f"{err.format_message()} (see {prog} --help)")
        code = getattr(err, "exit_code", 2)
    except typer.Abort:
        error_line("interrupted")
        code = 130
    except SystemExit as done:
        code = done.code
    except BrokenPipeError:
        code = _quiet_broken_pipe_code()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{printable(str(code))}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away: the SIGPIPE convention
            if stream is sys.stdout and code == 0:
                code = 128 + signal.SIGPIPE
        except (OSError, ValueError) as err:  # a full disk (>/dev/full)
            if stream is sys.stdout and code == 0:
                with contextlib.suppress(OSError, ValueError):
                    error_line(f"{getattr(err, 'strerror', None) or err} (writing the output)")
                code = 1
    os._exit(code)


def train_main() -> None:
    _run(train_app, "bce-train")


def predict_main() -> None:
    _run(predict_app, "bce-predict")


def eval_main() -> None:
    _run(eval_app, "bce-eval")
