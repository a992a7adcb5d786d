"""Forked helper processes: the vectorizer's and scorer's workers, and the report writer.

Workers are forked, so they inherit the parent's data without pickling it, and the parent's
signal handlers, which they must not keep: the CLI turns SIGINT/SIGTERM into ``Interrupted``
so that training can save and say how to resume, and a worker raising it would print a
traceback when its pool is shut down (a pool ends its workers with SIGTERM). In a worker,
Ctrl-C is left to the parent (which shuts the pool down) and SIGTERM ends it quietly.
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
from collections.abc import Callable, Generator, Iterator
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

T = TypeVar("T")


def available_cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def fork_context() -> BaseContext | None:
    """multiprocessing's fork context, or None where the platform cannot fork."""
    if "fork" not in mp.get_all_start_methods():
        return None
    return mp.get_context("fork")


_HELD = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while forking. A child starts with this process's Python
    handlers, and a signal that reached it before it set its own (:func:`quiet_signals`) would
    run them there: a traceback, or a SIGTERM that CPython drops once the handler is reset, so
    that the child never ends and whoever waits for it hangs. Held, a signal waits in the
    kernel until the child has set its own handlers; this process gets its own on leaving."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def quiet_signals(parent: int | None = None) -> None:
    """First thing in every forked child: ignore Ctrl-C (the parent handles it), die quietly on
    SIGTERM, and die with ``parent``: on Linux the kernel sends SIGKILL when the parent ends,
    even by SIGKILL (``PR_SET_PDEATHSIG``), and a parent already gone ends the child now. Then
    the signals :func:`signals_held` held back are let through."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(0)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)


def _flush_streams() -> None:
    """Before a fork: nothing buffered may be written twice."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()


