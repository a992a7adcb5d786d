"""What a data file holds, told by its first bytes and never by its name: the compression
(gzip, bz2, xz, zstd) and the format (JSON Lines when the first character that is not blank is
``{``, CSV/TSV otherwise); and JSON Lines read into the same frames of strings as CSV.

A JSON Lines file is one object per line; its columns are the first object's keys. A later
object without one of them has a blank value there (a blank text or label is an invalid row,
as in CSV), extra keys are ignored. Values are read as text: a string as it is, a number as
written in Python (``1``, ``0.5``), ``true``/``false``, null as blank, a list or an object as
its JSON (a column of them is unusable as a label, and reads as such). A line that is not an
object is refused, or skipped with ``--drop-invalid``.

A Parquet file (its first bytes ``PAR1``; read with the optional pyarrow) gives its columns, with
values as text by the same rules as JSON Lines.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import json
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sentiment_cli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"),
          (b"\x28\xb5\x2f\xfd", "zstd"), (b"PAR1", "parquet"))


def parquet_frames(path: Path, chunk_rows: int | None = None,
                   header_only: bool = False) -> Iterator[pd.DataFrame]:
    """A Parquet file's rows as frames of strings, ``chunk_rows`` at a time (all in one
    without), or its columns alone (``header_only``)."""
    import pandas as pd

    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path} is a Parquet file; install pyarrow (pip install pyarrow, or "
                        f"the project's [formats] extra) or save it as CSV") from None
    try:
        with pq.ParquetFile(path) as parquet:
            keys = [str(name).strip() for name in parquet.schema_arrow.names]
            if header_only:
                yield _frame(pd, [], keys, 0)
                return
            frames = 0
            batches = [parquet.read()] if chunk_rows is None else \
                parquet.iter_batches(batch_size=chunk_rows)
            for batch in batches:
                columns = [[_cell(v) for v in column.to_pylist()] for column in batch.columns]
                frame = pd.DataFrame(dict(zip(range(len(keys)), columns, strict=True)),
                                     dtype=object)
                frame.columns = keys
                frame.attrs["malformed"] = 0
                frames += 1
                yield frame
            if frames == 0:
                yield _frame(pd, [], keys, 0)
    except (OSError, ValueError) as err:  # pyarrow's errors derive from these
        raise DataError(f"{path}: cannot read it as Parquet ({err}); check that it was written "
                        f"whole") from None


def compression_of(path: Path) -> str | None:
    """The compression of the file by its first bytes ("parquet": a Parquet file, compressed
    inside), or None for a plain file."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return next((method for magic, method in _MAGIC if head.startswith(magic)), None)


def open_binary(path: Path, compression: str | None) -> IO[bytes]:
    """The file's bytes, decompressed."""
    if compression is None:
        return open(path, "rb")
    if compression == "zstd":
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{path} is zstd-compressed; install zstandard (pip install "
                            f"zstandard) or decompress it first (zstd -d)") from None
        return zstandard.open(path, "rb")  # type: ignore[no-any-return]
    opener = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}[compression]
    return opener(path, "rb")  # type: ignore[no-any-return]


def head(path: Path, compression: str | None, size: int = 64 * 1024) -> bytes:
    """Up to ``size`` bytes from the start of the file, decompressed."""
    try:
        with open_binary(path, compression) as handle:
            return handle.read(size)
    except (OSError, EOFError, lzma.LZMAError, ValueError) as err:
        raise DataError(f"{path} is not a valid {compression} file ({err}); check that it was "
                        f"written whole") from None


def decode_error(path: Path, encoding: str, err: UnicodeDecodeError) -> DataError:
    """The error for a file that is not in ``encoding``, naming the line and the byte."""
    bad = err.object[err.start : err.start + 1]
    shown = f"byte 0x{bad[0]:02x}" if bad else "a byte"
    name = "UTF-8" if encoding.replace("-", "").lower().startswith("utf8") else encoding
    line = _undecodable_line(path, encoding)
    where = f" on line {line}" if line is not None else ""
    return DataError(
        f"{path} is not valid {name} text ({shown}{where}); if it was saved as latin-1 or "
        f"cp1252 (common for older review files), pass --encoding latin-1 (or --encoding "
        f"cp1252)"
    )


def _undecodable_line(path: Path, encoding: str) -> int | None:
    """The first line (1: the first) with bytes that are not ``encoding``, read again from the
    start, a block at a time; None if it cannot be told."""
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
        line = 1
        with open_binary(path, compression_of(path)) as handle:  # not Parquet: text failed
            while block := handle.read(1 << 20):
                pending = len(decoder.getstate()[0])  # a sequence cut by the last block
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as err:
                    return line + block.count(b"\n", 0, max(err.start - pending, 0))
                line += block.count(b"\n")
    except (OSError, LookupError, EOFError, lzma.LZMAError, DataError):
        return None
    return None


def is_json_lines(first_bytes: bytes) -> bool:
    text = first_bytes.lstrip(b"\xef\xbb\xbf \t\r\n")  # a byte-order mark, blank lines
    return text.startswith(b"{")


def json_line_frames(path: Path, encoding: str, compression: str | None,
                     chunk_rows: int | None = None, skip_invalid: bool = False,
                     header_only: bool = False) -> Iterator[pd.DataFrame]:
    """The file's rows as frames of strings, ``chunk_rows`` at a time (all in one without);
    each frame's ``attrs['malformed']`` counts the lines skipped (``skip_invalid``)."""
    import pandas as pd

    keys: list[str] | None = None
    rows: list[list[str]] = []
    skipped = 0
    for number, line in _lines(path, encoding, compression):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise _Invalid(f"is {_JSON_KINDS.get(type(record), 'a value')}, not an object")
            keys = list(record) if keys is None else keys
            if header_only:
                break
            rows.append([_cell(record.get(key)) for key in keys])
        except (ValueError, _Invalid) as err:
            if not skip_invalid:
                what = err if isinstance(err, _Invalid) else \
                    f"is not JSON ({getattr(err, 'msg', err)})"
                raise DataError(f"{path}: line {number} {what}; JSON Lines has one object "
                                f"per line (fix it, or pass "
                                f"--drop-invalid to skip such lines)") from None
            skipped += 1
            continue
        if chunk_rows is not None and len(rows) == chunk_rows:
            yield _frame(pd, rows, keys, skipped)
            rows, skipped = [], 0
    if keys is None:
        raise DataError(f"{path} holds no JSON object; JSON Lines has one object per line")
    if rows or chunk_rows is None or header_only:
        yield _frame(pd, rows, keys, skipped)


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "true or false", type(None): "null"}


class _Invalid(Exception):
    """A line that is JSON but not a row."""


def _lines(path: Path, encoding: str, compression: str | None) -> Iterator[tuple[int, str]]:
    """(line number, line) of the lines that are not blank; errors as one DataError."""
    try:
        with open_binary(path, compression) as raw, \
                io.TextIOWrapper(raw, encoding=encoding, newline="\n") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield number, line
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from None
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise DataError(f"{path}: cannot read ({err}); check that it was written whole") from None


def _frame(pd: Any, rows: list[list[str]], keys: list[str], skipped: int) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[key.strip() for key in keys], dtype=object)
    frame.attrs["malformed"] = skipped
    return frame


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)  # e.g. a date from Parquet
