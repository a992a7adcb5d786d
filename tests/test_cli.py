"""End to end through the installed commands: bce-train, bce-predict, bce-eval."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLE, assert_clean_error, command, run, toy_rows, write_csv


def test_importing_the_cli_does_not_import_torch_sklearn_or_pandas() -> None:
    code = ("import sys, sentiment_cli.cli, sentiment_cli.__main__; "
            "print(sorted(m for m in ('torch', 'sklearn', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", ["bce-train", "bce-predict", "bce-eval"])
def test_help_answers(name: str) -> None:
    result = run(name, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


@pytest.mark.slow
def test_bce_train_leaves_no_helper_process_behind(tmp_path: Path, toy_csv: Path) -> None:
    """bce-train forks its tokenising helper first thing (it shares the command line, hence
    the marker); whatever the command does, the helper is gone when it returns."""
    marker = "leftover-marker-5c1e"
    runs = [
        (("--help", marker), 0),
        ((str(tmp_path / f"{marker}.csv"),), 2),  # no such file
        ((str(toy_csv), "-o", str(tmp_path / marker), "--no-report", "--epochs", "1"), 0),
    ]
    for args, code in runs:
        with (tmp_path / "out.txt").open("wb") as out:  # a pipe would wait for the helper too
            done = subprocess.run([command("bce-train"), *args], stdout=out, stderr=out)
        assert done.returncode == code, args
        ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True,
                            check=True)
        assert marker not in ps.stdout, args


def test_python_dash_m_runs_the_same_commands() -> None:
    out = subprocess.run([sys.executable, "-m", "sentiment_cli", "predict", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "bce-predict" in out.stdout


def test_train_writes_the_model_folder_and_metrics(sample_model: Path) -> None:
    names = {p.name for p in sample_model.iterdir()}
    assert {"config.json", "vocabulary.json", "model.safetensors", "metrics.json",
            "history.csv"} <= names
    metrics = json.loads((sample_model / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] > 0.6
    history = list(csv.DictReader(io.StringIO((sample_model / "history.csv").read_text())))
    assert list(history[0]) == ["epoch", "train_loss", "val_loss", "train_acc", "val_acc",
                                "seconds"]


@pytest.mark.slow
def test_train_json_output_is_one_object_and_progress_stays_off_stdout(tmp_path: Path,
                                                                      toy_csv: Path) -> None:
    result = run("bce-train", str(toy_csv), "-o", str(tmp_path / "m"), "--json", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["labels"] == ["negative", "positive"] and summary["epochs_run"] == 2
    assert "epoch" in result.stderr  # the per-epoch table went to stderr


@pytest.mark.slow
def test_existing_model_is_not_overwritten_without_force(tmp_path: Path, toy_csv: Path) -> None:
    out = tmp_path / "m"
    assert run("bce-train", str(toy_csv), "-o", str(out), "-q", "--epochs", "1").returncode == 0
    before = (out / "model.safetensors").read_bytes()
    result = run("bce-train", str(toy_csv), "-o", str(out), "-q", "--epochs", "1", "--seed", "5")
    assert_clean_error(result, 2, "already exists", "--force")
    assert (out / "model.safetensors").read_bytes() == before
    result = run("bce-train", str(toy_csv), "-o", str(out), "-q", "--epochs", "1", "--seed", "5",
                 "--force")
    assert result.returncode == 0 and (out / "model.safetensors").read_bytes() != before


@pytest.mark.slow
def test_default_output_is_models_slash_stem(tmp_path: Path, toy_csv: Path) -> None:
    result = run("bce-train", str(toy_csv), "-q", "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "models" / "toy" / "config.json").exists()


def test_predict_arguments_print_label_and_probability(sample_model: Path) -> None:
    result = run("bce-predict", str(sample_model), "Absolutely love it, works perfectly!",
                 "Broke after two days, total waste of money.")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert rows[0]["probability"] > 0.5 > rows[1]["probability"]


@pytest.mark.slow
def test_stdin_keeps_order_and_blank_lines(sample_model: Path) -> None:
    lines = [f"review number {i} was great" if i % 3 else "" for i in range(50)]
    result = run("bce-predict", str(sample_model), "--batch-size", "7",
                 input="\n".join(lines) + "\n")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == lines


@pytest.mark.parametrize("fmt", ["csv", "tsv", "label"])
def test_output_formats(sample_model: Path, fmt: str) -> None:
    result = run("bce-predict", str(sample_model), "--format", fmt, "great, really great",
                 "awful")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    if fmt == "label":
        assert lines == ["positive", "negative"]
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout),
                                   delimiter="\t" if fmt == "tsv" else ","))
        assert [r["text"] for r in rows] == ["great, really great", "awful"]
        assert {"label", "probability"} <= set(rows[0])


@pytest.mark.slow
def test_threshold_override_flips_labels(sample_model: Path) -> None:
    text = "It was fine I guess."
    default = json.loads(run("bce-predict", str(sample_model), text).stdout)
    low = json.loads(run("bce-predict", str(sample_model), text, "--threshold", "0").stdout)
    high = json.loads(run("bce-predict", str(sample_model), text, "--threshold", "1").stdout)
    assert low["label"] == "positive" and high["label"] == "negative"
    assert default["probability"] == low["probability"]


def test_input_file_column_with_kept_columns(sample_model: Path, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "in.csv", ["id", "comment", "label", "stars"],
                     [("a1", "love it", "x", "5"), ("b2", "hate it", "y", "1")])
    result = run("bce-predict", str(sample_model), "--input", str(path), "--keep-columns")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [list(r) for r in rows] == [["id", "comment", "label", "stars", "predicted_label",
                                        "probability"]] * 2  # theirs as they were, then ours
    assert [(r["id"], r["comment"], r["label"]) for r in rows] == [("a1", "love it", "x"),
                                                                   ("b2", "hate it", "y")]
    assert [r["predicted_label"] for r in rows] == ["positive", "negative"]
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        table = run("bce-predict", str(sample_model), "--input", str(path), "--keep-columns",
                    "--format", fmt, "--explain", "1").stdout.splitlines()
        assert table[0].split(sep) == ["id", "comment", "label", "stars", "predicted_label",
                                       "probability", "logit", "bias", "explanation"]
        assert table[1].split(sep)[:5] == ["a1", "love it", "x", "5", "positive"]


def test_skip_header_drops_the_column_name_from_stdin(sample_model: Path) -> None:
    lines = "comment\nlove it\nhate it\n"
    plain = run("bce-predict", str(sample_model), "-F", "label", input=lines).stdout.split()
    skipped = run("bce-predict", str(sample_model), "-F", "label", "--skip-header",
                  input=lines).stdout.split()
    assert len(plain) == 3 and skipped == plain[1:]
    refused = run("bce-predict", str(sample_model), "--skip-header", "love it")
    assert_clean_error(refused, 2, "--skip-header applies to texts on stdin only")


@pytest.mark.slow
def test_closed_pipe_ends_quietly(sample_model: Path) -> None:
    lines = "".join(f"text {i}\n" for i in range(200_000)).encode()
    pipeline = subprocess.run(
        f"'{command('bce-predict')}' '{sample_model}' | head -1",
        shell=True, input=lines, capture_output=True, executable="/bin/bash",
    )
    assert pipeline.stdout.decode().count("\n") == 1
    assert b"Traceback" not in pipeline.stderr and pipeline.stderr == b""


@pytest.mark.slow
def test_eval_json_matches_predictions(sample_model: Path, tmp_path: Path) -> None:
    rows = [(t, "positive" if i % 2 == 0 else "negative") for i, (t, _) in
            enumerate([("works great, love it", ""), ("broke in a day, awful", "")] * 10)]
    data = write_csv(tmp_path / "test.csv", ["review", "sentiment"], rows)
    result = run("bce-eval", str(sample_model), str(data), "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    predicted = run("bce-predict", str(sample_model), "--input", str(data), "--format", "label")
    labels = predicted.stdout.splitlines()
    accuracy = sum(p == t for p, (_, t) in zip(labels, rows, strict=True)) / len(rows)
    assert metrics["accuracy"] == pytest.approx(accuracy)
    assert {"precision", "recall", "f1", "roc_auc", "log_loss", "ece", "confusion_matrix"} <= set(
        metrics)


def test_eval_table_for_people(sample_model: Path) -> None:
    result = run("bce-eval", str(sample_model), str(SAMPLE))
    assert result.returncode == 0 and "accuracy" in result.stdout and "confusion" in result.stdout


def test_eval_says_when_the_file_is_the_one_the_model_learned_from(sample_model: Path,
                                                                  tmp_path: Path) -> None:
    """Figures on the rows a model was trained on overstate it: bce-eval knows the file by its
    real path, however it is named, and says so on stderr and in --json's notes."""
    relative = os.path.relpath(SAMPLE, tmp_path)
    result = run("bce-eval", str(sample_model), relative, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (note,) = json.loads(result.stdout)["notes"]
    assert f"{relative} is the file {sample_model} was trained on" in note
    assert f"bce-info {sample_model} shows" in note
    assert result.stderr == f"bce-eval: note: {note}\n"
    reported = run("bce-eval", str(sample_model), str(SAMPLE), "--report", "rep", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "- Note: " in (tmp_path / "rep" / "report.md").read_text()
    copy = tmp_path / "copy.csv"
    shutil.copy(SAMPLE, copy)
    other = run("bce-eval", str(sample_model), str(copy), "--json")
    assert "notes" not in json.loads(other.stdout) and other.stderr == ""
    from sentiment_cli.artifacts.bundle import load_bundle
    from sentiment_cli.evaluate import _seen_rows_note

    bundle = load_bundle(sample_model)
    bundle.config["data"]["val_path"] = str(copy.resolve())
    (validated,) = _seen_rows_note(bundle, copy, "copy.csv", sample_model)
    assert "copy.csv is the --val-data file" in validated


def _respelled(path: Path, spelling: dict[str, str]) -> Path:
    """The bundled sample with its labels spelled otherwise (``spelling``: old -> new)."""
    with SAMPLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    return write_csv(path, ["review", "label"], [(t, spelling[label]) for t, label in rows])


def test_eval_scores_a_0_1_file_with_a_negative_positive_model(sample_model: Path,
                                                                tmp_path: Path) -> None:
    """As README's `bce-eval ... --json | jq .accuracy` on SST-2: 0/1 is negative/positive, and
    --positive-label turns it round."""
    same = json.loads(run("bce-eval", str(sample_model), str(SAMPLE), "--json").stdout)
    data = str(_respelled(tmp_path / "01.csv", {"negative": "0", "positive": "1"}))
    result = run("bce-eval", str(sample_model), data, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["accuracy"] == same["accuracy"] and metrics["data_labels"] == ["0", "1"]
    turned = json.loads(run("bce-eval", str(sample_model), data, "--json",
                            "--positive-label", "0").stdout)
    assert turned["accuracy"] == pytest.approx(1 - same["accuracy"])
    assert turned["data_labels"] == ["1", "0"]
    table = run("bce-eval", str(sample_model), data)
    assert "the file's label 0 is negative, its 1 is positive" in table.stdout


def test_eval_of_labels_it_cannot_map_asks_for_positive_label(sample_model: Path,
                                                              tmp_path: Path) -> None:
    data = str(_respelled(tmp_path / "gb.csv", {"negative": "bad", "positive": "good"}))
    assert_clean_error(run("bce-eval", str(sample_model), data), 2,
                       "'good'", "not the model's classes", "--positive-label",
                       "means 'positive'")
    named = run("bce-eval", str(sample_model), data, "--positive-label", "good", "--json")
    same = json.loads(run("bce-eval", str(sample_model), str(SAMPLE), "--json").stdout)
    assert json.loads(named.stdout)["accuracy"] == same["accuracy"]
    assert_clean_error(run("bce-eval", str(sample_model), data, "--positive-label", "great"),
                       2, "--positive-label 'great' does not occur")
    # refused before the file is read: it need not exist
    assert_clean_error(run("bce-eval", str(sample_model), str(tmp_path / "none.csv"),
                           "--positive-label", "good", "-l", "a", "-l", "b"),
                       2, "--positive-label is for one label column")


@pytest.mark.slow
def test_pos_weight_balanced_is_recorded_and_keeps_the_default_threshold(
        tmp_path: Path, toy_csv: Path) -> None:
    result = run("bce-train", str(toy_csv), "-o", str(tmp_path / "m"), "--no-report", "--json",
                 "--epochs", "3", "--pos-weight", "balanced")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["pos_weight"] == [1.0] and summary["thresholds"] == [0.5]  # toy data: 50/50
    config = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    assert config["training"]["pos_weight"] == "balanced"
    scored = run("bce-predict", str(tmp_path / "m"), "great value, works well")
    assert scored.returncode == 0 and scored.stdout.strip()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["missing.csv"], ["no such file"]),
        (["{tmp}"], ["is a folder"]),
        (["{toy}", "--text-column", "nope"], ["no column 'nope'", "columns are"]),
        (["{toy}", "--device", "cuda:7"], ["--device cuda:7"]),
        (["{toy}", "--pos-weight", "lots"], ["--pos-weight", "balanced"]),
        (["{toy}", "--ngram-range", "3,1"], ["--ngram-range"]),
        (["{toy}", "--min-df", "500"], ["--min-df"]),
        (["{toy}", "--val-split", "1.5"], ["--val-split"]),
        (["{toy}", "--label-columns", " , "], ["--label-columns", "names no column"]),
    ],
)
def test_train_bad_input_gets_one_line_and_status_2(
    tmp_path: Path, toy_csv: Path, args: list[str], needles: list[str]
) -> None:
    args = [a.format(tmp=tmp_path, toy=toy_csv) for a in args]
    result = run("bce-train", *args, "-o", str(tmp_path / "out"), "-q")
    assert_clean_error(result, 2, *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_latin1_needs_encoding_flag(tmp_path: Path) -> None:
    rows = [(t + " caf\u00e9", lab) for t, lab in toy_rows(40)]
    path = write_csv(tmp_path / "l1.csv", ["review", "sentiment"], rows, encoding="latin-1")
    assert_clean_error(run("bce-train", str(path), "-o", str(tmp_path / "m"), "-q"), 2,
                       "not valid UTF-8", "--encoding latin-1")
    ok = run("bce-train", str(path), "-o", str(tmp_path / "m"), "-q", "--encoding", "latin-1",
             "--epochs", "1")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["{tmp}/none"], ["does not exist"]),
        (["{model}", "--threshold", "1.5", "x"], ["--threshold"]),
        (["{model}", "--format", "xml", "x"], ["--format"]),
        (["{model}", "--input", "{tmp}/none.csv"], ["no such file"]),
    ],
)
def test_predict_bad_input(sample_model: Path, tmp_path: Path, args: list[str],
                           needles: list[str]) -> None:
    args = [a.format(tmp=tmp_path, model=sample_model) for a in args]
    assert_clean_error(run("bce-predict", *args), 2, *needles)


