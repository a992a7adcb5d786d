"""How many validation rows to keep: the choice behind ``--val-max-rows``, on SST-2's train file.

    python benchmarks/valsize.py [--seeds 5] [--caps 0,3000,2000,1000] \
        [--out benchmarks/results/valsize.md]

sst2_dev is never read. For each seed, a grouped 10% of sst2_train (sentiment_cli/split.py)
becomes the test part; the other 90% is what a user would hand to ``bce-train``. On it, for each
cap, the validation rows are split off exactly as ``bce-train --val-max-rows CAP`` splits them
(0: no cap, i.e. 10%), ours trains with default options on the rest, and is scored on the test
part; LogisticRegression (liblinear, C=1, as in benchmarks/run.py) is trained on the same rows,
and once on the whole 90%, as the reference for "every row trains".
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentiment_cli.config import TrainingConfig  # noqa: E402
from sentiment_cli.data.reading import load_dataset  # noqa: E402
from sentiment_cli.features import (  # noqa: E402
    TermCounts,
    VectorizerConfig,
    count_terms,
    fit_counts,
    select,
)
from sentiment_cli.model.module import predict_logits  # noqa: E402
from sentiment_cli.split import related_groups, split_rows  # noqa: E402
from sentiment_cli.training.loop import fit  # noqa: E402

ALL_ROWS = "LR, every row of the 90%"


def lr_accuracy(counts: TermCounts, options: VectorizerConfig, y: np.ndarray,
                rows: np.ndarray, test: np.ndarray) -> float:
    """LogisticRegression trained on ``rows``, accuracy on ``test``."""
    from sklearn.linear_model import LogisticRegression

    _, columns = fit_counts(counts, options, rows)
    model = LogisticRegression(solver="liblinear", C=1.0, max_iter=1000)
    model.fit(select(counts, rows, columns, True), y[rows])
    scores = model.decision_function(select(counts, test, columns, True))
    return float(((scores > 0) == (y[test] > 0.5)).mean())


def run(shared: Path, seeds: int, caps: list[int]) -> list[dict[str, float]]:
    data = load_dataset(shared / "sst2_train.csv")
    options = VectorizerConfig()
    counts = count_terms(data.texts, options)
    groups = related_groups(counts.counts)
    results = []
    for seed in range(seeds):
        given, test = split_rows(data.y, 0.1, 1000 + seed, groups, data.source)
        y_test = data.y[test] > 0.5
        row: dict[str, float] = {"seed": seed,
                                 ALL_ROWS: lr_accuracy(counts, options, data.y, given, test)}
        for cap in caps:
            train_rows, val_rows = split_rows(data.y[given], 0.1, seed, groups[given],
                                              data.source, max_rows=cap)
            train_rows, val_rows = given[train_rows], given[val_rows]
            _, columns = fit_counts(counts, options, train_rows)
            result = fit(select(counts, train_rows, columns, True), data.y[train_rows],
                         select(counts, val_rows, columns, True), data.y[val_rows],
                         TrainingConfig(seed=seed, device="cpu"))
            scores = predict_logits(result.model, select(counts, test, columns, True))[:, 0]
            row[f"cap {cap}: validation rows"] = len(val_rows)
            row[f"cap {cap}: ours"] = float(((scores > 0) == y_test).mean())
            row[f"cap {cap}: LR, same rows"] = lr_accuracy(counts, options, data.y,
                                                            train_rows, test)
        print(row, flush=True)
        results.append(row)
    return results


def table(results: list[dict[str, float]], caps: list[int]) -> list[str]:
    lines = ["| validation rows | ours | LR, same training rows | "
             + " | ".join(f"seed {r['seed']}: ours" for r in results) + " |",
             "|---|---:|---:|" + "---:|" * len(results)]
    for cap in caps:
        name = "10%, no cap" if cap == 0 else f"capped at {cap:,}"
        mean_rows = statistics.mean(r[f"cap {cap}: validation rows"] for r in results)
        cells = [f"{100 * statistics.mean(r[f'cap {cap}: {c}'] for r in results):.2f}"
                 for c in ("ours", "LR, same rows")]
        cells += [f"{100 * r[f'cap {cap}: ours']:.1f}" for r in results]
        lines.append(f"| {name} ({mean_rows:,.0f}) | " + " | ".join(cells) + " |")
    lines.append(f"| LR on every row | | {100 * statistics.mean(r[ALL_ROWS] for r in results):.2f}"
                 " | " + " | ".join("" for _ in results) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--caps", default="0,3000,2000,1000",
                        help="validation row caps to compare, 0 = 10%% with no cap")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "valsize.md")
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    started = time.perf_counter()
    results = run(args.shared, args.seeds, caps)
    lines = [
        "# How many validation rows to keep (SST-2 train only)",
        "",
        f"Command: `python benchmarks/valsize.py --seeds {args.seeds} --caps {args.caps}` "
        f"({time.perf_counter() - started:.0f} s). Accuracy % on a grouped 10% of sst2_train "
        "held out per seed (sst2_dev is not read); the rest is split into training and "
        "validation rows as `bce-train --val-max-rows` would. Means over the seeds, mean "
        "validation rows in brackets.",
        "",
        *table(results, caps),
    ]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
