"""The one process pool: work handed to other cores, or done here when that cannot pay.

Nothing else in the package knows about processes. :func:`pool` gives a
``concurrent.futures`` executor: a :class:`~concurrent.futures.ProcessPoolExecutor` whose
workers start from a fork server on Linux (a clean process that imported only the modules
named in ``preload``, as Python 3.14 makes the default) and are spawned elsewhere, never
forked from this process (its threads, CUDA and open files stay here), or a
:class:`SerialExecutor` that runs each task at once in this process when one core is all there
is, the input is too small to pay for a worker, or processes cannot be started (the way
black's ``concurrency.py`` falls back). Either way a task's result and its exceptions are the
same. Leaving the ``with`` block ends every worker, whatever happened inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing.process import BaseProcess
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
    """forkserver where the platform has it (Linux), else spawn (macOS, Windows)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class SerialExecutor(Executor):
    """Runs each task in ``submit``, in this process: the pool of one core."""

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        future: Future[R] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # raised by result(), as a worker's would be
            future.set_exception(err)
        return future


def worker_started() -> None:
    """First thing in every worker: Ctrl-C is the parent's to handle (it ends the pool), and
    a worker ends with the process that started the pool, however that ended (SIGKILL too).

    A worker's parent in the process tree is the fork server, which lives as long as any
    worker does (each holds its "alive" pipe), and a worker holds both ends of its task queue,
    so neither would notice on its own: a thread waits on multiprocessing's sentinel of the
    pool's process (a pipe only that process holds open) and ends the worker when it closes.
    On Linux the kernel also kills the worker if the fork server goes (``PR_SET_PDEATHSIG``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    parent = mp.parent_process()
    if parent is not None:
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: BaseProcess) -> None:
    parent.join()  # returns when the pool's process has ended
    os._exit(1)


def _started_with(initializer: Callable[..., object] | None, initargs: bytes) -> None:
    worker_started()
    if initializer is not None:
        initializer(*pickle.loads(initargs))


def prepare(preload: Sequence[str]) -> None:
    """Start the fork server now, importing ``preload`` once for all the workers it will fork,
    without waiting for it: a pool started later gets its workers at once, the imports done
    while this process did its own. Nothing where workers are spawned (no fork server)."""
    if start_method() == "forkserver":
        with contextlib.suppress(OSError):  # processes refused: pool() falls back to serial
            _start_fork_server(preload)


def _start_fork_server(preload: Sequence[str]) -> None:
    """The fork server (and multiprocessing's resource tracker), started from this thread (the
    main one: the server dies with it, see fork_server.py) with stderr on /dev/null: workers
    never print (their results and errors come back through futures), but multiprocessing
    itself would, after this process was killed (a worker reading a truncated start-up message,
    a tracker cleaning up semaphores), on the terminal of a command that has already ended.
    A no-op once the server runs."""
    from multiprocessing import forkserver

    mp.get_context("forkserver").set_forkserver_preload(["sentiment_cli.fork_server",
                                                         *preload])
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        forkserver.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def pool(
    workers: int,
    preload: Sequence[str] = (),
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[Executor]:
    """An executor of ``workers`` processes (``preload``: modules the fork server imports once
    for all of them), or a :class:`SerialExecutor` when ``workers`` < 1 or processes cannot be
    started. On an exception or Ctrl-C inside the block, running tasks are abandoned and the
    workers killed at once; otherwise the block's end waits for them to finish."""
    if workers < 1:
        if initializer is not None:
            initializer(*initargs)
        yield SerialExecutor()
        return
    try:
        context = mp.get_context(start_method())
        if context.get_start_method() == "forkserver":
            _start_fork_server(preload)
        # The arguments travel pickled into bytes: a worker reads its start-up arguments from
        # a pipe while the submit() that started it waits, and unpickling a model there
        # would import scikit-learn first (1.4 s per worker); bytes are read at once.
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                       initializer=_started_with,
                                       initargs=(initializer, pickle.dumps(initargs)))
    except (ImportError, NotImplementedError, OSError):  # no processes here (some sandboxes)
        if initializer is not None:
            initializer(*initargs)
        yield SerialExecutor()
        return
    try:
        yield executor
    except BaseException:
        _kill_workers(executor)
        raise
    else:
        executor.shutdown(wait=True)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """End the workers now, without waiting for the task they run (Python 3.14 has
    ``kill_workers``; before it, the executor's processes are only in ``_processes``), then
    let the executor wind down: its manager thread sees them gone at once, and its queues'
    semaphores are released (left behind, multiprocessing's resource tracker would warn)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            process.kill()
    executor.shutdown(wait=True, cancel_futures=True)


def _ready() -> bool:
    return True


def start_workers(executor: Executor, workers: int) -> Callable[[], bool]:
    """Start ``workers`` of the executor's workers now, and return a check that turns true once
    one of them has run its initializer and can take tasks: until then the caller can go on
    working itself. (With the fork server's imports done, see :func:`prepare`, starting them
    takes a few hundredths of a second; otherwise this waits for the server.)"""
    if isinstance(executor, SerialExecutor):
        return lambda: True
    ready = [executor.submit(_ready) for _ in range(workers)]
    return lambda: any(future.done() for future in ready)


def stop(executor: Executor) -> None:
    """End the workers now, abandoning what they run (a pool left before any worker was
    needed need not wait for them to finish starting)."""
    if isinstance(executor, ProcessPoolExecutor):
        _kill_workers(executor)


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
