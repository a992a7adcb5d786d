"""Reports people would rather look at than read: ``report.md`` with its PNG plots in ``plots/``
(drawn by :mod:`.plots`), and the n-grams that push each label hardest.

Every number comes from :mod:`.metrics`, so the report shows the definitions training and
evaluation use. Importing this module loads neither matplotlib nor torch.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_cli.metrics import class_probabilities, sigmoid
from sentiment_cli.reporting.plots import draw_plots, history_value

if TYPE_CHECKING:
    from sentiment_cli.artifacts.record import RunRecord
    from sentiment_cli.data.reading import Dataset
    from sentiment_cli.model.module import SparseMLP


def term_effects(model: SparseMLP, chunk: int = 8192) -> np.ndarray:
    """(vocabulary, outputs): how far each term alone moves each logit from the empty text's.

    For a linear model that is its weight table, exactly. For an MLP every one-term row goes
    through the model in eval mode, ``chunk`` rows at a time (memory is chunk x hidden).
    """
    import torch

    from sentiment_cli.model.module import SparseBatch

    if not model.config.hidden:
        return model.first.bag.weight.detach().cpu().double().numpy()
    device, size, parts = next(model.parameters()).device, model.config.vocab_size, []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for lo in range(0, size, chunk):
                count = min(chunk, size - lo)
                # bag 0 is empty (the empty text); bag i holds the single term lo + i - 1
                offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(count)])
                logits = model(SparseBatch(torch.arange(lo, lo + count, device=device),
                                           offsets.to(device), torch.ones(count, device=device)))
                parts.append((logits[1:] - logits[:1]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(parts).double().numpy()


def _ranked(terms: list[str], effect: np.ndarray, n: int, sign: int) -> list[tuple[str, float]]:
    order = np.argsort(-sign * effect, kind="stable")[:n]
    return [(terms[i], float(effect[i])) for i in order if sign * effect[i] > 0]


def top_terms(model: SparseMLP, terms: list[str], labels: list[str],
              n: int = 20) -> dict[str, list[tuple[str, float]]]:
    """The n n-grams that push hardest towards each label, with their logit effect.

    Binary (one output, labels [negative, positive]): the most negative effects for the first
    label, the most positive for the second. Multi-label: each label's most positive effects.
    Terms whose effect points the other way are never listed, so a list may be shorter than n.
    """
    effects = term_effects(model)
    if effects.shape[0] != len(terms):
        raise ValueError(f"the model has {effects.shape[0]} terms, the vocabulary {len(terms)}")
    if effects.shape[1] == 1:
        if len(labels) != 2:
            raise ValueError(f"a one-output model needs two labels, got {labels}")
        column = effects[:, 0]
        return {labels[0]: _ranked(terms, column, n, -1), labels[1]: _ranked(terms, column, n, 1)}
    if effects.shape[1] != len(labels):
        raise ValueError(f"the model has {effects.shape[1]} outputs but {len(labels)} labels")
    return {label: _ranked(terms, effects[:, j], n, 1) for j, label in enumerate(labels)}


# ------------------------------------------------------------------------------------- markdown

def _cell(value: Any, float_format: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, float_format)
    if isinstance(value, list | tuple | dict):
        value = json.dumps(value, default=str)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A pipe table padded to column widths, so it also reads well as plain text."""
    cells = [[_cell(c) for c in row] for row in [header, *rows]]
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"

    return [line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:]), ""]


