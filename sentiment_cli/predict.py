"""Scoring texts with a loaded model folder: where the texts come from (arguments, stdin
lines, a file's column), batches in input order, in worker processes on long inputs.

On CPU the forward pass is NumPy/SciPy (``architecture.forward_numpy``), so scoring never imports
torch; ``--device cuda`` runs the torch module instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from sentiment_cli.artifacts.bundle import Bundle
from sentiment_cli.config import PredictConfig
from sentiment_cli.data.files import check_encoding, read_table
from sentiment_cli.data.reading import TEXT_COLUMN_NAMES, pick_column
from sentiment_cli.device import resolve_device
from sentiment_cli.errors import DataError
from sentiment_cli.metrics import class_probabilities, sigmoid
from sentiment_cli.model.architecture import forward_numpy
from sentiment_cli.parallel import ordered_map, pool

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Predictor", "Scores", "batched", "input_batches", "read_lines", "records",
           "score_stream"]


@dataclass
class Scores:
    """Per text: the probability of each output and whether it is at or above its threshold."""

    probabilities: np.ndarray  # (n, outputs)
    chosen: np.ndarray  # (n, outputs) bool
    explanations: list[dict[str, Any]] | None = None  # with --explain: see explain.py


def checked_top_k(bundle: Bundle, top_k: int | None) -> int | None:
    """--top-k for this model: multi-class only, at most its number of classes."""
    if top_k is not None and bundle.task != "multiclass":
        raise DataError(f"--top-k lists the most probable classes of a multi-class model; "
                        f"{bundle.path} is a {bundle.task} model (leave --top-k out)")
    return None if top_k is None else min(top_k, len(bundle.labels))


class Predictor:
    """Texts -> positive-class probabilities (temperature applied) -> labels at the thresholds."""

    def __init__(self, bundle: Bundle, threshold: float | None = None,
                 device: str = "cpu", top_k: int | None = None,
                 explain: int | None = None) -> None:
        self.bundle = bundle
        self.top_k = checked_top_k(bundle, top_k)
        if explain is not None and bundle.task == "multilabel":
            raise DataError(f"--explain explains one output per text; {bundle.path} is a "
                            f"multi-label model (leave --explain out)")
        self.explain = explain
        self._terms: np.ndarray | None = None
        self.device = None
        if device.strip().lower() != "cpu":
            resolved = resolve_device(device)
            if resolved.type != "cpu":
                self.device = resolved
                bundle.model.to(resolved)
        n_outputs = bundle.model_config.n_outputs
        if threshold is not None and bundle.task == "multiclass":
            raise DataError(f"{bundle.path} is a multi-class model: it picks the most probable "
                            f"class, with no threshold; leave --threshold out")
        self.thresholds = np.asarray(
            bundle.thresholds if threshold is None else [threshold] * n_outputs, dtype=np.float64
        )

    @property
    def task(self) -> str:
        return self.bundle.task

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        return self._logits(self.bundle.vectorizer.transform(texts))

    def _logits(self, matrix: sp.csr_matrix) -> np.ndarray:
        if self.device is None:
            return forward_numpy(self.bundle.weights, self.bundle.model_config, matrix)
        from sentiment_cli.model.module import predict_logits

        return predict_logits(self.bundle.model, matrix, self.device)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), outputs) probabilities; an empty text gets the model's bias alone."""
        return sigmoid(self.logits(texts) / self.bundle.temperature)

    def score(self, texts: Sequence[str]) -> Scores:
        matrix = self.bundle.vectorizer.transform(texts)  # once, for scores and explanations
        prob = sigmoid(self._logits(matrix) / self.bundle.temperature)
        if self.task == "multiclass":  # the classes' probabilities, normalised; the most likely
            prob = class_probabilities(prob)
            scores = Scores(prob, prob.argmax(axis=1)[:, None] == np.arange(prob.shape[1]))
        else:
            scores = Scores(prob, prob >= self.thresholds[None, :])
        if self.explain is not None:
            scores.explanations = self._explained(matrix, scores)
        return scores

    def _explained(self, matrix: sp.csr_matrix, scores: Scores) -> list[dict[str, Any]]:
        from sentiment_cli.explain import explain_rows

        if self._terms is None:
            self._terms = self.bundle.vectorizer.get_feature_names_out()
        outputs = scores.chosen.argmax(axis=1) if self.task == "multiclass" else \
            np.zeros(matrix.shape[0], dtype=np.int64)
        return explain_rows(self.bundle.weights, self.bundle.model_config, matrix, outputs,
                            self._terms, self.bundle.temperature, self.explain or 0)

    def rows(
        self, texts: Sequence[str], extra: Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """One output record per text, in input order."""
        return records(texts, self.score(texts), self.bundle.labels, self.task, extra,
                       self.top_k)


def top_classes(prob: np.ndarray, k: int) -> np.ndarray:
    """The columns of the ``k`` most probable classes of each row, most probable first."""
    return np.argsort(-prob, axis=1, kind="stable")[:, :k]


def records(
    texts: Sequence[str],
    scores: Scores,
    labels: list[str],
    task: str,
    extra: Sequence[dict[str, Any]] | None = None,
    top_k: int | None = None,
) -> list[dict[str, Any]]:
    """One output record per text: binary, the label and the positive class's probability;
    multi-class, the most probable class, its probability and every class's (and with
    ``top_k``, the k most probable as ``top``); multi-label, the labels at their thresholds and
    every label's probability."""
    out: list[dict[str, Any]] = []
    prob = scores.probabilities
    for i, text in enumerate(texts):
        record: dict[str, Any] = {"text": text}
        if task == "multiclass":
            best = int(np.argmax(scores.chosen[i]))
            record["label"] = labels[best]
            record["probability"] = round(float(prob[i, best]), 6)
            record["probabilities"] = {
                name: round(float(prob[i, j]), 6) for j, name in enumerate(labels)
            }
            if top_k is not None:
                record["top"] = [{"label": labels[j], "probability": round(float(prob[i, j]), 6)}
                                 for j in top_classes(prob[i : i + 1], top_k)[0]]
        elif task == "multilabel":
            record["labels"] = [name for j, name in enumerate(labels) if scores.chosen[i, j]]
            record["probabilities"] = {
                name: round(float(prob[i, j]), 6) for j, name in enumerate(labels)
            }
        else:
            record["label"] = labels[1] if scores.chosen[i, 0] else labels[0]
            record["probability"] = round(float(prob[i, 0]), 6)
        if scores.explanations is not None:
            record.update(scores.explanations[i])
        if extra is not None:  # the user's columns, then ours but the text (theirs has it)
            record = {**extra[i], **{output_name(key, extra[i]): value
                                     for key, value in record.items() if key != "text"}}
        out.append(record)
    return out


KEPT_PREFIX = "predicted_"


def output_name(name: str, kept: Collection[str]) -> str:
    """The name of one of our output columns beside the user's ``kept`` columns
    (``--keep-columns``): ``predicted_`` in front where theirs has the name already."""
    while name in kept:
        name = KEPT_PREFIX + name
    return name


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def read_lines(stream: BinaryIO, encoding: str) -> Iterator[str]:
    """Lines of a byte stream, decoded one at a time, without their line ending.

    Blank lines are kept, so output line N answers input line N.
    """
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode(encoding)
        except UnicodeError:
            raise DataError(
                f"stdin line {number} is not valid {encoding} text; pass --encoding latin-1 "
                f"(or the input's encoding)"
            ) from None
        yield line.rstrip("\r\n")


_WORKER_PREDICTOR: Predictor | None = None  # in a scoring worker: the model it was given


def _install_predictor(predictor: Predictor) -> None:
    global _WORKER_PREDICTOR
    _WORKER_PREDICTOR = predictor


def _score_in_worker(batch: tuple[list[str], Any]) -> Scores:
    assert _WORKER_PREDICTOR is not None
    return _WORKER_PREDICTOR.score(batch[0])


def score_stream(
    predictor: Predictor,
    batches: Iterable[tuple[list[str], Any]],
    jobs: int = 1,
) -> Iterator[tuple[list[str], Any, Scores]]:
    """Score batches in input order. With ``jobs`` > 1 and more than one batch, the
    vectorizing and scoring (pure-Python tokenising is most of the cost) run in that many
    worker processes (:mod:`.parallel`), with at most 2 x jobs batches in flight, so memory
    stays flat on endless input. The first batch is scored here, so a short input never starts
    a worker; on CUDA every batch is."""
    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        return
    yield first[0], first[1], predictor.score(first[0])
    second = next(iterator, None)
    if second is None:
        return
    rest = itertools.chain([second], iterator)
    if jobs <= 1 or predictor.device is not None:
        for chunk, extra in rest:
            yield chunk, extra, predictor.score(chunk)
        return
    with pool(jobs, initializer=_install_predictor, initargs=(predictor,)) as executor:
        for (chunk, extra), scores in ordered_map(executor, _score_in_worker, rest, 2 * jobs):
            yield chunk, extra, scores


Batches = Iterator[tuple[list[str], list[dict[str, Any]] | None]]


def input_batches(config: PredictConfig, stdin: BinaryIO) -> Batches:
    """The texts ``config`` names, in batches of ``config.batch_size``, each with the other
    columns of its rows (``--keep-columns``) or None: the arguments, a file's column, or one
    text per line of ``stdin``."""
    if config.input_file is not None:
        return _file_batches(config.input_file, config.text_column, config.keep_columns,
                             config.delimiter, config.encoding, config.batch_size)
    if config.texts and config.texts != ("-",):
        return ((chunk, None) for chunk in batched(config.texts, config.batch_size))
    lines = read_lines(stdin, check_encoding(config.encoding, line_by_line=True))
    if config.skip_header:
        lines = islice(lines, 1, None)
    return ((chunk, None) for chunk in batched(lines, config.batch_size))


def _file_batches(path: Path, text_column: str | None, keep_columns: bool,
                  delimiter: str | None, encoding: str | None, batch_size: int) -> Batches:
    frame = read_table(path, delimiter=delimiter, encoding=encoding)
    column = pick_column(frame, text_column, TEXT_COLUMN_NAMES, "text", "--text-column", path)
    texts = frame[column].tolist()
    for start in range(0, len(texts), batch_size):
        extra = (frame.iloc[start : start + batch_size].to_dict(orient="records")
                 if keep_columns else None)
        yield texts[start : start + batch_size], extra
