"""Typer commands made from the option fields of config.py, so that each option's name, type,
default, help and constraint are stated once, there (Typer builds a command from a function's
signature; here the signature is built from the dataclass fields)."""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from typing import Annotated, Any

import typer
from typer.models import ArgumentInfo

from sentiment_cli.cli import VersionOption, handle_errors
from sentiment_cli.options import Opt


def _hints(cls: type) -> dict[str, tuple[Any, Any, Opt]]:
    """Each option field of ``cls`` and of the configs inside it: type, default, how."""
    found: dict[str, tuple[Any, Any, Opt]] = {}
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if item.default_factory is not MISSING and is_dataclass(item.default_factory):
            found.update(_hints(item.default_factory))  # type: ignore[arg-type]
        elif "option" in item.metadata and item.metadata["option"].cli:
            found[item.name] = (hints[item.name], item.default, item.metadata["option"])
    return found


def _command_line_type(hint: Any, how: Opt) -> Any:
    """The type Typer parses: text where the option parses its own, a list for a tuple."""
    if how.parse is not None:
        return str
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = args[0]
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]]  # type: ignore[misc]
    return hint


def _parameter(name: str, hint: Any, default: Any, how: Opt) -> inspect.Parameter:
    kind = _command_line_type(hint, how)
    given_default = None if (default in (MISSING, None, ()) and how.show is None) \
        or how.default_help else how.show(default) if how.show else default
    help_text = how.help + (f" [default: {how.default_help}]" if how.default_help else "")
    if how.metavar is not None:
        info: Any = typer.Argument(help=help_text, metavar=how.metavar,
                                   show_default=given_default is not None)
    else:
        names = list(how.flags or ["--" + name.replace("_", "-")])
        if how.toggle:
            names[0] = f"{names[0]}/--no-{names[0][2:]}"
        info = typer.Option(*names, help=help_text or None,
                            show_default=given_default is not None and not (
                                kind is bool and not how.toggle))
    required = default is MISSING
    return inspect.Parameter(
        name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[kind if required else kind | None, info],
        default=inspect.Parameter.empty if required else given_default)


def config_command(app: typer.Typer, config: type, help: str) -> Callable[[Callable[..., Any]],
                                                                          Callable[..., Any]]:
    """Register ``func(given, **own)`` as a command with the options of ``config`` (passed in
    ``given`` by field name, as typed; options.build makes the config of them) and the
    parameters of ``func`` after ``given`` (options of the command line only: --json, --quiet).
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        options = [_parameter(name, *spec) for name, spec in _hints(config).items()]
        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        own.append(inspect.Parameter("version", inspect.Parameter.KEYWORD_ONLY,
                                     annotation=VersionOption, default=False))
        positional = [p for p in options
                      if isinstance(typing.get_args(p.annotation)[1], ArgumentInfo)]
        signature = inspect.Signature(
            positional + [p for p in options if p not in positional] + own)
        names = {p.name for p in options}

        @functools.wraps(func)
        def command(**given: Any) -> Any:
            given.pop("version", None)  # answered by its callback, before the command runs
            return func({k: v for k, v in given.items() if k in names},
                        **{k: v for k, v in given.items() if k not in names})

        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        del command.__wrapped__  # type: ignore[attr-defined]
        app.command(help=help)(handle_errors(command))
        return command

    return register
