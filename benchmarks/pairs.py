"""SST-2 training time as alternating pairs: ``bce-train`` and the scikit-learn peer, back to back.

    python benchmarks/pairs.py [--pairs 8] [--out benchmarks/results/pairs.md]

The benchmark runner times each system's repeats in a row, so a busy minute on this shared
machine lands on one system. Here each pair runs ours (``bce-train`` with default options) and
the peer (CountVectorizer with our settings + LogisticRegression, the runner's
``sklearn_cv_ours``, one fresh process) one right after the other, alternating which goes first,
and the ratio is taken within each pair. Wall time and peak RSS are measured from outside, as in
benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BIN, checked, ours_vectorizer_defaults, run_measured, train_peer  # noqa: E402


def run_pairs(data: Path, pairs: int, text_column: str = "sentence", label_column: str = "label",
              positive: str = "1") -> list[dict[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        params = {"vectorizer": ours_vectorizer_defaults()}

        def ours() -> float:
            return checked(run_measured(
                [BIN / "bce-train", data, "-o", folder / "ours", "--force", "--quiet", "--seed",
                 "0"]), "bce-train").wall

        def peer() -> float:
            return train_peer("sklearn", data, text_column, label_column, positive, params,
                              folder / "peer.pkl", folder, "sklearn_cv_ours").wall

        for i in range(pairs):
            first, second = (ours, peer) if i % 2 == 0 else (peer, ours)
            walls = {first.__name__: first(), second.__name__: second()}
            row = {"pair": i + 1, "first": first.__name__, **walls,
                   "ratio": walls["ours"] / walls["peer"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict[str, float]]) -> list[str]:
    lines = ["| pair | first | ours s | peer s | ours / peer |", "|---:|---|---:|---:|---:|"]
    lines += [f"| {r['pair']} | {r['first']} | {r['ours']:.2f} | {r['peer']:.2f} | "
              f"{r['ratio']:.2f}x |" for r in rows]
    lines.append(f"| median | | {statistics.median(r['ours'] for r in rows):.2f} | "
                 f"{statistics.median(r['peer'] for r in rows):.2f} | "
                 f"{statistics.median(r['ratio'] for r in rows):.2f}x |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=HERE.parent.parent / "shared" / "data" / "sst2_train.csv")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pairs.md")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run_pairs(args.data, args.pairs)
    text = "\n".join([
        "# SST-2 training time, alternating pairs",
        "",
        f"Command: `python benchmarks/pairs.py --pairs {args.pairs}` "
        f"({time.perf_counter() - started:.0f} s), on {args.data.name}. ours = `bce-train` "
        "with default options; peer = CountVectorizer (our settings) + LogisticRegression in "
        "one fresh process. Wall seconds of each process; the ratio is taken within each pair.",
        "",
        *table(rows),
    ]) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