class Helper:
    """A forked process that gets ready while this one works, then runs tasks for it.

    Training leaves the second core idle: the report's helper imports matplotlib and draws each
    kind of plot once (fonts, caches) meanwhile, so the plots cost little once the model is
    ready; the vectorizer's helper imports scikit-learn while this process reads the data.
    ``submit`` sends a task (a module-level function and its arguments, pickled over a pipe)
    and returns; ``result`` waits and raises what the task raised; ``run`` does both. Tasks run
    one after another until the helper is closed. Without fork, or if the helper has died, the
    task runs in this process instead: the result is the same, only slower. A ``warm_up`` that
    is a generator function warms up in steps and stops at the first step that finds a task
    waiting, so a long warm-up never delays a task that comes early.
    """

    def __init__(self, warm_up: Callable[[], object] | None = None,
                 start: bool = True) -> None:
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._task: tuple[Callable[..., Any], dict[str, Any]] | None = None
        self._sender: threading.Thread | None = None
        self._send_failed = False
        context = fork_context()
        if context is None or not start:
            return
        _flush_streams()
        ours, theirs = context.Pipe()
        self._conn = ours
        self._process = context.Process(target=_serve, args=(theirs, ours, warm_up, os.getpid()),
                                        daemon=True)
        with signals_held():
            self._process.start()
        theirs.close()

    def submit(self, task: Callable[..., Any], /, **kwargs: Any) -> None:
        """Hand the task over and return at once; ``result`` waits for it.

        The task is sent from a thread: a pipe holds 64 KiB, so sending a large argument
        would otherwise wait until the helper has finished warming up."""
        self._task = (task, kwargs)
        if self._conn is not None:
            self._sender = threading.Thread(target=self._send, args=(self._conn, task, kwargs),
                                            daemon=True)
            self._sender.start()

    def _send(self, conn: Connection, task: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        try:
            conn.send((task, kwargs))
        except Exception:  # the helper is gone, or closed meanwhile: result() runs it here
            self._send_failed = True

    def result(self) -> Any:
        """The submitted task's return value, or its exception raised here."""
        if self._task is None:
            raise RuntimeError("Helper.result() without submit()")
        task, kwargs = self._task
        self._task = None
        if self._sender is not None:
            self._sender.join()
            self._sender = None
        if self._send_failed:
            self.close()
        if self._conn is not None:  # started, and the task went over
            try:
                ok, value = self._conn.recv()
            except (EOFError, OSError):
                self.close()  # the helper died: do it here
            else:
                if not ok:
                    raise value
                return value
        return task(**kwargs)

    def run(self, task: Callable[..., T], /, **kwargs: Any) -> T:
        self.submit(task, **kwargs)
        return self.result()  # type: ignore[no-any-return]

    def __enter__(self) -> Helper:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the helper (idempotent), within a second or two whatever state it is in; a task
        it is running is abandoned."""
        conn, process, sender = self._conn, self._process, self._sender
        self._conn = self._process = self._sender = None
        if conn is not None:
            conn.close()  # a helper waiting for a task reads the end of the pipe and returns
        if process is not None:
            if process.is_alive():
                process.terminate()
            process.join(2.0)
            if process.is_alive():  # SIGTERM cannot be missed (signals_held), but be sure
                process.kill()
                process.join()
        if sender is not None:  # its send fails once the helper is gone
            sender.join()


# Children started by Forked in this process, ended with it (see _end_children_then).
_children: set[int] = set()
_sigterm_before: Any = None
_in_helper = False  # set in a Helper's process, whose close() ends it with SIGTERM


def _end_children_then(signum: int, frame: Any) -> None:
    """SIGTERM in a process with Forked children: kill them first (they would otherwise go on
    writing into a folder that is being removed), then do what SIGTERM did before."""
    for pid in list(_children):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    if callable(_sigterm_before):
        _sigterm_before(signum, frame)
    elif _sigterm_before != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _watch_children() -> None:
    """In a helper, make SIGTERM end its Forked children first. Only there: a Python-level
    SIGTERM handler in a process that later forks a Helper would be inherited by it, and a
    SIGTERM landing before the Helper resets it would be dropped (CPython ignores a pending
    signal whose handler has become SIG_DFL), so close() would wait forever. Elsewhere the
    caller's own error path cancels the child (see plots.draw_plots)."""
    global _sigterm_before
    if not _in_helper or threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _end_children_then:
        _sigterm_before = current
        signal.signal(signal.SIGTERM, _end_children_then)


class Forked:
    """``task(**kwargs)`` in a child forked at once, for a helper to share its work.

    A child forked from a warmed-up helper has its imports for free (the report's helper has
    matplotlib loaded). Helpers are daemonic, and multiprocessing does not let those start
    processes, hence a bare ``os.fork``: the child sends its result (or exception) back over a
    pipe and leaves with ``os._exit``. ``result`` waits and returns it; without fork, or if the
    child died, the task runs in this process then. ``cancel`` kills the child, and in a
    helper so does the SIGTERM of ``Helper.close``: the child does not outlive the helper.
    """

    def __init__(self, task: Callable[..., Any], /, **kwargs: Any) -> None:
        self._task, self._kwargs = task, kwargs
        self._pid: int | None = None
        self._fd: int | None = None
        if fork_context() is None:
            return
        _watch_children()
        _flush_streams()
        read_end, write_end = os.pipe()
        parent = os.getpid()
        with signals_held():
            pid = os.fork()
        if pid == 0:  # the child
            os.close(read_end)
            try:
                _children.clear()
                quiet_signals(parent)
                try:
                    payload = (True, task(**kwargs))
                except Exception as err:
                    payload = (False, err)
                with os.fdopen(write_end, "wb") as out:
                    pickle.dump(payload, out, protocol=pickle.HIGHEST_PROTOCOL)
            finally:
                os._exit(0)
        os.close(write_end)
        _children.add(pid)
        self._pid, self._fd = pid, read_end

    def result(self) -> Any:
        """The task's return value, or its exception raised here."""
        pid, fd = self._pid, self._fd
        if pid is None or fd is None:
            return self._task(**self._kwargs)
        try:
            with os.fdopen(fd, "rb") as pipe:
                self._fd = None
                ok, value = pickle.load(pipe)
        except Exception:  # the child died, or sent what cannot be read back: do it here
            ok, value = None, None
        finally:
            self._reap()
        if ok is None:
            return self._task(**self._kwargs)
        if not ok:
            raise value
        return value

    def cancel(self) -> None:
        """Kill the child and forget its task (idempotent)."""
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._reap()

    def _reap(self) -> None:
        if self._pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            _children.discard(self._pid)
            self._pid = None


def _serve(conn: Connection, parent_end: Connection,
           warm_up: Callable[[], object] | None, parent: int) -> None:
    global _in_helper
    quiet_signals(parent)
    _in_helper = True
    parent_end.close()  # so that the parent's exit, even SIGKILL, ends the wait below
    try:
        _serve_tasks(conn, warm_up)
    except BaseException:  # the parent went away mid-task: nobody to tell, nothing to print
        os._exit(1)


def _serve_tasks(conn: Connection, warm_up: Callable[[], object] | None) -> None:
    if warm_up is not None:
        with contextlib.suppress(Exception):  # warming up is optional; a task says what fails
            steps = warm_up()
            if isinstance(steps, Generator):  # it stops once a task is waiting
                try:
                    for _ in steps:
                        if conn.poll():
                            break
                finally:
                    steps.close()  # runs its clean-up now
    while True:
        try:
            task, kwargs = conn.recv()
        except (EOFError, OSError):
            return  # closed: no more tasks
        try:
            result = (True, task(**kwargs))
        except Exception as err:  # sent back and raised in the parent
            result = (False, err)
        conn.send(result)
