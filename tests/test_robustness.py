"""Interruption, resume, kills at random moments, and tampered or hostile input."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    SAMPLE,
    SHARED_DATA,
    assert_clean_error,
    command,
    needs_shared,
    resign,
    run,
    toy_rows,
    write_csv,
)

from sentiment_cli.artifacts.bundle import load_bundle
from sentiment_cli.config import TrainConfig, TrainingConfig
from sentiment_cli.errors import BundleError, Interrupted
from sentiment_cli.pipeline import run_training
from sentiment_cli.training.loop import TrainProgress


class InterruptDuring(TrainProgress):
    """Raises what the SIGINT handler raises, in the middle of a chosen epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch, self.current, self.batches = epoch, 0, 0

    def epoch_start(self, epoch: int, epochs: int, batches: int) -> None:
        self.current, self.batches = epoch, 0

    def batch_end(self, rows: int) -> None:
        self.batches += 1
        if self.current == self.epoch and self.batches == 2:
            raise Interrupted(signal.SIGINT)


def test_resume_after_interrupt_reaches_the_same_model(tmp_path: Path) -> None:
    options = TrainingConfig(hidden=[16], epochs=5, patience=5, batch_size=64, seed=3)

    def job(out: Path, resume: bool = False) -> TrainConfig:
        return TrainConfig(data=SAMPLE, output=out, training=options, resume=resume)

    straight = run_training(job(tmp_path / "straight")).summary()
    with pytest.raises(Interrupted, match=r"epoch 1 is saved .*--resume"):
        run_training(job(tmp_path / "cut"), progress=InterruptDuring(epoch=2))
    assert not (tmp_path / "cut").exists()
    assert (tmp_path / "cut.checkpoint" / "state.json").exists()
    with pytest.raises(Exception, match="--resume"):
        run_training(job(tmp_path / "cut"))  # forgetting --resume does not discard the checkpoint
    resumed = run_training(job(tmp_path / "cut", resume=True)).summary()
    assert resumed["validation"] == straight["validation"]
    assert resumed["best_epoch"] == straight["best_epoch"]
    assert resumed["averaged_epochs"] == straight["averaged_epochs"]
    history = (tmp_path / "cut" / "history.csv").read_text().splitlines()
    assert len(history) == 1 + straight["epochs_run"]
    assert not (tmp_path / "cut.checkpoint").exists()


def test_a_forced_run_stopped_before_its_first_epoch_says_the_earlier_checkpoint_is_kept(
        tmp_path: Path) -> None:
    """--force replaces an interrupted run's checkpoint only once the new run saves an epoch;
    stopped before that, it said "nothing was saved" although the earlier checkpoint, which
    --resume would continue, was still there."""
    options = TrainingConfig(epochs=3, patience=3, seed=1)
    first = TrainConfig(data=SAMPLE, output=tmp_path / "m", training=options)
    with pytest.raises(Interrupted):
        run_training(first, progress=InterruptDuring(epoch=2))
    forced = TrainConfig(data=SAMPLE, output=tmp_path / "m", force=True,
                         training=TrainingConfig(epochs=3, patience=3, seed=2))
    with pytest.raises(Interrupted, match=r"this run saved nothing, and .*m\.checkpoint still "
                       r"holds the checkpoint of an earlier run \(epoch 1\): --resume"):
        run_training(forced, progress=InterruptDuring(epoch=1))
    resumed = run_training(TrainConfig(data=SAMPLE, output=tmp_path / "m", training=options,
                                       resume=True))
    assert resumed is not None and resumed.summary()["epochs_run"] == 3
    with pytest.raises(Interrupted, match=r"before the first epoch ended; nothing was saved$"):
        run_training(forced, progress=InterruptDuring(epoch=1))


def test_resume_refuses_a_checkpoint_of_different_options(tmp_path: Path) -> None:
    first = TrainConfig(data=SAMPLE, output=tmp_path / "m",
                     training=TrainingConfig(epochs=3, patience=3, seed=1))
    with pytest.raises(Interrupted):
        run_training(first, progress=InterruptDuring(epoch=2))
    other = TrainConfig(data=SAMPLE, output=tmp_path / "m", resume=True,
                     training=TrainingConfig(epochs=3, patience=3, seed=1, lr=0.5))
    with pytest.raises(Exception, match=r"different run \(changed: --lr 0.02 -> 0.5\)"):
        run_training(other)


