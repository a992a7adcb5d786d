"""The commands bce-train, bce-predict and bce-eval, one module each (options -> one library
call -> render), and what they share: errors as one line, signals, the process's exit.

Heavy libraries (torch, scikit-learn, pandas) are imported inside the commands, so ``--help``
and option errors answer at once. Data goes to stdout; progress, notes and errors to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from sentiment_cli.distributed import ReportedByMain, environment_rank
from sentiment_cli.errors import DataError, Interrupted, SentimentError
from sentiment_cli.text import printable

F = TypeVar("F", bound=Callable[..., Any])

_APP_SETTINGS: dict[str, Any] = {
    "add_completion": True,  # --install-completion and --show-completion
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


def new_app() -> typer.Typer:
    return typer.Typer(**_APP_SETTINGS)


def show(result: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None]) -> None:
    """A command's result on stdout: one JSON object with ``--json``, else ``render`` it."""
    if as_json:
        sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    else:
        render(result)


def error_line(message: str) -> None:
    """The one line a user sees for an error, with control characters from file names or data
    shown as escapes (they must not move the cursor, recolour or retitle a terminal). Under
    torchrun, a rank other than 0 names itself."""
    prog = Path(sys.argv[0]).name or "sentiment-cli"
    rank = environment_rank()
    where = f"rank {rank}: " if rank else ""
    sys.stderr.write(f"{prog}: error: {where}{printable(message)}\n")
    sys.stderr.flush()


def handle_errors(func: F) -> F:
    """Turn our errors into one line and an exit status; --debug shows the traceback.

    Under torchrun, rank 0 prints the job's errors and interruptions: an error every rank
    meets, or one another rank sent it (:mod:`..distributed`), reaches the other ranks as
    ReportedByMain, and they exit with its status silently. Any other error is printed by the
    rank it happened in, naming the rank."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except BrokenPipeError:
            _quiet_broken_pipe()
        except (Exception, KeyboardInterrupt, Interrupted) as err:
            code = _one_line(err, debug=bool(kwargs.get("debug")))
            if code is None:
                raise
            raise typer.Exit(code) from None

    return wrapper  # type: ignore[return-value]


def _one_line(err: BaseException, debug: bool) -> int | None:
    """Print ``err`` as one line and return the exit status; None to let it propagate."""
    if isinstance(err, SentimentError | Interrupted):
        if debug and not isinstance(err, ReportedByMain):
            return None
        if environment_rank() == 0 or not isinstance(err, ReportedByMain | Interrupted):
            error_line(str(err))
        return err.exit_code
    if isinstance(err, KeyboardInterrupt):
        error_line("interrupted")
        return 130
    if isinstance(err, MemoryError):
        error_line("out of memory; try --max-features, --min-df 2 or a smaller --batch-size")
        return 1
    if debug:
        return None
    if isinstance(err, OSError):  # the system refused: a full disk, an output not writable
        where = f" ({err.filename})" if err.filename else " (writing the output)"
        error_line(f"{err.strerror or err}{where}")
        return 1
    # a bug or an unforeseen failure: still one line by default
    error_line(f"unexpected {type(err).__name__}: {err} (run with --debug for details)")
    return 1


def _quiet_broken_pipe_code() -> int:
    """The reader went away (| head): stop quietly, with the conventional SIGPIPE status."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 128 + signal.SIGPIPE


def _quiet_broken_pipe() -> NoReturn:
    raise SystemExit(_quiet_broken_pipe_code())


def version_line(prog: str) -> str:
    """The command, this package's version and those it runs on (read from the installed
    packages' metadata: nothing heavy is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    from sentiment_cli import __version__

    found = []
    for package in ("torch", "scikit-learn"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{package} {version(package)}")
    python = ".".join(map(str, sys.version_info[:3]))
    return f"{prog} (sentiment-cli) {__version__}; {', '.join(found)}, Python {python}"


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(version_line(Path(sys.argv[0]).name or "sentiment-cli") + "\n")
        raise typer.Exit(0)


VersionOption = Annotated[
    bool, typer.Option("--version", help="Show the version and exit.", is_eager=True,
                       callback=_print_version)
]

DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the Python traceback of an error.", hidden=True)
]

LabelListOption = Annotated[
    str | None,
    typer.Option("--label-columns", help="Several 0/1 label columns for multi-label: a,b,c or "
                 "all-but-text."),
]


def label_columns(repeated: list[str] | tuple[str, ...] | None, listed: str | None
                  ) -> tuple[str, ...]:
    """The label columns of --label-column (repeated) and --label-columns a,b,c together."""
    listed_columns = [c.strip() for c in (listed or "").split(",") if c.strip()]
    if listed is not None and not listed_columns:
        raise DataError(f"--label-columns {listed!r} names no column; give them as a,b,c or "
                        f"all-but-text, or leave the option out to detect the label column")
    return (*(repeated or ()), *listed_columns)


# The command-line parser's own errors (a bad number, an unknown option): click's, or the copy
# of click that newer Typer releases carry, found from a class both export.
_PARSER_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _open_closed_standard_streams() -> None:
    """A command started with stdin, stdout or stderr closed (``>&-``) gets /dev/null there:
    otherwise the next file it opens (a lock, a model file) would take that descriptor and
    receive what is printed, and Python would have no stream to flush."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        setattr(sys, name, open(fd, mode, encoding="utf-8", closefd=False))  # noqa: SIM115


def run(app: typer.Typer, prog: str) -> NoReturn:
    """Run a command, then leave at once with its status.

    Everything is written and closed by then, and unwinding the interpreter (torch's and
    scikit-learn's module graphs) would add 0.3-0.9 s to every run, so the process ends without
    that teardown once :func:`command_status` has flushed the output. An unexpected exception
    still propagates and ends the process the usual way, with its traceback.
    """
    os._exit(command_status(app, prog))


def command_status(app: typer.Typer, prog: str, args: list[str] | None = None) -> int:
    """Run a command on ``args`` (the process's arguments when None) and return its exit
    status with both output streams flushed. A usage error of the parser (a bad number, an
    unknown option) is one line like ours."""
    _open_closed_standard_streams()
    code: object
    try:
        code = app(args=args, prog_name=prog, standalone_mode=False)
    except _PARSER_ERROR as err:
        error_line(f"{err.format_message()} (see {prog} --help)")
        code = getattr(err, "exit_code", 2)
    except typer.Abort:
        error_line("interrupted")
        code = 130
    except SystemExit as done:
        code = done.code
    except BrokenPipeError:
        code = _quiet_broken_pipe_code()
    return _flushed(_exit_status(code))


def _exit_status(code: object) -> int:
    """SystemExit's argument as a status: None is 0, a message is printed and is 1."""
    if code is None:
        return 0
    if not isinstance(code, int):
        sys.stderr.write(f"{printable(str(code))}\n")
        return 1
    return code


def _flushed(code: int) -> int:
    """Flush both output streams; a reader gone or a full disk changes a status of 0."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away: the SIGPIPE convention
            if stream is sys.stdout and code == 0:
                code = 128 + signal.SIGPIPE
        except (OSError, ValueError) as err:  # a full disk (>/dev/full)
            if stream is sys.stdout and code == 0:
                with contextlib.suppress(OSError, ValueError):
                    error_line(f"{getattr(err, 'strerror', None) or err} (writing the output)")
                code = 1
    return code
