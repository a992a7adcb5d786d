"""The one process pool: workers from a fork server (never forked from this process), a
serial fallback with the same results, quiet workers, and every worker ended on the way out."""

from __future__ import annotations

import os
import re
import signal
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


def test_nothing_in_the_package_forks() -> None:
    forking = re.compile(r"os\.fork\(|get_context\(\s*[\"']fork[\"']|set_start_method")
    found = [str(p) for p in PACKAGE.rglob("*.py") if forking.search(p.read_text())]
    assert found == []
    assert parallel.start_method() in ("forkserver", "spawn")


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


def test_workers_leave_ctrl_c_to_this_process() -> None:
    with parallel.pool(1) as executor:
        assert executor.submit(handlers).result() == (signal.SIG_IGN, signal.SIG_DFL)


def test_an_error_in_the_block_ends_the_workers_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), parallel.pool(1) as executor:
        pid = executor.submit(pid_and, 0).result()[0]
        executor.submit(time.sleep, 60)
        raise KeyboardInterrupt
    assert time.monotonic() - started < 20
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"worker {pid} outlived its pool")


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
    with parallel.pool(1, preload=("sentiment_cli.features",)) as executor:
        pooled = executor.submit(count_terms, texts, options).result()
        with pytest.raises(DataError, match="vocabulary is empty"):
            executor.submit(count_terms, ["the", "and"],
                            VectorizerConfig(stop_words="english")).result()
    assert pooled.terms == alone.terms
    assert (pooled.counts != alone.counts).nnz == 0


def test_workers_are_prepared_only_for_input_that_may_be_long(tmp_path: Path) -> None:
    from sentiment_cli.config import PredictConfig
    from sentiment_cli.predict import LONG_INPUT_BYTES, may_be_long

    small, large = tmp_path / "small.txt", tmp_path / "large.txt"
    small.write_text("good\n")
    large.write_bytes(b"good film\n" * (LONG_INPUT_BYTES // 10 + 1))
    model = tmp_path / "m"
    with open(small, "rb") as few, open(large, "rb") as many:
        assert not may_be_long(PredictConfig(model=model), few)
        assert may_be_long(PredictConfig(model=model), many)
        assert may_be_long(PredictConfig(model=model, input_file=large), few)
        assert not may_be_long(PredictConfig(model=model, texts=("a", "b")), many)
        assert may_be_long(PredictConfig(model=model, texts=("a",) * 5, batch_size=2), few)
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb") as pipe, os.fdopen(write_end, "wb"):
        assert may_be_long(PredictConfig(model=model), pipe)  # a pipe's length is unknown
