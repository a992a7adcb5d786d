"""bce-info: a model folder -> model_info -> a summary or JSON on stdout."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from sentiment_cli.cli import DebugOption, new_app, run, show
from sentiment_cli.cli.commands import config_command
from sentiment_cli.config import InfoConfig
from sentiment_cli.options import build
from sentiment_cli.text import printable

app = new_app()
TRAINING_SHOWN = ("lr", "dropout", "input_dropout", "weight_decay", "batch_size", "epochs",
                  "pos_weight", "seed")


@config_command(app, InfoConfig,
                help="Describe a model folder: task, labels, vocabulary, options, data, "
                     "metrics, versions, size, and whether its files check out.")
def info(
    given: dict[str, Any],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    debug: DebugOption = False,
) -> None:
    from sentiment_cli.info import model_info

    config = build(InfoConfig, given)
    show(model_info(config.model), as_json, _render)


def _render(found: dict[str, Any]) -> None:
    def line(name: str, value: Any) -> None:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        sys.stdout.write(f"{name + ':':<14} {printable(text)}\n")

    architecture = found["architecture"]
    hidden = architecture["hidden"]
    line("model", found["model"])
    line("task", found["task"])
    line("labels", ", ".join(found["labels"]))
    line("vocabulary", f"{found['vocabulary']:,} terms")
    sizes = hidden if isinstance(hidden, str) else ",".join(map(str, hidden))
    line("architecture", f"hidden {sizes}, {architecture['outputs']} output(s), "
                         f"{architecture['parameters']:,} parameters")
    line("thresholds", ", ".join(f"{t:.3g}" for t in found["thresholds"]))
    line("temperature", round(found["temperature"], 4))
    for split, values in found["metrics"].items():
        line(split, ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in values.items()))
    data = found["data"] or {}
    line("data", f"{data.get('source')} ({data.get('train_rows')} training rows, "
                 f"{data.get('val_rows')} validation rows)")
    line("created", found["created"])
    line("versions", ", ".join(f"{k} {v}" for k, v in (found["versions"] or {}).items()))
    line("size", f"{found['bytes']:,} bytes in {found['files']} files")
    line("check", found["check"])
    shown = {**{k: (found["vectorizer"] or {}).get(k) for k in ("ngram_range", "min_df")},
             **{k: (found["training"] or {}).get(k) for k in TRAINING_SHOWN}}
    if isinstance(hidden, str):  # a linear model: no hidden layer for dropout to act on
        shown.pop("dropout")
    line("options", ", ".join(f"{k} {json.dumps(v)}" for k, v in shown.items() if v is not None)
         + " (--json: all)")


def main() -> None:
    run(app, "bce-info")