def _flatten(options: dict, prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


BINARY_KEYS = ("rows", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "ece",
               "brier", "loss", "threshold")
MULTILABEL_KEYS = ("rows", "subset_accuracy", "hamming_loss", "micro_precision", "micro_recall",
                   "micro_f1", "macro_precision", "macro_recall", "macro_f1", "log_loss", "loss")
MULTICLASS_KEYS = ("rows", "accuracy", "macro_precision", "macro_recall", "macro_f1",
                   "micro_f1", "log_loss", "loss")
METRIC_NAMES = {"roc_auc": "ROC-AUC", "ece": "calibration error (ECE)", "brier": "Brier score",
                "hamming_loss": "Hamming loss", "loss": "loss (training objective)"}


def _metrics_section(metrics: dict, labels: list[str], multilabel: bool, dataset: str,
                     extra: dict[str, dict]) -> list[str]:
    sections = {dataset: metrics, **{k: v for k, v in extra.items() if v}}
    if isinstance(metrics.get("confusion_matrix"), list):
        return _multiclass_section(metrics, labels, dataset, sections)
    rows = [[METRIC_NAMES.get(key, key.replace("_", " ").replace("f1", "F1")),
             *(s.get(key) for s in sections.values())]
            for key in (MULTILABEL_KEYS if multilabel else BINARY_KEYS)
            if any(s.get(key) is not None for s in sections.values())]
    if not multilabel:
        rows.append(["confusion matrix (TN / FP / FN / TP)", *(
            " / ".join(str(s["confusion_matrix"][k]) for k in ("tn", "fp", "fn", "tp"))
            if "confusion_matrix" in s else None for s in sections.values())])
    out = ["## Metrics", "", *_table(["metric", *sections], rows)]
    if multilabel:
        out += _table(["label", "support", "precision", "recall", "F1", "ROC-AUC", "threshold"],
                      [[k, v["support"], v["precision"], v["recall"], v["f1"], v["roc_auc"],
                        v["threshold"]] for k, v in metrics["per_label"].items()])
    elif "confusion_matrix" in metrics:
        cm = metrics["confusion_matrix"]
        out += [f"Confusion matrix on {dataset} at threshold {metrics.get('threshold', 0.5):.2f} "
                "(rows: true label, columns: predicted label):", ""]
        out += _table(["true / predicted", *labels[:2]],
                      [[labels[0], cm["tn"], cm["fp"]], [labels[1], cm["fn"], cm["tp"]]])
    return out


def _multiclass_section(metrics: dict, labels: list[str], dataset: str,
                        sections: dict[str, dict]) -> list[str]:
    rows = [[METRIC_NAMES.get(key, key.replace("_", " ").replace("f1", "F1")),
             *(s.get(key) for s in sections.values())]
            for key in MULTICLASS_KEYS if any(s.get(key) is not None for s in sections.values())]
    out = ["## Metrics", "", *_table(["metric", *sections], rows)]
    out += _table(["class", "support", "precision", "recall", "F1"],
                  [[k, v["support"], v["precision"], v["recall"], v["f1"]]
                   for k, v in metrics["per_label"].items()])
    out += [f"Confusion matrix on {dataset}, the most probable class predicted (rows: true "
            "class, columns: predicted):", ""]
    out += _table(["true / predicted", *labels],
                  [[name, *row] for name, row in zip(labels, metrics["confusion_matrix"],
                                                     strict=True)])
    return out


def _terms_section(terms: dict[str, list[tuple[str, float]]]) -> list[str]:
    out = ["## Terms that push hardest", "",
           "Effect: how far the term alone moves the logit (log-odds) from that of an empty text; "
           "for a model without hidden layers it is the term's weight.", ""]
    names = list(terms)
    if len(names) <= 3:  # side by side
        depth = max((len(v) for v in terms.values()), default=0)
        header = [h for name in names for h in (f"towards {name}", "effect")]
        rows: list[list[Any]] = []
        for i in range(depth):
            rows.append([i + 1])
            for name in names:
                rows[-1] += terms[name][i] if i < len(terms[name]) else ["", None]
        return out + _table(["#", *header], rows)
    for name in names:
        listed = ", ".join(f"`{t}` ({w:+.2f})" for t, w in terms[name]) or "none"
        out += [f"- **{_cell(name)}**: {listed}"]
    return [*out, ""]


def _trials_section(trials: list[dict], shown: int = 10) -> list[str]:
    """The --autotune trials with the lowest validation loss, best first."""
    keys = ["trial", "hidden", "lr", "dropout", "input_dropout", "weight_decay", "batch_size",
            "val_loss", "val_accuracy", "epochs", "seconds"]
    ranked = sorted(trials, key=lambda t: t["val_loss"])[:shown]
    rows = [[",".join(map(str, t["hidden"])) or "none" if k == "hidden" else
             "-" if k == "dropout" and not t["hidden"] else
             _cell(t[k], ".3g") if k in ("lr", "weight_decay") else
             _cell(t[k], ".2f" if k == "seconds" else ".4f") for k in keys] for t in ranked]
    return [f"## Autotune: the best {len(ranked)} of {len(trials)} trials", "",
            "Each trained on the training rows and scored on the validation rows; the first "
            "row's options are the ones above.", "", *_table(keys, rows)]


def _history_section(history: list[dict], best_epoch: int | None,
                     averaged_epochs: int = 0) -> list[str]:
    keys = ("train_loss", "val_loss", "train_acc", "val_acc", "seconds")
    rows = [[f"{row['epoch']} (best)" if history_value(row["epoch"]) == best_epoch
             else row["epoch"], *(history_value(row.get(k)) for k in keys)] for row in history]
    if averaged_epochs:
        kept = (f"The model is the mean of the weights of epochs 1-{averaged_epochs}: its "
                f"validation loss was lower than that of the best epoch ({best_epoch}, marked).")
    else:
        kept = f"The model is the best epoch's ({best_epoch}, marked)." if best_epoch else ""
    return ["## Training history", "", kept, "",
            *_table(["epoch", "train loss", "val loss", "train acc", "val acc", "seconds"], rows)]


def write_report(
    folder: Path,
    *,
    title: str,
    dataset_name: str,
    labels: list[str],
    y_true: np.ndarray,
    prob: np.ndarray,
    metrics: dict,
    history: list[dict] | None = None,
    best_epoch: int | None = None,
    averaged_epochs: int = 0,
    options: dict | None = None,
    top_terms: dict[str, list[tuple[str, float]]] | None = None,
    extra_sections: dict[str, dict] | None = None,
    trials: list[dict] | None = None,
) -> list[Path]:
    """Write ``folder/report.md`` and its PNG plots in ``folder/plots``; return the paths."""
    folder = Path(folder)
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    multilabel = "per_label" in metrics
    y = np.asarray(y_true) > 0.5
    p = np.asarray(prob, dtype=np.float64)
    if not multilabel:
        y, p = y.reshape(-1), p.reshape(-1)
    figures, notes = draw_plots(plots, dataset_name, labels, y, p, metrics, history, best_epoch)

    lines = [f"# {title}", "", f"- Data: {dataset_name}", f"- Rows: {metrics.get('rows', len(y))}"]
    if multilabel:
        counts = ", ".join(f"{k} ({v['support']})" for k, v in metrics["per_label"].items())
        lines.append(f"- Labels (rows carrying each): {counts}")
    elif "negatives" in metrics:
        lines.append(f"- Labels: {labels[0]} ({metrics['negatives']} rows), "
                     f"{labels[1]} ({metrics['positives']} rows, the positive class)")
    else:
        lines.append(f"- Labels: {labels[0]}, {labels[1]} (the positive class)")
    lines += [f"- Note: {note}" for note in metrics.get("notes", [])]  # bce-eval's
    lines.append("")
    if options:
        lines += ["## Options", "",
                  *_table(["option", "value"],
                          [[k, format(v, "g") if isinstance(v, float) else v]
                           for k, v in _flatten(options).items()])]
    if trials:
        lines += _trials_section(trials)
    lines += _metrics_section(metrics, labels, multilabel, dataset_name, extra_sections or {})
    if history:
        lines += _history_section(history, best_epoch, averaged_epochs)
    lines += ["## Plots", ""]
    for caption, path in figures:
        lines += [f"![{caption}](plots/{path.name})", ""]
    lines += [*notes, ""] if notes else []
    if top_terms:
        lines += _terms_section(top_terms)
    report = folder / "report.md"
    report.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return [report, *(path for _, path in figures)]


def write_training_report(folder: Path, record: RunRecord, shown: Dataset, logits: np.ndarray,
                          model: SparseMLP, terms: list[str]) -> list[Path]:
    """report.md and plots/ of a trained model: the kept epoch on ``shown`` (the validation
    rows, or the training rows when there are none), whose logits these are."""
    validating = record.val_metrics is not None
    config = record.config
    name = "line files" if config.line_files is not None else Path(record.data.source).name
    shown_name = f"{name} ({'validation' if validating else 'training'})"
    if validating and config.val_data is not None:
        shown_name = f"{Path(config.val_data).name} (validation)"
    prob = sigmoid(logits / record.temperature)
    return write_report(
        folder,
        title=f"Model trained on {name}",
        dataset_name=shown_name,
        labels=record.data.labels,
        y_true=shown.y,
        prob=prob if record.data.multilabel else class_probabilities(prob)
        if record.data.task == "multiclass" else prob[:, 0],
        metrics=record.val_metrics if record.val_metrics is not None else record.train_metrics,
        history=[asdict(h) for h in record.history],
        best_epoch=record.best_epoch,
        averaged_epochs=record.averaged_epochs,
        options=record.report_options(),
        top_terms=top_terms(model, terms, record.data.labels),
        extra_sections={"train": record.train_metrics} if validating else None,
        trials=None if record.autotune is None else record.autotune.to_dict()["trials"],
    )