@pytest.mark.slow
def test_predict_undecodable_stdin(sample_model: Path) -> None:
    result = run("bce-predict", str(sample_model), input=b"fine\ncaf\xe9\n")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "line 2" in result.stderr and "--encoding" in result.stderr
    ok = run("bce-predict", str(sample_model), "--encoding", "latin-1", input=b"fine\ncaf\xe9\n")
    assert json.loads(ok.stdout.splitlines()[1])["text"] == "caf\u00e9"


def test_scoring_on_cpu_imports_neither_torch_nor_scikit_learn(sample_model: Path) -> None:
    code = (
        "import sys\n"
        "from sentiment_cli.artifacts.bundle import load_bundle\n"
        "from sentiment_cli.predict import Predictor\n"
        f"p = Predictor(load_bundle({str(sample_model)!r}))\n"
        "p.probabilities(['great phone'])\n"
        "print('torch' in sys.modules, 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"  # 2.3 s and 1.8 s of start-up


def test_tsv_output_keeps_one_line_per_text(sample_model: Path) -> None:
    result = run("bce-predict", str(sample_model), "--format", "tsv", 'tab\there "quoted"',
                 "two\nlines")
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.count("\t") == 2 for line in lines)
    assert lines[1].startswith('tab here "quoted"\t')


