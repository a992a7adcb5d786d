"""Forked helpers: the report helper's contract, and workers that stay quiet on signals."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentiment_cli import workers
from sentiment_cli.workers import Forked, Helper, fork_context, quiet_signals

pytestmark = pytest.mark.skipif(fork_context() is None, reason="needs fork")


def pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


def fail(message: str) -> None:
    raise ValueError(message)


def touch(path: str) -> None:
    Path(path).write_text("warm", encoding="utf-8")


def test_the_task_runs_in_the_helper_after_its_warm_up(tmp_path: Path) -> None:
    marker = tmp_path / "warm"
    with Helper(lambda: touch(str(marker))) as helper:
        pid, value = helper.run(pid_and, value=7)
    assert value == 7 and pid != os.getpid()
    assert marker.read_text(encoding="utf-8") == "warm"


def test_the_tasks_error_is_raised_here() -> None:
    with Helper(lambda: None) as helper, pytest.raises(ValueError, match="disk full"):
        helper.run(fail, message="disk full")


def test_a_dead_or_unstarted_helper_means_the_task_runs_here() -> None:
    with Helper(lambda: None, start=False) as helper:
        assert helper.run(pid_and, value=1) == (os.getpid(), 1)
    helper = Helper(lambda: None)
    assert helper._process is not None
    os.kill(helper._process.pid, signal.SIGKILL)
    helper._process.join()
    assert helper.run(pid_and, value=2) == (os.getpid(), 2)


def die_unless_in(pid: int) -> int:
    if os.getpid() != pid:
        os._exit(3)
    return pid


def test_forked_runs_the_task_in_a_child_even_inside_a_helper() -> None:
    pid, value = Forked(pid_and, value=4).result()
    assert value == 4 and pid != os.getpid()
    with Helper() as helper:  # helpers are daemonic: multiprocessing would refuse a child here
        inner, value = helper.run(forked_pid_and, value=5)
        assert value == 5 and inner not in (os.getpid(), helper._process.pid)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="disk full"):
        Forked(fail, message="disk full").result()


def forked_pid_and(value: int) -> tuple[int, int]:
    return Forked(pid_and, value=value).result()  # type: ignore[no-any-return]


def test_a_dead_or_unforked_child_means_the_task_runs_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert Forked(die_unless_in, pid=os.getpid()).result() == os.getpid()
    monkeypatch.setattr("sentiment_cli.workers.fork_context", lambda: None)
    assert Forked(pid_and, value=6).result() == (os.getpid(), 6)


def test_a_failing_warm_up_is_not_fatal() -> None:
    with Helper(lambda: fail("no fonts")) as helper:
        assert helper.run(pid_and, value=3)[1] == 3


def test_closing_ends_the_helper_even_mid_warm_up() -> None:
    helper = Helper(lambda: time.sleep(30))
    process = helper._process
    assert process is not None and process.is_alive()
    helper.close()
    assert not process.is_alive()


def test_workers_ignore_ctrl_c_and_die_quietly_on_sigterm() -> None:
    context = fork_context()
    assert context is not None

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with context.Pool(1, initializer=quiet_signals) as pool:
            seen = pool.apply(_handlers)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == (signal.SIG_IGN, signal.SIG_DFL)


def _handlers() -> tuple[object, object]:
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)


def stepwise_warm_up(log: str) -> Iterator[None]:
    try:
        for step in range(10_000):  # 100 s if it ran to the end
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"{step}\n")
            time.sleep(0.01)
            yield
    finally:
        with open(log, "a", encoding="utf-8") as out:
            out.write("closed\n")


def test_a_generator_warm_up_stops_when_a_task_is_waiting(tmp_path: Path) -> None:
    log = tmp_path / "steps"
    with Helper(lambda: stepwise_warm_up(str(log))) as helper:
        time.sleep(0.3)
        assert helper.run(pid_and, value=8)[1] == 8
        lines = log.read_text(encoding="utf-8").split()
    assert lines[-1] == "closed"  # its clean-up ran before the task
    assert len(lines) < 10_000  # it stopped early instead of warming up to the end


def touch_later(path: str, delay: float) -> None:
    time.sleep(delay)
    Path(path).write_text("late", encoding="utf-8")


def fork_then_wait(started: str, late: str) -> None:
    twin = Forked(touch_later, path=late, delay=2.0)
    Path(started).write_text("forked", encoding="utf-8")
    twin.result()


def test_closing_a_helper_kills_its_forked_child(tmp_path: Path) -> None:
    started, late = tmp_path / "started", tmp_path / "late"
    helper = Helper()
    helper.submit(fork_then_wait, started=str(started), late=str(late))
    deadline = time.monotonic() + 30
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert started.exists()
    helper.close()
    time.sleep(2.5)  # the child would have written by now
    assert not late.exists()


def nap(seconds: float) -> None:
    time.sleep(seconds)


def test_cancel_kills_and_reaps_the_child() -> None:
    twin = Forked(nap, seconds=30)
    pid = twin._pid
    assert pid is not None and pid in workers._children
    twin.cancel()
    twin.cancel()  # idempotent
    assert pid not in workers._children
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
