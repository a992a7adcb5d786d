"""A model folder's ``config.json``, checked field by field before anything is built from it.

A model folder from someone else is data: every field prediction uses has its type and range
checked here (n-gram sizes, thresholds in [0, 1], a temperature that calibration can produce,
labels that match the outputs), so a hostile or damaged folder is refused with one line instead
of answering wrongly, hanging or exhausting memory. Only JSON types are accepted: ``true`` is
not a number and ``1.0`` is not a count. The options recorded (n-gram range, hidden sizes,
dropout, ...) are checked by what config.py states they accept, as on the command line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sentiment_cli.config import TrainingConfig, VectorizerConfig
from sentiment_cli.data.labels import MAX_CLASSES, canonical_label
from sentiment_cli.model.architecture import ModelConfig
from sentiment_cli.options import option_of
from sentiment_cli.text import has_control

FORMAT_NAME = "sentiment-cli-model"
FORMAT_VERSION = 2  # 2 adds manifest.json (every file's size and SHA-256), checked on load
MAX_VOCABULARY = 2**31 - 1
MAX_LABELS = 10_000
MAX_TEXT = 10_000  # characters of a label name or a token pattern
MAX_STOP_WORDS = 10_000  # scikit-learn's English list has 318
# fit_temperature searches [0.05, 20]; "none" stores 1.0. Anything else was not written by us.
TEMPERATURE_RANGE = (0.05, 20.0)


class ConfigProblem(ValueError):
    """What is wrong with config.json, in words (the caller names the folder)."""


class NewerFormat(Exception):
    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


@dataclass(frozen=True)
class ModelSpec:
    """What prediction needs from config.json, checked."""

    format_version: int
    multilabel: bool
    multiclass: bool
    labels: list[str]
    thresholds: list[float]
    temperature: float
    model: ModelConfig
    vectorizer: dict[str, Any]  # ngram_range, binary, lowercase, token_pattern, stop_word_list
    label_columns: list[str]


def _field(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping:
        raise ConfigProblem(f"{where}{key} is missing")
    return mapping[key]


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigProblem(f"{name} must be an object, got {_show(value)}")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def integer(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigProblem(f"{name} must be a whole number in [{low}, {high}], got {_show(value)}")
    return value


def number(value: Any, name: str, low: float, high: float, slack: float = 0.0) -> float:
    """A JSON number in [low, high] (give or take ``slack``, relative, for rounding)."""
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value)
            or not low * (1 - slack) <= value <= high * (1 + slack)):
        raise ConfigProblem(f"{name} must be a number in [{low:g}, {high:g}], got {_show(value)}")
    return float(value)


def _boolean(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigProblem(f"{name} must be true or false, got {_show(value)}")
    return value


def _strings(value: Any, name: str, low: int, high: int, distinct: bool = True) -> list[str]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise ConfigProblem(f"{name} must be a list of {low} to {high} strings, got "
                            f"{_show(value)}")
    for item in value:
        if not isinstance(item, str) or not item or len(item) > MAX_TEXT or has_control(item):
            raise ConfigProblem(f"{name} must hold non-empty strings without control "
                                f"characters, got {_show(item)}")
    if distinct and len(set(value)) != len(value):
        raise ConfigProblem(f"{name} repeats a value")
    return list(value)


def _option(cls: type, name: str, value: Any, where: str) -> Any:
    """A value config.json records for an option, checked as the option itself is
    (config.py states what it accepts once, for the command line and for this)."""
    how = option_of(cls, name)
    if how.accepts is not None and not how.accepts.test(value):
        raise ConfigProblem(f"{where}{name} must be {how.accepts.text}, got {_show(value)}")
    return value


def _model(value: Any, n_outputs: int) -> ModelConfig:
    model = _mapping(value, "model")
    hidden = _field(model, "hidden", "model.")
    if not isinstance(hidden, list):
        raise ConfigProblem(f"model.hidden must be a list, got {_show(hidden)}")
    outputs = integer(_field(model, "n_outputs", "model."), "model.n_outputs", 1, MAX_LABELS)
    if outputs != n_outputs:
        raise ConfigProblem(f"model.n_outputs is {outputs} but the labels need {n_outputs}")
    return ModelConfig(
        vocab_size=integer(_field(model, "vocab_size", "model."), "model.vocab_size", 1,
                           MAX_VOCABULARY),
        hidden=_option(TrainingConfig, "hidden", hidden, "model."),
        dropout=float(_option(TrainingConfig, "dropout", _field(model, "dropout", "model."),
                              "model.")),
        n_outputs=outputs,
    )


def _vectorizer(value: Any) -> dict[str, Any]:
    params = _mapping(value, "vectorizer")
    ngrams = _field(params, "ngram_range", "vectorizer.")
    if not isinstance(ngrams, list):
        raise ConfigProblem(f"vectorizer.ngram_range must be [MIN, MAX], got {_show(ngrams)}")
    pattern = _field(params, "token_pattern", "vectorizer.")
    if isinstance(pattern, str) and len(pattern) > MAX_TEXT:
        raise ConfigProblem(f"vectorizer.token_pattern is longer than {MAX_TEXT} characters")
    stop_words = params.get("stop_word_list")
    if stop_words is not None:
        stop_words = _strings(stop_words, "vectorizer.stop_word_list", 0, MAX_STOP_WORDS,
                              distinct=False)
    checked = {name: _option(VectorizerConfig, name, _field(params, name, "vectorizer."),
                             "vectorizer.")
               for name in ("ngram_range", "binary", "lowercase", "token_pattern")}
    # absent from folders written before it
    folded = _boolean(params.get("fold_apostrophes", False), "vectorizer.fold_apostrophes")
    return {**checked, "ngram_range": tuple(ngrams), "stop_word_list": stop_words,
            "fold_apostrophes": folded}


def parse_config(config: Any) -> ModelSpec:
    """The checked fields of a config.json; :class:`ConfigProblem` or :class:`NewerFormat`."""
    config = _mapping(config, "config.json")
    if config.get("format") != FORMAT_NAME:
        raise ConfigProblem(f"its format is {_show(config.get('format'))}, not {FORMAT_NAME!r}")
    version = _field(config, "format_version", "")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise NewerFormat(version)
    version = integer(version, "format_version", 1, FORMAT_VERSION)
    # The first, binary-only writer did not record the task; format 2 always does.
    task = config.get("task", "binary") if version == 1 else _field(config, "task", "")
    if task not in ("binary", "multilabel", "multiclass"):
        raise ConfigProblem(f"task must be binary, multilabel or multiclass, got {_show(task)}")
    multilabel, multiclass = task == "multilabel", task == "multiclass"
    fewest, most = {"binary": (2, 2), "multilabel": (1, MAX_LABELS),
                    "multiclass": (3, MAX_CLASSES)}[task]
    labels = _strings(_field(config, "labels", ""), "labels", fewest, most)
    if multiclass and len({canonical_label(name) for name in labels}) != len(labels):
        raise ConfigProblem("labels must be distinct classes")
    n_outputs = 1 if task == "binary" else len(labels)
    thresholds = _field(config, "thresholds", "")
    if not isinstance(thresholds, list) or len(thresholds) != n_outputs:
        raise ConfigProblem(f"thresholds must be a list of {n_outputs} numbers, one per output")
    low, high = TEMPERATURE_RANGE
    label_columns: list[str] = []
    if multilabel:
        data = _mapping(_field(config, "data", ""), "data")
        label_columns = _strings(_field(data, "label_columns", "data."), "data.label_columns",
                                 n_outputs, n_outputs)
    training = config.get("training", {})
    _mapping(training, "training")
    return ModelSpec(
        format_version=version,
        multilabel=multilabel,
        multiclass=multiclass,
        labels=labels,
        thresholds=[number(t, "thresholds", 0.0, 1.0) for t in thresholds],
        temperature=number(_field(config, "temperature", ""), "temperature", low, high,
                            slack=1e-9),
        model=_model(_field(config, "model", ""), n_outputs),
        vectorizer=_vectorizer(_field(config, "vectorizer", "")),
        label_columns=label_columns,
    )
