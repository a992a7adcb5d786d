"""The plots of a report, as PNG files: training curves, ROC, precision-recall, calibration,
confusion matrix, per-label F1.

Every curve comes from :mod:`.metrics` (one definition of each number). matplotlib is imported on
first use with the Agg backend, so importing this module is cheap and never needs a display.
Every figure is FIGSIZE at DPI (640 x 480 pixels), except per-label F1, which grows with the
number of labels so their names stay readable.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_cli import metrics as m

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGSIZE = (6.4, 4.8)  # inches
DPI = 100
STYLE = {"font.size": 10, "axes.titlesize": 11, "legend.fontsize": 9, "axes.grid": True,
         "grid.alpha": 0.3}
TRAIN_COLOR, VAL_COLOR, MARK_COLOR, HIGHLIGHT = "tab:blue", "tab:orange", "0.45", "tab:red"


def load_pyplot() -> Any:
    """pyplot on the Agg backend (files only, no display), imported on first use."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A label or file name with an emoji the font lacks is drawn as a box; the warning would
    # print on stderr (with the raw character) even under --quiet.
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
    return plt


# Fixed margins for 640 x 480 figures: matplotlib's constrained layout finds them itself but
# draws every figure twice to do so, doubling the report's cost (0.9 s -> 0.45 s for the six
# binary plots); only the per-label plot, whose label names vary in length, uses it.
MARGINS = {"left": 0.12, "right": 0.97, "top": 0.93, "bottom": 0.1, "hspace": 0.08}


def _figure(nrows: int = 1, height: float = FIGSIZE[1], fit_labels: bool = False,
            **kwargs: Any) -> tuple[Figure, Any]:
    fig, axes = load_pyplot().subplots(nrows, 1, figsize=(FIGSIZE[0], height), dpi=DPI,
                                   layout="constrained" if fit_labels else None, **kwargs)
    if not fit_labels:
        fig.subplots_adjust(**MARGINS)
    return fig, axes


def _finish(fig: Figure, ax: Any, path: Path, legend: str | None = "best", **labels: Any) -> Path:
    ax.set(**labels)
    if legend:
        ax.legend(loc=legend)
    fig.savefig(path, dpi=DPI)
    load_pyplot().close(fig)
    return path


def history_value(value: Any) -> float | None:
    """A history cell as a float: rows may come from EpochStats or straight from history.csv."""
    return None if value is None or value == "" else float(value)


