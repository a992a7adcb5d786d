"""The one process pool: a plain ProcessPoolExecutor with a serial fallback and the same
results, quiet workers, and every worker ended on the way out (an error, Ctrl-C, kill -9 of
the parent: the last in test_trust.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sentiment_cli import parallel
from sentiment_cli.config import VectorizerConfig
from sentiment_cli.errors import DataError
from sentiment_cli.features import count_terms

PACKAGE = Path(__file__).resolve().parents[1] / "sentiment_cli"


def pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def fail(message: str) -> None:
    raise ValueError(message)


def handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


def blocked() -> set[signal.Signals]:
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (not a zombie waiting to be reaped)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_only_the_pool_starts_processes() -> None:
    starting = re.compile(r"\bos\.fork\(|ProcessPoolExecutor|multiprocessing|subprocess")
    found = [p.name for p in PACKAGE.rglob("*.py") if starting.search(p.read_text())]
    assert found == ["parallel.py"]


def test_a_worker_runs_the_task_and_raises_its_errors_here() -> None:
    with parallel.pool(1) as executor:
        pid, value = executor.submit(pid_and, 7).result()
        assert value == 7 and pid != os.getpid()
        with pytest.raises(ValueError, match="disk full"):
            executor.submit(fail, "disk full").result()


def test_no_workers_means_the_same_results_here(monkeypatch: pytest.MonkeyPatch) -> None:
    with parallel.pool(0) as executor:
        assert isinstance(executor, parallel.SerialExecutor)
        assert executor.submit(pid_and, 1).result() == (os.getpid(), 1)
        with pytest.raises(ValueError, match="disk full"):
            executor.submit(fail, "disk full").result()

    def no_processes(*args: object, **kwargs: object) -> None:
        raise OSError("no semaphores here")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_processes)
    with parallel.pool(2) as executor:  # a platform without processes falls back
        assert executor.submit(pid_and, 2).result() == (os.getpid(), 2)


def test_workers_leave_ctrl_c_and_sigterm_to_this_process() -> None:
    with parallel.pool(1) as executor:
        assert executor.submit(handlers).result() == (signal.SIG_IGN, signal.SIG_IGN)
        assert executor.submit(blocked).result() == set()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()  # unblocked here again


def test_a_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    # A parent killed with SIGKILL runs no clean-up: its worker, busy with a task, ends itself.
    script = (
        "import os, sys, time\n"
        "from sentiment_cli import parallel\n"
        "with parallel.pool(1) as executor:\n"
        "    print(executor.submit(os.getpid).result(), flush=True)\n"
        "    executor.submit(time.sleep, 60)\n"
        "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    worker = int(proc.stdout.readline())
    proc.kill()
    _, err = proc.communicate(timeout=30)
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(worker), "the worker outlived its parent"
    assert err == ""


def test_an_error_in_the_block_cancels_the_queued_tasks_and_ends_the_workers() -> None:
    """The tasks not yet handed to the worker are cancelled, the one it runs (and the one
    queued for it) finish, and the worker ends: it is never killed (see the next test)."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), parallel.pool(1) as executor:
        pid = executor.submit(pid_and, 0).result()[0]
        futures = [executor.submit(time.sleep, 0.5) for _ in range(20)]
        raise KeyboardInterrupt
    assert time.monotonic() - started < 8  # 2 of the 20 half-second tasks ran, not 20
    assert sum(f.cancelled() for f in futures) >= 17
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"worker {pid} outlived its pool"


INTERRUPTED_WHILE_SENDING = """
import sys, time
from pathlib import Path
from sentiment_cli import parallel

def big(flag):
    data = b"x" * (200 << 20)
    Path(flag).touch()
    return data  # 200 MB through the result pipe, in a fraction of a second

flag, delay = Path(sys.argv[1]), float(sys.argv[2])
try:
    with parallel.pool(1) as executor:
        executor.submit(big, str(flag))
        while not flag.exists():
            time.sleep(0.001)
        time.sleep(delay)
        raise KeyboardInterrupt
except KeyboardInterrupt:
    print("ended")
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_an_interruption_while_a_worker_sends_its_result_does_not_hang(
        tmp_path: Path, delay: float) -> None:
    """Killing a worker while it sent a large result left the executor waiting for the rest
    of that message for ever: on the code that killed workers, 3 of these 5 delays hung (0.5,
    0.7 and 0.9 s after the task began to return, on the machine this was written on), as did
    bce-train after a Ctrl-C while it counted SST-2's terms."""
    result = subprocess.run([sys.executable, "-c", INTERRUPTED_WHILE_SENDING,
                             str(tmp_path / "returning"), str(delay)],
                            capture_output=True, text=True, timeout=120)
    assert result.stdout == "ended\n", result.stderr


def test_ordered_map_keeps_the_order_and_a_bounded_look_ahead() -> None:
    pulled: list[int] = []

    def items():  # type: ignore[no-untyped-def]
        for i in range(100):
            pulled.append(i)
            yield i

    with parallel.pool(0) as executor:
        results = parallel.ordered_map(executor, abs, items(), ahead=4)
        assert next(results) == (0, 0)
        assert len(pulled) == 4  # no more than ``ahead`` in flight
        assert [r for _, r in results] == list(range(1, 100))


def test_counting_terms_in_a_worker_equals_counting_here() -> None:
    texts = [f"not good {i} !" if i % 3 else f"great film {i}" for i in range(300)]
    options = VectorizerConfig()
    alone = count_terms(texts, options)
    with parallel.pool(1) as executor:
        pooled = executor.submit(count_terms, texts, options).result()
        with pytest.raises(DataError, match="vocabulary is empty"):
            executor.submit(count_terms, ["the", "and"],
                            VectorizerConfig(stop_words="english")).result()
    assert pooled.terms == alone.terms
    assert (pooled.counts != alone.counts).nnz == 0
