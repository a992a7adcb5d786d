"""Text from the data, a model folder or a file name, made safe to show on a terminal."""

from __future__ import annotations

import re

# C0 and C1 control characters and DEL (tabs kept): escape sequences in them can move the
# cursor, recolour or retitle a terminal, and a carriage return hides what came before it.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def printable(text: str, newlines: bool = False) -> str:
    """``text`` with control characters shown as ``\\xNN`` (line breaks kept when
    ``newlines``): what a person sees is what the data holds."""
    pattern = _CONTROL if newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
