"""Every option of every command, stated once: a frozen dataclass field per option, carrying its
default, its help, its flags, what it accepts and how it is parsed from the command line.

How a field states an option is options.py's; from these fields come the Typer commands and
their ``--help`` (cli/commands.py), the checks before anything is read (checks.py), the
``config.json`` record, the ``--resume`` fingerprint and the checks of a ``config.json`` on
load (artifacts/schema.py). A library caller gets the same defaults (nanoGPT and fastText's
``train_supervised`` state theirs in one place the same way). What a field accepts is a
:class:`Constraint`, in the style of scikit-learn's ``_parameter_constraints``; a refusal names
the option, what it accepts, and the value given. Checks that relate two options, or that need
the file system, are checks.py's. Nothing here imports torch, scikit-learn or pandas.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from sentiment_cli.constraints import (
    Constraint,
    finite,
    interval,
    matches,
    one_of,
    optional,
    sizes,
    text_value,
    whole,
)
from sentiment_cli.options import (
    option,
    option_of,
    parse_duration,
    parse_ints,
    parse_ngram_range,
    parse_pos_weight,
    parse_stop_words,
    parse_threshold,
    parse_word,
    show_duration,
    show_ints,
)
from sentiment_cli.tokens import SENTIMENT_TOKEN_PATTERN

# Bounds of what a user can ask for, also what a model folder may hold (artifacts/schema.py).
MAX_NGRAM = 10  # word n-grams; a text of n tokens has n * MAX_NGRAM of them at most
MAX_HIDDEN = 100_000
MAX_LAYERS = 16
MAX_SEED = 2**32 - 1  # what NumPy's and scikit-learn's seeding accept
MAX_AUTOTUNE = 7 * 24 * 3600.0  # seconds: a week
MAX_PREDICT_BATCH = 1_000_000  # texts held (and scored) at once
# A linear model's and an MLP's own training defaults (TrainingConfig's docstring)
LINEAR_LR, MLP_LR = 0.02, 0.005
LINEAR_INPUT_DROPOUT, MLP_INPUT_DROPOUT = 0.0, 0.3
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
FORMATS = ("jsonl", "csv", "tsv", "label", "table")

BOOLEAN = Constraint("true or false", lambda v: isinstance(v, bool))
OPTIONAL_TEXT = optional(text_value())
DOCUMENT_FREQUENCY = Constraint("a fraction in [0, 1] or a whole document count",
                                (interval(0, 1) | interval(1, None, integer=True)).test)
THRESHOLD = interval(0, 1)
DEVICE = matches(DEVICE_PATTERN, "auto, cpu, cuda or cuda:N")


# Options several commands share, stated once.
TEXT_COLUMN = dict(help="Text column (default: detected from text, review, sentence, content, "
                   "comment, body).", flags=("--text-column", "-t"), accepts=OPTIONAL_TEXT)
DELIMITER = dict(help="Field delimiter (default: sniffed from the header: , tab ; |). Use 'tab' "
                 "for tabs.")
ENCODING = dict(help="Text encoding of the input (default UTF-8, BOM allowed); e.g. latin-1 or "
                "cp1252.")
OVERRIDE_THRESHOLD = dict(help="Override the model's stored threshold.",
                          accepts=optional(THRESHOLD))
MODEL_FOLDER = dict(help="Model folder written by bce-train.", metavar="MODEL")
DATA_HELP = ("Labeled CSV/TSV, JSON Lines or Parquet file (gzip, bz2, xz or zstd too); - reads "
             "it from stdin.")
STDIN = Path("-")  # DATA given as -: its rows come from stdin, copied into a temporary file
STDIN_NAME = "stdin"  # what messages, config.json and the default model folder call it
# DATA's copy, when DATA is - (cli/spool.py): what is read; DATA stays "-" in the --resume
# fingerprint, so that a resume from the same rows on stdin matches (their digest is compared)
DATA_FILE = dict(cli=False, resumable=True)


# --- the options ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorizerConfig:
    """CountVectorizer's options; the defaults were measured (README, "Choosing the defaults").

    scikit-learn's default token pattern, r"(?u)\\b\\w\\w+\\b", drops one-letter words, "!" and
    "?", and cuts "don't" into "don". For sentiment those matter, so the default keeps
    contractions whole ("don't", "isn't"), the split negation of tokenised corpora ("does n't"),
    single letters, and "!"/"?" as tokens of their own."""

    ngram_range: tuple[int, int] = option(
        (1, 2), "n-gram sizes MIN,MAX.", parse=parse_ngram_range, show=show_ints,
        accepts=Constraint(f"MIN,MAX with 1 <= MIN <= MAX <= {MAX_NGRAM}",
                           lambda v: len(v) == 2 and all(whole(n) for n in v)
                           and 1 <= v[0] <= v[1] <= MAX_NGRAM))
    min_df: float = option(1, "Drop terms in fewer documents (count, or fraction < 1).",
                           accepts=DOCUMENT_FREQUENCY)
    max_df: float = option(1.0, "Drop terms in more documents (fraction, or count).",
                           accepts=DOCUMENT_FREQUENCY)
    max_features: int | None = option(None, "Keep the most frequent N terms.",
                                      accepts=optional(interval(1, None, integer=True)))
    binary: bool = option(True, "Presence (1) instead of counts.", toggle=True, accepts=BOOLEAN)
    lowercase: bool = option(True, "Lowercase the texts before tokenising.", toggle=True,
                             accepts=BOOLEAN)
    fold_apostrophes: bool = option(
        True, "Read look-alike apostrophes (\u2019 \u2018 \u02bc \u2032 \u00b4 ` \uff07) as ' "
        "before tokenising: don\u2019t is don't.", toggle=True,
        accepts=BOOLEAN)
    stop_words: str | None = option(None, "'english' (negations are kept) or none.",
                                    parse=parse_stop_words, accepts=one_of(None, "english"))
    token_pattern: str = option(
        SENTIMENT_TOKEN_PATTERN, "Regular expression for tokens.",
        default_help="keeps negations, one-letter words, ! and ?",
        accepts=Constraint("a regular expression (leave it out for the default)",
                           lambda v: isinstance(v, str) and v != ""))

    def __post_init__(self) -> None:
        object.__setattr__(self, "ngram_range", tuple(self.ngram_range))


@dataclass(frozen=True)
class TrainingConfig:
    """The model and its training loop.

    Defaults measured on validation splits of the training data only (README, "Choosing the
    defaults"; benchmarks/tune.py, benchmarks/mlp_candidates.py): no hidden layer matched or
    beat every MLP we tried on rt_polarity, SST-2 and UCI, and lr 0.02 with patience 2 had the
    best validation accuracy on all three, in fewer epochs than lr 0.01. An MLP overfits at that
    rate: with ``--hidden``, lr and input dropout default to its best measured (mlp_candidates.md
    rounds 2, 3, 9), resolved here so that config.json and --resume hold the values used."""

    hidden: tuple[int, ...] = option(
        (), "Hidden layer sizes of the MLP, e.g. 64 or 64,32; 'none' for a linear model.",
        parse=lambda v: tuple(parse_ints(v, "--hidden")), show=show_ints,
        accepts=sizes(1, MAX_HIDDEN, MAX_LAYERS))
    dropout: float = option(0.5, "Dropout after hidden layers.",
                            accepts=interval(0, 1, closed="left"))
    input_dropout: float | None = option(
        None, "Word dropout in training: each term of a row is left out with this probability.",
        default_help=f"{LINEAR_INPUT_DROPOUT:g} for a linear model, {MLP_INPUT_DROPOUT:g} with "
        f"--hidden", accepts=interval(0, 1, closed="left"))
    lr: float | None = option(
        None, "Adam learning rate.",
        default_help=f"{LINEAR_LR:g} for a linear model, {MLP_LR:g} with --hidden",
        accepts=interval(0, None, closed="neither"))
    weight_decay: float = option(0.0, "L2 penalty.", accepts=interval(0, None))
    batch_size: int = option(256, "Rows per step.", accepts=interval(1, None, integer=True))
    epochs: int = option(30, "Most epochs to run.", resumable=True,
                         accepts=interval(1, None, integer=True))
    patience: int = option(2, "Stop after this many epochs without a better validation loss.",
                           accepts=interval(1, None, integer=True))
    pos_weight: str | float | None = option(
        None, "Positive-class loss weight: auto (negatives/positives), balanced (auto, then the "
        "output bias shifted back to the data's class balance), a number, or none.",
        parse=parse_pos_weight, show=lambda v: str(v or "none"),
        accepts=Constraint("auto, balanced, none or a number > 0",
                           lambda v: v in (None, "auto", "balanced")
                           or interval(0, None, "neither").test(v)))
    device: str = option("auto", "auto, cpu, cuda or cuda:N.", parse=parse_word, accepts=DEVICE,
                         resumable=True)
    seed: int = option(0, "Seed for the split, init and order.",
                       accepts=interval(0, MAX_SEED, integer=True))
    average_epochs: bool = option(
        True, "Keep the mean of all epochs' weights when its validation loss beats the best "
        "epoch's.", toggle=True, accepts=BOOLEAN)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "device", parse_word(self.device))
        if self.lr is None:
            object.__setattr__(self, "lr", MLP_LR if self.hidden else LINEAR_LR)
        if self.input_dropout is None:
            object.__setattr__(self, "input_dropout",
                               MLP_INPUT_DROPOUT if self.hidden else LINEAR_INPUT_DROPOUT)


class ReadsData:
    """What bce-train's and bce-eval's DATA (``data``, with ``data_file`` its copy when it is
    - for stdin) is read from and called."""

    data: Path | None
    data_file: Path | None

    @property
    def data_path(self) -> Path | None:
        """The file DATA's rows are read from: DATA, or its copy when DATA is - (stdin)."""
        return self.data_file or self.data

    @property
    def data_name(self) -> str | None:
        """DATA as output, reports and config.json name it."""
        return STDIN_NAME if self.data == STDIN else None if self.data is None else str(self.data)


@dataclass(frozen=True)
class TrainConfig(ReadsData):
    """One ``bce-train`` run: where the rows come from, how they are read and split, the
    features, the training, the decision rule, and the model folder."""

    data: Path | None = option(None, DATA_HELP, metavar="DATA")
    data_file: Path | None = option(None, **DATA_FILE)
    output: Path | None = option(
        None, "Model folder to write.", flags=("--output", "-o"), resumable=True,
        default_help="models/<data stem>")
    # (positive lines, negative lines): bce-train's --positive-lines and --negative-lines
    line_files: tuple[Path, Path] | None = option(None, cli=False, resumable=True)
    text_column: str | None = option(None, resumable=True, **TEXT_COLUMN)
    # bce-train's --label-column (repeated) and --label-columns a,b,c
    label_columns: tuple[str, ...] = option(
        (), cli=False, flags=("--label-column",), resumable=True,
        show=lambda v: ", ".join(map(repr, v)),
        accepts=Constraint("a column name, not empty",
                           lambda v: all(isinstance(c, str) and c for c in v)))
    positive_label: str | None = option(
        None, "Which label value is the positive class, when it is not one of "
        "1/true/yes/pos/positive; several, comma-separated (4,5), are one class against the "
        "rest.", accepts=OPTIONAL_TEXT)
    task: str = option(
        "auto", "auto: binary for two classes, multi-class for three or more (a value in 10 rows "
        "and 0.1% of them at least; rarer values are invalid rows), multi-label for several "
        "label columns; multiclass: every value of the label column is a class.",
        parse=parse_word, accepts=one_of("auto", "multiclass"))
    weight_column: str | None = option(None, "Column of per-row loss weights.",
                                       accepts=OPTIONAL_TEXT)
    drop_empty_labels: bool = option(
        False, "Multi-label: drop label columns without a positive training row instead of "
        "stopping.", accepts=BOOLEAN)
    delimiter: str | None = option(None, **DELIMITER)
    encoding: str | None = option(None, **ENCODING)
    drop_invalid: bool = option(
        False, "Skip rows with an empty text or unusable label (and count them) instead of "
        "stopping.", accepts=BOOLEAN)
    val_data: Path | None = option(None, "Separate validation file (same columns).")
    val_split: float = option(
        0.1, "Stratified validation fraction when no --val-data (0: none, no early stopping).",
        accepts=interval(0, 1, closed="left"))
    # Early stopping needs a few thousand rows, not 10% of a large file: on SST-2 (67k rows)
    # every row moved back into training counted (README, "Choosing the defaults").
    val_max_rows: int = option(
        2000, "At most this many validation rows from --val-split; the rest train (0: no cap).",
        accepts=Constraint("0 (no cap) or a whole number of at least 2",
                           (one_of(0) | interval(2, None, integer=True)).test))
    val_grouping: str = option(
        "contained", "contained: a text whose words all occur in a longer text (a sub-phrase, a "
        "duplicate) goes to the same side of the validation split; none: split rows freely.",
        parse=parse_word, accepts=one_of("contained", "none"))
    vectorizer: VectorizerConfig = field(default_factory=VectorizerConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    threshold: float | str | None = option(
        None, "Decision threshold stored in the model: a number, or auto (best --threshold-metric "
        "on validation).", parse=parse_threshold,
        show=lambda v: "default" if v is None else v if v == "auto" else f"{v:g}",
        default_help="0.5; for several label columns, auto when there are validation rows",
        resumable=True, accepts=Constraint("auto or a number in [0, 1]",
                                           lambda v: v is None or v == "auto"
                                           or THRESHOLD.test(v)))
    threshold_metric: str = option("f1", "f1 or accuracy, for --threshold auto.", parse=parse_word,
                                   resumable=True, accepts=one_of("f1", "accuracy"))
    calibrate: str = option(
        "auto", "Temperature scaling of the probabilities, fitted on the validation rows: auto "
        "(when there are any), temperature, or none.", parse=parse_word, resumable=True,
        accepts=one_of("auto", "temperature", "none"))
    force: bool = option(
        False, "Replace an existing model folder (and discard the checkpoint of an interrupted "
        "run).", flags=("--force", "-f"), resumable=True, accepts=BOOLEAN)
    resume: bool = option(
        False, "Continue an interrupted run from its last completed epoch (same data and "
        "options).", resumable=True, accepts=BOOLEAN)
    stream: bool | None = option(
        None, "Read DATA in chunks into shards on disk, for files larger than memory (default: "
        "when DATA would take over half of the free memory).", toggle=True, resumable=True,
        accepts=optional(BOOLEAN))
    report: bool = option(True, "Write report.md and plots/ into the model folder.",
                          toggle=True, resumable=True, accepts=BOOLEAN)
    autotune: float | None = option(
        None, "Search the training options (hidden sizes, learning rate, dropouts, weight decay, "
        "batch size) on the validation rows for this long, e.g. 90s, 5m or 1h; then train with "
        "the best.", parse=parse_duration, show=show_duration,
        accepts=Constraint("a duration over 0 s and at most a week (604800 s)",
                           lambda v: v is None or (finite(v) and 0 < v <= MAX_AUTOTUNE)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_columns", tuple(self.label_columns))
        if self.output is None and (self.data or self.line_files):
            stem = STDIN_NAME if self.data == STDIN else \
                (self.data or self.line_files[0]).stem  # type: ignore[index]
            object.__setattr__(self, "output", Path("models") / stem)

    @property
    def model_folder(self) -> Path:
        assert self.output is not None  # set from the data file's name when not given
        return self.output


@dataclass(frozen=True)
class PredictConfig:
    """One ``bce-predict`` run."""

    model: Path = option(**MODEL_FOLDER)
    texts: tuple[str, ...] = option(
        (), "Texts to score; none or '-' reads one text per line from stdin.", metavar="TEXT")
    input_file: Path | None = option(
        None, "CSV/TSV, JSON Lines or Parquet file to score a column of (compressed too; - "
        "reads it from stdin).", flags=("--input", "-i"))
    text_column: str | None = option(None, **TEXT_COLUMN)
    keep_columns: bool = option(False, "Put the --input file's columns, as they are, before the "
                                "prediction's (ours prefixed predicted_ on a clash).",
                                accepts=BOOLEAN)
    skip_header: bool = option(False, "Skip the first line of stdin: a header, as from "
                               "cut -f2 file.tsv.", accepts=BOOLEAN)
    output_format: str | None = option(
        None, "jsonl, csv, tsv, label or table.", flags=("--format", "-F"), parse=parse_word,
        default_help="table on a terminal, jsonl otherwise",
        accepts=Constraint("one of " + ", ".join(FORMATS), lambda v: v is None or v in FORMATS))
    threshold: float | None = option(None, **OVERRIDE_THRESHOLD)
    batch_size: int = option(1024, "Texts scored (and output flushed) per batch.",
                             accepts=interval(1, MAX_PREDICT_BATCH, integer=True))
    delimiter: str | None = option(None, **DELIMITER)
    encoding: str | None = option(None, **ENCODING)
    device: str = option("cpu", "cpu, auto, cuda or cuda:N.", parse=parse_word, accepts=DEVICE)
    jobs: int = option(0, "Worker processes for long inputs (0: one per core; 1: none).",
                       flags=("--jobs", "-j"))
    explain: int | None = option(
        None, "Add each text's logit, bias and its N terms with the largest contribution to "
        "the logit (0: all); README says how they are computed.",
        accepts=optional(interval(0, 100_000, integer=True)))
    top_k: int | None = option(
        None, "Multi-class models: also list the K most probable classes (fastText's -k).",
        flags=("--top-k", "-k"), accepts=optional(interval(1, 1000, integer=True)))

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "device", parse_word(self.device))
        if self.output_format is not None:
            object.__setattr__(self, "output_format", parse_word(self.output_format))


@dataclass(frozen=True)
class EvalConfig(ReadsData):
    """One ``bce-eval`` run."""

    model: Path = option(**MODEL_FOLDER)
    data: Path = option(help=DATA_HELP, metavar="DATA")
    data_file: Path | None = option(None, **DATA_FILE)
    text_column: str | None = option(None, **TEXT_COLUMN)
    label_columns: tuple[str, ...] = option(
        (), "Label column (default: the model's own). Repeat for a multi-label model, or use "
        "--label-columns.", flags=("--label-column", "-l"))
    positive_label: str | None = option(
        None, "The file's label value that means the model's positive class, when the file "
        "spells its labels otherwise.", accepts=OPTIONAL_TEXT)
    threshold: float | None = option(None, **OVERRIDE_THRESHOLD)
    delimiter: str | None = option(None, **DELIMITER)
    encoding: str | None = option(None, **ENCODING)
    drop_invalid: bool = option(False, "Skip rows with empty text or bad labels.",
                                accepts=BOOLEAN)
    report: Path | None = option(None, "Also write report.md and plots/ into this folder.")
    force: bool = option(False, "Replace an earlier --report folder.", flags=("--force", "-f"),
                         accepts=BOOLEAN)
    batch_size: int = option(4096, cli=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_columns", tuple(self.label_columns))


@dataclass(frozen=True)
class InfoConfig:
    """One ``bce-info`` run."""

    model: Path = option(**MODEL_FOLDER)


# --- names and values ------------------------------------------------------------------------


def flag(name: str, cls: type = TrainConfig) -> str:
    """How the command line names the option ``name`` of ``cls`` (or of the configs inside);
    a name that is no option, as it is."""
    try:
        return option_of(cls, name).name(name)
    except StopIteration:
        return name


def df_value(value: float, whole_at_one: bool) -> float | int:
    """CountVectorizer reads an int as a document count and a float as a proportion.

    From the command line both arrive as floats: --min-df 1 or 2 means a count of documents,
    while --max-df 1.0 means "all documents" (a proportion); above 1 it is a count.
    """
    if float(value).is_integer() and (value > 1 or (value == 1 and whole_at_one)):
        return int(value)
    return float(value)
