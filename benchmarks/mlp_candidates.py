"""Candidate ways to train the MLP (issue 30), scored on validation splits of the training parts.

    python benchmarks/mlp_candidates.py [--seeds 3] [--out benchmarks/results/mlp_candidates.md] \
        --config '{"hidden": [64], "lr": 0.005, "dropout": 0.5, "input_dropout": 0.3}' ...

As benchmarks/tune.py (the same datasets, splits and scoring: accuracy at logit 0 on the 10% of
each training part that ``bce-train`` would hold out; test parts and SST-2's dev file are never
read), with a technique the package does not have, tried here before it is built in:

- ``nb_scale``: Naive Bayes log-count ratios (Wang & Manning 2012): each column of the binary
  matrix scaled by r = log((p / |p|_1) / (q / |q|_1)), p and q the column sums over the positive
  and negative training rows plus ``nb_alpha`` (1), computed on the training rows only.
- ``linear_init``: the MLP (one hidden layer of an even size 2k) starts as the linear model
  trained first with the default options: k hidden units compute ReLU(z), k compute ReLU(-z)
  (z = the linear model's logit, each unit's first-layer column with 10% noise so that they
  differ), and the output layer adds (1/k) ReLU(z) - (1/k) ReLU(-z) = z; it then trains with the
  candidate's options. The seconds include the linear model's training.
- ``wide``: the MLP plus a linear path (wide and deep, Cheng et al. 2016): the first layer
  has one more column per output, added to the output without a nonlinearity (``WideMLP``).
- ``lr_decay``: the learning rate falls linearly from ``lr`` to 0 over this many epochs of
  steps (``DecayingAdam``), then stays at 0 until early stopping ends the run.
- ``with_linear``: an ensemble: the linear model, trained first with the default options on
  the same rows, and the candidate; their validation logits are averaged (accuracy at 0, and
  the log loss of the average). The epochs are the candidate's; the seconds include both.
- ``tfidf``: the matrices through scikit-learn's ``TfidfTransformer(**value)`` fitted on the
  training rows (e.g. ``{"use_idf": false, "norm": "l2"}``: rows scaled to unit length).
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
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.tune import scored, table, validation_splits  # noqa: E402
from sentiment_cli.config import TrainingConfig  # noqa: E402
from sentiment_cli.model import module  # noqa: E402
from sentiment_cli.model.optim import Adam  # noqa: E402
from sentiment_cli.training import loop  # noqa: E402
from sentiment_cli.training.loop import fit  # noqa: E402
from sentiment_cli.training.state import TrainState  # noqa: E402


def nb_ratios(x: sp.csr_matrix, y: np.ndarray, alpha: float) -> np.ndarray:
    p = alpha + np.asarray(x[y > 0.5].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[y <= 0.5].sum(axis=0)).ravel()
    return np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)


def from_linear(x_train: sp.csr_matrix, y_train: np.ndarray, x_val: sp.csr_matrix,
                y_val: np.ndarray, options: TrainingConfig) -> TrainState:
    """A new run's state whose MLP computes the linear model's logits (``linear_init``)."""
    import math

    import torch

    from sentiment_cli.model.optim import Adam

    linear = fit(x_train, y_train, x_val, y_val, TrainingConfig(seed=options.seed, device="cpu"))
    w = linear.model.first.bag.weight.detach()[:, 0]
    b = linear.model.first.bias.detach()[0]
    (width,) = options.hidden
    k = width // 2
    torch.manual_seed(options.seed)
    signs = torch.cat([torch.ones(k), -torch.ones(width - k)])
    noise = 1 + 0.1 * torch.randn(len(w), width)
    model = module.SparseMLP(module.ModelConfig(len(w), [width], options.dropout, 1))
    with torch.no_grad():
        model.first.bag.weight.copy_(w[:, None] * signs[None, :] * noise)
        model.first.bias.copy_(b * signs)
        model.rest[-1].weight.copy_((signs / k)[None, :])
        model.rest[-1].bias.zero_()
    optimizer = Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
    torch.manual_seed(options.seed)
    shuffle = torch.Generator().manual_seed(options.seed).get_state()
    return TrainState(0, model.state_dict(), optimizer.state_dict(), None, math.inf, 0, 0, [],
                      torch.get_rng_state(), shuffle)


class WideMLP(module.SparseMLP):
    """``wide``: the MLP plus a linear path (wide and deep, Cheng et al. 2016): the first layer
    has one more column per output, added to the output without a nonlinearity."""

    def __init__(self, config: module.ModelConfig, input_dropout: float = 0.0) -> None:
        super().__init__(config, input_dropout)
        self.first = module.SparseLinear(config.vocab_size, config.hidden[0] + config.n_outputs)

    def forward(self, batch: module.SparseBatch) -> torch.Tensor:
        if self.training and self.input_dropout > 0:
            values = torch.nn.functional.dropout(batch.values, self.input_dropout, training=True)
            batch = module.SparseBatch(batch.indices, batch.offsets, values)
        first = self.first(batch)
        outputs = self.config.n_outputs
        return first[:, :outputs] + self.rest(first[:, outputs:])


class DecayingAdam(Adam):
    """``lr_decay``: Adam whose learning rate falls linearly to 0 over ``horizon`` steps."""

    horizon = 0  # steps; set per run

    def step(self) -> None:
        self.__dict__.setdefault("initial_lr", self.lr)
        self.lr = self.initial_lr * max(0.0, 1 - self.steps / self.horizon)
        super().step()


def averaged(name: str, seed: int, candidate: dict, results: list, x_val: sp.csr_matrix,
             y_val: np.ndarray, seconds: float) -> dict:
    """``scored``'s row for the mean of several models' logits (``with_linear``)."""
    logits = np.mean([module.predict_logits(r.model, x_val)[:, 0] for r in results], axis=0)
    positive = y_val > 0.5
    loss = np.logaddexp(0, -logits) * positive + np.logaddexp(0, logits) * ~positive
    row = {"dataset": name, "seed": seed, "options": candidate,
           "val_accuracy": float(((logits > 0) == positive).mean()),
           "val_loss": float(loss.mean()), "epochs": len(results[-1].history),
           "seconds": seconds}
    print(json.dumps(row), flush=True)
    return row


def run(shared: Path, work: Path, seeds: int, candidates: list[dict]) -> list[dict]:
    results = []
    for name, seed, (x_train, y_train, x_val, y_val) in validation_splits(shared, work, seeds):
        for candidate in candidates:
            training = dict(candidate)
            alpha = training.pop("nb_alpha", 1.0)
            xt, xv = x_train, x_val
            if training.pop("nb_scale", False):
                scale = sp.diags(nb_ratios(x_train, y_train, alpha))
                xt, xv = (x_train @ scale).tocsr(), (x_val @ scale).tocsr()
            tfidf = training.pop("tfidf", None)
            if tfidf is not None:
                from sklearn.feature_extraction.text import TfidfTransformer

                transform = TfidfTransformer(**tfidf).fit(xt)
                xt = transform.transform(xt).astype(np.float32).tocsr()
                xv = transform.transform(xv).astype(np.float32).tocsr()
            linear_init = training.pop("linear_init", False)
            with_linear = training.pop("with_linear", False)
            loop.SparseMLP = WideMLP if training.pop("wide", False) else module.SparseMLP
            decay = training.pop("lr_decay", None)
            loop.Adam = Adam if decay is None else DecayingAdam
            if decay is not None:
                batch = training.get("batch_size", TrainingConfig().batch_size)
                DecayingAdam.horizon = int(decay * -(-xt.shape[0] // batch))
            started = time.perf_counter()
            config = TrainingConfig(seed=seed, device="cpu", **training)
            resume = from_linear(xt, y_train, xv, y_val, config) if linear_init else None
            linear = fit(xt, y_train, xv, y_val, TrainingConfig(seed=seed, device="cpu")
                         ) if with_linear else None
            result = fit(xt, y_train, xv, y_val, config, resume=resume)
            seconds = time.perf_counter() - started
            if linear is None:
                results.append(scored(name, seed, candidate, result, xv, y_val, seconds))
            else:
                results.append(averaged(name, seed, candidate, [linear, result], xv, y_val,
                                        seconds))
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
