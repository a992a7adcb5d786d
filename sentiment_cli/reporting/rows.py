"""Scored texts as rows on a stream: JSON lines, CSV, TSV or bare labels."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any, TextIO

from sentiment_cli.explain import shown
from sentiment_cli.predict import Scores, output_name, records, top_classes


class RowWriter:
    """Writes scored batches as jsonl, csv, tsv or bare labels; a header once; flushed per batch.

    The common binary jsonl row is formatted directly (about 3x faster than ``json.dumps`` of a
    dict, and the same JSON).
    """

    def __init__(self, stream: TextIO, fmt: str, labels: list[str], task: str,
                 top_k: int | None = None) -> None:
        if fmt not in ("jsonl", "csv", "tsv", "label"):  # config.FORMATS, less table
            raise ValueError(f"RowWriter cannot write {fmt!r}")
        self.stream = stream
        self.fmt = fmt
        self.labels = labels
        self.task, self.top_k = task, top_k
        self.multilabel = task == "multilabel"
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
        if self.task != "binary" or extra is not None or scores.explanations is not None:
            rows = records(texts, scores, self.labels, self.task, extra, self.top_k)
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
        elif self.task == "multiclass":  # the class, or the k best, most probable first
            best = top_classes(scores.probabilities, self.top_k or 1)
            lines = (",".join(self.labels[int(j)] for j in row) for row in best)
        else:
            lines = (self.labels[int(c)] for c in scores.chosen[:, 0])
        self.stream.write("".join(line + "\n" for line in lines))

    def _write_table(self, texts: Sequence[str], scores: Scores,
                     extra: Sequence[dict[str, Any]] | None) -> None:
        header, rows = self._table(texts, scores)
        if scores.explanations is not None:
            header += ["logit", "bias", "explanation"]
            for row, found in zip(rows, scores.explanations, strict=True):
                row += [found["logit"], found["bias"], shown(found["explanation"])]
        if extra:  # the user's columns as they were, then ours but the text (theirs has it)
            kept = list(extra[0])
            header = [*kept, *(output_name(name, kept) for name in header[1:])]
            rows = [[*(extra[i].get(k, "") for k in kept), *row[1:]] for i, row in enumerate(rows)]
        if self.fmt == "tsv":
            self._write_tsv(header, rows)
            return
        if self._csv is None:
            self._csv = csv.writer(self.stream, lineterminator="\n")
            self._csv.writerow(header)
        self._csv.writerows(rows)

    def _table(self, texts: Sequence[str], scores: Scores) -> tuple[list[str], list[list[Any]]]:
        """The header and rows of the task's columns: labels and probabilities."""
        prob = scores.probabilities
        if self.multilabel:
            return ["text", "labels", *self.labels], [
                [text, ";".join(n for n, c in zip(self.labels, scores.chosen[i], strict=True) if c),
                 *(round(float(p), 6) for p in prob[i])] for i, text in enumerate(texts)]
        if self.task != "multiclass":
            return ["text", "label", "probability"], [
                [text, self.labels[int(scores.chosen[i, 0])], round(float(prob[i, 0]), 6)]
                for i, text in enumerate(texts)]
        # the class and its probability, then every class's, then the next best classes
        ranks = range(2, (self.top_k or 1) + 1)
        header = ["text", "label", "probability", *self.labels,
                  *(f"{name}_{r}" for r in ranks for name in ("label", "probability"))]
        best = top_classes(prob, self.top_k or 1)
        rows = []
        for i, text in enumerate(texts):
            first = int(best[i, 0])
            rows.append([text, self.labels[first], round(float(prob[i, first]), 6),
                         *(round(float(p), 6) for p in prob[i]),
                         *(v for j in best[i, 1:] for v in (self.labels[int(j)],
                                                             round(float(prob[i, j]), 6)))])
        return header, rows

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
