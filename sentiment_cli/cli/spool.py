"""DATA (or ``bce-predict --input``) given as ``-``: the rows piped in on stdin, copied once
into a temporary file.

Training and evaluation read their data more than once (the first bytes tell the format, a
digest guards ``--resume``, ``--stream`` reads it twice), and a pipe can be read only once. So
the command copies stdin into a folder of its own under the temporary folder (``TMPDIR``),
reads the copy, and removes it when it ends. Messages name it ``stdin``, not the copy."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sentiment_cli import interruption
from sentiment_cli.config import STDIN_NAME
from sentiment_cli.data.files import check_path
from sentiment_cli.distributed import job_identity
from sentiment_cli.errors import DataError, SentimentError, disk_full

COPY_BYTES = 1 << 20


def named(copy: Path | None, text: str) -> str:
    """``text`` with ``copy``, the copy of stdin, called what the user knows it as."""
    return text if copy is None else text.replace(str(copy), STDIN_NAME)


@contextmanager
def copied_stdin(example: str) -> Iterator[Path]:
    """A file holding what stdin holds, removed when the block ends; an error from the block
    names it ``stdin``. ``example``: the command line a refusal shows."""
    if job_identity() is not None:
        raise DataError("- (stdin) cannot be read under torchrun: every process reads the "
                        "data; give it as a file")
    if sys.stdin is None or sys.stdin.isatty():
        raise DataError(f"- reads the rows from stdin, but stdin is a terminal; pipe them in, "
                        f"as in zcat reviews.csv.gz | {example}")
    with tempfile.TemporaryDirectory(prefix="sentiment-cli-") as folder:
        copy = Path(folder) / STDIN_NAME
        try:  # SIGTERM too ends the copy between two reads, and the copy goes with the folder
            with interruption.deferred(), copy.open("wb") as out:
                while True:
                    piece = sys.stdin.buffer.read1(COPY_BYTES)
                    interruption.check()  # also after a read a signal held up: it ends here
                    if not piece:
                        break
                    out.write(piece)
        except OSError as err:
            if not disk_full(err):
                raise
            raise DataError(f"no space left in {Path(folder).parent} to hold the rows from stdin "
                            f"(the copy is removed); set TMPDIR to a folder with room, or give a "
                            f"file instead of -") from None
        try:
            check_path(copy)  # "stdin is empty; ..."
            yield copy
        except SentimentError as err:
            err.args = (named(copy, str(err)),)
            raise
