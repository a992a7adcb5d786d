"""The Python API, for notebooks and services: :func:`train` and :func:`load_model`, with the
same options, checks and errors as ``bce-train`` and ``bce-predict`` (a
:class:`~sentiment_cli.errors.SentimentError` with the line the command would print)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_cli.checks import check
from sentiment_cli.config import TrainConfig
from sentiment_cli.errors import DataError
from sentiment_cli.options import build, options_of

if TYPE_CHECKING:
    import pandas as pd

    from sentiment_cli.artifacts.bundle import Bundle

# the options a caller may give: bce-train's, by their field names (lr, hidden, ngram_range...)
_OPTIONS = {item.name for item, how in options_of(TrainConfig)} - {"data", "line_files", "output"}


def train(data: str | Path | pd.DataFrame, output: str | Path | None = None, *,
          quiet: bool = True, **options: Any) -> dict[str, Any]:
    """Train a model as ``bce-train DATA -o OUTPUT`` would and return its summary (what
    ``bce-train --json`` prints: labels, rows, vocabulary, metrics, seconds...).

    ``data``: a CSV/TSV file, or a pandas DataFrame (written to a temporary CSV file first).
    ``options``: bce-train's options by name, as Python values: ``hidden=(64,)``, ``lr=0.01``,
    ``ngram_range=(1, 2)``, ``label_columns=("joy", "anger")``, ``force=True``... ``quiet``:
    False prints bce-train's notes on stderr."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise DataError(f"train() has no option {unknown[0]!r}; the options are bce-train's, "
                        f"by name: {', '.join(sorted(_OPTIONS))}")
    if output is None and not isinstance(data, str | Path):
        raise DataError("train() needs output= (the model folder) when data is a DataFrame")
    with tempfile.TemporaryDirectory(prefix="sentiment-cli-") as tmp:
        if not isinstance(data, str | Path):
            path = Path(tmp) / "data.csv"
            data.to_csv(path, index=False)
            data = path
        given = {**options, "data": Path(data), "output": None if output is None else Path(output)}
        config = build(TrainConfig, {k: v for k, v in given.items() if v is not None})
        check(config)
        from sentiment_cli.pipeline import run_training

        def note(message: str) -> None:
            if not quiet:
                sys.stderr.write(message + "\n")

        record = run_training(config, note=note)
    assert record is not None  # one process: it is rank 0
    return record.summary()


class Model:
    """A loaded model folder (see :func:`load_model`)."""

    def __init__(self, bundle: Bundle, device: str = "cpu") -> None:
        from sentiment_cli.predict import Predictor

        self._bundle, self._device = bundle, device
        self._predictor = Predictor(bundle, device=device)  # checks the device once

    @property
    def labels(self) -> list[str]:
        """Binary: [negative, positive]; multi-class: the classes; multi-label: the labels."""
        return list(self._bundle.labels)

    @property
    def task(self) -> str:
        """binary, multiclass or multilabel."""
        return self._bundle.task

    @property
    def config(self) -> dict[str, Any]:
        """The folder's config.json: options, data summary, versions."""
        return self._bundle.config

    def predict(self, texts: str | Sequence[str], top_k: int | None = None,
                explain: int | None = None) -> list[dict[str, Any]]:
        """One record per text, as ``bce-predict --format jsonl`` writes them: ``label`` and
        ``probability`` (multi-class: also ``probabilities``, and ``top`` with ``top_k``;
        multi-label: ``labels`` and ``probabilities``); with ``explain`` (as ``--explain``),
        ``logit``, ``bias`` and the ``explanation`` terms."""
        from sentiment_cli.predict import Predictor

        texts = [texts] if isinstance(texts, str) else list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(f"predict() takes texts (str), got {type(bad).__name__}")
        for name, value, low in (("top_k", top_k, 1), ("explain", explain, 0)):
            if value is not None and not (isinstance(value, int) and value >= low):
                raise DataError(f"{name} must be a whole number from {low}, got {value!r}")
        predictor = self._predictor if top_k is None and explain is None else Predictor(
            self._bundle, device=self._device, top_k=top_k, explain=explain)
        return predictor.rows(texts)

    def __repr__(self) -> str:
        return f"Model({str(self._bundle.path)!r}, task={self.task!r}, labels={self.labels!r})"


def load_model(path: str | Path, device: str = "cpu") -> Model:
    """Load a model folder written by ``bce-train``, checked as ``bce-predict`` checks it (every
    file against its manifest, config.json field by field; never code)."""
    from sentiment_cli.artifacts.bundle import load_bundle

    return Model(load_bundle(path), device)


__all__ = ["Model", "load_model", "train"]
