"""What an option accepts, as values that test and say it (scikit-learn's ``Interval`` and
``StrOptions`` in its ``_parameter_constraints``): the vocabulary of config.py's tables."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def whole(value: object) -> bool:
    """An int, as JSON and Python have them (not a bool, not 2.0)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Constraint:
    """What a field accepts: ``test`` of a value, and ``text`` saying it to a person."""

    text: str
    test: Callable[[Any], bool]

    def __or__(self, other: Constraint) -> Constraint:
        return Constraint(f"{self.text} or {other.text}",
                          lambda v: self.test(v) or other.test(v))


def _number(value: float) -> str:
    return f"{value:,}" if float(value).is_integer() and abs(value) >= 10_000 else f"{value:g}"


def interval(low: float | None, high: float | None, closed: str = "both",
             integer: bool = False) -> Constraint:
    """Numbers from ``low`` to ``high`` (None: no bound); ``closed``: both, left, right, neither."""
    left, right = closed in ("both", "left"), closed in ("both", "right")

    def test(v: Any) -> bool:
        if not finite(v) or (integer and not float(v).is_integer()):
            return False
        above = low is None or (v >= low if left else v > low)
        return above and (high is None or (v <= high if right else v < high))

    kind = "a whole number" if integer else "a number"
    if low is not None and high is not None and integer and closed == "both":
        text = f"a whole number from {_number(low)} to {_number(high)}"
    elif low is not None and high is not None:
        text = (f"{kind} in {'[' if left else '('}{_number(low)}, {_number(high)}"
                f"{']' if right else ')'}")
    elif low is not None:
        text = f"{kind} {'>=' if left else '>'} {_number(low)}"
    else:
        text = kind
    return Constraint(text, test)


def optional(constraint: Constraint) -> Constraint:
    """None (the option left out) or what ``constraint`` accepts; said as the latter."""
    return Constraint(constraint.text, lambda v: v is None or constraint.test(v))


def one_of(*values: Any) -> Constraint:
    shown = ", ".join("none" if v is None else str(v) for v in values)
    return Constraint(f"one of {shown}", lambda v: any(v == x and type(v) is type(x)
                                                       for x in values))


def matches(pattern: re.Pattern[str], text: str) -> Constraint:
    return Constraint(text, lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None)


def sizes(low: int, high: int, most: int) -> Constraint:
    return Constraint(f"at most {most} whole numbers from {low} to {high:,}",
                      lambda v: len(v) <= most and all(whole(h) and low <= h <= high
                                                       for h in v))


def text_value(allow_empty: bool = False) -> Constraint:
    return Constraint("a text" if allow_empty else "a text that is not empty",
                      lambda v: isinstance(v, str) and (allow_empty or v != ""))
