"""Scoring texts with a loaded model folder, in batches, and writing the result rows.

On CPU the forward pass is NumPy/SciPy (``architecture.forward_numpy``), so scoring never imports
torch; ``--device cuda`` runs the torch module instead.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, BinaryIO, TextIO

import numpy as np

from sentiment_cli.artifacts.bundle import Bundle
from sentiment_cli.errors import DataError
from sentiment_cli.workers import available_cores, fork_context, quiet_signals, signals_held

__all__ = ["FORMATS", "Predictor", "RowWriter", "Scores", "available_cores", "batched",
           "read_lines", "records", "score_stream"]

FORMATS = ("jsonl", "csv", "tsv", "label", "table")


@dataclass
class Scores:
    """Per text: the probability of each output and whether it is at or above its threshold."""

    probabilities: np.ndarray  # (n, outputs)
    chosen: np.ndarray  # (n, outputs) bool


class Predictor:
    """Texts -> positive-class probabilities (temperature applied) -> labels at the thresholds."""

    def __init__(self, bundle: Bundle, threshold: float | None = None,
                 device: str = "cpu") -> None:
        if threshold is not None and not 0 <= threshold <= 1:
            raise DataError(f"--threshold must be in [0, 1], got {threshold}")
        self.bundle = bundle
        self.device = None
        if device.strip().lower() != "cpu":
            from sentiment_cli.training.loop import resolve_device

            resolved = resolve_device(device)
            if resolved.type != "cpu":
                self.device = resolved
                bundle.model.to(resolved)
        n_outputs = bundle.model_config.n_outputs
        self.thresholds = np.asarray(
            bundle.thresholds if threshold is None else [threshold] * n_outputs, dtype=np.float64
        )

    @property
    def multilabel(self) -> bool:
        return self.bundle.multilabel

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        from sentiment_cli.features import transform
        from sentiment_cli.model.architecture import forward_numpy

        matrix = transform(self.bundle.vectorizer, texts)
        if self.device is None:
            return forward_numpy(self.bundle.weights, self.bundle.model_config, matrix)
        from sentiment_cli.model.module import predict_logits

        return predict_logits(self.bundle.model, matrix, self.device)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), outputs) probabilities; an empty text gets the model's bias alone."""
        from sentiment_cli.metrics import sigmoid

        return sigmoid(self.logits(texts) / self.bundle.temperature)

    def score(self, texts: Sequence[str]) -> Scores:
        prob = self.probabilities(texts)
        return Scores(prob, prob >= self.thresholds[None, :])

    def rows(
        self, texts: Sequence[str], extra: Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """One output record per text, in input order."""
        return records(texts, self.score(texts), self.bundle.labels, self.multilabel, extra)


def records(
    texts: Sequence[str],
    scores: Scores,
    labels: list[str],
    multilabel: bool,
    extra: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    prob = scores.probabilities
    for i, text in enumerate(texts):
        record: dict[str, Any] = dict(extra[i]) if extra is not None else {}
        record["text"] = text
        if multilabel:
            record["labels"] = [name for j, name in enumerate(labels) if scores.chosen[i, j]]
            record["probabilities"] = {
                name: round(float(prob[i, j]), 6) for j, name in enumerate(labels)
            }
        else:
            record["label"] = labels[1] if scores.chosen[i, 0] else labels[0]
            record["probability"] = round(float(prob[i, 0]), 6)
        out.append(record)
    return out


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


class RowWriter:
    """Writes scored batches as jsonl, csv, tsv or bare labels; a header once; flushed per batch.

    The common binary jsonl row is formatted directly (about 3x faster than ``json.dumps`` of a
    dict, and the same JSON).
    """

    def __init__(self, stream: TextIO, fmt: str, labels: list[str], multilabel: bool) -> None:
        if fmt not in ("jsonl", "csv", "tsv", "label"):
            raise DataError(f"--format must be one of jsonl, csv, tsv, label, got {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.labels = labels
        self.multilabel = multilabel
        self._json_labels = [encode_basestring(name) for name in labels]
        self._csv: Any = None

    def write(self, texts: Sequence[str], scores: Scores,
              extra: Sequence[dict[str, Any]] | None = None) -> None:
        if self.fmt == "jsonl":
            self._write_jsonl(texts, scores, extra)
        elif self.fmt == "label":
            self._write_labels(scores)
        else:
            self._write_table(texts, scores, extra)
        self.stream.flush()

    def _write_jsonl(self, texts: Sequence[str], scores: Scores,
                     extra: Sequence[dict[str, Any]] | None) -> None:
        if self.multilabel or extra is not None:
            rows = records(texts, scores, self.labels, self.multilabel, extra)
            self.stream.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            return
        names = self._json_labels
        self.stream.write("".join(
            f'{{"text": {encode_basestring(text)}, "label": {names[int(chosen)]}, '
            f'"probability": {round(float(p), 6)}}}\n'
            for text, chosen, p in zip(texts, scores.chosen[:, 0], scores.probabilities[:, 0],
                                       strict=True)
        ))

    def _write_labels(self, scores: Scores) -> None:
        if self.multilabel:
            lines = (",".join(n for n, c in zip(self.labels, row, strict=True) if c)
                     for row in scores.chosen)
        else:
            lines = (self.labels[int(c)] for c in scores.chosen[:, 0])
        self.stream.write("".join(line + "\n" for line in lines))

    def _write_table(self, texts: Sequence[str], scores: Scores,
                     extra: Sequence[dict[str, Any]] | None) -> None:
        extra_keys = list(extra[0]) if extra else []
        if self.multilabel:
            header = [*extra_keys, "text", "labels", *self.labels]
        else:
            header = [*extra_keys, "text", "label", "probability"]
        prob = scores.probabilities
        rows = []
        for i, text in enumerate(texts):
            before = [extra[i].get(k, "") for k in extra_keys] if extra else []
            if self.multilabel:
                chosen = ";".join(n for n, c in zip(self.labels, scores.chosen[i], strict=True)
                                  if c)
                rows.append([*before, text, chosen, *(round(float(p), 6) for p in prob[i])])
            else:
                label = self.labels[int(scores.chosen[i, 0])]
                rows.append([*before, text, label, round(float(prob[i, 0]), 6)])
        if self.fmt == "tsv":
            self._write_tsv(header, rows)
            return
        if self._csv is None:
            self._csv = csv.writer(self.stream, lineterminator="\n")
            self._csv.writerow(header)
        self._csv.writerows(rows)

    def _write_tsv(self, header: list[str], rows: list[list[Any]]) -> None:
        """TSV as cut and awk expect it: no quoting; tabs and line breaks in a field become
        spaces, so every row stays one line with the same number of fields."""
        if self._csv is None:
            self._csv = True
            rows = [header, *rows]
        self.stream.write("".join(
            "\t".join(_tsv_field(value) for value in row) + "\n" for row in rows
        ))


def _tsv_field(value: Any) -> str:
    text = str(value)
    if "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\r\n", " ").translate(_TSV_SPACES)
    return text


_TSV_SPACES = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


_WORKER_PREDICTOR: Predictor | None = None  # inherited by forked scoring workers


def _score_in_worker(texts: list[str]) -> Scores:
    assert _WORKER_PREDICTOR is not None
    return _WORKER_PREDICTOR.score(texts)


def score_stream(
    predictor: Predictor,
    batches: Iterable[tuple[list[str], Any]],
    jobs: int = 1,
) -> Iterator[tuple[list[str], Any, Scores]]:
    """Score batches in input order. With ``jobs`` > 1 and more than one batch, the
    vectorizing and scoring (pure-Python tokenising is most of the cost) run in that many
    forked worker processes, with at most 2 x jobs batches in flight, so memory stays flat on
    endless input. The first batch is scored in-process, so short inputs never start workers."""
    global _WORKER_PREDICTOR

    iterator = iter(batches)
    first = next(iterator, None)
    if first is None:
        return
    yield first[0], first[1], predictor.score(first[0])
    second = next(iterator, None)
    if second is None:
        return
    context = fork_context()
    if jobs <= 1 or predictor.device is not None or context is None:
        for chunk, extra in itertools.chain([second], iterator):
            yield chunk, extra, predictor.score(chunk)
        return
    _WORKER_PREDICTOR = predictor
    pending: deque[tuple[list[str], Any, Future[Scores]]] = deque()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=quiet_signals,
                             initargs=(os.getpid(),)) as pool:
        try:
            with signals_held():  # the workers are forked at the first submit
                pending.append((second[0], second[1], pool.submit(_score_in_worker, second[0])))
            for chunk, extra in iterator:
                pending.append((chunk, extra, pool.submit(_score_in_worker, chunk)))
                if len(pending) >= 2 * jobs:
                    chunk, extra, future = pending.popleft()
                    yield chunk, extra, future.result()
            while pending:
                chunk, extra, future = pending.popleft()
                yield chunk, extra, future.result()
        finally:
            for _, _, future in pending:
                future.cancel()
