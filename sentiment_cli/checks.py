"""The checks of a command's options before anything is read: each option against what it
accepts (as config.py states it), then the options that relate to each other, and the files
named (they exist, they are files). A refusal is one :class:`DataError` naming the option and
the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from sentiment_cli.config import (
    STDIN,
    EvalConfig,
    PredictConfig,
    TrainConfig,
    VectorizerConfig,
    df_value,
)
from sentiment_cli.data.files import check_delimiter, check_encoding, check_path
from sentiment_cli.errors import DataError
from sentiment_cli.options import check_fields
from sentiment_cli.parallel import available_cores
from sentiment_cli.tokens import BUILTIN_PATTERNS, BoundedTokenizer

if TYPE_CHECKING:
    from sentiment_cli.data.reading import Dataset


def check(config: TrainConfig | PredictConfig | EvalConfig) -> None:
    """Refuse, before anything is read, options that cannot work: each against its table, then
    those that depend on each other or on the files named."""
    check_fields(config)
    if isinstance(config, TrainConfig):
        _check_train(config)
    elif isinstance(config, PredictConfig):
        _check_predict(config)
    elif config.positive_label is not None and len(config.label_columns) > 1:
        raise DataError("--positive-label is for one label column; several --label-column "
                        "are a multi-label file (leave --positive-label out)")
    check_encoding(config.encoding)
    check_delimiter(config.delimiter)
    paths = ([config.data_path, config.val_data, *(config.line_files or ())]
             if isinstance(config, TrainConfig) else
             [config.input_file] if isinstance(config, PredictConfig) else [config.data_path])
    for path in paths:
        if path is not None and path != STDIN:  # stdin is read (cli/spool.py) after these checks
            check_path(Path(path))
    if isinstance(config, TrainConfig) and config.data_path not in (None, STDIN) and \
            config.val_data is not None and os.path.samefile(config.data_path, config.val_data):
        raise DataError("--val-data is the training file itself; validation needs other rows "
                        "(leave --val-data out to split some off)")


def _check_train(config: TrainConfig) -> None:
    if (config.data is None) == (config.line_files is None):
        raise DataError("give one data file, or --positive-lines and --negative-lines (not both)")
    needs_val = config.threshold == "auto" or config.calibrate == "temperature"
    if needs_val and config.val_split == 0 and config.val_data is None:
        raise DataError("--threshold auto and --calibrate temperature need validation rows; "
                        "use --val-split > 0 or --val-data FILE")
    if config.autotune is not None and config.val_split == 0 and config.val_data is None:
        raise DataError("--autotune needs validation rows to compare options on; use "
                        "--val-split > 0 or --val-data FILE")
    if config.autotune is not None and config.resume:
        raise DataError("--resume cannot go on with an --autotune search; start again without "
                        "--resume, or resume with the options it chose instead of --autotune")
    if config.task == "multiclass" and (config.positive_label is not None
                                        or len(config.label_columns) > 1
                                        or config.line_files is not None):
        raise DataError("--task multiclass reads one label column's values as the classes; "
                        "leave out --positive-label, --positive-lines or a second "
                        "--label-column (or leave out --task)")
    if STDIN in (config.val_data, *(config.line_files or ())):
        raise DataError("only DATA can be - (stdin); give --val-data, --positive-lines and "
                        "--negative-lines as files")
    if config.stream:
        _check_stream(config)
    _check_vectorizer(config.vectorizer)


def stream_unsupported(config: TrainConfig) -> list[tuple[str, str]]:
    """What of this run --stream cannot do (yet), each with the way out: --stream refuses
    them, and they keep a run that would stream on its own in memory."""
    found = [
        (config.line_files is not None, "--positive-lines/--negative-lines",
         "convert them to one CSV file"),
        (config.weight_column is not None, "--weight-column", "leave it out"),
        (config.drop_empty_labels, "--drop-empty-labels", "remove the empty label columns"),
    ]
    return [(what, fix) for present, what, fix in found if present]


def _check_stream(config: TrainConfig) -> None:
    unsupported = stream_unsupported(config)
    if unsupported:
        what, fix = unsupported[0]
        raise DataError(f"--stream does not support {what} yet; {fix}, or train without "
                        f"--stream")


def _check_vectorizer(options: VectorizerConfig) -> None:
    low = df_value(options.min_df, whole_at_one=True)
    high = df_value(options.max_df, whole_at_one=False)
    if high == 0 or (type(low) is type(high) and high < low):
        raise DataError(f"--max-df {options.max_df:g} keeps fewer documents than --min-df "
                        f"{options.min_df:g} needs, so no term could be kept; lower --min-df "
                        f"or raise --max-df")
    if options.token_pattern not in BUILTIN_PATTERNS:
        BoundedTokenizer(options.token_pattern)  # a bad pattern fails here, before any reading


def _check_predict(config: PredictConfig) -> None:
    most = 4 * available_cores()
    if not (isinstance(config.jobs, int) and 0 <= config.jobs <= most):
        raise DataError(f"--jobs must be from 0 (one per core) to {most} (four per core), "
                        f"got {config.jobs}")
    if config.input_file is not None and config.texts:
        raise DataError("give texts as arguments or --input FILE, not both")
    for given, named in ((config.text_column, "--text-column"),
                          (config.keep_columns, "--keep-columns"),
                         (config.delimiter, "--delimiter")):
        if given and config.input_file is None:
            raise DataError(f"{named} applies to --input FILE only")
    if config.skip_header and (config.input_file is not None or config.texts not in ((), ("-",))):
        raise DataError("--skip-header applies to texts on stdin only (--input FILE has its "
                        "header read as column names; texts given as arguments have none)")


def check_read(config: TrainConfig, data: Dataset) -> None:
    """What bce-train's options ask of the data, checked once it is read (before training)."""
    if data.multiclass and config.threshold is not None:
        raise DataError(f"--threshold is for binary and multi-label models; {data.source} has "
                        f"{len(data.label_names)} classes, and a multi-class model predicts the "
                        f"most probable one: leave --threshold out")
