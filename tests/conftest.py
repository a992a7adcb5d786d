"""Shared fixtures: small CSV files written per test, the installed commands, one trained model."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "data" / "reviews.csv"

POSITIVE_WORDS = ["great", "love", "excellent", "wonderful", "fantastic", "happy", "perfect"]
NEGATIVE_WORDS = ["awful", "hate", "terrible", "broken", "boring", "refund", "worst"]


def toy_rows(n: int = 120, seed: int = 0) -> list[tuple[str, str]]:
    """Learnable reviews: each row mixes two words of its class with neutral filler."""
    import random

    rng = random.Random(seed)
    filler = ["the", "phone", "movie", "food", "it", "was", "and", "really", "service"]
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(POSITIVE_WORDS if positive else NEGATIVE_WORDS, 2)
        words += rng.sample(filler, 4)
        rng.shuffle(words)
        rows.append((" ".join(words), "positive" if positive else "negative"))
    return rows


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]],
              delimiter: str = ",", encoding: str = "utf-8", newline: str = "\n") -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def toy_csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "toy.csv", ["review", "sentiment"], toy_rows())


def command(name: str) -> str:
    """The installed console script next to this Python, else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run `make install`")
    return found


def run(name: str, *args: str, input: str | bytes | None = None,
        cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run([command(name), *args], input=data, capture_output=True,
                          cwd=cwd, timeout=timeout, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """A failure with the given status, one error line naming the problem, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained once on the bundled sample through the installed bce-train."""
    out = tmp_path_factory.mktemp("models") / "reviews"
    result = run("bce-train", str(SAMPLE), "-o", str(out), "--seed", "0", "--quiet",
                 "--epochs", "6")
    assert result.returncode == 0, result.stderr
    return out


def resign(folder: Path, kind: str = "model") -> None:
    """Write the folder's manifest anew after a test changed its files on purpose (what a
    hostile author would do), so that loading checks the content, not only the digests."""
    from sentiment_cli.artifacts.atomic import write_manifest

    write_manifest(folder, kind)


needs_shared = pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is absent")
