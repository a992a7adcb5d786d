"""The error types the commands turn into one clear line on stderr and an exit status."""

from __future__ import annotations


class SentimentError(Exception):
    """Base class: the message is shown to the user as it is, without a traceback."""

    exit_code = 1


class DataError(SentimentError):
    """Bad input data or options: exit status 2."""

    exit_code = 2


class BundleError(SentimentError):
    """A model folder that is missing, incomplete, tampered with or of an unknown format."""

    exit_code = 2


class TrainingError(SentimentError):
    """Training could not finish (diverged loss, device failure): exit status 1."""

    exit_code = 1


class Interrupted(SentimentError):
    """SIGINT or SIGTERM: exit status 128 + the signal number (130, 143)."""

    def __init__(self, signum: int, message: str = "interrupted") -> None:
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
