"""One temperature for all classes or one per class (issue 31), on GoEmotions' single-label
comments (28 classes), the split of benchmarks/multiclass.py.

    python benchmarks/class_temperatures.py [--seeds 2]

For each seed the 90% training part is split again 90/10 (stratified) into rows to fit and
validation rows; bce-train fits on the first with ``--val-data`` the second and
``--calibrate none``; both calibrations are fitted on the validation rows' logits and scored
on the 10% test part, which neither saw: the log loss of the normalised probabilities (what
bce-predict reports) and the accuracy of the most probable class. Per-class temperatures are
fitted by L-BFGS on their logarithms, to the same log loss as the one temperature.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from multiclass import single_label_split
from sklearn.model_selection import train_test_split

from sentiment_cli.artifacts.bundle import Bundle, load_bundle
from sentiment_cli.metrics import sigmoid
from sentiment_cli.model.module import predict_logits
from sentiment_cli.training.calibration import fit_class_temperature

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def scored(logits: np.ndarray, truth: np.ndarray, temperature: float | np.ndarray
           ) -> tuple[float, float]:
    prob = sigmoid(logits / temperature)
    prob = prob / prob.sum(axis=1, keepdims=True)
    picked = np.clip(prob[np.arange(len(truth)), truth], 1e-15, 1.0)
    return float(-np.mean(np.log(picked))), float((prob.argmax(axis=1) == truth).mean())


def per_class_temperatures(logits: np.ndarray, truth: np.ndarray) -> np.ndarray:
    log_t = torch.zeros(logits.shape[1], dtype=torch.float64, requires_grad=True)
    z, y = torch.from_numpy(logits), torch.from_numpy(truth)
    optimizer = torch.optim.LBFGS([log_t], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        prob = torch.sigmoid(z / torch.exp(log_t))
        prob = prob / prob.sum(dim=1, keepdim=True)
        loss = -torch.log(prob[torch.arange(len(y)), y].clamp_min(1e-15)).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return torch.exp(log_t).detach().numpy()


def logits_of(bundle: Bundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's logits on the rows' texts, and each row's class (its column)."""
    column = {name: j for j, name in enumerate(bundle.labels)}
    x = bundle.vectorizer.transform(frame["text"].tolist()).tocsr()
    return (predict_logits(bundle.model, x).astype(np.float64),
            np.array([column[label] for label in frame["label"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train, test = single_label_split(ROOT.parent / "shared" / "data", work)
        rows = pd.read_csv(train, dtype=str, keep_default_na=False)
        test_rows = pd.read_csv(test, dtype=str, keep_default_na=False)
        print("| seed | calibration | test log loss | test accuracy | temperatures |")
        print("|---:|---|---:|---:|---|")
        for seed in range(args.seeds):
            fit, val = train_test_split(rows, test_size=0.1, random_state=seed,
                                        stratify=rows["label"])
            fit.to_csv(work / "fit.csv", index=False)
            val.to_csv(work / "val.csv", index=False)
            subprocess.run([str(BIN / "bce-train"), str(work / "fit.csv"), "--val-data",
                            str(work / "val.csv"), "-o", str(work / "m"), "--force", "--seed",
                            str(seed), "--calibrate", "none"], check=True, capture_output=True)
            bundle = load_bundle(work / "m")
            val_logits, val_truth = logits_of(bundle, val)
            test_logits, test_truth = logits_of(bundle, test_rows)
            one = fit_class_temperature(val_logits, np.eye(val_logits.shape[1])[val_truth])
            each = per_class_temperatures(val_logits, val_truth)
            for name, temperature, shown in (
                    ("none", 1.0, "1"), ("one temperature", one, f"{one:.3f}"),
                    ("a temperature per class", each, f"{each.min():.3f}-{each.max():.3f}")):
                loss, accuracy = scored(test_logits, test_truth, temperature)
                print(f"| {seed} | {name} | {loss:.4f} | {accuracy:.4f} | {shown} |")


if __name__ == "__main__":
    main()
