"""The folders the commands write (model, checkpoint, evaluation report): which existing folders
may be replaced, whole-folder publication, and whole-folder reading.

- A folder is replaced only when it is empty or this tool wrote it: its ``manifest.json`` lists
  every file in it (model folders from before manifests: ``config.json``'s format marker and
  only the files bce-train writes). Anything else makes the folder the user's, and nothing in
  it is touched, ``--force`` or not.
- The filesystem root, the home folder, the current folder and the folders above it are never
  an output. A symbolic link is followed to the folder it names (a dangling one is refused).
- A folder is built under a temporary name beside its target, with the manifest (every file's
  size and SHA-256) written last, then moved into place in one rename, swapped with the previous
  folder by ``renameat2(RENAME_EXCHANGE)`` on Linux. The previous folder's files are then
  deleted by name, as its manifest lists them.
- :class:`FolderReader` opens a folder once and reads every file relative to that handle,
  checked against the manifest: a reader gets the files of one folder, or
  :class:`FolderChanged` when that folder was retired under it (read again, once).

One writer per folder is :mod:`.locking`'s job; the callers hold its lock around all of this.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import DataError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "sentiment-cli-folder"
WRITERS = {"model": "bce-train", "checkpoint": "bce-train", "report": "bce-eval"}
_SMALL_JSON_BYTES = 16 << 20  # a manifest, a config or a checkpoint state is far smaller

# What each kind of folder holds (plots/ holds PNG files only). Folders from before manifests
# are recognised by these names and a marker: config.json's format name for model folders,
# state.json's fingerprint for checkpoints.
KNOWN_FILES = {
    "model": {"config.json", "vocabulary.json", "model.safetensors", "metrics.json",
              "history.csv", "report.md"},
    "checkpoint": {"state.json", "last.safetensors", "best.safetensors",
                   "optimizer.safetensors"},
    "report": {"report.json", "report.md"},
}
_LEGACY_MARKERS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "model": ("config.json", lambda c: isinstance(c, dict)
              and c.get("format") == "sentiment-cli-model"),
    "checkpoint": ("state.json", lambda s: isinstance(s, dict) and "fingerprint" in s),
}


class FolderChanged(Exception):
    """A file of the folder being read went missing or does not match the manifest."""


def file_digest(path: Path | str, dir_fd: int | None = None) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY, dir_fd=dir_fd)
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    """(files, folders) inside ``folder`` as relative POSIX paths, links not followed (a link is
    listed as a file)."""
    files: list[str] = []
    folders: list[str] = []
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        for name in dirs:
            entry = (rel / name).as_posix()
            (files if os.path.islink(os.path.join(root, name)) else folders).append(entry)
        files += [(rel / name).as_posix() for name in names]
    return sorted(files), sorted(folders)


def read_small_json(path: Path) -> Any:
    """A small JSON file's content, or None when it is missing, too big, a link or not JSON."""
    try:
        if path.is_symlink() or path.stat().st_size > _SMALL_JSON_BYTES:
            return None
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _plausible(files: list[str], kind: str) -> bool:
    """Only names this tool writes into a ``kind`` folder."""
    known = KNOWN_FILES[kind] | {MANIFEST_FILE}
    return all(f in known or (f.startswith("plots/") and f.count("/") == 1
                              and f.endswith(".png")) for f in files)


def _allowed(folder: Path, kind: str, files: list[str]) -> set[str] | None:
    """The files this tool wrote into ``folder`` as a ``kind`` folder, by its manifest (or, for
    older folders, its marker and names); None when it is no such folder."""
    manifest = read_small_json(folder / MANIFEST_FILE)
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        listed = manifest.get("files")
        if manifest.get("kind") != kind or not isinstance(listed, dict):
            return None
        return {str(name) for name in listed} | {MANIFEST_FILE}
    if kind in _LEGACY_MARKERS and MANIFEST_FILE not in files:
        marker, is_ours = _LEGACY_MARKERS[kind]
        if is_ours(read_small_json(folder / marker)):
            return {f for f in files if _plausible([f], kind)}
    return None


def owned_files(folder: Path, kind: str) -> list[str] | None:
    """The files of ``folder`` when this tool wrote it as a ``kind`` folder and nothing else is
    in it; None when anything in it is not the tool's."""
    files, folders = _entries(folder)
    allowed = _allowed(folder, kind, files)
    if allowed is None:
        return None
    parents = {str(Path(f).parent.as_posix()) for f in allowed}
    if not set(files) <= allowed or not set(folders) <= parents:
        return None
    return files


def _listing(folder: Path, kind: str, limit: int = 4) -> str:
    """What in ``folder`` is not the tool's (everything, when it is not a tool's folder)."""
    files, folders = _entries(folder)
    allowed = _allowed(folder, kind, files) or set()
    parents = {str(Path(f).parent.as_posix()) for f in allowed}
    strange = [f for f in files if f not in allowed] + [f + "/" for f in folders
                                                         if f not in parents]
    top = sorted({entry.split("/")[0] + ("/" if "/" in entry else "") for entry in strange})
    shown = ", ".join(top[:limit])
    return shown + (f" and {len(top) - limit} more" if len(top) > limit else "")


def _protected(real: Path) -> str | None:
    """What a folder that must never be an output is, or None."""
    if real == Path(real.anchor):
        return "the filesystem root"
    with contextlib.suppress(RuntimeError, KeyError, OSError):
        if real == Path.home().resolve():
            return "your home folder"
    with contextlib.suppress(OSError):
        cwd = Path.cwd().resolve()
        if real == cwd:
            return "the current folder"
        if cwd.is_relative_to(real):
            return "a folder that holds the current folder"
    return None


