"""Multi-label threshold rules (issue 30, item 2), scored on GoEmotions rows never trained on.

    python benchmarks/thresholds.py [--seeds 6] [--first-seed 0] [--options '--patience 4'] \
        [--out benchmarks/results/thresholds.md]

GoEmotions' 10% test part (split with seed 0, as the test figures are) is never read. For each
seed, the rest is split 90/10 into a fitting part and the choosing rows, and the fitting part
90/10 into training and validation rows; ``bce-train`` (defaults, ``--label-columns
all-but-text``) trains on the first with the second as ``--val-data``. Every rule below is then
fitted on the validation rows' probabilities (the model's, calibrated) and scored as macro-F1
on the choosing rows:

- ``own``: each label's threshold maximising its F1 on the validation rows alone;
- ``common``: one threshold for all labels, maximising their mean F1 (a grid of 0.01 to 0.99);
- ``drawn kN``: each label's own threshold drawn toward the common one in logit space, as if the
  common one stood for N validation positives: (n own + N common) / (n + N), n the label's
  validation positives (``tune_thresholds`` with N = its SHRINK_POSITIVES);
- ``F*/2``: half the label's best validation F1 (the optimal threshold of calibrated
  probabilities, Lipton et al. 2014).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split

from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.metrics import best_threshold, score_by_threshold
from sentiment_cli.predict import Predictor
from sentiment_cli.training.calibration import COMMON_GRID

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "goemotions_multilabel.csv"
BIN = Path(sys.executable).parent


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def rules(pv: np.ndarray, yv: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's thresholds, from the validation rows' probabilities and labels."""
    labels = range(pv.shape[1])
    own = np.array([best_threshold(yv[:, j], pv[:, j]) for j in labels])
    together = np.mean([score_by_threshold(yv[:, j], pv[:, j], COMMON_GRID) for j in labels],
                       axis=0)
    common = COMMON_GRID[int(np.argmax(together))]
    positives = yv.sum(axis=0)
    found = {"own": own, "common": np.full(len(own), common)}
    for weight in (10, 20, 40, 80):
        drawn = (positives * logit(own) + weight * logit(np.float64(common))) / \
            (positives + weight)
        found[f"drawn k{weight}"] = 1 / (1 + np.exp(-drawn))
    best = np.array([f1_score(yv[:, j], pv[:, j] >= own[j], zero_division=0) for j in labels])
    found["F*/2"] = best / 2
    return found


def one_seed(frame: pd.DataFrame, labels: list[str], seed: int, work: Path,
             options: list[str]) -> dict[str, float]:
    rest, _test = train_test_split(frame, test_size=0.1, random_state=0)
    fitting, choosing = train_test_split(rest, test_size=0.1, random_state=seed)
    train, val = train_test_split(fitting, test_size=0.1, random_state=seed)
    train.to_csv(work / "train.csv", index=False)
    val.to_csv(work / "val.csv", index=False)
    subprocess.run([str(BIN / "bce-train"), str(work / "train.csv"), "--val-data",
                    str(work / "val.csv"), "-o", str(work / "model"), "--force", "--quiet",
                    "--no-report", "--seed", str(seed), "--label-columns", "all-but-text",
                    *options],
                   check=True, stdout=subprocess.DEVNULL)
    predictor = Predictor(load_bundle(work / "model"))
    pv = predictor.score(val["text"].tolist()).probabilities
    pc = predictor.score(choosing["text"].tolist()).probabilities
    yv, yc = val[labels].astype(int).to_numpy(), choosing[labels].astype(int).to_numpy()
    return {name: f1_score(yc, pc >= th, average="macro", zero_division=0)
            for name, th in rules(pv, yv).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--options", default="", help="more bce-train options, one string")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    frame = pd.read_csv(DATA, dtype=str, keep_default_na=False)
    labels = [c for c in frame.columns if c != "text"]
    scores: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            scores[seed] = one_seed(frame, labels, seed, Path(folder), shlex.split(args.options))
            print(seed, {k: round(v, 4) for k, v in scores[seed].items()}, flush=True)
    names = list(scores[0])
    lines = ["# Multi-label thresholds: GoEmotions, macro-F1 on the choosing rows", "",
             f"`python benchmarks/thresholds.py --seeds {args.seeds} --first-seed "
             f"{args.first_seed} --options {shlex.quote(args.options)}`: see its docstring for "
             "the splits and rules. Each rule is fitted on the same model's validation rows.",
             "", "| seed | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names)]
    for seed, row in scores.items():
        lines.append(f"| {seed} | " + " | ".join(f"{row[n]:.4f}" for n in row) + " |")
    lines.append("| mean | " + " | ".join(
        f"{statistics.mean(r[n] for r in scores.values()):.4f}" for n in names) + " |")
    lines.append("| seeds better than own | " + " | ".join(
        str(sum(r[n] > r["own"] for r in scores.values())) for n in names) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