@pytest.mark.slow
def test_training_writes_the_report_and_eval_writes_one_on_request(
    sample_model: Path, tmp_path: Path
) -> None:
    report = (sample_model / "report.md").read_text()
    for plot in ("loss", "accuracy", "roc", "precision_recall", "calibration",
                 "confusion_matrix"):
        assert (sample_model / "plots" / f"{plot}.png").exists()
        assert f"plots/{plot}.png" in report
    assert "training.epochs" in report and "| 6 " in report  # the options actually used
    result = run("bce-eval", str(sample_model), str(SAMPLE), "--report", str(tmp_path / "r"),
                 "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["report"] == str(tmp_path / "r" / "report.md")
    assert (tmp_path / "r" / "plots" / "roc.png").exists()


@pytest.mark.slow
def test_no_report_skips_plots(tmp_path: Path, toy_csv: Path) -> None:
    result = run("bce-train", str(toy_csv), "-o", str(tmp_path / "m"), "-q", "--epochs", "1",
                 "--no-report")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "m" / "report.md").exists()


@pytest.mark.slow
def test_worker_processes_keep_input_order(sample_model: Path) -> None:
    lines = "".join(f"line {i} {'great' if i % 2 else 'awful'}\n" for i in range(3000))
    one = run("bce-predict", str(sample_model), "-j", "1", "--batch-size", "100", input=lines)
    two = run("bce-predict", str(sample_model), "-j", "2", "--batch-size", "100", input=lines)
    assert one.returncode == two.returncode == 0
    assert one.stdout == two.stdout
    assert [json.loads(r)["text"] for r in two.stdout.splitlines()] == lines.splitlines()


