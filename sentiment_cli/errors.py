"""The error types the commands turn into one clear line on stderr and an exit status."""

from __future__ import annotations

import errno
from typing import ClassVar


class SentimentError(Exception):
    """Base class: the message is shown to the user as it is, without a traceback."""

    exit_code = 1
    # Under torchrun, rank 0 prints the job's errors; one only its own rank can know of (it
    # could not join, it lost the others) is printed by every rank that meets it.
    every_rank_reports: ClassVar[bool] = False


class DataError(SentimentError):
    """Bad input data or options: exit status 2."""

    exit_code = 2


class BundleError(SentimentError):
    """A model folder that is missing, incomplete, tampered with or of an unknown format."""

    exit_code = 2


def damaged(folder: object, detail: str) -> BundleError:
    """The one line for a model folder that cannot be used as it is."""
    return BundleError(f"{folder}: damaged model folder ({detail}); train it again with bce-train")


class BusyError(SentimentError):
    """Another process is writing the same output folder: exit status 1 (try again later)."""

    exit_code = 1


class TrainingError(SentimentError):
    """Training could not finish (diverged loss, device failure): exit status 1."""

    exit_code = 1


class Interrupted(BaseException):
    """SIGINT or SIGTERM: exit status 128 + the signal number (130, 143). Like
    KeyboardInterrupt, not an Exception: a library's ``except Exception`` around an import or
    a callback (scikit-learn, SciPy have them) must not swallow it."""

    def __init__(self, signum: int, message: str = "interrupted") -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the quota) is full: an OSError, or a library's error
    that carries its message (safetensors raises its own)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    return "No space left on device" in str(err) or "Disk quota exceeded" in str(err)
