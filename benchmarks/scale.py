"""Wall time and peak memory as rows grow: SST-2 train repeated, ours beside the peers.

    python benchmarks/scale.py [--factors 1 10 50] [--peers ours sklearn fasttext] [--out FILE]

Each factor k writes SST-2 train repeated k times (67,349 rows each) and trains on it once:
ours with ``--epochs 1``, in memory and with ``--stream``; scikit-learn (our CountVectorizer
settings + LogisticRegression) and fastText (defaults, one epoch); each as a fresh process
measured from outside (wall time, peak RSS with GNU time), as in benchmarks/run.py. A peer
that fails or runs past the step timeout says so in its row.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import PEERS, machine_info, scale_benchmark, scale_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path,
                        default=HERE.parent.parent / "shared" / "data" / "sst2_train.csv")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scale.md")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        scale = scale_benchmark(args.data, Path(scratch), args.factors, args.factors,
                                args.peers, lambda line: print(line, flush=True),
                                ours_modes=("--no-stream", "--stream"))
    machine = machine_info()
    text = "\n".join([
        "# Scale", "",
        f"Command: `python benchmarks/scale.py {' '.join(sys.argv[1:])}` "
        f"({time.perf_counter() - started:.0f} s). Machine: {machine['nproc']} CPUs, "
        f"{machine['memory_gib']} GiB RAM; git {machine['git'].get('commit', '?')[:12]}; "
        f"{', '.join(f'{k} {v}' for k, v in machine['versions'].items())}.", "",
        *scale_table(scale),
    ])
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
