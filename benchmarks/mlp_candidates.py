"""Candidate ways to train the MLP (issue 30), scored on validation splits of the training parts.

    python benchmarks/mlp_candidates.py [--seeds 3] [--out benchmarks/results/mlp_candidates.md] \
        --config '{"hidden": [64], "lr": 0.005, "dropout": 0.5, "input_dropout": 0.3}' ...

As benchmarks/tune.py (the same datasets, splits and scoring: accuracy at logit 0 on the 10% of
each training part that ``bce-train`` would hold out; test parts and SST-2's dev file are never
read), with a technique the package does not have, tried here before it is built in:

- ``nb_scale``: Naive Bayes log-count ratios (Wang & Manning 2012): each column of the binary
  matrix scaled by r = log((p / |p|_1) / (q / |q|_1)), p and q the column sums over the positive
  and negative training rows plus ``nb_alpha`` (1), computed on the training rows only.
Every other key is a TrainingConfig option (``input_dropout`` is ``--input-dropout``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.splits import make_splits  # noqa: E402
from benchmarks.tune import table  # noqa: E402
from sentiment_cli.config import TrainingConfig, VectorizerConfig  # noqa: E402
from sentiment_cli.data.reading import load_dataset  # noqa: E402
from sentiment_cli.features import count_terms, fit_counts, select  # noqa: E402
from sentiment_cli.model import module  # noqa: E402
from sentiment_cli.split import related_groups, split_rows  # noqa: E402
from sentiment_cli.training.loop import fit  # noqa: E402


def nb_ratios(x: sp.csr_matrix, y: np.ndarray, alpha: float) -> np.ndarray:
    p = alpha + np.asarray(x[y > 0.5].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[y <= 0.5].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


def run(shared: Path, work: Path, seeds: int, candidates: list[dict]) -> list[dict]:
    splits = make_splits(shared, work)
    results = []
    for name in ("rt_polarity", "sst2", "uci_sentences"):
        if name not in splits:
            continue
        data = load_dataset(splits[name][0])
        options = VectorizerConfig()
        counts = count_terms(data.texts, options)
        groups = related_groups(counts.counts)
        for seed in range(seeds):
            train_rows, val_rows = split_rows(data.y, 0.1, seed, groups, data.source)
            _, columns = fit_counts(counts, options, train_rows)
            x_train = select(counts, train_rows, columns, options.binary)
            x_val = select(counts, val_rows, columns, options.binary)
            y_train, y_val = data.y[train_rows], data.y[val_rows]
            for candidate in candidates:
                training = dict(candidate)
                alpha = training.pop("nb_alpha", 1.0)
                xt, xv = x_train, x_val
                if training.pop("nb_scale", False):
                    scale = sp.diags(nb_ratios(x_train, y_train, alpha))
                    xt, xv = (x_train @ scale).tocsr(), (x_val @ scale).tocsr()
                started = time.perf_counter()
                result = fit(xt, y_train, xv, y_val,
                             TrainingConfig(seed=seed, device="cpu", **training))
                seconds = time.perf_counter() - started
                logits = module.predict_logits(result.model, xv)[:, 0]
                row = {"dataset": name, "seed": seed, "options": candidate,
                       "val_accuracy": float(((logits > 0) == (y_val > 0.5)).mean()),
                       "val_loss": result.history[result.best_epoch - 1].val_loss,
                       "epochs": len(result.history), "seconds": seconds}
                print(json.dumps(row), flush=True)
                results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "splits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--config", action="append", type=json.loads, required=True,
                        help="a candidate as JSON (repeatable)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "mlp_candidates.md")
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.shared, args.work, args.seeds, args.config)
    command = " ".join(["python benchmarks/mlp_candidates.py", f"--seeds {args.seeds}",
                        *(f"--config '{json.dumps(c)}'" for c in args.config)])
    text = (f"# MLP candidates (issue 30)\n\nCommand: `{command}` "
            f"({time.perf_counter() - started:.0f} s)\n\n" + table(results, args.seeds))
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