@pytest.mark.parametrize("saved", [None, 1e-3])
def test_a_resumed_run_goes_on_with_the_adam_epsilon_it_began_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, saved: float | None) -> None:
    """The checkpoint records Adam's epsilon and --resume goes on with it. One written before
    it was recorded (no adam_eps, ``None``) was made with Adam's default, 1e-8, even for a model
    of several outputs, which starts today at MULTI_OUTPUT_EPS."""
    from sentiment_cli.model.optim import Adam
    from sentiment_cli.training import loop

    rows = [(text, str(int(label == "positive")), str(int(label != "positive")))
            for text, label in toy_rows(200)]
    data = write_csv(tmp_path / "two.csv", ["text", "good", "bad"], rows)

    def job(resume: bool = False) -> TrainConfig:
        return TrainConfig(data=data, output=tmp_path / "m", label_columns=["good", "bad"],
                           resume=resume,
                           training=TrainingConfig(epochs=3, patience=3, batch_size=32))

    with pytest.raises(Interrupted):
        run_training(job(), progress=InterruptDuring(epoch=2))
    folder = tmp_path / "m.checkpoint"
    state = json.loads((folder / "state.json").read_text())
    assert state["adam_eps"] == loop.MULTI_OUTPUT_EPS
    if saved is None:
        del state["adam_eps"]
    else:
        state["adam_eps"] = saved
    (folder / "state.json").write_text(json.dumps(state))
    resign(folder, "checkpoint")
    used = set()

    class Recording(Adam):
        def step(self) -> None:
            used.add(self.eps)
            super().step()

    monkeypatch.setattr(loop, "Adam", Recording)
    run_training(job(resume=True))
    assert used == {1e-8 if saved is None else saved}


