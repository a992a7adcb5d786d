"""Scoring texts with a loaded model folder, in batches, and formatting the result rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, TextIO

import numpy as np

from .bundle import Bundle
from .errors import DataError

FORMATS = ("jsonl", "csv", "tsv", "label", "table")


class Predictor:
    """Texts -> positive-class probabilities (temperature applied) -> labels at the thresholds."""

    def __init__(self, bundle: Bundle, threshold: float | None = None,
                 device: str = "cpu") -> None:
        from .train import resolve_device

        if threshold is not None and not 0 <= threshold <= 1:
            raise DataError(f"--threshold must be in [0, 1], got {threshold}")
        self.bundle = bundle
        self.device = resolve_device(device)
        self.model = bundle.model.to(self.device)
        n_outputs = bundle.model.config.n_outputs
        self.thresholds = np.asarray(
            bundle.thresholds if threshold is None else [threshold] * n_outputs, dtype=np.float64
        )

    @property
    def multilabel(self) -> bool:
        return self.bundle.multilabel

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), outputs) probabilities; an empty text gets the model's bias alone."""
        from .features import transform
        from .metrics import sigmoid
        from .model import predict_logits

        matrix = transform(self.bundle.vectorizer, texts)
        logits = predict_logits(self.model, matrix, self.device, batch_size=len(texts) or 1)
        return sigmoid(logits / self.bundle.temperature)

    def rows(
        self, texts: Sequence[str], extra: Sequence[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """One output record per text, in input order."""
        prob = self.probabilities(texts)
        labels = self.bundle.labels
        records: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            record: dict[str, Any] = dict(extra[i]) if extra is not None else {}
            record["text"] = text
            if self.multilabel:
                chosen = [name for j, name in enumerate(labels) if prob[i, j] >= self.thresholds[j]]
                record["labels"] = chosen
                record["probabilities"] = {
                    name: round(float(prob[i, j]), 6) for j, name in enumerate(labels)
                }
            else:
                positive = prob[i, 0] >= self.thresholds[0]
                record["label"] = labels[1] if positive else labels[0]
                record["probability"] = round(float(prob[i, 0]), 6)
            records.append(record)
        return records


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def read_lines(stream: io.BufferedReader | Any, encoding: str) -> Iterator[str]:
    """Lines of a byte stream, decoded one at a time, without their line ending.

    Blank lines are kept, so output line N answers input line N.
    """
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode(encoding)
        except UnicodeDecodeError:
            raise DataError(
                f"stdin line {number} is not valid {encoding} text; pass --encoding latin-1 "
                f"(or the file's encoding)"
            ) from None
        yield line.rstrip("\r\n")


def _flat(record: dict[str, Any], labels: list[str]) -> dict[str, Any]:
    """A record with multi-label fields spread into columns, for CSV/TSV."""
    if "probabilities" not in record:
        return record
    flat = {k: v for k, v in record.items() if k not in ("labels", "probabilities")}
    flat["labels"] = ";".join(record["labels"])
    for name in labels:
        flat[name] = record["probabilities"][name]
    return flat


class RowWriter:
    """Writes records as jsonl, csv, tsv or bare labels; the header once, flushed per batch."""

    def __init__(self, stream: TextIO, fmt: str, labels: list[str]) -> None:
        if fmt not in ("jsonl", "csv", "tsv", "label"):
            raise DataError(f"--format must be one of jsonl, csv, tsv, label, got {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.labels = labels
        self._csv: csv.DictWriter[str] | None = None

    def write(self, records: list[dict[str, Any]]) -> None:
        out = self.stream
        if self.fmt == "jsonl":
            out.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        elif self.fmt == "label":
            out.write("".join(
                (",".join(r["labels"]) if "labels" in r else str(r["label"])) + "\n"
                for r in records
            ))
        else:
            flat = [_flat(r, self.labels) for r in records]
            if self._csv is None and flat:
                self._csv = csv.DictWriter(
                    out,
                    fieldnames=list(flat[0]),
                    delimiter="\t" if self.fmt == "tsv" else ",",
                    lineterminator="\n",
                    quoting=csv.QUOTE_MINIMAL,
                    extrasaction="ignore",
                )
                self._csv.writeheader()
            if self._csv is not None:
                self._csv.writerows(flat)
        out.flush()
