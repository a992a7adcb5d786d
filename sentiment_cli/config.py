"""Every option of every command: frozen dataclasses, their defaults stated once, and one table
of constraints per class, checked by :func:`check` before anything is read.

The defaults here are what ``--help`` shows, what ``config.json`` and ``report.md`` record, and
what a library caller gets (nanoGPT and fastText's ``train_supervised`` state theirs in one
place the same way). Each entry of a ``CONSTRAINTS`` table names what a field accepts, in the
style of scikit-learn's ``_parameter_constraints``; a refusal names the option, what it
accepts, and the value given. Checks that relate two options, or that need the file system,
follow the table in ``check``. Nothing here imports torch, scikit-learn or pandas.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar

from sentiment_cli.constraints import (
    Constraint,
    interval,
    matches,
    one_of,
    optional,
    sizes,
    text_value,
)
from sentiment_cli.errors import DataError
from sentiment_cli.tokens import BUILTIN_PATTERNS, SENTIMENT_TOKEN_PATTERN, BoundedTokenizer

# Bounds of what a user can ask for, also what a model folder may hold (artifacts/schema.py).
MAX_NGRAM = 10  # word n-grams; a text of n tokens has n * MAX_NGRAM of them at most
MAX_HIDDEN = 100_000
MAX_LAYERS = 16
MAX_SEED = 2**32 - 1  # what NumPy's and scikit-learn's seeding accept
MAX_PREDICT_BATCH = 1_000_000  # texts held (and scored) at once
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")

# scikit-learn's default pattern, r"(?u)\b\w\w+\b", drops one-letter words, "!" and "?", and cuts
# "don't" into "don". For sentiment those matter, so the default keeps contractions whole
# ("don't", "isn't"), the split negation of tokenised corpora ("does n't"), single letters, and
# "!"/"?" as tokens of their own. README ("Choosing the defaults") has the measurements.


BOOLEAN = Constraint("true or false", lambda v: isinstance(v, bool))
OPTIONAL_TEXT = optional(text_value())
DOCUMENT_FREQUENCY = interval(0, 1) | interval(1, None, integer=True)
THRESHOLD = interval(0, 1)


# --- the options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorizerConfig:
    """CountVectorizer's options; the defaults were measured (README, "Choosing the defaults")."""

    ngram_range: tuple[int, int] = (1, 2)
    min_df: float = 1
    max_df: float = 1.0
    max_features: int | None = None
    binary: bool = True
    lowercase: bool = True
    stop_words: str | None = None  # None or "english" (negations kept)
    token_pattern: str = SENTIMENT_TOKEN_PATTERN

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "ngram_range": Constraint(
            f"MIN,MAX with 1 <= MIN <= MAX <= {MAX_NGRAM}",
            lambda v: len(v) == 2 and all(isinstance(n, int) for n in v)
            and 1 <= v[0] <= v[1] <= MAX_NGRAM),
        "min_df": Constraint("a fraction in [0, 1] or a whole document count",
                             DOCUMENT_FREQUENCY.test),
        "max_df": Constraint("a fraction in [0, 1] or a whole document count",
                             DOCUMENT_FREQUENCY.test),
        "max_features": optional(interval(1, None, integer=True)),
        "binary": BOOLEAN,
        "lowercase": BOOLEAN,
        "stop_words": one_of(None, "english"),
        "token_pattern": Constraint("a regular expression (leave it out for the default)",
                                    lambda v: isinstance(v, str) and v != ""),
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "ngram_range", tuple(self.ngram_range))


@dataclass(frozen=True)
class TrainingConfig:
    """The model and its training loop.

    Defaults measured on validation splits of the training data only (README, "Choosing the
    defaults"; benchmarks/tune.py): no hidden layer matched or beat every MLP we tried on
    rt_polarity, SST-2 and UCI, and lr 0.02 with patience 2 had the best validation accuracy on
    all three, in fewer epochs than lr 0.01."""

    hidden: tuple[int, ...] = ()
    dropout: float = 0.2
    lr: float = 0.02
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 30
    patience: int = 2
    pos_weight: str | float | None = None  # None, "auto", "balanced" or a number
    device: str = "auto"
    seed: int = 0
    # keep the mean of all epochs' weights when its validation loss beats the best epoch's
    average_epochs: bool = True

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "hidden": sizes(1, MAX_HIDDEN, MAX_LAYERS),
        "dropout": interval(0, 1, closed="left"),
        "lr": interval(0, None, closed="neither"),
        "weight_decay": interval(0, None),
        "batch_size": interval(1, None, integer=True),
        "epochs": interval(1, None, integer=True),
        "patience": interval(1, None, integer=True),
        "pos_weight": Constraint(
            "auto, balanced, none or a number > 0",
            lambda v: v in (None, "auto", "balanced") or interval(0, None, "neither").test(v)),
        "device": matches(DEVICE_PATTERN, "auto, cpu, cuda or cuda:N"),
        "seed": interval(0, MAX_SEED, integer=True),
        "average_epochs": BOOLEAN,
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "device", self.device.strip().lower())