def _plot_history(path: Path, dataset: str, history: list[dict], best_epoch: int | None,
                  key: str, name: str) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    epochs = [int(history_value(row["epoch"]) or 0) for row in history]
    for split, color, label in (("train", TRAIN_COLOR, "training"),
                                ("val", VAL_COLOR, "validation")):
        values = [history_value(row.get(f"{split}_{key}")) for row in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], marker="o",
                    markersize=4, color=color, label=label)
    if best_epoch:
        ax.axvline(best_epoch, color=MARK_COLOR, linestyle="--", label=f"best epoch {best_epoch}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(fig, ax, path, xlabel="epoch", ylabel=name, title=f"{dataset}: {name} per epoch")


def _plot_roc(path: Path, dataset: str, y: np.ndarray, p: np.ndarray, cm: dict[str, int],
              threshold: float) -> Path:
    fig, ax = _figure()
    fpr, tpr = m.roc_curve(y, p)
    ax.plot(fpr, tpr, color=TRAIN_COLOR, label=f"model (AUC = {m.roc_auc(y, p):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color=MARK_COLOR, label="chance (AUC = 0.5)")
    ax.plot(cm["fp"] / max(cm["fp"] + cm["tn"], 1), cm["tp"] / max(cm["tp"] + cm["fn"], 1), "o",
            color=HIGHLIGHT, label=f"threshold {threshold:.2f}")
    return _finish(fig, ax, path, "lower right", xlim=(0, 1), ylim=(0, 1.01),
                   xlabel="false positive rate", ylabel="true positive rate (recall)",
                   title=f"{dataset}: ROC curve")


def _plot_precision_recall(path: Path, dataset: str, y: np.ndarray, p: np.ndarray,
                           cm: dict[str, int], threshold: float) -> Path:
    fig, ax = _figure()
    precision, recall, _ = m.precision_recall_curve(y, p)
    ax.plot(recall, precision, color=TRAIN_COLOR, label="model")
    ax.axhline(y.mean(), linestyle="--", color=MARK_COLOR,
               label=f"always positive (precision {y.mean():.2f})")
    precision_at, recall_at, _ = m.precision_recall_f1(cm)
    ax.plot(recall_at, precision_at, "o", color=HIGHLIGHT, label=f"threshold {threshold:.2f}")
    return _finish(fig, ax, path, "lower left", xlim=(0, 1), ylim=(0, 1.02), xlabel="recall",
                   ylabel="precision", title=f"{dataset}: precision-recall curve")


def _plot_calibration(path: Path, dataset: str, labels: list[str], y: np.ndarray,
                      p: np.ndarray) -> Path:
    fig, (ax, hist) = _figure(2, sharex=True, height_ratios=[3, 1.3])
    bins = [b for b in m.calibration_bins(y, p) if b["count"]]
    ece = m.expected_calibration_error(y, p)
    ax.plot([0, 1], [0, 1], linestyle="--", color=MARK_COLOR, label="perfectly calibrated")
    x, rate = [b["mean_probability"] for b in bins], [b["positive_rate"] for b in bins]
    ax.plot(x, rate, color=TRAIN_COLOR, label=f"model (ECE = {ece:.3f})")
    # marker area follows the bin's rows, so a bin of three rows does not look like one of 300
    sizes = np.array([b["count"] for b in bins], dtype=float)
    ax.scatter(x, rate, s=15 + 150 * sizes / sizes.max(), color=TRAIN_COLOR, zorder=3,
               clip_on=False, label="bins (marker area ~ rows)")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel=f"observed rate of {labels[1]}",
           title=f"{dataset}: calibration (10 equal-width bins)")
    ax.legend(loc="upper left")
    counts, _, _ = hist.hist([p[~y], p[y]], bins=20, range=(0, 1), stacked=True,
                             color=[VAL_COLOR, TRAIN_COLOR],
                             label=[f"true {labels[0]}", f"true {labels[1]}"])
    hist.legend(loc="upper center", ncols=2)
    # headroom so the legend sits above the bars rather than on them
    return _finish(fig, hist, path, None, xlabel=f"predicted probability of {labels[1]}",
                   ylabel="rows", ylim=(0, max(float(np.max(counts[-1])), 1) * 1.6))


def _plot_confusion(path: Path, dataset: str, labels: list[str], cm: dict[str, int],
                    threshold: float) -> Path:
    fig, ax = _figure()
    counts = np.array([[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]])
    # shaded by share of the true label's rows (recall per class), readable when imbalanced
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        ax.text(j, i, f"{count}\n({share[i, j]:.1%} of {labels[i]})", ha="center", va="center",
                fontsize=12, color="white" if share[i, j] > 0.5 else "black")
    ax.grid(False)
    return _finish(fig, ax, path, None, xticks=[0, 1], xticklabels=labels[:2], yticks=[0, 1],
                   yticklabels=labels[:2], xlabel="predicted label", ylabel="true label",
                   title=f"{dataset}: confusion matrix at threshold {threshold:.2f}")


MAX_MATRIX_CLASSES = 30  # beyond this a K x K picture is unreadable; report.md has the table


def _plot_class_confusion(path: Path, dataset: str, labels: list[str],
                          matrix: list[list[int]]) -> Path:
    """A multi-class confusion matrix, shaded by each true class's share (its recall)."""
    counts = np.asarray(matrix)
    k = len(labels)
    fig, ax = _figure(height=max(FIGSIZE[1], 0.35 * k + 1.6), fit_labels=True)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if k <= 12:  # room for the counts
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.grid(False)
    return _finish(fig, ax, path, None, xticks=range(k), xticklabels=labels, yticks=range(k),
                   yticklabels=labels, xlabel="predicted class", ylabel="true class",
                   title=f"{dataset}: confusion matrix (shade: share of the true class)")


def _plot_per_label_f1(path: Path, dataset: str, metrics: dict) -> Path:
    items = sorted(metrics["per_label"].items(), key=lambda kv: kv[1]["f1"])
    fig, ax = _figure(height=max(FIGSIZE[1], 0.3 * len(items) + 1.4),  # room for many labels
                      fit_labels=True)
    ax.barh(range(len(items)), [v["f1"] for _, v in items], color=TRAIN_COLOR)
    for i, (_, v) in enumerate(items):
        ax.text(v["f1"] + 0.01, i, f"{v['f1']:.2f}  (support {v['support']})", va="center",
                fontsize=9, zorder=3, bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    for key, style, color in (("macro_f1", "--", HIGHLIGHT), ("micro_f1", ":", MARK_COLOR)):
        ax.axvline(metrics[key], color=color, linestyle=style,
                   label=f"{key.replace('_', ' ').replace('f1', 'F1')} {metrics[key]:.2f}")
    return _finish(fig, ax, path, "lower right", yticks=range(len(items)),
                   yticklabels=[name for name, _ in items], xlim=(0, 1.3), xlabel="F1",
                   title=f"{dataset}: F1 per label")


def _plot_jobs(
    folder: Path,
    dataset: str,
    labels: list[str],
    y: np.ndarray,
    p: np.ndarray,
    metrics: dict,
    history: list[dict] | None,
    best_epoch: int | None,
) -> tuple[list[tuple[str, Callable[..., Path], dict[str, Any]]], list[str]]:
    """(caption, plot function, its arguments) for every plot that applies, and notes on the
    plots left out."""
    jobs: list[tuple[str, Callable[..., Path], dict[str, Any]]] = []
    notes: list[str] = []
    common = {"dataset": dataset}
    if history:
        for caption, key, name, file in (("Loss per epoch", "loss", "loss", "loss.png"),
                                         ("Accuracy per epoch", "acc", "accuracy", "accuracy.png")):
            jobs.append((caption, _plot_history, {**common, "path": folder / file,
                         "history": history, "best_epoch": best_epoch, "key": key, "name": name}))
    if "per_label" in metrics:
        jobs.append(("F1 per label", _plot_per_label_f1,
                     {**common, "path": folder / "per_label_f1.png", "metrics": metrics}))
        matrix = metrics.get("confusion_matrix")
        if isinstance(matrix, list) and len(labels) <= MAX_MATRIX_CLASSES:  # multi-class
            jobs.append(("Confusion matrix", _plot_class_confusion,
                         {**common, "path": folder / "confusion_matrix.png", "labels": labels,
                          "matrix": matrix}))
        elif isinstance(matrix, list):
            notes.append(f"The confusion matrix is not drawn for more than "
                         f"{MAX_MATRIX_CLASSES} classes: its table is above.")
    elif len(y):
        threshold = float(metrics.get("threshold", 0.5))
        cm = metrics.get("confusion_matrix") or m.confusion(y, p >= threshold)
        at = {"cm": cm, "threshold": threshold}
        if 0 < y.sum() < len(y):
            jobs.append(("ROC curve", _plot_roc,
                         {**common, **at, "path": folder / "roc.png", "y": y, "p": p}))
            jobs.append(("Precision-recall curve", _plot_precision_recall,
                         {**common, **at, "path": folder / "precision_recall.png", "y": y,
                          "p": p}))
        else:
            notes.append("ROC and precision-recall curves are not drawn: the rows hold "
                         "one class only.")
        jobs.append(("Calibration (reliability diagram)", _plot_calibration,
                     {**common, "path": folder / "calibration.png", "labels": labels, "y": y,
                      "p": p}))
        jobs.append(("Confusion matrix", _plot_confusion,
                     {**common, **at, "path": folder / "confusion_matrix.png",
                      "labels": labels}))
    return jobs, notes


def _draw(jobs: list[tuple[str, Callable[..., Path], dict[str, Any]]]) -> list[tuple[str, Path]]:
    with load_pyplot().rc_context(STYLE):
        return [(caption, plot(**kwargs)) for caption, plot, kwargs in jobs]


def draw_plots(
    folder: Path,
    dataset: str,
    labels: list[str],
    y: np.ndarray,
    p: np.ndarray,
    metrics: dict,
    history: list[dict] | None,
    best_epoch: int | None,
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Draw every plot that applies into ``folder``; return (caption, path) pairs and notes on
    plots left out. ``y`` is boolean; binary ``y``/``p`` are 1-D, multi-label ones (rows, k)."""
    jobs, notes = _plot_jobs(folder, dataset, labels, y, p, metrics, history, best_epoch)
    return _draw(jobs), notes
