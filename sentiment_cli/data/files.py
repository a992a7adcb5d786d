"""Opening the user's files: the text encoding, the delimiter (given or sniffed), the path's
checks, and CSV/TSV read whole, in chunks or as its header, with pandas; a file that cannot be
read so is one :class:`DataError` naming the file and the option that fixes it."""

from __future__ import annotations

import codecs
import csv
import io
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiment_cli import interruption
from sentiment_cli.data.formats import (
    compression_of,
    decode_error,
    head,
    is_json_lines,
    json_line_frames,
    parquet_frames,
)
from sentiment_cli.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte-order mark
READ_BYTES = 1 << 20  # read from a file at a time, when read whole


def check_encoding(encoding: str | None, line_by_line: bool = False) -> str:
    """A text encoding Python can decode with (and, ``line_by_line``, one in which a line
    break is the byte 0x0a, as stdin is read)."""
    encoding = encoding or DEFAULT_ENCODING
    try:
        codecs.lookup(encoding)
        sample = "text,label\nGood film, 1\n"  # base64, rot13, idna, "undefined" fail here
        if sample.encode(encoding).decode(encoding) != sample:
            raise ValueError(encoding)
    except (LookupError, UnicodeError, ValueError, TypeError):
        raise DataError(f"unknown or unusable --encoding {encoding!r}; try utf-8, latin-1 or "
                        f"cp1252") from None
    try:
        ascii_lines = b"\n a".decode(encoding) == "\n a"
    except UnicodeError:
        ascii_lines = False
    if line_by_line and not ascii_lines:
        raise DataError(f"--encoding {encoding} cannot be read line by line from stdin; convert "
                        f"the input to UTF-8 first (iconv -f {encoding} -t utf-8)")
    return encoding


def check_delimiter(delimiter: str | None) -> str | None:
    """The delimiter to use ('tab' spelled out is a tab), or None to sniff it."""
    if not delimiter:
        return None
    sep = "\t" if delimiter in ("\\t", "tab", "TAB") else delimiter
    if len(sep) != 1 or not sep.isascii() or sep in "\r\n\"":
        raise DataError(f"--delimiter must be one ASCII character (or 'tab'), other than a "
                        f"quote or a line break, got {delimiter!r}")
    return sep


def check_path(path: Path) -> None:
    """A data file that can be read: it exists, is a file, is readable and is not empty."""
    try:
        _check_path(path)
    except OSError as err:  # a name too long, a loop of links
        raise DataError(f"{path}: {err.strerror or err}; check the path") from None


def _check_path(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a data file; give the CSV/TSV file inside it")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (a pipe or a device?): it is read more "
                        f"than once, so save it to a file first")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path} is not readable (permission denied); check its permissions")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it needs a header row and at least one data row")