@dataclass(frozen=True)
class TrainConfig:
    """One ``bce-train`` run: where the rows come from, how they are read and split, the
    features, the training, the decision rule, and the model folder."""

    data: Path | None = None  # a CSV/TSV file, or None with line_files
    output: Path | None = None  # None: models/<the data file's stem>
    line_files: tuple[Path, Path] | None = None  # (positive lines, negative lines)
    text_column: str | None = None
    label_columns: tuple[str, ...] = ()
    positive_label: str | None = None
    weight_column: str | None = None
    delimiter: str | None = None
    encoding: str | None = None
    drop_invalid: bool = False
    drop_empty_labels: bool = False
    val_data: Path | None = None
    val_split: float = 0.1
    # Early stopping needs a few thousand rows, not 10% of a large file: on SST-2 (67k rows)
    # every row moved back into training counted (README, "Choosing the defaults").
    val_max_rows: int = 2000
    val_grouping: str = "contained"  # keep texts contained in others with them, or "none"
    vectorizer: VectorizerConfig = field(default_factory=VectorizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    threshold: float | str = 0.5  # a number, or "auto" (tuned on validation)
    threshold_metric: str = "f1"
    calibrate: str = "auto"  # "temperature", "none", or "auto" (temperature when validating)
    force: bool = False
    resume: bool = False
    report: bool = True  # report.md and plots/ in the model folder
    stream: bool | None = None  # read in chunks into shards on disk; None: when too big

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "text_column": OPTIONAL_TEXT,
        "label_columns": Constraint("a column name, not empty",
                                    lambda v: all(isinstance(c, str) and c for c in v)),
        "positive_label": OPTIONAL_TEXT,
        "weight_column": OPTIONAL_TEXT,
        "drop_invalid": BOOLEAN,
        "drop_empty_labels": BOOLEAN,
        "val_split": interval(0, 1, closed="left"),
        "val_max_rows": Constraint("0 (no cap) or a whole number of at least 2",
                                   (one_of(0) | interval(2, None, integer=True)).test),
        "val_grouping": one_of("contained", "none"),
        "threshold": Constraint("auto or a number in [0, 1]",
                                lambda v: v == "auto" or THRESHOLD.test(v)),
        "threshold_metric": one_of("f1", "accuracy"),
        "calibrate": one_of("auto", "temperature", "none"),
        "force": BOOLEAN,
        "resume": BOOLEAN,
        "report": BOOLEAN,
        "stream": optional(BOOLEAN),
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_columns", tuple(self.label_columns))
        if self.output is None and (self.data or self.line_files):
            stem = (self.data or self.line_files[0]).stem  # type: ignore[index]
            object.__setattr__(self, "output", Path("models") / stem)

    @property
    def model_folder(self) -> Path:
        assert self.output is not None  # set from the data file's name when not given
        return self.output


@dataclass(frozen=True)
class PredictConfig:
    """One ``bce-predict`` run."""

    model: Path
    texts: tuple[str, ...] = ()  # none, or ("-",): one text per line from stdin
    input_file: Path | None = None
    text_column: str | None = None
    keep_columns: bool = False
    output_format: str | None = None  # None: table on a terminal, jsonl otherwise
    threshold: float | None = None  # None: the model's own
    batch_size: int = 1024
    delimiter: str | None = None
    encoding: str | None = None
    device: str = "cpu"
    jobs: int = 0  # 0: one worker per core

    FORMATS: ClassVar[tuple[str, ...]] = ("jsonl", "csv", "tsv", "label", "table")
    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "output_format": Constraint("one of " + ", ".join(FORMATS),
                                    lambda v: v is None or v in PredictConfig.FORMATS),
        "threshold": optional(THRESHOLD),
        "batch_size": interval(1, MAX_PREDICT_BATCH, integer=True),
        "device": matches(DEVICE_PATTERN, "auto, cpu, cuda or cuda:N"),
        "keep_columns": BOOLEAN,
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "device", self.device.strip().lower())
        if self.output_format is not None:
            object.__setattr__(self, "output_format", self.output_format.strip().lower())


