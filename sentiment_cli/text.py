"""Text from the data, a model folder or a file name, made safe to show on a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL (tabs kept): escape sequences in them can move the
# cursor, recolour or retitle a terminal, and a carriage return hides what came before it.
# The bidirectional marks, overrides and isolates reorder what follows them on screen.
_BIDI = "\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_BIDI}]")
_CONTROL_OR_NEWLINE = re.compile(f"[\\x00-\\x08\\x0a-\\x1f\\x7f-\\x9f{_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` (bidirectional controls as
    ``\\uNNNN``; line breaks kept when ``newlines``): what a person sees is what the data
    holds."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(_escape, text)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character :func:`printable` would escape (a line break too)."""
    return _CONTROL_OR_NEWLINE.search(text) is not None