def test_progress_bars_show_amounts_in_their_units() -> None:
    from rich.progress import Progress

    from sentiment_cli.reporting.console import _amount_column

    column, bars = _amount_column(), Progress(disable=True)
    for total, done, unit in [(15_100_000, 7_550_000, "bytes"), (65_343, 29_184, "rows"),
                              (90_000, 45_000, "ms"), (None, 0, "rows")]:
        bars.update(bars.add_task("x", total=total, unit=unit), completed=done)
    assert [column.render(task).plain for task in bars.tasks] == [
        "7.5 MB/15.1 MB", "29,184/65,343 rows", "45/90 s", ""]


@pytest.mark.parametrize("started_with", [signal.default_int_handler, signal.SIG_IGN])
def test_a_command_loads_with_sigint_at_its_default_action(started_with: Any) -> None:
    """Ctrl-C while a command loads ends it quietly (not a KeyboardInterrupt traceback from
    inside an import); once loaded, the command has Python's handler back. Ignored stays so."""
    from sentiment_cli import launch

    seen = []

    class Loaded:
        @staticmethod
        def main() -> None:
            seen.append(signal.getsignal(signal.SIGINT))

    def loading(name: str) -> type[Loaded]:
        seen.append((name, signal.getsignal(signal.SIGINT)))
        return Loaded

    previous = signal.signal(signal.SIGINT, started_with)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(launch.importlib, "import_module", loading)
            launch.train()
    finally:
        signal.signal(signal.SIGINT, previous)
    loaded = signal.SIG_DFL if started_with is signal.default_int_handler else signal.SIG_IGN
    assert seen == [("sentiment_cli.cli.train", loaded), started_with]
