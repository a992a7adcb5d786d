"""SST-2 training and scoring time as alternating pairs against the scikit-learn peer.

    python benchmarks/pairs.py [--pairs 8] [--before OLD_VENV/bin] [--out FILE.md]
    python benchmarks/pairs.py --predict-lines 200000 [--before OLD_VENV/bin] [--pairs 6]

The benchmark runner times each system's repeats in a row, so a busy minute on this shared
machine lands on one system. Here each round runs ours (``bce-train`` with default options) and
the peer (CountVectorizer with our settings + LogisticRegression, the runner's
``sklearn_cv_ours``, one fresh process) one right after the other, rotating which goes first,
and the ratio is taken within each round. ``--before`` adds the commands of another install
(an earlier version of ours) to every round, so a change is measured as two ratios against the
same peer. ``--predict-lines N`` times scoring instead: N lines (the dev set's texts repeated)
through ``bce-predict`` and through the peer's pickled pipeline, each reading stdin. Wall time
and peak RSS are measured from outside, as in benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    BIN,
    WORKER,
    checked,
    ours_vectorizer_defaults,
    run_measured,
    train_peer,
    write_lines,
)

COLUMNS = {"text_column": "sentence", "label_column": "label", "positive": "1"}


def _rounds(systems: dict[str, Callable[[], float]], pairs: int) -> list[dict[str, float]]:
    """Each round runs every system once, the first one rotating; ratios against the peer."""
    names, rows = list(systems), []
    for i in range(pairs):
        order = names[i % len(names):] + names[: i % len(names)]
        walls = {name: systems[name]() for name in order}
        row: dict[str, float] = {"pair": i + 1, "first": order[0], **walls}  # type: ignore[dict-item]
        for name in names:
            if name != "peer":
                row[f"{name}/peer"] = walls[name] / walls["peer"]
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def run_pairs(data: Path, pairs: int, before: Path | None = None,
              text_column: str = "sentence", label_column: str = "label",
              positive: str = "1") -> list[dict[str, float]]:
    """Training: wall seconds of ``bce-train`` (and ``before``'s) and of the peer, per round."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        params = {"vectorizer": ours_vectorizer_defaults()}

        def trainer(bin_dir: Path, name: str) -> Callable[[], float]:
            return lambda: checked(run_measured(
                [bin_dir / "bce-train", data, "-o", folder / name, "--force", "--quiet",
                 "--seed", "0"]), f"{bin_dir}/bce-train").wall

        systems = {"ours": trainer(BIN, "ours")}
        if before is not None:
            systems["before"] = trainer(before, "before")
        systems["peer"] = lambda: train_peer("sklearn", data, text_column, label_column,
                                             positive, params, folder / "peer.pkl", folder,
                                             "sklearn_cv_ours").wall
        rows = _rounds(systems, pairs)
    for row in rows:
        row["ratio"] = row["ours/peer"]
    return rows


def run_predict_pairs(data: Path, texts_from: Path, lines: int, pairs: int,
                      before: Path | None = None) -> list[dict[str, float]]:
    """Scoring: ``lines`` texts through bce-predict (and ``before``'s) and the peer, per round;
    the ratio is the peer's wall over ours (how many times its throughput ours has)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        texts = pd.read_csv(texts_from, dtype=str, keep_default_na=False)["sentence"].tolist()
        bulk = folder / "bulk.txt"
        write_lines(bulk, texts, lines)
        checked(run_measured([BIN / "bce-train", data, "-o", folder / "model", "--quiet",
                              "--seed", "0", "--no-report"]), "bce-train")
        params = {"vectorizer": ours_vectorizer_defaults()}
        train_peer("sklearn", data, COLUMNS["text_column"], COLUMNS["label_column"],
                   COLUMNS["positive"], params, folder / "peer.pkl", folder, "sklearn_cv_ours")

        def scorer(bin_dir: Path) -> Callable[[], float]:
            return lambda: checked(run_measured(
                [bin_dir / "bce-predict", folder / "model", "--format", "jsonl"], stdin=bulk,
                stdout=folder / "ours.out"), f"{bin_dir}/bce-predict").wall

        systems = {"ours": scorer(BIN)}
        if before is not None:
            systems["before"] = scorer(before)
        systems["peer"] = lambda: checked(run_measured(
            [sys.executable, WORKER, "sklearn-predict", "--model", folder / "peer.pkl"],
            stdin=bulk, stdout=folder / "peer.out"), "sklearn-predict").wall
        rows = _rounds(systems, pairs)
    for row in rows:  # throughput ratios: how many times the peer's texts per second
        for name in ("ours", "before"):
            if name in row:
                row[f"{name}/peer"] = row["peer"] / row[name]
    return rows


def table(rows: list[dict[str, float]], what: str) -> list[str]:
    names = [k for k in ("ours", "before", "peer") if k in rows[0]]
    ratios = [k for k in ("ours/peer", "before/peer") if k in rows[0]]
    lines = ["| round | first | " + " | ".join(f"{n} s" for n in names) + " | " +
             " | ".join(f"{what} {r}" for r in ratios) + " |",
             "|---:|---|" + "---:|" * (len(names) + len(ratios))]
    for r in rows:
        lines.append(f"| {r['pair']} | {r['first']} | " +
                     " | ".join(f"{r[n]:.2f}" for n in names) + " | " +
                     " | ".join(f"{r[k]:.2f}x" for k in ratios) + " |")
    lines.append("| median | | " +
                 " | ".join(f"{statistics.median(r[n] for r in rows):.2f}" for n in names) +
                 " | " + " | ".join(f"{statistics.median(r[k] for r in rows):.2f}x"
                                    for k in ratios) + " |")
    return lines


def main() -> None:
    shared = HERE.parent.parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=shared / "sst2_train.csv")
    parser.add_argument("--texts", type=Path, default=shared / "sst2_dev.csv",
                        help="texts to score with --predict-lines (a 'sentence' column)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--before", type=Path, help="bin/ folder of another install to time too")
    parser.add_argument("--predict-lines", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.predict_lines:
        rows = run_predict_pairs(args.data, args.texts, args.predict_lines, args.pairs,
                                 args.before)
        title = f"Scoring {args.predict_lines:,} lines, alternating rounds"
        what, out = "throughput", args.out or HERE / "results" / "pairs_predict.md"
        about = (f"ours = `bce-predict MODEL --format jsonl < {args.predict_lines:,} lines` "
                 f"(texts of {args.texts.name}, repeated); peer = the pickled CountVectorizer + "
                 "LogisticRegression scoring the same lines in one fresh process. The ratio is "
                 "the peer's wall over ours: how many times its texts per second ours scores.")
    else:
        rows = run_pairs(args.data, args.pairs, args.before)
        title, what = "SST-2 training time, alternating rounds", "wall"
        out = args.out or HERE / "results" / "pairs.md"
        about = ("ours = `bce-train` with default options; peer = CountVectorizer (our "
                 "settings) + LogisticRegression in one fresh process. Wall seconds of each "
                 "process; the ratio is taken within each round.")
    command = " ".join(sys.argv[1:])
    before = f" before = `{args.before}`." if args.before else ""
    text = "\n".join([
        f"# {title}", "",
        f"Command: `python benchmarks/pairs.py {command}` "
        f"({time.perf_counter() - started:.0f} s), on {args.data.name}. {about}{before}", "",
        *table(rows, what),
    ]) + "\n"
    out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