def _wait_for(path: Path, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _sigint(disposition: signal.Handlers) -> Callable[[], object]:
    """preexec_fn: the child starts with SIGINT as a foreground job (SIG_DFL) or a background
    job (SIG_IGN) has it, whatever this test process inherited from whoever started it."""
    return lambda: signal.signal(signal.SIGINT, disposition)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_saves_the_checkpoint_and_says_how_to_resume(tmp_path: Path, signum: int) -> None:
    out = tmp_path / "m"
    args = [command("bce-train"), str(SAMPLE), "-o", str(out), "--hidden", "256", "--epochs",
            "500", "--patience", "500", "--batch-size", "16"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               preexec_fn=_sigint(signal.SIG_DFL))
    _wait_for(out.with_name("m.checkpoint") / "state.json", process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    last = stderr.decode().strip().splitlines()[-1]
    assert "Traceback" not in stderr.decode() and "--resume" in last
    assert not out.exists()
    resumed = run("bce-train", *args[1:], "--resume", "--epochs", "1", "-q")
    assert resumed.returncode == 0, resumed.stderr
    load_bundle(out)


def test_a_background_jobs_ignored_sigint_stays_ignored() -> None:
    # `bce-train ... &` from a script starts with SIGINT ignored: Ctrl-C at the terminal must
    # not stop it. SIGTERM still becomes the clean "interrupted" exit.
    script = ("import signal\n"
              "from sentiment_cli import interruption\n"
              "interruption.ending_at_once()\n"
              "with interruption.deferred():\n"
              "    print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN,"
              " callable(signal.getsignal(signal.SIGTERM)))\n")
    for disposition, expected in ((signal.SIG_IGN, "True True"), (signal.SIG_DFL, "False True")):
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                timeout=60, preexec_fn=_sigint(disposition))
        assert result.stdout.split() == expected.split(), result.stderr


def test_a_deferred_signal_stops_at_the_next_check_and_a_second_one_is_not_deferred() -> None:
    from sentiment_cli import interruption

    before = signal.getsignal(signal.SIGTERM)
    with interruption.deferred():
        interruption.check()  # nothing noted yet
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between two bytecodes
        assert interruption.received() == signal.SIGTERM
        with pytest.raises(Interrupted) as stopped:
            interruption.check()
        assert stopped.value.exit_code == 143
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the next one ends it
    assert signal.getsignal(signal.SIGTERM) is before
    assert interruption.received() is None
    interruption.check()


def test_a_signal_while_a_file_is_read_whole_stops_the_reading_at_its_next_read(
        tmp_path: Path) -> None:
    """Ctrl-C during the reading of a large file: not after pandas has parsed all of it."""
    from sentiment_cli import interruption
    from sentiment_cli.data.files import READ_BYTES, read_table

    data = write_csv(tmp_path / "big.csv", ["review", "sentiment"],
                     toy_rows(3) * (3 * READ_BYTES // 30))  # about 3 reads' worth
    read: list[int] = []
    with interruption.deferred():
        assert len(read_table(data, read_bytes=read.append)) == 3 * (3 * READ_BYTES // 30)
        assert sum(read) == data.stat().st_size
        read.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
        with pytest.raises(Interrupted):
            read_table(data, read_bytes=read.append)
    assert read == []  # stopped before its first read


def test_a_signal_after_the_last_check_is_delivered_again_when_the_block_ends() -> None:
    """Noted but never checked (it landed after the work's last check): not lost, but given to
    the handler the block restores, once the block is done (the process's own handler ends it
    there)."""
    from sentiment_cli import interruption

    seen: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with interruption.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            assert seen == [] and interruption.received() == signal.SIGTERM
        time.sleep(0.01)
        assert seen == [signal.SIGTERM] and interruption.received() is None
        with pytest.raises(ValueError), interruption.deferred():  # an error: it is the news
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)
            raise ValueError
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_leaves_a_half_model(tmp_path: Path) -> None:
    rounds = int(os.environ.get("KILL_ROUNDS", "4"))
    out = tmp_path / "m"
    rng = random.Random(0)
    args = [command("bce-train"), str(SAMPLE), "-o", str(out), "--force", "-q", "--epochs", "4",
            "--hidden", "32"]
    outcomes = []
    for _ in range(rounds):
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 6.0))
        process.kill()
        process.wait()
        if out.exists():
            load_bundle(out)  # raises if half-written
            outcomes.append("complete")
        else:
            outcomes.append("none")
        assert not any(p.name.startswith(".m.tmp") and (p / "config.json").exists()
                       and p.name == "m" for p in tmp_path.iterdir())
    assert set(outcomes) <= {"complete", "none"}


@pytest.mark.slow
def test_nan_loss_stops_with_the_learning_rate_hint(tmp_path: Path) -> None:
    result = run("bce-train", str(SAMPLE), "-o", str(tmp_path / "m"), "-q", "--lr", "1e38",
                 "--hidden", "64")
    assert_clean_error(result, 1, "NaN", "--lr")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("rows", "needles"),
    [
        ([("good", "pos")] * 5, ["one class only"]),
        ([("good", "pos"), ("bad", "neg"), ("meh", "neutral")],
         ["other than", "'neutral' (1)", "rows 3"]),
        ([("good", "spam"), ("bad", "ham")], ["--positive-label"]),
        ([("good", "pos"), ("bad", "neg"), ("ok", "")],
         ["blank", "rows 3", "--drop-invalid"]),
        ([("good", "pos"), ("", "neg")], ["empty text", "--drop-invalid"]),
    ],
)
def test_bad_labels_and_texts(tmp_path: Path, rows: list[tuple[str, str]],
                              needles: list[str]) -> None:
    path = write_csv(tmp_path / "bad.csv", ["text", "label"], rows)
    assert_clean_error(run("bce-train", str(path), "-o", str(tmp_path / "m")), 2, *needles)