def check_target(given: Path, kind: str, force: bool, option: str) -> Path:
    """The real path to write ``given`` to, after every check that needs no data: refused when
    it is protected, a file, not ours, ours without ``force``, or cannot be created."""
    writer = WRITERS[kind]
    real = Path(os.path.realpath(given))
    if os.path.islink(given) and not real.exists():
        raise DataError(f"{option} {given} is a symbolic link to {real}, which does not exist; "
                        f"create it or give another {option}")
    what = _protected(real)
    if what is not None:
        example = Path("reports" if kind == "report" else "models") / "NAME"
        raise DataError(f"{option} {given} is {what}; {writer} writes a folder of its own, "
                        f"e.g. {option} {example}")
    if real.exists():
        if not real.is_dir():
            raise DataError(f"{option} {given} is a file, not a folder; choose another {option}")
        if any(real.iterdir()):
            if owned_files(real, kind) is None:
                other = next((k for k in WRITERS if k != kind and owned_files(real, k)), None)
                held = f"a {other} folder" if other else f"files {writer} did not write"
                raise DataError(
                    f"{option} {given} holds {held} ({_listing(real, kind)}); {writer} replaces "
                    f"only an empty folder or its own {kind} folder, even with --force: choose "
                    f"another {option}")
            if not force:
                raise DataError(f"{option} {given} already exists (a {kind} folder); pass "
                                f"--force to replace it, or choose another {option}")
        _check_writable(real.parent, given, option, "replace")
        return real
    ancestor = real.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DataError(f"{option} {given} would be inside {ancestor}, which is a file; choose "
                        f"another {option}")
    _check_writable(ancestor, given, option, "create")
    return real


def _check_writable(folder: Path, given: Path, option: str, verb: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"{option} {given}: cannot {verb} it, {folder} is not writable "
                        f"(permissions or a read-only file system); choose another {option}")


def make_parents(folder: Path) -> list[Path]:
    """``mkdir -p folder``; the folders it created, outermost first."""
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {folder} ({err.strerror or err})") from None
    return missing[::-1]


def remove_owned(folder: Path, kind: str) -> list[str]:
    """Delete a folder this tool wrote, file by file as its manifest names them, then the folder;
    return what is left because it is not the tool's (nothing, normally)."""
    files = owned_files(folder, kind)
    if files is None:
        return _entries(folder)[0] or ["(folders)"]
    for name in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    for sub in sorted(_entries(folder)[1], key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(folder / sub)
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return []
    except OSError:
        return _entries(folder)[0]
    return []


def write_manifest(folder: Path, kind: str) -> None:
    files = [f for f in _entries(folder)[0] if f != MANIFEST_FILE]
    listed = {}
    for name in files:
        size, digest = file_digest(folder / name)
        listed[name] = {"bytes": size, "sha256": digest}
    payload = {"format": MANIFEST_FORMAT, "kind": kind, "files": listed}
    (folder / MANIFEST_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


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
    """Temporary folders of this target left by a killed writer (the caller holds the lock, so
    no live writer has any), when they hold nothing but this tool's files."""
    for pattern in (f".{target.name}.tmp-*", f".{target.name}.old-*"):
        for stale in target.parent.glob(pattern):
            if stale.is_dir() and not stale.is_symlink() and _plausible(_entries(stale)[0], kind):
                shutil.rmtree(stale, ignore_errors=True)


def _new_staging(target: Path) -> Path:
    """A new empty folder beside ``target`` (made with the umask's permissions, as the target
    would be)."""
    while True:
        staging = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        return staging


def publish(target: Path, fill: Callable[[Path], None], kind: str, replace: bool) -> list[str]:
    """Build the folder with ``fill`` beside ``target`` and move it into place whole; the
    previous folder (checked again now: empty, or ours and ``replace``) is deleted. Returns
    notes for the user (files that appeared in the previous folder meanwhile are kept)."""
    target = Path(target)
    _clear_stale_staging(target, kind)
    staging = _new_staging(target)
    swapped = False
    try:
        fill(staging)
        write_manifest(staging, kind)
        _fsync_tree(staging)
        check_target(target, kind, replace, "--output" if kind != "report" else "--report")
        if not target.exists():
            os.replace(staging, target)
            return []
        if _exchange(staging, target):
            swapped, retired = True, staging
        else:
            retired = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, retired)
            os.replace(staging, target)
            swapped = True
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
        self.manifest: dict[str, Any] | None = None
        if self.exists(MANIFEST_FILE):
            payload = _parse_json(self._read_raw(MANIFEST_FILE, _SMALL_JSON_BYTES))
            if not isinstance(payload, dict):
                payload = {}
            files = payload.get("files")
            if payload.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
                raise FolderChanged(f"{MANIFEST_FILE} is not a sentiment-cli manifest")
            self.manifest = files

    def _path(self, name: str) -> str | Path:
        return name if self._fd is not None else self.folder / name

    def exists(self, name: str) -> bool:
        try:
            os.stat(self._path(name), dir_fd=self._fd)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def size(self, name: str) -> int:
        try:
            return os.stat(self._path(name), dir_fd=self._fd).st_size
        except FileNotFoundError:
            raise FolderChanged(f"{name} is missing") from None

    def _read_raw(self, name: str, limit: int) -> bytes:
        try:
            fd = os.open(self._path(name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0),
                         dir_fd=self._fd)
        except FileNotFoundError:
            raise FolderChanged(f"{name} is missing") from None
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

    def read_json(self, name: str, limit: int = _SMALL_JSON_BYTES) -> Any:
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
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise FolderChanged(f"{name} is not valid JSON ({err})") from None
