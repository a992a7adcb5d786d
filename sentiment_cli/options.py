"""How an option is stated: a dataclass field whose metadata carries its help, flags, what it
accepts and how the command line parses it (:func:`option`). From these fields come the Typer
commands (cli/commands.py), the values of a config by option (:func:`option_values`), their
checks (:func:`check_fields`) and the ``--resume`` fingerprint (:func:`fingerprint`). The
options themselves are the fields of config.py's dataclasses."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass
from typing import Any

from sentiment_cli.constraints import Constraint
from sentiment_cli.errors import DataError

# --- how an option is stated ------------------------------------------------------------------


@dataclass(frozen=True)
class Opt:
    """One option as the command line has it. ``flags``: its names, the first one used in
    messages (default: ``--`` and the field's name with dashes); ``parse``: command-line text to
    value, for options that are not a plain number, path or text; ``show``: a value as the
    command line writes it (--help's default, refusals); ``toggle``: also a ``--no-`` form;
    ``metavar``: set for a positional argument; ``resumable``: may change between a run and its
    ``--resume`` (left out of the fingerprint)."""

    help: str
    accepts: Constraint | None = None
    flags: tuple[str, ...] = ()
    parse: Callable[[str], Any] | None = None
    show: Callable[[Any], str] | None = None
    toggle: bool = False
    metavar: str | None = None
    resumable: bool = False
    default_help: str | None = None  # --help's words for a default that is not a plain value
    cli: bool = True  # False: the command composes it from options of its own

    def name(self, field_name: str) -> str:
        return self.flags[0] if self.flags else self.metavar or "--" + field_name.replace("_", "-")


def option(default: Any = MISSING, help: str = "", **how: Any) -> Any:
    """A dataclass field stated as an option (``how``: the rest of :class:`Opt`)."""
    return field(default=default, metadata={"option": Opt(help, **how)})


def options_of(cls: type) -> Iterator[tuple[Field[Any], Opt]]:
    """The options of ``cls``, those of the configs inside it in place."""
    for item in fields(cls):
        if item.default_factory is not MISSING and is_dataclass(item.default_factory):
            yield from options_of(item.default_factory)  # type: ignore[arg-type]
        elif "option" in item.metadata:
            yield item, item.metadata["option"]


def option_of(cls: type, name: str) -> Opt:
    """How the option ``name`` of ``cls`` (or of a config inside it) is stated."""
    return next(how for item, how in options_of(cls) if item.name == name)


def build(cls: type, given: dict[str, Any]) -> Any:
    """``cls`` from options by field name: text is parsed where the option parses, values left
    out (None) keep the default stated here."""
    values = {}
    for item in fields(cls):
        if item.default_factory is not MISSING and is_dataclass(item.default_factory):
            values[item.name] = build(item.default_factory, given)  # type: ignore[arg-type]
        elif given.get(item.name) is not None:
            value, how = given[item.name], item.metadata.get("option")
            values[item.name] = how.parse(value) if how and how.parse and isinstance(
                value, str) else value
    return cls(**values)


def shown(how: Opt, value: Any) -> str:
    """A value as the command line writes it."""
    if how.show is not None:
        return how.show(value)
    return "none" if value is None else repr(value) if isinstance(value, str) else f"{value}"


# --- parsing what the command line gives --------------------------------------------------------


def parse_ints(value: str, option_name: str) -> list[int]:
    """Comma-separated integers (64,32); none, linear, 0 or nothing: no integers."""
    value = value.strip()
    if value.lower() in ("", "none", "linear", "0"):
        return []
    try:
        return [int(part) for part in value.replace(" ", "").split(",") if part]
    except ValueError:
        raise DataError(
            f"{option_name} takes comma-separated integers like 64,32, got {value!r}") from None


def show_ints(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values)) or "none"


def parse_ngram_range(value: str) -> tuple[int, int]:
    parts = parse_ints(value, "--ngram-range")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise DataError(f"--ngram-range takes MIN,MAX like 1,2, got {value!r}")
    return parts[0], parts[1]


def parse_pos_weight(value: str) -> str | float | None:
    lowered = value.strip().lower()
    if lowered in ("none", "off", ""):
        return None
    if lowered in ("auto", "balanced"):
        return lowered
    try:
        return float(lowered)
    except ValueError:
        raise DataError(
            f"--pos-weight must be auto, balanced, none or a number, got {value!r}") from None


def parse_threshold(value: str) -> float | str:
    lowered = value.strip().lower()
    if lowered == "auto":
        return lowered
    try:
        return float(lowered)
    except ValueError:
        raise DataError(f"--threshold must be auto or a number in [0, 1], got {value!r}") from None


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: str) -> float | None:
    """Seconds from 90, 90s, 1.5m or 2h; None from none."""
    text = value.strip().lower()
    if text == "none":  # as the --resume fingerprint writes "not given"
        return None
    unit = text[-1:] if text[-1:] in _UNITS else ""
    try:
        return float(text[: len(text) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise DataError(f"--autotune takes a duration like 90, 90s, 5m or 1h, got {value!r}"
                        ) from None


def show_duration(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    return f"{seconds:g}s" if math.isfinite(seconds) else f"{seconds}"


def parse_word(value: str) -> str:
    return value.strip().lower()


def parse_stop_words(value: str) -> str | None:
    return None if parse_word(value) in ("", "none") else parse_word(value)


def option_values(config: Any) -> Iterator[tuple[str, Opt, Any]]:
    """Each option of ``config`` (those of the configs inside it in place): name, how, value."""
    for item in fields(config):
        value = getattr(config, item.name)
        if is_dataclass(value):
            yield from option_values(value)
        elif "option" in item.metadata:
            yield item.name, item.metadata["option"], value


def check_fields(config: Any) -> None:
    """Every option of ``config`` against what it accepts."""
    for name, how, value in option_values(config):
        if how.accepts is not None and not how.accepts.test(value):
            raise DataError(f"{how.name(name)} must be {how.accepts.text}, "
                            f"got {shown(how, value)}")


def fingerprint(config: Any) -> dict[str, Any]:
    """What must not change between a run and its --resume, as known before reading the data:
    every option not marked resumable, by name, in JSON types (as read back)."""
    found = {name: value for name, how, value in option_values(config) if not how.resumable}
    return json.loads(json.dumps(found, default=str))