@pytest.mark.slow
def test_drop_invalid_reports_and_saves_the_count(tmp_path: Path) -> None:
    rows = [*toy_rows(60), ("", "positive"), ("fine", ""), ("odd", "maybe")]
    path = write_csv(tmp_path / "d.csv", ["review", "sentiment"], rows)
    result = run("bce-train", str(path), "-o", str(tmp_path / "m"), "--drop-invalid",
                 "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert "skipped 3 invalid rows" in result.stderr
    assert json.loads((tmp_path / "m" / "metrics.json").read_text())["dropped_rows"] == 3


@pytest.mark.parametrize("content", ["", "text,label\n"])
def test_empty_and_header_only_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(content)
    assert_clean_error(run("bce-train", str(path), "-o", str(tmp_path / "m")), 2, str(path))


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda m: (m / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda m: (m / "config.json").write_text("{"), "does not match its digest"),
        (lambda m: ((m / "config.json").write_text("{"), resign(m)), "not valid JSON"),
        (lambda m: (m / "model.safetensors").write_bytes(b"\x80\x04junk"), "safetensors"),
        (lambda m: ((m / "config.json").write_text(
            (m / "config.json").read_text().replace('"format_version": 2', '"format_version": 7')
        ), resign(m)), "newer sentiment-cli"),
    ],
)
def test_damaged_model_folders_are_refused_by_predict_and_eval(
    sample_model: Path, tmp_path: Path, damage, needle: str  # type: ignore[no-untyped-def]
) -> None:
    import shutil

    model = Path(shutil.copytree(sample_model, tmp_path / "m"))
    damage(model)
    assert_clean_error(run("bce-predict", str(model), "text"), 2, needle)
    assert_clean_error(run("bce-eval", str(model), str(SAMPLE)), 2, needle)


def test_eval_labels_must_match_the_model(sample_model: Path, tmp_path: Path) -> None:
    """0/1 maps onto negative/positive by itself (tests/test_cli.py); two other words do not."""
    path = write_csv(tmp_path / "x.csv", ["text", "label"], [("good", "great"), ("bad", "awful")])
    assert_clean_error(run("bce-eval", str(sample_model), str(path)), 2,
                       "not the model's classes", "--positive-label")


