"""--version and shell completion on every command, and bce-info MODEL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_clean_error, command, resign, run

from sentiment_cli import __version__

COMMANDS = ("bce-train", "bce-predict", "bce-eval", "bce-info")


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_tells_its_version(name: str) -> None:
    result = run(name, "--version")
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.startswith(f"{name} (sentiment-cli) {__version__}; torch ")
    assert "--version" in run(name, "--help").stdout


def test_shell_completion_completes_options() -> None:
    env = {**os.environ, "_BCE_TRAIN_COMPLETE": "complete_bash",
           "COMP_WORDS": "bce-train --auto", "COMP_CWORD": "1"}
    done = subprocess.run([command("bce-train")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["--autotune"]
    assert "--install-completion" in run("bce-predict", "--help").stdout


def test_bce_info_describes_a_model_folder(sample_model: Path) -> None:
    result = run("bce-info", str(sample_model), "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    config = json.loads((sample_model / "config.json").read_text())
    terms = json.loads((sample_model / "vocabulary.json").read_text())["terms"]
    assert found["task"] == "binary" and found["labels"] == config["labels"]
    assert found["vocabulary"] == len(terms)
    assert found["training"] == config["training"] and found["data"] == config["data"]
    metrics = json.loads((sample_model / "metrics.json").read_text())
    assert found["metrics"]["validation"]["accuracy"] == metrics["validation"]["accuracy"]
    listed = json.loads((sample_model / "manifest.json").read_text())["files"]
    assert found["files"] == len(listed)
    assert found["bytes"] == sum((sample_model / name).stat().st_size for name in listed)
    assert "SHA-256 match" in found["check"]
    text = run("bce-info", str(sample_model))
    assert text.returncode == 0
    assert f"vocabulary:    {len(terms):,} terms" in text.stdout
    options = text.stdout.split("options:")[1]  # a linear model's dropout acts on nothing
    assert "lr 0.02" in options and "input_dropout 0.0" in options and "dropout 0." not in \
        options.replace("input_dropout", "")
    module = subprocess.run([sys.executable, "-m", "sentiment_cli", "info", str(sample_model),
                             "--json"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert json.loads(module.stdout) == found


def test_bce_info_refuses_what_is_no_whole_model(sample_model: Path, tmp_path: Path) -> None:
    assert_clean_error(run("bce-info", str(tmp_path / "absent")), 2, "does not exist")
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in sample_model.iterdir():
        if item.is_file():
            (copy / item.name).write_bytes(item.read_bytes())
    (copy / "plots").mkdir()
    for item in (sample_model / "plots").iterdir():
        (copy / "plots" / item.name).write_bytes(item.read_bytes())
    assert run("bce-info", str(copy)).returncode == 0
    (copy / "metrics.json").write_text("{}")
    assert_clean_error(run("bce-info", str(copy)), 2, "metrics.json does not match its digest")
    resign(copy)  # metrics.json is shown, not needed: a folder whose manifest agrees loads
    assert json.loads(run("bce-info", str(copy), "--json").stdout)["metrics"] == {}
