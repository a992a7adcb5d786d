"""Ctrl-C and SIGTERM, the standard way: a handler that only notes the signal, and checks
where stopping is safe.

Until a command has something to clean up, a signal ends it at once: nothing has been
published or locked (bce-train: :func:`ending_at_once`; the other commands keep Python's
defaults). Within :func:`deferred` (bce-train from the moment it locks its output, bce-eval's
--report), the handler only notes the signal; the work looks at it with :func:`check` between
chunks, batches and phases, and stops there with :class:`~sentiment_cli.errors.Interrupted`:
the checkpoint of the last epoch is kept, shards and staging folders are removed, the lock is
released, and the command exits 128 + the signal with one line. A second signal ends the
process at once (for work that does not reach a check soon). A signal noted after the last
check is delivered again when the block ends, to the handlers it restores: never lost.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from sentiment_cli.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # the signals noted, while deferred
_depth: list[bool] = []  # the deferred blocks entered
_acted: list[bool] = []  # a check stopped the work for the signal noted


def _note(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    for other in SIGNALS:  # the next one is not deferred: it ends the process
        if signal.getsignal(other) is _note:
            signal.signal(other, signal.SIG_DFL)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM are noted for :func:`check` (a signal the process
    started with ignored, as a shell starts ``cmd &``, stays ignored); after it, as before.
    Blocks may nest. Outside the main thread (a library caller's) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    _depth.append(True)
    if not _received:
        for signum, handler in previous.items():
            if handler is not signal.SIG_IGN:
                signal.signal(signum, _note)
    finished = False
    try:
        yield
        finished = True
    finally:
        _depth.pop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if not _depth:
            # A signal noted after the last check (the block ended normally): delivered again
            # now, to the handlers restored, so that it is never lost (one that stopped the
            # block with an error was acted on).
            pending = _received[0] if finished and _received and not _acted else None
            _received.clear()
            _acted.clear()
            if pending is not None:
                signal.raise_signal(pending)


def ending_at_once() -> None:
    """Until :func:`deferred`, SIGINT and SIGTERM end the process at once and silently, as they
    end any program that does not handle them (not Python's KeyboardInterrupt: raised inside
    torch's C++ start-up it aborts the process). An ignored one stays ignored."""
    for signum in SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)


def received() -> int | None:
    """The signal noted since :func:`deferred` began, if any."""
    return _received[0] if _received else None


def check(message: str = "interrupted") -> None:
    """Stop here (:class:`Interrupted`, with ``message``) if a signal was noted."""
    if _received:
        _acted.append(True)
        raise Interrupted(_received[0], message)
