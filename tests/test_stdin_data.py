"""DATA given as -: bce-train and bce-eval read the rows from stdin (copied once, since they read
the data more than once), name it stdin, and leave no copy behind."""

from __future__ import annotations

import gzip
import json
import os
import pty
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SAMPLE, assert_clean_error, command, run
from test_robustness import InterruptDuring

from sentiment_cli.config import STDIN, TrainConfig, TrainingConfig
from sentiment_cli.errors import Interrupted
from sentiment_cli.pipeline import run_training


@pytest.fixture
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The commands' TMPDIR, to see that the copy of stdin goes away."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _validation(result: object) -> dict[str, float]:
    assert result.returncode == 0, result.stderr  # type: ignore[attr-defined]
    return json.loads(result.stdout)["validation"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("extra", [[], ["--stream"]])
def test_training_from_stdin_equals_training_from_the_file(tmp_path: Path, temporary: Path,
                                                           extra: list[str]) -> None:
    options = ["--epochs", "2", "--seed", "0", "--json", "--quiet", *extra]
    from_file = run("bce-train", str(SAMPLE), "-o", str(tmp_path / "file"), *options)
    piped = run("bce-train", "-", *options, input=gzip.compress(SAMPLE.read_bytes()),
                cwd=tmp_path)
    assert _validation(piped) == _validation(from_file)
    assert json.loads(piped.stdout)["output"] == "models/stdin"  # the default, as for a file
    config = json.loads((tmp_path / "models" / "stdin" / "config.json").read_text())
    assert config["data"]["source"] == "stdin"
    assert list(temporary.iterdir()) == []  # the copy is gone


def test_evaluating_from_stdin(sample_model: Path, temporary: Path) -> None:
    from_file = run("bce-eval", str(sample_model), str(SAMPLE), "--json")
    piped = run("bce-eval", str(sample_model), "-", "--json", input=SAMPLE.read_bytes())
    assert piped.returncode == 0, piped.stderr
    # the file is the sample_model's training file, which bce-eval notes; stdin has no path
    file_metrics = json.loads(from_file.stdout)
    assert "trained on" in file_metrics.pop("notes")[0]
    assert {**json.loads(piped.stdout), "data": None} == {**file_metrics, "data": None}
    assert json.loads(piped.stdout)["data"] == "stdin"
    assert list(temporary.iterdir()) == []


@pytest.mark.parametrize(("args", "given", "says"), [
    (["-"], b"", "stdin is empty"),
    (["-"], b'{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n{oops\n',
     "stdin: line 3 is not JSON"),
    (["-", "--val-data", "-"], b"text,label\n", "only DATA can be - (stdin)"),
    (["-", "--lr", "-1"], b"text,label\n", "--lr must be"),
])
def test_bad_stdin_is_one_clear_line(tmp_path: Path, temporary: Path, args: list[str],
                                     given: bytes, says: str) -> None:
    result = run("bce-train", *args, "-o", str(tmp_path / "m"), input=given)
    assert_clean_error(result, 2, says)
    assert str(temporary) not in result.stderr  # the copy is not named
    assert not (tmp_path / "m").exists()
    assert list(temporary.iterdir()) == []


def test_a_run_from_stdin_resumes_from_the_same_rows_only(tmp_path: Path) -> None:
    """DATA stays - in the --resume fingerprint, and the copy's content is compared: the same
    rows piped again resume, other rows are refused."""
    copies = [tmp_path / name for name in ("first", "again", "other")]
    shutil.copy(SAMPLE, copies[0])
    shutil.copy(SAMPLE, copies[1])
    copies[2].write_text(SAMPLE.read_text() + "one more,positive\n")
    training = TrainingConfig(epochs=3, patience=3, seed=1)

    def job(copy: Path, resume: bool) -> TrainConfig:
        return TrainConfig(data=STDIN, data_file=copy, output=tmp_path / "m", resume=resume,
                           training=training)

    with pytest.raises(Interrupted):
        run_training(job(copies[0], False), progress=InterruptDuring(epoch=2))
    with pytest.raises(Exception, match=r"changed: the content of DATA\)"):
        run_training(job(copies[2], True))
    assert run_training(job(copies[1], True)) is not None


def test_a_terminal_on_stdin_is_refused(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([command("bce-train"), "-", "-o", str(tmp_path / "m")],
                              stdin=follower, capture_output=True, text=True, timeout=120)
    finally:
        os.close(leader)
        os.close(follower)
    assert_clean_error(proc, 2, "stdin is a terminal", "zcat reviews.csv.gz | bce-train -")


def test_predicting_a_file_on_stdin(sample_model: Path, temporary: Path) -> None:
    """bce-predict --input -: a CSV (here gzip-compressed) on stdin, as --input FILE reads it."""
    from_file = run("bce-predict", str(sample_model), "--input", str(SAMPLE), "--keep-columns",
                    "--format", "csv")
    piped = run("bce-predict", str(sample_model), "--input", "-", "--keep-columns",
                "--format", "csv", input=gzip.compress(SAMPLE.read_bytes()))
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == from_file.stdout
    refused = run("bce-predict", str(sample_model), "--input", "-", input=b"a,b\n1,2\n")
    assert_clean_error(refused, 2, "stdin: no text column found")
    assert list(temporary.iterdir()) == []


def test_stdin_is_refused_under_torchrun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # as torchrun starts each process
    result = run("bce-train", "-", "-o", str(tmp_path / "m"), input=SAMPLE.read_bytes())
    assert_clean_error(result, 2, "cannot be read under torchrun")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_stdin_is_copied_removes_the_copy(tmp_path: Path, temporary: Path,
                                                          signum: int) -> None:
    # SIGINT as a foreground job has it, whatever this test inherited (a CI started with &)
    proc = subprocess.Popen([command("bce-train"), "-", "-o", str(tmp_path / "m")],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(temporary)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(SAMPLE.read_bytes())
    proc.stdin.flush()
    deadline = time.monotonic() + 60
    while not list(temporary.glob("*/stdin")):  # the copy has begun
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signum)
    time.sleep(0.2)
    proc.stdin.close()  # the copy's next read returns (the end of stdin) and sees the signal
    assert proc.wait(timeout=60) == 128 + signum
    assert proc.stderr.read().decode().strip() == "bce-train: error: interrupted"
    assert list(temporary.iterdir()) == [] and not (tmp_path / "m").exists()
