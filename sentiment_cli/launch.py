"""The console scripts' entry points (bce-train, bce-predict, bce-eval, bce-info).

Loading a command takes a second or more (typer, our modules, for bce-train torch). A Ctrl-C in
that time should end it as it ends any program that does not handle it: at once, quietly, with
nothing written. Python's own handler would raise KeyboardInterrupt inside whatever import is
running and print its traceback. So SIGINT has its default action while the command loads, and
Python's handler back once it has loaded (each command then handles signals itself: see
interruption.py). A SIGINT the process started with ignored (a shell's ``cmd &``) stays ignored.
"""

from __future__ import annotations

import importlib
import signal


def _run(module: str) -> None:
    loading_quietly = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if loading_quietly:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    main = importlib.import_module(f"sentiment_cli.cli.{module}").main
    if loading_quietly:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    main()


def train() -> None:
    _run("train")


def predict() -> None:
    _run("predict")


def evaluate() -> None:
    _run("evaluate")


def info() -> None:
    _run("info")
