"""Which folders the commands may write (model, checkpoint, evaluation report), checked before
any data is read, and deleting only what the tool wrote.

- A folder is replaced only when it is empty or this tool wrote it: its ``manifest.json`` lists
  every file in it (model folders from before manifests: ``config.json``'s format marker and
  only the files bce-train writes). Anything else makes the folder the user's, and nothing in
  it is touched, ``--force`` or not.
- The filesystem root, the home folder, the current folder and the folders above it are never
  an output, nor a mount point. A symbolic link is followed to the folder it names (a dangling
  one is refused, also above the output).
- A folder that is replaced is deleted file by file, as its manifest names them.

Writing and reading a folder whole is :mod:`.atomic`'s job, one writer per folder
:mod:`.locking`'s.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentiment_cli.errors import DataError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "sentiment-cli-folder"
WRITERS = {"model": "bce-train", "checkpoint": "bce-train", "report": "bce-eval"}
SMALL_JSON_BYTES = 16 << 20  # a manifest, a config or a checkpoint state is far smaller

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


def open_regular(path: Path | str, dir_fd: int | None = None, follow: bool = True) -> int:
    """A descriptor of a regular file; OSError for anything else. A named pipe would block a
    plain open (or the read after it) for ever, a device never end: neither is opened for
    reading here. ``follow=False`` refuses a symbolic link too."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    if not follow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, dir_fd=dir_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    return fd