@dataclass(frozen=True)
class EvalConfig:
    """One ``bce-eval`` run."""

    model: Path
    data: Path
    text_column: str | None = None
    label_columns: tuple[str, ...] = ()
    positive_label: str | None = None  # the file's value for the model's positive class
    threshold: float | None = None
    delimiter: str | None = None
    encoding: str | None = None
    drop_invalid: bool = False
    report: Path | None = None  # also write report.md and plots/ here
    force: bool = False
    batch_size: int = 4096

    CONSTRAINTS: ClassVar[dict[str, Constraint]] = {
        "threshold": optional(THRESHOLD),
        "positive_label": OPTIONAL_TEXT,
        "drop_invalid": BOOLEAN,
        "force": BOOLEAN,
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_columns", tuple(self.label_columns))


# --- checking ---------------------------------------------------------------------------------

# Options whose flag is not "--" plus the field's name with dashes.
FLAGS = {"hidden": "--hidden", "data": "DATA", "model": "MODEL", "input_file": "--input",
         "output_format": "--format", "report": "--report", "label_columns": "--label-column"}


def flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _shown(name: str, value: Any) -> str:
    if name == "hidden" or name == "ngram_range":
        return ",".join(map(str, value)) or "none"
    if name == "label_columns":
        return ", ".join(map(repr, value))
    return "none" if value is None else repr(value) if isinstance(value, str) else f"{value}"


def check_fields(config: Any) -> None:
    """Every field of ``config`` (and of the configs inside it) against its class's table."""
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            check_fields(value)
            continue
        constraint = type(config).CONSTRAINTS.get(item.name)
        if constraint is not None and not constraint.test(value):
            raise DataError(f"{flag(item.name)} must be {constraint.text}, "
                            f"got {_shown(item.name, value)}")


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
    from sentiment_cli.data.reading import check_delimiter, check_encoding, check_path

    check_encoding(config.encoding)
    check_delimiter(config.delimiter)
    paths = ([config.data, config.val_data, *(config.line_files or ())]
             if isinstance(config, TrainConfig) else
             [config.input_file] if isinstance(config, PredictConfig) else [config.data])
    for path in paths:
        if path is not None:
            check_path(Path(path))
    if isinstance(config, TrainConfig) and config.data is not None and \
            config.val_data is not None and os.path.samefile(config.data, config.val_data):
        raise DataError("--val-data is the training file itself; validation needs other rows "
                        "(leave --val-data out to split some off)")


def _check_train(config: TrainConfig) -> None:
    if (config.data is None) == (config.line_files is None):
        raise DataError("give one data file, or --positive-lines and --negative-lines (not both)")
    needs_val = config.threshold == "auto" or config.calibrate == "temperature"
    if needs_val and config.val_split == 0 and config.val_data is None:
        raise DataError("--threshold auto and --calibrate temperature need validation rows; "
                        "use --val-split > 0 or --val-data FILE")
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
    from sentiment_cli.parallel import available_cores

    most = 4 * available_cores()
    if not (isinstance(config.jobs, int) and 0 <= config.jobs <= most):
        raise DataError(f"--jobs must be from 0 (one per core) to {most} (four per core), "
                        f"got {config.jobs}")
    if config.input_file is not None and config.texts:
        raise DataError("give texts as arguments or --input FILE, not both")
    for given, option in ((config.text_column, "--text-column"),
                          (config.keep_columns, "--keep-columns"),
                          (config.delimiter, "--delimiter")):
        if given and config.input_file is None:
            raise DataError(f"{option} applies to --input FILE only")


def df_value(value: float, whole_at_one: bool) -> float | int:
    """CountVectorizer reads an int as a document count and a float as a proportion.

    From the command line both arrive as floats: --min-df 1 or 2 means a count of documents,
    while --max-df 1.0 means "all documents" (a proportion); above 1 it is a count.
    """
    if float(value).is_integer() and (value > 1 or (value == 1 and whole_at_one)):
        return int(value)
    return float(value)
