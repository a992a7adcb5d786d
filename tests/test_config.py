"""Every option in one place: defaults stated once, one constraints table, checked up front."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import SAMPLE, command, run

from sentiment_cli.checks import check
from sentiment_cli.config import (
    EvalConfig,
    InfoConfig,
    PredictConfig,
    TrainConfig,
    TrainingConfig,
    VectorizerConfig,
    flag,
)
from sentiment_cli.errors import DataError
from sentiment_cli.options import check_fields, fingerprint, options_of

BAD = {  # a value each constrained field refuses
    VectorizerConfig: {"ngram_range": (3, 1), "min_df": 1.5, "max_df": -0.1,
                       "max_features": 0, "binary": "yes", "stop_words": "french",
                       "token_pattern": ""},
    TrainingConfig: {"hidden": (0,), "dropout": 1.0, "input_dropout": 1.0, "lr": 0.0,
                     "weight_decay": -1.0,
                     "batch_size": 0, "epochs": 0, "patience": 0, "pos_weight": -1.0,
                     "device": "gpu", "seed": -1, "average_epochs": 1},
    TrainConfig: {"text_column": "", "label_columns": ("",), "val_split": 1.0,
                  "val_max_rows": 1, "val_grouping": "random", "threshold": 2.0,
                  "threshold_metric": "auc", "calibrate": "platt", "autotune": 0.0},
    PredictConfig: {"output_format": "xml", "threshold": 1.5, "batch_size": 0,
                    "device": "tpu", "top_k": 0},
    EvalConfig: {"threshold": -0.5},
}
REQUIRED = {PredictConfig: {"model": Path("m")}, EvalConfig: {"model": Path("m"),
                                                              "data": Path("d")}}


@pytest.mark.parametrize("cls", list(BAD))
def test_defaults_pass_and_every_constraint_names_its_option(cls: type) -> None:
    base = cls(**REQUIRED.get(cls, {}))
    check_fields(base)
    for name, value in BAD[cls].items():
        with pytest.raises(DataError, match=f"^{re.escape(flag(name, cls))} must be .*, got "):
            check_fields(dataclasses.replace(base, **{name: value}))


def test_configs_are_frozen() -> None:
    config = TrainingConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0  # type: ignore[misc]


def test_checks_across_options_come_before_any_reading(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="validation rows"):
        check(TrainConfig(data=SAMPLE, val_split=0.0, threshold="auto"))
    with pytest.raises(DataError, match="--max-df"):
        check(TrainConfig(data=SAMPLE, vectorizer=VectorizerConfig(min_df=5, max_df=3)))
    with pytest.raises(DataError, match="no such file"):
        check(TrainConfig(data=tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="--keep-columns applies to --input"):
        check(PredictConfig(model=tmp_path, keep_columns=True))
    assert TrainConfig(data=SAMPLE).output == Path("models") / "reviews"


def test_help_shows_the_defaults_of_the_config() -> None:
    out = subprocess.run([command("bce-train"), "--help"], capture_output=True, text=True,
                         check=True).stdout
    shown = {}  # each option's block of (wrapped) help lines, and the default it states
    for block in re.split(r"\n(?=\s{2}-)", out):
        name = re.match(r"\s*(?:-\w, )?--([\w-]+)", block)
        default = re.search(r"\[default:\s+([^\]]+)\]", " ".join(block.split()))
        if name and default:
            shown[name.group(1)] = default.group(1)
    training, vectorizer, train = TrainingConfig(), VectorizerConfig(), TrainConfig()
    assert float(shown["dropout"]) == training.dropout
    mlp = TrainingConfig(hidden=(64,))
    assert shown["lr"] == f"{training.lr:g} for a linear model, {mlp.lr:g} with --hidden"
    assert shown["input-dropout"] == \
        f"{training.input_dropout:g} for a linear model, {mlp.input_dropout:g} with --hidden"
    assert int(shown["epochs"]) == training.epochs
    assert int(shown["patience"]) == training.patience
    assert float(shown["val-split"]) == train.val_split
    assert int(shown["val-max-rows"]) == train.val_max_rows
    assert shown["ngram-range"] == ",".join(map(str, vectorizer.ngram_range))
    assert shown["hidden"] == "none" and training.hidden == ()


def test_an_mlp_has_training_defaults_of_its_own_and_the_record_holds_the_values_used(
        tmp_path: Path) -> None:
    linear, mlp = TrainingConfig(), TrainingConfig(hidden=(64,))
    assert (linear.lr, linear.input_dropout) == (0.02, 0.0)
    assert (mlp.lr, mlp.input_dropout, mlp.dropout) == (0.005, 0.3, 0.5)
    given = TrainingConfig(hidden=(64,), lr=0.01, input_dropout=0.0)  # given values win
    assert (given.lr, given.input_dropout) == (0.01, 0.0)
    # the --resume fingerprint holds the values used: the same as stating them
    assert fingerprint(TrainConfig(data=SAMPLE, training=mlp)) == fingerprint(TrainConfig(
        data=SAMPLE, training=TrainingConfig(hidden=(64,), lr=0.005, input_dropout=0.3)))
    trained = run("bce-train", str(SAMPLE), "-o", "m", "--hidden", "8", "--epochs", "1",
                  "--no-report", "-q", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    training = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert (training["lr"], training["input_dropout"], training["dropout"]) == (0.005, 0.3, 0.5)


@pytest.mark.parametrize(("cls", "name"), [(TrainConfig, "bce-train"),
                                            (PredictConfig, "bce-predict"),
                                            (EvalConfig, "bce-eval"),
                                            (InfoConfig, "bce-info")])
def test_each_command_line_option_is_a_config_field_stated_once(cls: type, name: str) -> None:
    out = subprocess.run([command(name), "--help"], capture_output=True, text=True,
                         check=True).stdout
    in_help = set(re.findall(r"^\s+(?:-\w, )?(--[\w-]+)", out, flags=re.MULTILINE))
    stated = {how.name(item.name) for item, how in options_of(cls)
              if how.cli and how.metavar is None}
    own = {"--help", "--json", "--quiet", "--positive-lines", "--negative-lines",
           "--label-column", "--label-columns",
           "--version", "--install-completion", "--show-completion"}  # every command's
    assert stated <= in_help and in_help - stated <= own
    assert all(how.help for _, how in options_of(cls) if how.cli)


def test_the_resume_fingerprint_is_every_option_not_marked_resumable() -> None:
    config = TrainConfig(data=SAMPLE, training=TrainingConfig(lr=0.5, epochs=3))
    found = fingerprint(config)
    assert found["lr"] == 0.5 and found["ngram_range"] == [1, 2] and found["data"] == str(SAMPLE)
    assert "epochs" not in found and "device" not in found and "output" not in found
