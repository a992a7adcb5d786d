"""Whole folders: written under a temporary name beside the target, with a manifest of every
file's size and SHA-256 written last, then moved into place in one rename; read through one
handle of the folder and checked against the manifest.

- The previous folder is renamed away and the new one into its place: two renames, between
  which the path is missing for a moment (a reader then looks again once; see
  :func:`.bundle.load_bundle`). The previous folder is then deleted by
  :func:`.folders.remove_owned`. The writer holds the output's lock (:mod:`.locking`)
  throughout, so a temporary folder of this target that it finds is a killed writer's.
- :class:`FolderReader` reads every file relative to one open handle of the folder. Renaming a
  folder does not change what an open handle of it refers to, so every file comes from the same
  folder; if that folder was retired and is being deleted, a file is missing and
  :class:`FolderChanged` says to read again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sentiment_cli.artifacts.folders import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    SMALL_JSON_BYTES,
    check_target,
    entries,
    file_digest,
    open_regular,
    parse_json,
    plausible,
    remove_owned,
    umask,
)
from sentiment_cli.errors import DataError


class FolderChanged(Exception):
    """A file of the folder being read went missing or does not match the manifest."""


def write_manifest(folder: Path, kind: str) -> None:
    files = [f for f in entries(folder)[0] if f != MANIFEST_FILE]
    listed = {}
    for name in files:
        size, digest = file_digest(folder / name)
        listed[name] = {"bytes": size, "sha256": digest}
    payload = {"format": MANIFEST_FORMAT, "kind": kind, "files": listed}
    (folder / MANIFEST_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _fsync_tree(folder: Path) -> None:
    for item in folder.rglob("*"):
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _clear_stale_staging(target: Path, kind: str) -> None:
    """Temporary folders of this target left by a killed writer, when they hold nothing but
    this tool's files. The caller holds the target's lock: no live writer has one."""
    # exactly the names _new_staging and publish give: .NAME.tmp-PID-XXXXXXXX, .NAME.old-PID (and
    # .NAME.tmp-PID of earlier versions)
    name = re.compile(rf"\.{re.escape(target.name)}\.(?:tmp-\d+(?:-[a-z0-9_]{{8}})?|old-\d+)")
    for stale in target.parent.iterdir():
        if (name.fullmatch(stale.name) and stale.is_dir() and not stale.is_symlink()
                and plausible(entries(stale)[0], kind)):
            shutil.rmtree(stale, ignore_errors=True)


def _new_staging(target: Path) -> Path:
    """A new empty folder beside ``target``, with the umask's permissions as the target would
    have (``mkdtemp`` makes it private)."""
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(staging, 0o777 & ~umask())
    return staging


def publish(target: Path, fill: Callable[[Path], None], kind: str, replace: bool) -> list[str]:
    """Build the folder with ``fill`` beside ``target`` and move it into place whole; the
    previous folder (checked again now: empty, or ours and ``replace``) is deleted. Returns
    notes for the user (files that appeared in the previous folder meanwhile are kept). The
    caller holds ``target``'s lock (:class:`.locking.FolderLock`)."""
    option = "--report" if kind == "report" else "--output"
    target = check_target(Path(target), kind, replace, option)
    _clear_stale_staging(target, kind)
    staging = _new_staging(target)
    swapped = False
    try:
        fill(staging)
        write_manifest(staging, kind)
        _fsync_tree(staging)
        check_target(target, kind, replace, option)
        try:
            if not target.exists():
                os.replace(staging, target)
                return []
            retired = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, retired)
            try:
                os.replace(staging, target)
            except OSError:
                os.replace(retired, target)
                raise
            swapped = True
        except OSError as err:  # something appeared at the target, or it is a mount point
            raise DataError(f"cannot move the new folder into place at {target} "
                            f"({err.strerror or err}); nothing was replaced") from None
        left = remove_owned(retired, kind)
        if not left:
            return []
        kept = target.parent / f"{target.name}.replaced-{datetime.now():%Y%m%dT%H%M%S}"
        os.replace(retired, kept)
        return [f"the previous {target} gained files meanwhile ({', '.join(left[:4])}): "
                f"kept in {kept}"]
    finally:
        if not swapped and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def folder_identity(folder: Path | int) -> tuple[int, int] | None:
    """(device, inode) of a folder (or an open one), or None when it is gone: a folder that was
    replaced has another identity at the same path."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return info.st_dev, info.st_ino


class FolderReader:
    """One folder's files, read through one directory handle and checked against its manifest.

    Renaming a folder away does not change what an open handle of it refers to, so every file
    comes from the same folder; if that folder is being deleted (it was replaced), a file is
    missing and :class:`FolderChanged` says to read again. Without a manifest (folders from
    before them), files are read as they are.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._fd: int | None = None
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        if os.open in os.supports_dir_fd:
            self._fd = os.open(self.folder, flags)
        elif not self.folder.is_dir():
            raise NotADirectoryError(self.folder) if self.folder.exists() else (
                FileNotFoundError(self.folder))
        self.identity = folder_identity(self.folder if self._fd is None else self._fd)
        self._manifest: dict[str, Any] | None = None
        self._manifest_read = False

    @property
    def manifest(self) -> dict[str, Any] | None:
        """The manifest's files (name -> size and digest), None for a folder without one."""
        if not self._manifest_read:
            self._manifest_read = True
            if self.exists(MANIFEST_FILE):
                payload = _parse_json(self._read_raw(MANIFEST_FILE, SMALL_JSON_BYTES))
                files = payload.get("files") if isinstance(payload, dict) else None
                if not isinstance(payload, dict) or payload.get("format") != MANIFEST_FORMAT or (
                        not isinstance(files, dict)):
                    raise FolderChanged(f"{MANIFEST_FILE} is not a sentiment-cli manifest")
                self._manifest = files
        return self._manifest

    def _path(self, name: str) -> str | Path:
        return name if self._fd is not None else self.folder / name

    def exists(self, name: str) -> bool:
        try:
            os.stat(self._path(name), dir_fd=self._fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def size(self, name: str) -> int:
        try:
            info = os.stat(self._path(name), dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            raise FolderChanged(f"{name} is missing") from None
        if not stat.S_ISREG(info.st_mode):
            raise FolderChanged(f"{name} is not a regular file")
        return info.st_size

    def _read_raw(self, name: str, limit: int) -> bytes:
        try:
            fd = open_regular(self._path(name), dir_fd=self._fd, follow=False)
        except FileNotFoundError:
            raise FolderChanged(f"{name} is missing") from None
        except OSError as err:  # a link, a folder, a pipe, no permission
            raise FolderChanged(f"{name} cannot be read ({err.strerror or err})") from None
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise FolderChanged(f"{name} is larger than expected ({limit} bytes at most)")
        return data

    def read(self, name: str, limit: int) -> bytes:
        """The file's bytes (at most ``limit``), checked against the manifest when there is one."""
        data = self._read_raw(name, limit)
        if self.manifest is not None:
            entry = self.manifest.get(name)
            if not isinstance(entry, dict):
                raise FolderChanged(f"{name} is not listed in {MANIFEST_FILE}")
            if entry.get("bytes") != len(data) or entry.get("sha256") != hashlib.sha256(
                    data).hexdigest():
                raise FolderChanged(f"{name} does not match its digest in {MANIFEST_FILE}")
        return data

    def read_json(self, name: str, limit: int = SMALL_JSON_BYTES) -> Any:
        return _parse_json(self.read(name, limit), name)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FolderReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _parse_json(data: bytes, name: str = MANIFEST_FILE) -> Any:
    """JSON without NaN or Infinity (Python's json accepts them); FolderChanged when invalid."""
    try:
        return parse_json(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FolderChanged(f"{name} is not valid JSON ({err})") from None
