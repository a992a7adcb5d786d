"""Seeded held-out splits of the shared datasets, written as CSV files for the CLI to read.

    python benchmarks/splits.py [--shared ../shared/data] [--out benchmarks/work/splits]

rt_polarity, rt_polarity_imbalanced and uci_sentences get a stratified 90/10 split (seed 0);
SST-2 keeps its own train/dev files. Nothing here is tuned on the test parts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

SPLIT_SEED = 0


def make_splits(shared: Path, out: Path) -> dict[str, tuple[Path, Path]]:
    """{name: (train csv, test csv)} for every dataset present in ``shared``."""
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, tuple[Path, Path]] = {}
    for name, label in (("rt_polarity", "sentiment"), ("rt_polarity_imbalanced", "sentiment"),
                        ("uci_sentences", "label")):
        source = shared / f"{name}.csv"
        if not source.exists():
            continue
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
        train, test = train_test_split(
            frame, test_size=0.1, random_state=SPLIT_SEED, stratify=frame[label]
        )
        paths = (out / f"{name}_train.csv", out / f"{name}_test.csv")
        train.to_csv(paths[0], index=False)
        test.to_csv(paths[1], index=False)
        splits[name] = paths
    if (shared / "sst2_train.csv").exists() and (shared / "sst2_dev.csv").exists():
        splits["sst2"] = (shared / "sst2_train.csv", shared / "sst2_dev.csv")
    return splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/work/splits"))
    args = parser.parse_args()
    for name, (train, test) in make_splits(args.shared, args.out).items():
        print(f"{name}: {train} -> {test}")


if __name__ == "__main__":
    main()