@pytest.mark.slow
def test_line_files_train_with_blank_lines_skipped(tmp_path: Path) -> None:
    pos = tmp_path / "p.txt"
    neg = tmp_path / "n.txt"
    pos.write_bytes("".join(f"{t} caf\xe9\n" for t, lab in toy_rows(80) if lab == "positive")
                    .encode("latin-1") + b"\n")
    neg.write_bytes("".join(f"{t}\x85 ok\n" for t, lab in toy_rows(80) if lab == "negative")
                    .encode("latin-1"))
    result = run("bce-train", "--positive-lines", str(pos), "--negative-lines", str(neg),
                 "--encoding", "latin-1", "-o", str(tmp_path / "m"), "--json", "--epochs", "3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["train_rows"] + json.loads(result.stdout)["val_rows"] == 80


@needs_shared
def test_raw_rt_polarity_lines_keep_5331_texts_each() -> None:
    from sentiment_cli.data.lines import load_line_files

    raw = SHARED_DATA / "raw"
    data = load_line_files(raw / "rt-polarity.pos", raw / "rt-polarity.neg", encoding="latin-1")
    assert data.class_counts == {"negative": 5331, "positive": 5331}
    assert any("\x85" in t for t in data.texts)


def test_bundle_errors_do_not_execute_anything(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    (tmp_path / "vocabulary.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BundleError, match="not 'sentiment-cli-model'"):
        load_bundle(tmp_path)
    assert np.isfinite(1.0)


@pytest.mark.parametrize("fails", ["checkpoint", "model"])
def test_a_full_disk_keeps_the_old_model_and_the_last_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    import errno

    from sentiment_cli import pipeline
    from sentiment_cli.errors import TrainingError
    from sentiment_cli.training import checkpoint

    out = tmp_path / "m"
    options = TrainingConfig(epochs=3, patience=3, seed=1)
    run_training(TrainConfig(data=SAMPLE, output=out, training=TrainingConfig(epochs=1)))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    saving, writing = checkpoint.save_checkpoint, pipeline._measure_and_write

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def save_once(folder: Path, state: object, *args: object, **kwargs: object) -> None:
        if state.epoch > 1:  # type: ignore[attr-defined]
            full()
        saving(folder, state, *args, **kwargs)  # type: ignore[arg-type]

    if fails == "checkpoint":
        monkeypatch.setattr(checkpoint, "save_checkpoint", save_once)
    else:
        monkeypatch.setattr(pipeline, "_measure_and_write", full)
    with pytest.raises(TrainingError, match="no space left on the disk") as error:
        run_training(TrainConfig(data=SAMPLE, output=out, force=True, training=options))
    kept = "epoch 1" if fails == "checkpoint" else "epoch 3"
    assert f"{kept} is kept in {out}.checkpoint" in str(error.value)
    assert "--resume" in str(error.value)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    monkeypatch.setattr(checkpoint, "save_checkpoint", saving)
    monkeypatch.setattr(pipeline, "_measure_and_write", writing)
    run_training(TrainConfig(data=SAMPLE, output=out, force=True, resume=True, training=options))
    assert not (tmp_path / "m.checkpoint").exists()


class _Counting(TrainProgress):
    def __init__(self) -> None:
        self.announced: list[int] = []
        self.done: list[int] = []
        self.phases: dict[str, tuple[int, int | None, str]] = {}
        self.calls: dict[str, int] = {}

    def phase(self, name: str, done: int, total: int | None = None, unit: str = "rows") -> None:
        before = self.phases.get(name, (0, total, unit))[0]
        self.phases[name] = (before + done, total, unit)
        self.calls[name] = self.calls.get(name, 0) + 1

    def epoch_start(self, epoch: int, epochs: int, rows: int) -> None:
        self.announced.append(rows)
        self.done.append(0)

    def batch_end(self, rows: int) -> None:
        self.done[-1] += rows


@pytest.mark.parametrize("stream", [False, True])
def test_each_epoch_announces_the_rows_its_batches_add_up_to(tmp_path: Path,
                                                              stream: bool) -> None:
    """What makes the epoch's progress bar determinate, with an ETA (in memory and --stream)."""
    progress = _Counting()
    run_training(TrainConfig(data=SAMPLE, output=tmp_path / "m", stream=stream,
                             training=TrainingConfig(epochs=2, batch_size=50)),
                 progress=progress)
    assert progress.announced == progress.done and progress.announced[0] > 500


@pytest.mark.parametrize("compressed", [False, True])
def test_reading_in_memory_reports_every_byte_of_the_file(tmp_path: Path, compressed: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The reading bar's total is DATA's size on disk, and what it is told adds up to it (the
    compressed bytes, for a compressed file); counting terms follows as a step of its own, one
    run of rows at a time, adding up to every row."""
    from sentiment_cli import in_memory

    monkeypatch.setattr(in_memory, "COUNT_RUN_ROWS", 100)
    data = tmp_path / "reviews.csv"
    data.write_bytes(gzip.compress(SAMPLE.read_bytes()) if compressed else SAMPLE.read_bytes())
    progress = _Counting()
    run_training(TrainConfig(data=data, output=tmp_path / "m",
                             training=TrainingConfig(epochs=1)), progress=progress)
    size = data.stat().st_size
    assert progress.phases["reading"] == (size, size, "bytes")
    assert progress.phases["counting terms"] == (675, 675, "rows")
    assert progress.calls["counting terms"] == 7


@pytest.mark.parametrize("command", ["bce-train", "bce-eval"])
def test_a_signal_while_the_folder_is_written_completes_it_then_stops(
        command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C or SIGTERM after the last check, while the model (or report) folder is written:
    the folder is finished whole, and the command then stops with 130/143 and one line, so
    that a shell's `bce-train ... && next` does not go on (it exited 0 and said nothing)."""
    import sentiment_cli.artifacts.record as record
    import sentiment_cli.evaluate as evaluate

    module = record if command == "bce-train" else evaluate
    publish = module.publish

    def interrupted_publish(*args, **kwargs):  # type: ignore[no-untyped-def]
        # SIGTERM: a SIGINT would stay ignored where the tests run in the background (`&`)
        os.kill(os.getpid(), signal.SIGTERM)  # noted by the handler, not acted on here
        return publish(*args, **kwargs)

    model = tmp_path / "m"
    if command == "bce-eval":
        assert run("bce-train", str(SAMPLE), "-o", str(model), "-q").returncode == 0
    monkeypatch.setattr(module, "publish", interrupted_publish)
    folder = tmp_path / ("m" if command == "bce-train" else "rep")
    args = ([str(SAMPLE), "-o", str(folder), "-q"] if command == "bce-train" else
            [str(model), str(SAMPLE), "--report", str(folder)])
    result = run(command, *args)
    assert result.returncode == 143, result.stderr
    kind = "model" if command == "bce-train" else "report"
    assert result.stderr.strip() == (f"{command}: error: interrupted while writing {folder}; the "
                                     f"{kind} folder was completed")
    assert result.stdout == ""
    assert (folder / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"] + (["rep"] if kind == "report"
                                                                   else [])
    assert run("bce-predict", str(model), "a fine phone").returncode == 0
