"""Where counting terms in a worker starts to pay: ``bce-train`` with and without the pool.

    python benchmarks/pool_break_even.py [--rounds 3] [--out benchmarks/results/pool_break_even.md]

``bce-train`` counts every text's terms in one worker process (while it imports torch itself)
when the input files hold at least ``in_memory.POOL_MIN_BYTES``, and in its own process below.
This runs the real command on files of every size in ``../shared/data`` (and the bundled
sample) twice per round, once with the threshold at 0 (always the pool) and once at infinity
(never), in alternating order, and reports the wall times and their ratio per file, and the CPU
time of the whole machine during each run (``/proc/stat``: the worker is a grandchild that
``time`` would not count; run it on an otherwise idle machine). The chosen threshold is the
smallest size where the pool saves wall time without costing CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import checked, run_measured  # noqa: E402

SHARED = HERE.parent.parent / "shared" / "data"
FILES = [HERE.parent / "data" / "reviews.csv", SHARED / "uci_sentences.csv",
         SHARED / "rt_polarity_imbalanced.csv", SHARED / "rt_polarity.csv",
         SHARED / "sst2_train.csv"]
RUN = ("import sys; from sentiment_cli import in_memory; in_memory.POOL_MIN_BYTES = {limit}; "
       "from sentiment_cli.cli.train import main; sys.argv[0] = 'bce-train'; main()")


def busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def timed(data: Path, limit: str, out: Path) -> tuple[float, float]:
    before = busy_seconds()
    wall = checked(run_measured([sys.executable, "-c", RUN.format(limit=limit), str(data), "-o",
                                 str(out), "--force", "--quiet", "--seed", "0"]),
                   f"bce-train {data.name}").wall
    time.sleep(0.2)  # the worker ends with the command
    return wall, busy_seconds() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pool_break_even.md")
    args = parser.parse_args()
    started = time.perf_counter()
    lines = ["| file | MB | rows | pool s | one process s | pool / one process | pool CPU s | "
             "one process CPU s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as scratch:
        for data in [f for f in FILES if f.exists()]:
            pool, alone = [], []
            for i in range(args.rounds):
                order = [("0", pool), ("float('inf')", alone)]
                for limit, walls in order if i % 2 == 0 else order[::-1]:
                    walls.append(timed(data, limit, Path(scratch) / "model"))
            rows = sum(1 for _ in data.open(encoding="utf-8", errors="replace")) - 1
            p, a = (statistics.median(w for w, _ in pool),
                    statistics.median(w for w, _ in alone))
            pc, ac = (statistics.median(c for _, c in pool),
                      statistics.median(c for _, c in alone))
            line = (f"| {data.name} | {data.stat().st_size / 1e6:.2f} | {rows:,} | {p:.2f} | "
                    f"{a:.2f} | {p / a:.2f}x | {pc:.2f} | {ac:.2f} |")
            print(line, flush=True)
            lines.append(line)
    text = "\n".join([
        "# Counting terms in a worker: where it pays", "",
        f"Command: `python benchmarks/pool_break_even.py --rounds {args.rounds}` "
        f"({time.perf_counter() - started:.0f} s). bce-train with default options, the pool "
        "forced on and off in alternating order; medians of the wall times and of the "
        "machine's busy CPU seconds during each run.", "", *lines,
    ]) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
