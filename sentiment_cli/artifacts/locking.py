"""One writer per output folder: an advisory lock on ``.NAME.lock`` beside the folder.

The lock is ``flock`` on Unix (``msvcrt.locking`` on Windows): the kernel drops it when its
holder ends, even by SIGKILL, so a crashed run never leaves a folder locked. The holder writes
its pid, command and start time into the file so that a second writer can say who holds it,
and deletes the file while still holding the lock; a writer that locked a file which was
deleted meanwhile notices (its inode is no longer the path's) and tries again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

from sentiment_cli.artifacts.folders import make_parents
from sentiment_cli.errors import BusyError, DataError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.lock"


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def _holder(fd: int) -> str:
    """Who holds the lock, from what the holder wrote into the file."""
    with contextlib.suppress(OSError, ValueError):
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
        return (f"{info.get('command', 'another process')} (pid {info.get('pid')}{where}, "
                f"since {info.get('started', '?')})")
    return "another process"


class FolderLock:
    """Held while a command writes ``target`` (and, for bce-train, its checkpoint folder).

    Creating the parent folders is part of taking the lock; those it created are removed again
    on release when nothing was written into them.
    """

    def __init__(self, target: Path, option: str = "--output", writer: str = "bce-train") -> None:
        self.target = Path(target)
        self.option, self.writer = option, writer
        self.path = lock_path(self.target)
        self._fd: int | None = None
        self._created: list[Path] = []

    def acquire(self) -> None:
        self._created = make_parents(self.target.parent)
        nofollow = getattr(os, "O_NOFOLLOW", 0)
        nonblock = getattr(os, "O_NONBLOCK", 0)  # a named pipe there must not block the open
        for _ in range(50):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | nofollow | nonblock, 0o644)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise OSError(errno.EINVAL, "not a regular file")
                locked = _try_lock(fd)
            except OSError as err:
                self._remove_created()
                raise DataError(f"{self.option} {self.target}: cannot use the lock file "
                                f"{self.path} ({err.strerror or err}); remove it if no "
                                f"{self.writer} is running, or choose another {self.option}"
                                ) from None
            if not locked:
                holder = _holder(fd)
                os.close(fd)
                self._remove_created()
                raise BusyError(f"{self.target} is being written by {holder}; wait for it to "
                                f"finish, or choose another {self.option}")
            try:
                current = os.stat(self.path, follow_symlinks=False).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the previous holder deleted the file we locked: lock the new one
        else:
            raise BusyError(f"{self.target}: could not take the lock {self.path}; try again")
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "command": Path(sys.argv[0]).name or "python",
                "started": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still locked: the next writer locks a fresh file
        os.close(fd)
        self._remove_created()

    def _remove_created(self) -> None:
        """The parent folders taking the lock created, if nothing was written into them."""
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._created = []

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

