"""DATA given as ``-``: the rows piped in on stdin, copied once into a temporary file.

Training and evaluation read their data more than once (the first bytes tell the format, a
digest guards ``--resume``, ``--stream`` reads it twice), and a pipe can be read only once. So
the command copies stdin into a folder of its own under the temporary folder (``TMPDIR``),
reads the copy, and removes it when it ends. Messages name it ``stdin``, not the copy."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from sentiment_cli.config import STDIN, STDIN_NAME, EvalConfig, TrainConfig
from sentiment_cli.data.files import check_path
from sentiment_cli.distributed import job_identity
from sentiment_cli.errors import DataError, SentimentError, disk_full

C = TypeVar("C", TrainConfig, EvalConfig)
COPY_BYTES = 1 << 20


def named(config: TrainConfig | EvalConfig, text: str) -> str:
    """``text`` with the copy of stdin called what the user knows it as."""
    copy = config.data_file
    return text if copy is None else text.replace(str(copy), STDIN_NAME)


@contextmanager
def stdin_copied(config: C, example: str) -> Iterator[C]:
    """``config`` reading DATA's rows from a copy of stdin when DATA is ``-`` (removed when the
    block ends); as it is otherwise. ``example``: the command line a refusal shows."""
    if config.data != STDIN:
        yield config
        return
    if job_identity() is not None:
        raise DataError("DATA cannot be - (stdin) under torchrun: every process reads the "
                        "data; give it as a file")
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError(f"DATA is - but stdin is a terminal; pipe the rows in, as in "
                        f"zcat reviews.csv.gz | {example}")
    with tempfile.TemporaryDirectory(prefix="sentiment-cli-") as folder:
        copy = Path(folder) / STDIN_NAME
        try:
            with copy.open("wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, COPY_BYTES)
        except OSError as err:
            if not disk_full(err):
                raise
            raise DataError(f"no space left in {folder} to hold the rows from stdin; set TMPDIR "
                            f"to a folder with room, or give DATA as a file") from None
        with_copy = replace(config, data_file=copy)
        try:
            check_path(copy)  # "stdin is empty; ..."
            yield with_copy
        except SentimentError as err:
            err.args = (named(with_copy, str(err)),)
            raise
