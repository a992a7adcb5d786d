"""``bce-info MODEL``: what a model folder is, read and checked as prediction reads it (every
file against the manifest, config.json field by field, the weights' shapes), as one dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.model.architecture import parameter_count

# metrics.json's numbers shown per split (the rest, per label or per bin, stays in the file)
SHOWN_METRICS = ("rows", "accuracy", "f1", "roc_auc", "log_loss", "subset_accuracy",
                 "micro_f1", "macro_f1")


def model_info(folder: str | Path) -> dict[str, Any]:
    """The model folder's task, labels, vocabulary, architecture, options, data, metrics,
    versions, size on disk and what was checked; a BundleError when it cannot be loaded."""
    bundle = load_bundle(folder)
    config, spec, model = bundle.config, bundle.spec, bundle.model_config
    metrics = bundle.metrics or {}
    checked = ("every file's size and SHA-256 match manifest.json" if spec.format_version >= 2
               else "no manifest (format 1, written before them): files read as they are")
    return {
        "model": str(bundle.path),
        "task": config.get("task"),
        "labels": spec.labels,
        "positive_label": spec.labels[-1] if config.get("task") == "binary" else None,
        "thresholds": spec.thresholds,
        "temperature": spec.temperature,
        "vocabulary": model.vocab_size,
        "architecture": {"hidden": model.hidden or "none (linear)", "dropout": model.dropout,
                         "outputs": model.n_outputs,
                         "parameters": parameter_count(model.vocab_size, model.hidden,
                                                       model.n_outputs)},
        "vectorizer": config.get("vectorizer"),
        "training": config.get("training"),
        "data": config.get("data"),
        "metrics": {split: {k: v for k, v in values.items() if k in SHOWN_METRICS}
                    for split in ("train", "validation")
                    if isinstance(values := metrics.get(split), dict)},
        "best_epoch": metrics.get("best_epoch"),
        "versions": config.get("versions"),
        "created": config.get("created"),
        "format_version": spec.format_version,
        "files": len(bundle.files),
        "bytes": sum(bundle.files.values()),
        "check": checked,
    }
