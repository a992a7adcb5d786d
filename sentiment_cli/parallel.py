"""The one process pool, in black's pattern: a ``ProcessPoolExecutor``, or a serial executor
with the same results where one core is all there is, the input is too small to pay for a
worker, or processes cannot be started. Nothing else in the package knows about processes.

Workers are forked (the default start method on Linux up to Python 3.13, asked for by name so
3.14's forkserver default does not change it; spawned where there is no fork): they start in
milliseconds with what this process has imported and holds (a model to score with), and
nothing else is started. The fork server and spawn both start multiprocessing's resource
tracker, which prints a warning on the terminal after a ``kill -9`` of this process; fork
starts none (measured: kill -9 with a busy worker, 3 start methods, only fork stayed silent).

A worker ignores Ctrl-C and SIGTERM (a terminal, ``timeout`` or a service manager sends them to
every process of the command; this process handles them and ends the pool), and ends itself
when this process ends, however it ended (``kill -9`` too): a thread of its own waits on
multiprocessing's handle of its parent. Workers are never killed while this process runs: one
killed while it sends a result leaves the executor reading the rest of that message for ever
(CPython's manager thread reads it with a blocking ``recv``), which hung bce-train after a
Ctrl-C while it counted terms. Tasks are short instead (a fraction of a second of work each),
so an interrupted pool is done once the tasks already handed over are.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def start_method() -> str:
    """fork where the platform has it, else spawn (Windows)."""
    return "fork" if "fork" in mp.get_all_start_methods() else "spawn"


class SerialExecutor(Executor):
    """Runs each task in ``submit``, in this process: the pool of one core."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # raised by result(), as a worker's would be
            future.set_exception(err)
        return future


def worker_started(initializer: Callable[..., object] | None, initargs: tuple[Any, ...]) -> None:
    """First thing in every worker: leave Ctrl-C and SIGTERM to the parent, end with the
    parent, then the caller's ``initializer``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _end_with(parent: mp.process.BaseProcess) -> None:
    parent.join()  # returns when the parent has ended
    os._exit(1)


def _ready() -> bool:
    return True


@contextlib.contextmanager
def pool(
    workers: int,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[Executor]:
    """An executor of ``workers`` processes, started now, or a :class:`SerialExecutor` when
    ``workers`` < 1 or processes cannot be started. Leaving the block ends every worker: it
    waits for their tasks when the block ended normally; on an error or Ctrl-C it cancels the
    tasks not yet handed to a worker and waits for the others (one running and one queued per
    worker at most).

    Signals are blocked while the workers start, so a Ctrl-C at that moment reaches this
    process alone (the workers ignore it from their first instruction on)."""
    if workers >= 1:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            executor = ProcessPoolExecutor(
                max_workers=workers, mp_context=mp.get_context(start_method()),
                initializer=worker_started, initargs=(initializer, initargs))
            for _ in range(workers):  # started now, while signals are blocked
                executor.submit(_ready)
        except (ImportError, NotImplementedError, OSError):  # no processes here
            workers = 0
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    if workers < 1:
        if initializer is not None:
            initializer(*initargs)
        yield SerialExecutor()
        return
    try:
        yield executor
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def ordered_map(executor: Executor, task: Callable[[T], R], items: Iterable[T],
                ahead: int) -> Iterator[tuple[T, R]]:
    """``(item, task(item))`` in input order, with at most ``ahead`` items in flight, so memory
    stays flat on an endless input."""
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            pending.append((item, executor.submit(task, item)))
            if len(pending) >= ahead:
                item, future = pending.popleft()
                yield item, future.result()
        while pending:
            item, future = pending.popleft()
            yield item, future.result()
    finally:
        for _, future in pending:
            future.cancel()
