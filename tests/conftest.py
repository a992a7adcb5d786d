"""Shared fixtures: small CSV files written per test, the commands (run in this process as their
console scripts run them, or installed in a process of their own), one trained model."""

from __future__ import annotations

import contextlib
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


def run_installed(name: str, *args: str, input: str | bytes | None = None,
                  cwd: Path | None = None, timeout: float = 300
                  ) -> subprocess.CompletedProcess[str]:
    """The installed console script in a process of its own: for what only a process shows
    (signals, pipes, its start-up, what it imports, its exit)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}
    data = input.encode() if isinstance(input, str) else input
    proc = subprocess.run([command(name), *args], input=data, capture_output=True,
                          cwd=cwd, timeout=timeout, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


_COMMAND_MODULES = {"bce-train": "train", "bce-predict": "predict", "bce-eval": "evaluate",
                    "bce-info": "info"}


def run(name: str, *args: str, input: str | bytes | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A command as its console script runs it (the same parser, error handling, exit status
    and flushing: ``cli.command_status``), but in this process, so the test does not pay the
    5 s of importing torch and scikit-learn again. Its stdin, stdout and stderr are files on
    descriptors 0, 1 and 2, as under :func:`run_installed`; an exception that would end the
    process with a traceback is status 1 with the traceback on stderr. There is no timeout:
    where a hang is the question, use :func:`run_installed`."""
    import importlib
    import io
    import signal
    import tempfile
    import traceback

    from sentiment_cli.cli import command_status

    app = importlib.import_module(f"sentiment_cli.cli.{_COMMAND_MODULES[name]}").app
    data = input.encode() if isinstance(input, str) else (input or b"")
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds = [os.dup(fd) for fd in (0, 1, 2)]
    streams_before, argv_before = (sys.stdin, sys.stdout, sys.stderr), sys.argv
    cwd_before, columns_before = os.getcwd(), os.environ.get("COLUMNS")
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    streams: list[io.TextIOWrapper] = []
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        stdin.write(data)
        stdin.seek(0)
        try:
            for fd, file in ((0, stdin), (1, out), (2, err)):
                os.dup2(file.fileno(), fd)
            streams = [open(0, encoding="utf-8", closefd=False),  # noqa: SIM115
                       open(1, "w", encoding="utf-8", closefd=False),  # noqa: SIM115
                       open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                            closefd=False)]
            sys.stdin, sys.stdout, sys.stderr = streams
            sys.argv = [command(name), *args]
            os.environ["COLUMNS"] = "120"
            if cwd is not None:
                os.chdir(cwd)
            try:
                code = command_status(app, name, list(args))
            except BaseException:  # what would end the process with a traceback
                traceback.print_exc()
                code = 1
        finally:
            for stream in streams:
                with contextlib.suppress(OSError, ValueError):
                    stream.close()  # flushes
            for fd, copy in zip((0, 1, 2), saved_fds, strict=True):
                os.dup2(copy, fd)
                os.close(copy)
            (sys.stdin, sys.stdout, sys.stderr), sys.argv = streams_before, argv_before
            os.chdir(cwd_before)
            if columns_before is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = columns_before
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            if threads is not None and sys.modules.get("torch") is torch:
                torch.set_num_threads(threads)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return subprocess.CompletedProcess([name, *args], code, stdout.decode("utf-8", "replace"),
                                       stderr.decode("utf-8", "replace"))


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
