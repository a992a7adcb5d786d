"""Text from the data, a model folder or a file name, made safe to show on a terminal."""

from __future__ import annotations

import functools
import re
from typing import Any

# Control characters (C0, DEL, C1; tabs kept): escape sequences in them can move the cursor,
# recolour or retitle a terminal, and a carriage return hides what came before it. Format
# characters (Unicode's Cf) are invisible or reorder what follows them on screen (bidirectional
# overrides, zero-width spaces, soft hyphens, tags); the zero-width joiner of emoji sequences is
# kept. ASCII text needs only the first check, and gets it without the regex module.
_ASCII = {True: re.compile(r"[\x00-\x08\x0b-\x1f\x7f]"),
          False: re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")}


@functools.cache
def _unicode(newlines: bool) -> Any:
    import regex

    kept = r"\t\n\u200d" if newlines else r"\t\u200d"
    return regex.compile(rf"(?V1)[[\p{{Cc}}\p{{Cf}}]--[{kept}]]")


def _pattern(text: str, newlines: bool) -> Any:
    return _ASCII[newlines] if text.isascii() else _unicode(newlines)


def _escape(match: Any) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else (
        f"\\U{code:08x}")


def printable(text: str, newlines: bool = False) -> str:
    """``text`` with control and invisible format characters shown as ``\\xNN``/``\\uNNNN``
    (line breaks kept when ``newlines``): what a person sees is what the data holds."""
    return _pattern(text, newlines).sub(_escape, text)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`printable` would escape (a line break too)."""
    return _pattern(text, False).search(text) is not None
