"""Multi-class accuracy against scikit-learn and fastText on the same split (issue 31).

    python benchmarks/multiclass.py [--fasttext PYTHON] [--out benchmarks/results/multiclass.md]

Data: the GoEmotions comments that carry exactly one of its 28 labels (27 emotions and
neutral), the label as one column, split 90/10 (stratified, seed 0). Each system trains on the
90% and is scored on the 10% it never saw:

- ours: ``bce-train`` with default options (one sigmoid per class, the most probable class
  predicted), scored by ``bce-eval --json``; seconds are the wall time of ``bce-train``.
- scikit-learn: our CountVectorizer (the same features) + LogisticRegression, multinomial (softmax)
  and one-vs-rest (``OneVsRestClassifier``), max_iter 1000, in this process.
- fastText 0.9.3 (``--fasttext``: a Python with it installed), ``-loss softmax`` and
  ``-loss ova``, wordNgrams 2, 25 epochs (its documented supervised defaults otherwise), run in
  that Python.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.multiclass import OneVsRestClassifier

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

FASTTEXT = """
import json, sys, time, fasttext
train, test, loss = sys.argv[1:4]
started = time.perf_counter()
model = fasttext.train_supervised(train, loss=loss, wordNgrams=2, epoch=25, verbose=0)
seconds = time.perf_counter() - started
rows = [line.rstrip("\\n").split(" ", 1) for line in open(test, encoding="utf-8")]
labels, _ = model.predict([text for _, text in rows])
print(json.dumps({"truth": [t for t, _ in rows], "predicted": [p[0] for p in labels],
                  "seconds": seconds}))
"""


def single_label_split(shared: Path, work: Path) -> tuple[Path, Path]:
    frame = pd.read_csv(shared / "goemotions_multilabel.csv", dtype=str, keep_default_na=False)
    labels = [c for c in frame.columns if c != "text"]
    marks = frame[labels].astype(int).to_numpy()
    one = marks.sum(axis=1) == 1
    single = pd.DataFrame({"text": frame["text"][one].to_numpy(),
                           "label": np.asarray(labels)[marks[one].argmax(axis=1)]})
    train, test = train_test_split(single, test_size=0.1, random_state=0,
                                   stratify=single["label"])
    work.mkdir(parents=True, exist_ok=True)
    paths = (work / "goemotions_single_train.csv", work / "goemotions_single_test.csv")
    train.to_csv(paths[0], index=False)
    test.to_csv(paths[1], index=False)
    return paths


def ours(train: Path, test: Path, folder: Path) -> dict[str, float]:
    started = time.perf_counter()
    subprocess.run([str(BIN / "bce-train"), str(train), "-o", str(folder), "-q", "--force"],
                   check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    scored = json.loads(subprocess.run([str(BIN / "bce-eval"), str(folder), str(test), "--json"],
                                       check=True, capture_output=True, text=True).stdout)
    return {"accuracy": scored["accuracy"], "macro_f1": scored["macro_f1"], "seconds": seconds}


def sklearn_peer(train: pd.DataFrame, test: pd.DataFrame, one_vs_rest: bool) -> dict[str, float]:
    from sentiment_cli.config import VectorizerConfig
    from sentiment_cli.features import build_vectorizer

    started = time.perf_counter()
    vectorizer = build_vectorizer(VectorizerConfig())  # our features, with scikit-learn's model
    x = vectorizer.fit_transform(train["text"])
    model = LogisticRegression(max_iter=1000)
    model = (OneVsRestClassifier(model) if one_vs_rest else model).fit(x, train["label"])
    seconds = time.perf_counter() - started
    predicted = model.predict(vectorizer.transform(test["text"]))
    return {"accuracy": accuracy_score(test["label"], predicted),
            "macro_f1": f1_score(test["label"], predicted, average="macro"), "seconds": seconds}


def fasttext_peer(python: str, train: pd.DataFrame, test: pd.DataFrame,
                  loss: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, part in (("train", train), ("test", test)):
            path = Path(tmp) / f"{name}.txt"
            path.write_text("".join(f"__label__{label} {' '.join(text.lower().split())}\n"
                                    for text, label in zip(part["text"], part["label"],
                                                           strict=True)), encoding="utf-8")
            files.append(str(path))
        out = json.loads(subprocess.run([python, "-c", FASTTEXT, *files, loss], check=True,
                                        capture_output=True, text=True).stdout)
    truth = [t.removeprefix("__label__") for t in out["truth"]]
    predicted = [p.removeprefix("__label__") for p in out["predicted"]]
    return {"accuracy": accuracy_score(truth, predicted),
            "macro_f1": f1_score(truth, predicted, average="macro"), "seconds": out["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "splits")
    parser.add_argument("--fasttext", help="a Python with fasttext installed")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "multiclass.md")
    args = parser.parse_args()
    train_path, test_path = single_label_split(args.shared, args.work)
    train = pd.read_csv(train_path, dtype=str, keep_default_na=False)
    test = pd.read_csv(test_path, dtype=str, keep_default_na=False)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["ours: bce-train, defaults"] = ours(train_path, test_path, Path(tmp) / "m")
    results["scikit-learn LogisticRegression, multinomial"] = sklearn_peer(train, test, False)
    results["scikit-learn LogisticRegression, one-vs-rest"] = sklearn_peer(train, test, True)
    if args.fasttext:
        for loss in ("softmax", "ova"):
            results[f"fastText 0.9.3, -loss {loss}"] = fasttext_peer(args.fasttext, train, test,
                                                                      loss)
    lines = ["# Multi-class: GoEmotions single-label comments (28 classes)", "",
             f"Command: `python benchmarks/multiclass.py"
             f"{' --fasttext PYTHON' if args.fasttext else ''}`. {len(train)} training rows, "
             f"{len(test)} test rows (never trained or tuned on). Seconds: ours, the wall time of "
             f"`bce-train` (start-up, reading, validation split, report included); the peers, "
             f"fitting in one process. One machine (2 shared cores), one run.", "",
             "| system | accuracy | macro-F1 | seconds |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['seconds']:.1f} |"
              for name, r in results.items()]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
