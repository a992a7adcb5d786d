"""Reports people would rather look at than read: ``report.md`` plus PNG plots in ``plots/``.

Every number and curve comes from :mod:`.metrics`, so the report shows the same definitions as
training and evaluation. matplotlib is imported inside the drawing code with the Agg backend:
importing this module stays cheap and never needs a display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import metrics as m

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .model import SparseMLP

FIGSIZE = (6.4, 4.8)  # inches; at DPI 100 every plot is 640 x 480 pixels
DPI = 100
STYLE = {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 9, "axes.grid": True,
         "grid.alpha": 0.3}
TRAIN_COLOR, VAL_COLOR, MARK_COLOR, HIGHLIGHT = "tab:blue", "tab:orange", "0.45", "tab:red"


def term_effects(model: SparseMLP, chunk: int = 8192) -> np.ndarray:
    """(vocabulary, outputs): how far each term alone moves each logit from the empty text's.

    For a linear model that is its weight table, exactly. For an MLP every one-term row goes
    through the model in eval mode, ``chunk`` rows at a time (memory is chunk x hidden).
    """
    import torch

    from .model import SparseBatch

    if not model.config.hidden:
        return model.first.bag.weight.detach().cpu().double().numpy()
    device = next(model.parameters()).device

    def one_term_rows(start: int, end: int) -> SparseBatch:
        return SparseBatch(indices=torch.arange(start, end, device=device),
                           offsets=torch.arange(end - start, device=device),
                           values=torch.ones(end - start, device=device))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            empty = SparseBatch(torch.zeros(0, dtype=torch.long, device=device),
                                torch.zeros(1, dtype=torch.long, device=device),
                                torch.zeros(0, device=device))
            base = model(empty)
            size = model.config.vocab_size
            parts = [(model(one_term_rows(lo, min(lo + chunk, size))) - base).cpu()
                     for lo in range(0, size, chunk)]
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


# ---------------------------------------------------------------------------------------- plots

def _pyplot() -> Any:
    """pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(nrows: int = 1, height: float = FIGSIZE[1], **kwargs: Any) -> tuple[Figure, Any]:
    return _pyplot().subplots(nrows, 1, figsize=(FIGSIZE[0], height), dpi=DPI, layout="constrained",
                        **kwargs)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    return path


def _num(value: Any) -> float | None:
    """A history cell as a float: rows may come from EpochStats or straight from history.csv."""
    return None if value is None or value == "" else float(value)