def file_digest(path: Path | str) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of a file, read in 1 MiB blocks."""
    digest, size = hashlib.sha256(), 0
    with os.fdopen(open_regular(path), "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def entries(folder: Path) -> tuple[list[str], list[str]]:
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
    """A small JSON file's content, or None when it is missing, too big, not a regular file (a
    link, a pipe) or not JSON."""
    try:
        with os.fdopen(open_regular(path, follow=False), "rb") as handle:
            data = handle.read(SMALL_JSON_BYTES + 1)
        return None if len(data) > SMALL_JSON_BYTES else parse_json(data)
    except (OSError, ValueError, RecursionError):
        return None


def parse_json(data: bytes) -> Any:
    """UTF-8 JSON without NaN or Infinity (Python's json accepts them); ValueError (a
    UnicodeDecodeError included) or RecursionError otherwise."""
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def plausible(files: list[str], kind: str) -> bool:
    """Only names this tool writes into a ``kind`` folder."""
    known = KNOWN_FILES[kind] | {MANIFEST_FILE}
    return all(f in known or (f.startswith("plots/") and f.count("/") == 1
                              and f.endswith(".png")) for f in files)


def _unchanged(folder: Path, name: str, entry: Any, kind: str) -> bool:
    """The file is still what the manifest says the tool wrote: a regular file of that size
    and, in model and report folders, that SHA-256 (a checkpoint is replaced every epoch under
    its run's lock; its sizes suffice)."""
    try:
        info = os.stat(folder / name, follow_symlinks=False)
    except OSError:
        return False
    if (not stat.S_ISREG(info.st_mode) or not isinstance(entry, dict)
            or entry.get("bytes") != info.st_size):
        return False
    if kind == "checkpoint":
        return True
    try:
        return _sha256(str(folder / name), info.st_dev, info.st_ino, info.st_size,
                       info.st_mtime_ns) == entry.get("sha256")
    except OSError:
        return False


@functools.lru_cache(maxsize=256)
def _sha256(path: str, device: int, inode: int, size: int, mtime_ns: int) -> str:
    """A file's SHA-256, hashed once per version of it: a command checks the folder it replaces
    several times (before the lock, under it, before the swap, when deleting)."""
    return file_digest(path)[1]


def _strangers(folder: Path, kind: str) -> list[str] | None:
    """What in ``folder`` is not the tool's: files it did not write or that changed since, and
    folders of nothing else. None when it is no ``kind`` folder of the tool's at all (by its
    manifest or, for older folders, its marker)."""
    files, folders = entries(folder)
    manifest = read_small_json(folder / MANIFEST_FILE)
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        listed = manifest.get("files")
        if manifest.get("kind") != kind or not isinstance(listed, dict):
            return None
        ours = {f for f in files if f in listed and _unchanged(folder, f, listed[f], kind)}
        ours |= {MANIFEST_FILE} & set(files)
    elif kind in _LEGACY_MARKERS and MANIFEST_FILE not in files:
        marker, is_ours = _LEGACY_MARKERS[kind]
        if not is_ours(read_small_json(folder / marker)):
            return None
        ours = {f for f in files if plausible([f], kind)
                and stat.S_ISREG(os.stat(folder / f, follow_symlinks=False).st_mode)}
    else:
        return None
    parents = {Path(f).parent.as_posix() for f in ours}
    return [f for f in files if f not in ours] + [f + "/" for f in folders if f not in parents]


def owned_files(folder: Path, kind: str) -> list[str] | None:
    """The files of ``folder`` when this tool wrote it as a ``kind`` folder and nothing else is
    in it, nor changed since; None otherwise."""
    strangers = _strangers(folder, kind)
    return entries(folder)[0] if strangers == [] else None


def tool_folder_kind(folder: Path) -> str | None:
    """Which kind of folder the tool wrote ``folder`` as, whatever it holds now, or None."""
    manifest = read_small_json(folder / MANIFEST_FILE)
    if isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT:
        kind = manifest.get("kind")
        return kind if kind in WRITERS else None
    for kind, (marker, is_ours) in _LEGACY_MARKERS.items():
        if is_ours(read_small_json(folder / marker)):
            return kind
    return None


def _listing(folder: Path, kind: str, limit: int = 4) -> str:
    """What in ``folder`` is not the tool's (everything, when it is not a tool's folder)."""
    strangers = _strangers(folder, kind)
    if strangers is None:
        files, folders = entries(folder)
        strangers = files + [f + "/" for f in folders]
    top = sorted({entry.split("/")[0] + ("/" if "/" in entry else "") for entry in strangers})
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
    try:
        return _check_target(given, kind, force, option)
    except OSError as err:  # a name too long, a loop of links, no permission to look
        raise DataError(f"{option} {given}: {err.strerror or err}; choose another "
                        f"{option}") from None


def _check_target(given: Path, kind: str, force: bool, option: str) -> Path:
    real = Path(os.path.realpath(given))
    _check_links(given, option)
    _check_not_inside_tool_folder(given, real, option)
    what = _protected(real)
    if what is not None:
        example = Path("reports" if kind == "report" else "models") / "NAME"
        raise DataError(f"{option} {given} is {what}; {WRITERS[kind]} writes a folder of its "
                        f"own, e.g. {option} {example}")
    if real.exists():
        _check_replaceable(given, real, kind, force, option)
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


def _check_links(given: Path, option: str) -> None:
    """A dangling symbolic link on the way: ``mkdir -p`` would not go through it."""
    for part in (Path(os.path.abspath(given)), *Path(os.path.abspath(given)).parents):
        if os.path.islink(part) and not part.exists():
            raise DataError(f"{option} {given}: {part} is a symbolic link to "
                            f"{os.path.realpath(part)}, which does not exist; create it or give "
                            f"another {option}")


def _check_not_inside_tool_folder(given: Path, real: Path, option: str) -> None:
    for above in real.parents:
        if (above / MANIFEST_FILE).is_file() or (above / "config.json").is_file():
            inside = tool_folder_kind(above)
            if inside is not None:
                raise DataError(f"{option} {given} is inside {above}, a {inside} folder "
                                f"{WRITERS[inside]} wrote (which it could then no longer "
                                f"replace); give a folder beside it")


def _check_replaceable(given: Path, real: Path, kind: str, force: bool, option: str) -> None:
    """An existing target: an empty folder, or this command's own folder with --force."""
    writer = WRITERS[kind]
    if not real.is_dir():
        raise DataError(f"{option} {given} is a file, not a folder; choose another {option}")
    if os.path.ismount(real):
        raise DataError(f"{option} {given} is a mount point, which cannot be replaced; give "
                        f"a folder inside it")
    if not any(real.iterdir()):
        return
    if owned_files(real, kind) is None:
        other = tool_folder_kind(real)
        held = (f"a {other} folder" if other not in (None, kind) else
                f"files {writer} did not write, or that changed since")
        raise DataError(
            f"{option} {given} holds {held} ({_listing(real, kind)}); {writer} replaces "
            f"only an empty folder or its own {kind} folder, even with --force: choose "
            f"another {option}")
    if not force:
        raise DataError(f"{option} {given} already exists (a {kind} folder); pass "
                        f"--force to replace it, or choose another {option}")


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
    if not any(folder.iterdir()):  # an empty folder the new one replaced
        folder.rmdir()
        return []
    files = owned_files(folder, kind)
    if files is None:
        return entries(folder)[0] or ["(folders)"]
    for name in files:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / name)
    for sub in sorted(entries(folder)[1], key=lambda f: -f.count("/")):
        with contextlib.suppress(OSError):
            os.rmdir(folder / sub)
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return []
    except OSError:
        return entries(folder)[0]
    return []


def umask() -> int:
    """This process's umask, read without changing it (Linux), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
