"""Training-option candidates scored on validation splits of the training parts only.

    python benchmarks/tune.py [--seeds 3] [--out benchmarks/results/tuning.md] \
        [--config '{"lr": 0.02}' ...]

For each dataset's training part (benchmarks/splits.py: rt_polarity and uci_sentences 90%, SST-2
its train file) and each seed, the rows are split 90/10 exactly as ``bce-train`` splits them
(related texts kept together, see sentiment_cli/split.py), and every candidate trains on the 90
and is scored on the 10. The held-out test parts and SST-2's dev file are never read here.
Writes a Markdown table of mean validation accuracy, loss, epochs and seconds per candidate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.splits import make_splits  # noqa: E402
from sentiment_cli.config import TrainingConfig, VectorizerConfig  # noqa: E402
from sentiment_cli.data.reading import load_dataset  # noqa: E402
from sentiment_cli.features import count_terms, fit_counts, select  # noqa: E402
from sentiment_cli.model.module import predict_logits  # noqa: E402
from sentiment_cli.split import related_groups, split_rows  # noqa: E402
from sentiment_cli.training.loop import fit  # noqa: E402

CANDIDATES = [
    {"lr": 0.01, "patience": 3},  # the first landing's defaults
    {"lr": 0.015, "patience": 3},
    {"lr": 0.02, "patience": 3},
    {"lr": 0.02, "patience": 2},
    {"lr": 0.03, "patience": 3},
    {"lr": 0.05, "patience": 3},
    {"lr": 0.02, "batch_size": 512, "patience": 3},
    {"lr": 0.03, "batch_size": 1024, "patience": 3},
    {"lr": 0.01, "weight_decay": 1e-5, "patience": 3},
]


def validation_splits(shared: Path, work: Path, seeds: int) -> Iterator[tuple[str, int, Any]]:
    """(dataset, seed, (x_train, y_train, x_val, y_val)) for each training part and seed: the
    rows split 90/10 as bce-train splits them, the vocabulary fitted on the 90."""
    splits = make_splits(shared, work)
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
            yield name, seed, (select(counts, train_rows, columns, options.binary),
                               data.y[train_rows],
                               select(counts, val_rows, columns, options.binary),
                               data.y[val_rows])


def scored(name: str, seed: int, candidate: dict, result: Any, x_val: Any, y_val: Any,
           seconds: float) -> dict:
    """One result row: validation accuracy at logit 0, the kept epoch's loss, epochs, time."""
    logits = predict_logits(result.model, x_val)[:, 0]
    row = {"dataset": name, "seed": seed, "options": candidate,
           "val_accuracy": float(((logits > 0) == (y_val > 0.5)).mean()),
           "val_loss": result.history[result.best_epoch - 1].val_loss,
           "epochs": len(result.history), "seconds": seconds}
    print(json.dumps(row), flush=True)
    return row


def tune(shared: Path, work: Path, seeds: int, candidates: list[dict]) -> list[dict]:
    results = []
    for name, seed, (x_train, y_train, x_val, y_val) in validation_splits(shared, work, seeds):
        for candidate in candidates:
            started = time.perf_counter()
            result = fit(x_train, y_train, x_val, y_val,
                         TrainingConfig(seed=seed, device="cpu", **candidate))
            results.append(scored(name, seed, candidate, result, x_val, y_val,
                                  time.perf_counter() - started))
    return results


def table(results: list[dict], seeds: int) -> str:
    names = list(dict.fromkeys(r["dataset"] for r in results))
    keys = list(dict.fromkeys(json.dumps(r["options"], sort_keys=True) for r in results))
    lines = [f"Mean over {seeds} seeded 90/10 splits of each training part (validation rows "
             "only; test parts never read).", "",
             "| options | " + " | ".join(f"{n} acc % | {n} loss | {n} epochs | {n} s"
                                        for n in names) + " |",
             "|---|" + "---:|" * (4 * len(names))]
    for key in keys:
        cells = []
        for name in names:
            rows = [r for r in results if r["dataset"] == name
                    and json.dumps(r["options"], sort_keys=True) == key]
            cells += [f"{100 * statistics.mean(r['val_accuracy'] for r in rows):.2f}",
                      f"{statistics.mean(r['val_loss'] for r in rows):.4f}",
                      f"{statistics.mean(r['epochs'] for r in rows):.1f}",
                      f"{statistics.mean(r['seconds'] for r in rows):.2f}"]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "splits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--config", action="append", type=json.loads,
                        help="a candidate as JSON (repeatable); default: the built-in list")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "tuning.md")
    args = parser.parse_args()
    started = time.perf_counter()
    results = tune(args.shared, args.work, args.seeds, args.config or CANDIDATES)
    text = (f"# Tuning the training options\n\nCommand: `python benchmarks/tune.py --seeds "
            f"{args.seeds}` ({time.perf_counter() - started:.0f} s)\n\n"
            + table(results, args.seeds))
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