def _plot_history(path: Path, dataset: str, history: list[dict], best_epoch: int | None,
                  key: str, name: str) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    epochs = [int(_num(row["epoch"]) or 0) for row in history]
    for split, color, label in (("train", TRAIN_COLOR, "training"),
                                ("val", VAL_COLOR, "validation")):
        values = [_num(row.get(f"{split}_{key}")) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o",
                    markersize=4, color=color, label=label)
    if best_epoch:
        ax.axvline(best_epoch, color=MARK_COLOR, linestyle="--", label=f"kept epoch {best_epoch}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=name, title=f"{dataset}: {name} per epoch")
    ax.legend()
    return _save(fig, path)


def _plot_roc(path: Path, dataset: str, y: np.ndarray, p: np.ndarray, cm: dict[str, int],
              threshold: float) -> Path:
    fig, ax = _figure()
    fpr, tpr = m.roc_curve(y, p)
    ax.plot(fpr, tpr, color=TRAIN_COLOR, label=f"model (AUC = {m.roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color=MARK_COLOR, label="chance (AUC = 0.5)")
    ax.plot(cm["fp"] / max(cm["fp"] + cm["tn"], 1), cm["tp"] / max(cm["tp"] + cm["fn"], 1), "o",
            color=HIGHLIGHT, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate",
           ylabel="true positive rate (recall)", title=f"{dataset}: ROC curve")
    ax.legend(loc="lower right")
    return _save(fig, path)


def _plot_precision_recall(path: Path, dataset: str, y: np.ndarray, p: np.ndarray,
                           cm: dict[str, int], threshold: float) -> Path:
    fig, ax = _figure()
    precision, recall, _ = m.precision_recall_curve(y, p)
    ax.plot(recall, precision, color=TRAIN_COLOR, label="model")
    ax.axhline(y.mean(), linestyle="--", color=MARK_COLOR,
               label=f"always positive (precision {y.mean():.2f})")
    precision_at, recall_at, _ = m.precision_recall_f1(cm)
    ax.plot(recall_at, precision_at, "o", color=HIGHLIGHT, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
           title=f"{dataset}: precision-recall curve")
    ax.legend(loc="lower left")
    return _save(fig, path)


def _plot_calibration(path: Path, dataset: str, labels: list[str], y: np.ndarray,
                      p: np.ndarray) -> Path:
    fig, (ax, hist) = _figure(2, sharex=True, height_ratios=[3, 1.3])
    bins = [b for b in m.calibration_bins(y, p) if b["count"]]
    ece = m.expected_calibration_error(y, p)
    ax.plot([0, 1], [0, 1], linestyle="--", color=MARK_COLOR, label="perfectly calibrated")
    ax.plot([b["mean_probability"] for b in bins], [b["positive_rate"] for b in bins],
            marker="o", color=TRAIN_COLOR, label=f"model (ECE = {ece:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel=f"observed rate of {labels[1]}",
           title=f"{dataset}: calibration (10 equal-width bins)")
    ax.legend(loc="upper left")
    counts, _, _ = hist.hist([p[~y], p[y]], bins=20, range=(0, 1), stacked=True,
                             color=[VAL_COLOR, TRAIN_COLOR],
                             label=[f"true {labels[0]}", f"true {labels[1]}"])
    # headroom so the legend sits above the bars rather than on them
    hist.set(xlabel=f"predicted probability of {labels[1]}", ylabel="rows",
             ylim=(0, max(float(np.max(counts[-1])), 1) * 1.6))
    hist.legend(loc="upper center", ncols=2)
    return _save(fig, path)


def _plot_confusion(path: Path, dataset: str, labels: list[str], cm: dict[str, int],
                    threshold: float) -> Path:
    fig, ax = _figure()
    counts = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(int(counts.max()), 1))
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{count}\n{count / max(counts.sum(), 1):.1%}", ha="center", va="center",
                fontsize=13, color="white" if count > counts.max() / 2 else "black")
    ax.set_xticks([0, 1], labels[:2])
    ax.set_yticks([0, 1], labels[:2])
    ax.grid(False)
    ax.set(xlabel="predicted label", ylabel="true label",
           title=f"{dataset}: confusion matrix at threshold {threshold:.2f}")
    return _save(fig, path)


