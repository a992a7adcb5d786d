"""Imported first by the fork server that starts the workers (``parallel.py`` names it first in
the server's preload): from then on the kernel ends the server when the command that started it
ends, however it ended, even while the server still imports scikit-learn for the workers.

Linux sends the signal when the thread that started the server exits, so ``parallel.py``
starts it from the main thread only. Importing this module anywhere else would do the same to
that process: nothing else imports it."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys

if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