def sniff_delimiter(first_bytes: bytes, suffix: str, encoding: str = DEFAULT_ENCODING) -> str:
    """Guess the delimiter from the header line: tab, comma, semicolon or pipe (without any
    of them, from the file name's ``suffix``)."""
    first_line = first_bytes.split(b"\n", 1)[0].decode(encoding, errors="replace")
    counts = {sep: first_line.count(sep) for sep in ("\t", ",", ";", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    if counts[best] == 0:
        return "\t" if suffix.lower() in (".tsv", ".tab") else ","
    return best


def read_table(path: str | os.PathLike[str], delimiter: str | None = None,
               encoding: str | None = None, skip_malformed: bool = False,
               read_bytes: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Read a CSV/TSV or JSON Lines file (compressed or not) as strings, with no value turned
    into NaN. ``skip_malformed``: rows with a field too many (JSON Lines: lines that are no
    object) are skipped, and counted in ``frame.attrs['malformed']``. ``read_bytes`` is told
    the bytes taken from the file as CSV/TSV reading goes on (a progress bar's).

    Tab-separated files are read without quote handling (the TSV convention, and what GLUE-style
    corpora need: a review that starts with a quote must not swallow the following lines).
    """
    (frame,) = _frames(Path(path), delimiter, encoding, None, skip_malformed, read_bytes)
    if len(frame) == 0:
        raise DataError(f"{path} has a header ({', '.join(frame.columns)}) but no data rows")
    return frame


def read_table_chunks(path: str | os.PathLike[str], delimiter: str | None = None,
                      encoding: str | None = None, chunk_rows: int = 50_000,
                      columns: Sequence[str] | None = None,
                      skip_malformed: bool = False) -> Iterator[pd.DataFrame]:
    """:func:`read_table` a chunk of ``chunk_rows`` rows at a time, for files larger than
    memory; each chunk keeps only ``columns`` (as named in the header after stripping), when
    given. Every column is parsed all the same: pandas' ``usecols`` would let a row with a
    field too many through, shifted, where reading the whole file refuses it."""
    for frame in _frames(Path(path), delimiter, encoding, chunk_rows, skip_malformed):
        yield frame if columns is None else frame[list(columns)]  # attrs go along


def file_state(path: Path) -> tuple[int, int]:
    """Its size and modification time: what tells that a file changed between two readings."""
    status = path.stat()
    return status.st_size, status.st_mtime_ns


def read_header(path: str | os.PathLike[str], delimiter: str | None = None,
                encoding: str | None = None) -> list[str]:
    """The column names of a data file (stripped), read from its header (JSON Lines: its first
    object) alone."""
    (frame,) = _frames(Path(path), delimiter, encoding, 0, False)
    return list(frame.columns)


def _frames(path: Path, delimiter: str | None, encoding: str | None, chunk_rows: int | None,
            skip_malformed: bool, read_bytes: Callable[[int], None] | None = None
            ) -> Iterator[pd.DataFrame]:
    """The file's rows as frames of strings: all at once (``chunk_rows`` None), in chunks, or
    the header alone (0)."""
    import pandas as pd

    arguments = _csv_arguments(path, delimiter, encoding)
    if arguments.pop("parquet"):
        yield from parquet_frames(path, chunk_rows or None, chunk_rows == 0)
        return
    if arguments.pop("json_lines"):
        yield from json_line_frames(path, arguments["encoding"], arguments["compression"],
                                    chunk_rows or None, skip_malformed, chunk_rows == 0)
        return
    if chunk_rows == 0:
        arguments["nrows"] = 0
    elif chunk_rows is not None:
        arguments["chunksize"] = chunk_rows
    arguments["on_bad_lines"] = "warn" if skip_malformed else "error"
    with _reading_errors(path, arguments):
        if not chunk_rows:
            with io.BufferedReader(_Reporting(path, read_bytes), READ_BYTES) as source:
                yield _counted(lambda: pd.read_csv(source, **arguments))
            return
        with pd.read_csv(path, **arguments) as chunks:
            while (frame := _counted(lambda: next(chunks, None))) is not None:
                yield frame


class _Reporting(io.FileIO):
    """A file opened for reading that tells ``report`` the bytes each read takes from it, and
    stops at a read after a signal noted (interruption.check: pandas passes the exception on),
    so that Ctrl-C does not wait for the whole file to be parsed."""

    def __init__(self, path: Path, report: Callable[[int], None] | None) -> None:
        super().__init__(path, "rb")
        self._report = report

    def readinto(self, buffer: Any) -> int | None:
        interruption.check()
        count = super().readinto(buffer)
        if count and self._report is not None:
            self._report(count)
        return count


def _counted(read: Callable[[], pd.DataFrame | None]) -> pd.DataFrame | None:
    """``read()``'s frame, columns stripped, with the rows pandas skipped as malformed counted
    in ``attrs['malformed']`` (it tells of them only as warnings)."""
    import pandas as pd

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        frame = read()
    if frame is not None:
        frame.columns = [str(c).strip() for c in frame.columns]
        frame.attrs["malformed"] = sum(str(w.message).count("Skipping line") for w in caught)
    return frame


def _csv_arguments(path: Path, delimiter: str | None, encoding: str | None) -> dict[str, Any]:
    """pandas.read_csv's arguments for a data file: checked, compression and format told by its
    content, delimiter sniffed."""
    check_path(path)
    encoding = check_encoding(encoding)
    try:
        compression = compression_of(path)
        parquet = compression == "parquet"
        first_bytes = b"" if parquet else head(path, compression)  # decompressed
        json_lines = is_json_lines(first_bytes)
        sep = check_delimiter(delimiter) or (
            "," if json_lines or parquet else sniff_delimiter(first_bytes, path.suffix, encoding))
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from None
    except UnicodeError as err:
        raise DataError(f"{path} cannot be read as {encoding} ({err}); give its "
                        f"--encoding") from None
    return dict(sep=sep, encoding=encoding, dtype=str, keep_default_na=False, na_filter=False,
                quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL, engine="c",
                skip_blank_lines=True, compression=compression, json_lines=json_lines,
                parquet=parquet)


@contextmanager
def _reading_errors(path: Path, arguments: dict[str, Any]) -> Iterator[None]:
    """pandas' reading errors as one line naming the file and the fix."""
    import pandas as pd

    sep, encoding = arguments["sep"], arguments["encoding"]
    try:
        yield
    except UnicodeDecodeError as err:
        raise decode_error(path, encoding, err) from None
    except UnicodeError as err:  # e.g. UTF-16 without its byte-order mark
        raise DataError(f"{path} cannot be read as {encoding} ({err}); give its "
                        f"--encoding") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} has no columns; it needs a header row and data rows") from None
    except pd.errors.ParserError as err:
        detail = str(err).strip().splitlines()[-1]
        raise DataError(
            f"{path} is not a well-formed {'TSV' if sep == chr(9) else 'CSV'} file ({detail}); "
            f"check its quoting, or give the right --delimiter (--drop-invalid skips such rows "
            f"when training or evaluating)"
        ) from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