def _plot_per_label_f1(path: Path, dataset: str, metrics: dict) -> Path:
    items = sorted(metrics["per_label"].items(), key=lambda kv: kv[1]["f1"])
    fig, ax = _figure(height=max(FIGSIZE[1], 0.3 * len(items) + 1.4))  # room for many labels
    ax.barh(range(len(items)), [v["f1"] for _, v in items], color=TRAIN_COLOR)
    for i, (_, v) in enumerate(items):
        ax.text(v["f1"] + 0.01, i, f"{v['f1']:.2f}  (support {v['support']})", va="center",
                fontsize=9, zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.axvline(metrics["macro_f1"], color=HIGHLIGHT, linestyle="--",
               label=f"macro F1 {metrics['macro_f1']:.2f}")
    ax.axvline(metrics["micro_f1"], color=MARK_COLOR, linestyle=":",
               label=f"micro F1 {metrics['micro_f1']:.2f}")
    ax.set_yticks(range(len(items)), [name for name, _ in items])
    ax.set(xlim=(0, 1.3), xlabel="F1", title=f"{dataset}: F1 per label")
    ax.legend(loc="lower right")
    return _save(fig, path)


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


BINARY_ROWS = [("rows", "rows"), ("accuracy", "accuracy"), ("precision", "precision"),
               ("recall", "recall"), ("F1", "f1"), ("ROC-AUC", "roc_auc"),
               ("log loss", "log_loss"), ("calibration error (ECE)", "ece"),
               ("Brier score", "brier"), ("loss (training objective)", "loss"),
               ("threshold", "threshold")]
MULTILABEL_ROWS = [("rows", "rows"), ("subset accuracy", "subset_accuracy"),
                   ("Hamming loss", "hamming_loss"), ("micro precision", "micro_precision"),
                   ("micro recall", "micro_recall"), ("micro F1", "micro_f1"),
                   ("macro precision", "macro_precision"), ("macro recall", "macro_recall"),
                   ("macro F1", "macro_f1"), ("log loss", "log_loss"),
                   ("loss (training objective)", "loss")]


def _metrics_section(metrics: dict, labels: list[str], multilabel: bool, dataset: str,
                     extra: dict[str, dict]) -> list[str]:
    sections = {dataset: metrics, **{k: v for k, v in extra.items() if v}}
    rows = [[name, *(s.get(key) for s in sections.values())]
            for name, key in (MULTILABEL_ROWS if multilabel else BINARY_ROWS)
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
    options: dict | None = None,
    top_terms: dict[str, list[tuple[str, float]]] | None = None,
    extra_sections: dict[str, dict] | None = None,
) -> list[Path]:
    """Write ``folder/report.md`` and its PNG plots in ``folder/plots``; return the paths."""
    plt = _pyplot()
    folder = Path(folder)
    plots = folder / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    multilabel = "per_label" in metrics
    y = np.asarray(y_true) > 0.5
    p = np.asarray(prob, dtype=np.float64)
    if not multilabel:
        y, p = y.reshape(-1), p.reshape(-1)
    threshold = float(metrics.get("threshold", 0.5))
    cm = metrics.get("confusion_matrix") or m.confusion(y, p >= threshold)
    figures: list[tuple[str, Path]] = []
    notes: list[str] = []
    with plt.rc_context(STYLE):
        if history:
            figures.append(("Loss per epoch", _plot_history(
                plots / "loss.png", dataset_name, history, best_epoch, "loss", "loss")))
            figures.append(("Accuracy per epoch", _plot_history(
                plots / "accuracy.png", dataset_name, history, best_epoch, "acc", "accuracy")))
        if multilabel:
            figures.append(("F1 per label", _plot_per_label_f1(
                plots / "per_label_f1.png", dataset_name, metrics)))
        elif len(y):
            if 0 < y.sum() < len(y):
                figures.append(("ROC curve", _plot_roc(
                    plots / "roc.png", dataset_name, y, p, cm, threshold)))
                figures.append(("Precision-recall curve", _plot_precision_recall(
                    plots / "precision_recall.png", dataset_name, y, p, cm, threshold)))
            else:
                notes.append("ROC and precision-recall curves are not drawn: the rows hold "
                             "one class only.")
            figures.append(("Calibration (reliability diagram)", _plot_calibration(
                plots / "calibration.png", dataset_name, labels, y, p)))
            figures.append(("Confusion matrix", _plot_confusion(
                plots / "confusion_matrix.png", dataset_name, labels, cm, threshold)))

    lines = [f"# {title}", "", f"- Data: {dataset_name}", f"- Rows: {metrics.get('rows', len(y))}"]
    if multilabel:
        counts = ", ".join(f"{k} ({v['support']})" for k, v in metrics["per_label"].items())
        lines.append(f"- Labels (rows carrying each): {counts}")
    elif "negatives" in metrics:
        lines.append(f"- Labels: {labels[0]} ({metrics['negatives']} rows), "
                     f"{labels[1]} ({metrics['positives']} rows, the positive class)")
    else:
        lines.append(f"- Labels: {labels[0]}, {labels[1]} (the positive class)")
    lines.append("")
    if options:
        lines += ["## Options", "",
                  *_table(["option", "value"],
                          [[k, format(v, "g") if isinstance(v, float) else v]
                           for k, v in _flatten(options).items()])]
    lines += _metrics_section(metrics, labels, multilabel, dataset_name, extra_sections or {})
    if history:
        lines += ["## Training history", "",
                  f"The kept epoch is marked{f' ({best_epoch})' if best_epoch else ''}.", ""]
        lines += _table(
            ["epoch", "train loss", "val loss", "train acc", "val acc", "seconds"],
            [[f"{row['epoch']} (kept)" if _num(row["epoch"]) == best_epoch else row["epoch"],
              *(_num(row.get(k)) for k in ("train_loss", "val_loss", "train_acc", "val_acc",
                                           "seconds"))] for row in history])
    lines += ["## Plots", ""]
    for caption, path in figures:
        lines += [f"![{caption}](plots/{path.name})", ""]
    lines += [*notes, ""] if notes else []
    if top_terms:
        lines += _terms_section(top_terms)
    report = folder / "report.md"
    report.write_text("\n".join(lines).rstrip("\n") + "\n", encoding="utf-8")
    return [report, *(path for _, path in figures)]
