"""report.md and the PNG plots: every file written, decodable, the right size, not blank; the
Markdown names what was passed; top_terms is exact for linear models and matches brute force for
MLPs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sentiment_cli.metrics import binary_metrics, multilabel_metrics, sigmoid
from sentiment_cli.model.module import ModelConfig, SparseMLP, predict_logits
from sentiment_cli.reporting.report import term_effects, top_terms, write_report

LABELS = ["negative", "positive"]
BINARY_PLOTS = {"loss", "accuracy", "roc", "precision_recall", "calibration", "confusion_matrix"}


def synthetic_binary(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, sigmoid(2.0 * (2 * y - 1) + rng.normal(0, 1.5, n))


def synthetic_history(epochs: int = 6, with_val: bool = True) -> list[dict]:
    return [{"epoch": e, "train_loss": 0.7 / e, "val_loss": 0.5 + 0.02 * (e - 3) ** 2 if with_val
             else None, "train_acc": 1 - 0.3 / e, "val_acc": 0.8 if with_val else None,
             "seconds": 0.1} for e in range(1, epochs + 1)]


def assert_real_png(path: Path, size: tuple[int, int] = (640, 480)) -> None:
    image = mpimg.imread(path)  # decodes the PNG or raises
    assert (image.shape[1], image.shape[0]) == size, (path.name, image.shape)
    assert image[..., :3].var() > 1e-3, f"{path.name} looks blank"


def plot_names(paths: list[Path]) -> set[str]:
    return {p.stem for p in paths if p.suffix == ".png"}


def binary_report(folder: Path, **overrides) -> list[Path]:
    y, prob = synthetic_binary()
    kwargs = dict(title="model on toy.csv", dataset_name="toy.csv", labels=LABELS, y_true=y,
                  prob=prob, metrics=binary_metrics(y, prob, 0.4),
                  history=synthetic_history(), best_epoch=3)
    return write_report(folder, **{**kwargs, **overrides})


OPTIONS = {"lr": 0.0123, "hidden": [16, 8], "pos_weight": "auto", "seed": 7, "note": "x\ny",
           "vectorizer": {"ngram_range": [1, 2], "token_pattern": r"\w+|[!?]"}}


@pytest.fixture(scope="module")
def full_binary_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One report with every optional part, shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("report")
    y, prob = synthetic_binary()
    paths = binary_report(
        folder, options=OPTIONS,
        extra_sections={"train": binary_metrics(y[:100], prob[:100])},
        top_terms={"negative": [("bad|awful", -1.5), ("dull", -1.0)], "positive": [("good", 1.0)]},
    )
    return folder, paths


def test_binary_report_writes_every_plot_decodable_sized_and_not_blank(
    full_binary_report: tuple[Path, list[Path]],
) -> None:
    folder, paths = full_binary_report
    assert paths[0] == folder / "report.md"
    assert plot_names(paths) == BINARY_PLOTS
    for path in paths:
        assert path.exists() and path.stat().st_size > 0
        if path.suffix == ".png":
            assert path.parent == folder / "plots"
            assert_real_png(path)


def test_report_lists_the_options_passed_and_embeds_every_plot(
    full_binary_report: tuple[Path, list[Path]],
) -> None:
    folder, paths = full_binary_report
    text = (folder / "report.md").read_text(encoding="utf-8")
    assert text.startswith("# model on toy.csv\n")
    for row in [r"\| lr +\| 0\.0123 ", r"\| hidden +\| \[16, 8\] ", r"\| pos_weight +\| auto ",
                r"\| seed +\| 7 ", r"\| note +\| x y ", r"\| vectorizer\.ngram_range +\| \[1, 2\] ",
                r"\| vectorizer\.token_pattern +\| \\w\+\\\|\[!\?\] "]:
        assert re.search(row, text), row
    for path in paths[1:]:
        assert re.search(rf"!\[[^\]]+\]\(plots/{path.name}\)", text), path.name
    assert "![ROC curve](plots/roc.png)" in text
    assert "| 3 (best) " in text
    assert re.search(r"\| metric +\| toy\.csv +\| train +\|", text)
    y, prob = synthetic_binary()
    metrics = binary_metrics(y, prob, 0.4)
    cm = metrics["confusion_matrix"]
    assert f"{cm['tn']} / {cm['fp']} / {cm['fn']} / {cm['tp']}" in text
    assert re.search(rf"\| accuracy +\| {metrics['accuracy']:.4f} ", text)
    assert re.search(r"\| 1 +\| bad\\\|awful +\| -1\.5000 +\| good +\| 1\.0000 +\|", text)


def test_report_tables_have_one_column_count_per_table(
    full_binary_report: tuple[Path, list[Path]],
) -> None:
    blocks, current = [], []
    text = (full_binary_report[0] / "report.md").read_text(encoding="utf-8")
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append(len(re.findall(r"(?<!\\)\|", line)))
        elif current:
            blocks.append(current)
            current = []
    assert len(blocks) == 5  # options, metrics, confusion matrix, history, top terms
    for counts in blocks:
        assert len(set(counts)) == 1, counts


def test_history_plots_only_when_history_given(tmp_path: Path) -> None:
    paths = binary_report(tmp_path, history=None, best_epoch=None)
    assert plot_names(paths) == BINARY_PLOTS - {"loss", "accuracy"}
    assert "## Training history" not in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_history_without_validation_and_as_read_from_csv(tmp_path: Path) -> None:
    as_csv = [{k: "" if v is None else str(v) for k, v in row.items()}
              for row in synthetic_history(with_val=False)]
    paths = binary_report(tmp_path, history=as_csv, best_epoch=6)
    for path in paths[1:]:
        assert_real_png(path)
    assert "| 6 (best) " in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_one_class_data_skips_roc_and_pr_with_a_note(tmp_path: Path) -> None:
    y = np.ones(50, dtype=int)
    prob = np.linspace(0.3, 0.99, 50)
    paths = binary_report(tmp_path, y_true=y, prob=prob, metrics=binary_metrics(y, prob))
    assert plot_names(paths) == BINARY_PLOTS - {"roc", "precision_recall"}
    assert "one class only" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_multilabel_report_writes_per_label_f1(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    names = ["joy", "anger", "fear", "surprise"]
    y = (rng.random((300, 4)) < [0.4, 0.2, 0.1, 0.05]).astype(int)
    prob = sigmoid(1.5 * (2 * y - 1) + rng.normal(0, 1.5, y.shape))
    metrics = multilabel_metrics(y, prob, np.full(4, 0.5), names)
    paths = write_report(tmp_path, title="emotions", dataset_name="emotions.csv", labels=names,
                         y_true=y, prob=prob, metrics=metrics, history=synthetic_history(),
                         best_epoch=2, top_terms={n: [("word", 1.0)] for n in names})
    assert plot_names(paths) == {"loss", "accuracy", "per_label_f1"}
    for path in paths[1:]:
        assert_real_png(path)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "![F1 per label](plots/per_label_f1.png)" in text
    for name in names:
        assert re.search(rf"\| {name} +\| {metrics['per_label'][name]['support']} ", text)
    assert "micro F1" in text and "Hamming loss" in text


def test_per_label_plot_grows_with_many_labels(tmp_path: Path) -> None:
    names = [f"label_{i}" for i in range(30)]
    rng = np.random.default_rng(2)
    y = (rng.random((200, 30)) < 0.2).astype(int)
    prob = np.clip(y * 0.6 + rng.random(y.shape) * 0.5, 0, 1)
    metrics = multilabel_metrics(y, prob, np.full(30, 0.5), names)
    paths = write_report(tmp_path, title="many", dataset_name="many.csv", labels=names,
                         y_true=y, prob=prob, metrics=metrics)
    image = mpimg.imread(paths[-1])
    assert image.shape[1] == 640 and image.shape[0] > 480


def linear_model(weights: np.ndarray) -> SparseMLP:
    model = SparseMLP(ModelConfig(vocab_size=weights.shape[0], hidden=[],
                                  n_outputs=weights.shape[1]))
    with torch.no_grad():
        model.first.bag.weight.copy_(torch.from_numpy(weights.astype(np.float32)))
    return model


def test_top_terms_of_a_linear_model_are_its_extreme_weights() -> None:
    terms = [f"t{i}" for i in range(10)]
    weights = np.array([0.5, -2.0, 3.0, 0.0, -0.5, 1.0, -3.0, 2.0, -1.0, 0.1])[:, None]
    result = top_terms(linear_model(weights), terms, LABELS, n=3)
    assert list(result) == LABELS
    assert result["negative"] == [("t6", -3.0), ("t1", -2.0), ("t8", -1.0)]
    assert result["positive"] == [("t2", 3.0), ("t7", 2.0), ("t5", 1.0)]
    # never lists a term that pushes the other way, even when n asks for more
    all_terms = top_terms(linear_model(weights), terms, LABELS, n=10)
    assert [t for t, _ in all_terms["negative"]] == ["t6", "t1", "t8", "t4"]


def test_top_terms_multilabel_lists_each_labels_most_positive_terms() -> None:
    weights = np.array([[1.0, -1.0], [2.0, 0.5], [-1.0, 3.0], [0.5, 2.0]])
    result = top_terms(linear_model(weights), ["a", "b", "c", "d"], ["joy", "anger"], n=2)
    assert result == {"joy": [("b", 2.0), ("a", 1.0)], "anger": [("c", 3.0), ("d", 2.0)]}


def test_top_terms_rejects_mismatched_vocabulary_or_labels() -> None:
    model = linear_model(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="vocabulary"):
        top_terms(model, ["a", "b"], LABELS)
    with pytest.raises(ValueError, match="two labels"):
        top_terms(model, list("abcd"), ["only"])


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_mlp_term_effects_match_brute_force_one_hot_evaluation(n_outputs: int) -> None:
    torch.manual_seed(0)
    vocab = 37
    model = SparseMLP(ModelConfig(vocab_size=vocab, hidden=[8, 5], dropout=0.5,
                                  n_outputs=n_outputs))
    model.train()  # effects must be measured in eval mode (no dropout) and the mode restored
    effects = term_effects(model, chunk=10)  # several chunks, the last one partial
    assert model.training
    one_hot = sp.identity(vocab, format="csr", dtype=np.float32)
    empty = sp.csr_matrix((1, vocab), dtype=np.float32)
    brute = predict_logits(model, one_hot) - predict_logits(model, empty)
    np.testing.assert_allclose(effects, brute, atol=1e-6)

    terms = [f"w{i}" for i in range(vocab)]
    labels = LABELS if n_outputs == 1 else ["a", "b", "c"]
    result = top_terms(model, terms, labels, n=5)
    if n_outputs == 1:
        order = np.argsort(brute[:, 0])
        assert [t for t, _ in result["negative"]] == [terms[i] for i in order[:5]
                                                      if brute[i, 0] < 0]
        assert [t for t, _ in result["positive"]] == [terms[i] for i in order[::-1][:5]
                                                      if brute[i, 0] > 0]
    else:
        for j, label in enumerate(labels):
            order = np.argsort(-brute[:, j])[:5]
            assert [t for t, _ in result[label]] == [terms[i] for i in order if brute[i, j] > 0]


def test_importing_report_loads_neither_matplotlib_nor_torch() -> None:
    code = ("import sys, sentiment_cli.reporting.report; "
            "print(any(m in sys.modules for m in ('matplotlib', 'torch')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"
