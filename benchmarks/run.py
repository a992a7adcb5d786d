"""Benchmark ours against scikit-learn and fastText on the same held-out splits, in one run.

    python benchmarks/run.py [--shared ../shared/data] [--out benchmarks/results] [--repeats N]
                             [--datasets NAME ...] [--quick] [--scale]

Every system runs as fresh subprocesses (so imports and start-up count the same way for all):
a train step, an empty-input predict step (start-up: interpreter, imports, model load) and a
predict step on the test texts (one per line on stdin). Wall time is taken around each process
and peak RSS with GNU time (/usr/bin/time -f %M; os.wait4 as a fallback). Throughput is
rows / (predict wall - median start-up); it is reported both for the test texts (as few as 300
rows, so start-up noise dominates) and for the test texts repeated to --throughput-rows lines.
Ratios compare medians measured in the same run. Accuracy, F1 and ROC-AUC are on the test
split only; nothing is tuned on it.

Writes results.json and results.md under --out. ``--scale`` adds SST-2 train repeated 1x, 2x,
5x and 10x (one epoch for ours) to show how time and peak memory grow with rows.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from splits import make_splits  # noqa: E402

WORKER = HERE / "peer_worker.py"
BIN = Path(sys.executable).parent
TEXT_COLUMNS = ("text", "review", "sentence", "content", "comment", "body")
LABEL_COLUMNS = ("label", "sentiment", "target", "class", "polarity", "y")
POSITIVE_NAMES = ("1", "true", "yes", "pos", "positive")
DATASET_ORDER = ("rt_polarity", "sst2", "uci_sentences", "rt_polarity_imbalanced")
STEP_TIMEOUT = 900.0


@dataclass(frozen=True)
class System:
    """One contender: ``kind`` picks the commands, ``params`` its options."""

    key: str
    peer: str  # the --peers name that selects it: ours, sklearn, fasttext
    title: str
    params: dict[str, Any]


SYSTEMS = (
    System("ours", "ours", "ours (bce-train defaults)", {}),
    System("sklearn_cv_ours", "sklearn", "sklearn LR + our CountVectorizer settings",
           {"vectorizer": "ours"}),
    System("sklearn_unigram", "sklearn", "sklearn LR, default tokenizer, unigrams",
           {"vectorizer": {}}),
    System("sklearn_bigram", "sklearn", "sklearn LR, default tokenizer, uni+bigrams",
           {"vectorizer": {"ngram_range": [1, 2]}}),
    System("fasttext_default", "fasttext", "fastText supervised, defaults", {}),
    System("fasttext_bigram_e25", "fasttext", "fastText wordNgrams=2, epoch=25",
           {"wordNgrams": 2, "epoch": 25}),
)
PEERS = ("ours", "sklearn", "fasttext")


# --------------------------------------------------------------------------- measuring processes


@dataclass
class Measured:
    wall: float
    peak_rss_mb: float
    returncode: int
    stderr: str
    stdout_path: Path | None


GNU_TIME = Path("/usr/bin/time")


def rss_method() -> str:
    if GNU_TIME.exists():
        return "/usr/bin/time -f %M (max RSS of the measured process, KiB -> MiB)"
    return ("os.wait4 ru_maxrss (KiB -> MiB); includes the runner's own RSS at spawn time as a "
            "floor, since Linux folds the pre-exec memory into the child's high-water mark")


def run_measured(cmd: Sequence[str], stdin: Path | None = None, stdout: Path | None = None,
                 timeout: float = STEP_TIMEOUT) -> Measured:
    """Run ``cmd`` with files for stdin/stdout; its wall time and peak RSS.

    Peak RSS comes from GNU time when present: a child forked straight from this (large) Python
    process would report this process's RSS as its floor (Linux counts the pre-exec memory in
    ru_maxrss), while GNU time forks from a ~1 MiB process.
    """
    cmd = [str(c) for c in cmd]
    with contextlib.ExitStack() as stack:
        fin = stack.enter_context(open(stdin if stdin else os.devnull, "rb"))
        fout = stack.enter_context(open(stdout if stdout else os.devnull, "wb"))
        ferr = stack.enter_context(tempfile.TemporaryFile())
        rss_file = None
        if GNU_TIME.exists():
            handle, rss_name = tempfile.mkstemp(prefix="rss_", suffix=".txt")
            os.close(handle)
            rss_file = Path(rss_name)
            stack.callback(rss_file.unlink, missing_ok=True)
            cmd = [str(GNU_TIME), "-f", "%M", "-o", str(rss_file), *cmd]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=fin, stdout=fout, stderr=ferr)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        ferr.seek(0)
        err = ferr.read().decode("utf-8", "replace")
        peak_kib = float(usage.ru_maxrss)  # Linux reports KiB
        if rss_file is not None:
            lines = rss_file.read_text(encoding="utf-8").split()
            if lines and lines[-1].isdigit():
                peak_kib = float(lines[-1])
    return Measured(wall, peak_kib / 1024, proc.returncode, err, stdout)


def checked(result: Measured, what: str) -> Measured:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed with exit status {result.returncode}:\n"
                           f"{result.stderr[-3000:]}")
    return result


FASTTEXT_ATTEMPTS = 3


def retrying(cmd: Sequence[str], what: str) -> tuple[Measured, list[str]]:
    """Run a train step; fastText's "Encountered NaN" is retried, each failed attempt recorded."""
    failures: list[str] = []
    while True:
        result = run_measured(cmd)
        if result.returncode == 0:
            return result, failures
        if "Encountered NaN" in result.stderr and len(failures) + 1 < FASTTEXT_ATTEMPTS:
            failures.append(f"attempt {len(failures) + 1}: Encountered NaN after "
                            f"{result.wall:.1f} s")
            continue
        checked(result, what)


@dataclass
class PeerTrain:
    wall: float
    peak_rss_mb: float
    stats: dict[str, Any]
    failures: list[str]
    parts_wall_s: dict[str, float]


def train_peer(tool: str, data: Path, text_column: str, label_column: str, positive: str,
               params: dict[str, Any], model: Path, folder: Path, what: str) -> PeerTrain:
    """A peer's training from the CSV, in fresh processes.

    scikit-learn: one process (read CSV, fit, pickle). fastText: a CSV -> __label__ file process,
    then a fastText-only process that trains from that file (fastText 0.9.3 can hit "Encountered
    NaN" when the process's heap was used before, e.g. by pandas reading the CSV); the wall times
    add up and the peak RSS is the larger of the two.
    """
    data_args = ["--text-column", text_column, "--label-column", label_column,
                 "--positive", positive]
    stats_file = folder / "train_stats.json"
    if tool == "sklearn":
        result, failures = retrying([sys.executable, WORKER, "sklearn-train", "--train", data,
                                     *data_args, "--params", json.dumps(params), "--model",
                                     model, "--stats", stats_file], what)
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
        return PeerTrain(result.wall, result.peak_rss_mb, stats, failures,
                         {"train": result.wall})
    labels = folder / "fasttext_input.txt"
    try:
        prep = checked(run_measured([sys.executable, WORKER, "fasttext-prep", "--train", data,
                                     *data_args, "--model", labels, "--stats", stats_file]),
                       f"{what} (CSV -> fastText input)")
        prep_stats = json.loads(stats_file.read_text(encoding="utf-8"))
        result, failures = retrying([sys.executable, WORKER, "fasttext-train", "--train", labels,
                                     "--params", json.dumps(params), "--model", model,
                                     "--stats", stats_file], what)
        stats = json.loads(stats_file.read_text(encoding="utf-8"))
    finally:
        labels.unlink(missing_ok=True)
    stats["rows"] = prep_stats["rows"]
    stats["seconds"] = {**{f"prep_{k}": v for k, v in prep_stats["seconds"].items()},
                        **stats["seconds"]}
    return PeerTrain(prep.wall + result.wall, max(prep.peak_rss_mb, result.peak_rss_mb), stats,
                     failures, {"prep": prep.wall, "train": result.wall})


def median(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


# --------------------------------------------------------------------------------------- data


@dataclass
class Split:
    name: str
    train: Path
    test: Path
    text_column: str
    label_column: str
    test_texts: list[str]
    test_labels: list[str]
    train_rows: int
    notes: list[str]


def pick(columns: Sequence[str], names: Sequence[str], what: str, path: Path) -> str:
    lowered = {c.lower(): c for c in columns}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise ValueError(f"{path}: no {what} column among {list(columns)}")


def load_split(name: str, train: Path, test: Path) -> Split:
    frame = pd.read_csv(test, dtype=str, keep_default_na=False)
    header = pd.read_csv(train, dtype=str, keep_default_na=False, nrows=0).columns
    text_col = pick(frame.columns, TEXT_COLUMNS, "text", test)
    label_col = pick(frame.columns, LABEL_COLUMNS, "label", test)
    if text_col not in header or label_col not in header:
        raise ValueError(f"{train} lacks the columns {text_col!r}/{label_col!r} of {test}")
    train_rows = len(pd.read_csv(train, dtype=str, keep_default_na=False, usecols=[text_col]))
    texts = frame[text_col].tolist()
    notes = []
    broken = sum(1 for t in texts if "\n" in t or "\r" in t)
    if broken:
        # bce-predict and the peers read one text per line: a line break would shift every row.
        texts = [t.replace("\r", " ").replace("\n", " ") for t in texts]
        notes.append(f"{broken} test texts had line breaks, replaced by spaces for all systems")
    return Split(name, train, test, text_col, label_col, texts,
                 [v.strip() for v in frame[label_col].tolist()], train_rows, notes)


def write_lines(path: Path, texts: Sequence[str], rows: int | None = None) -> int:
    """One text per line; with ``rows``, the texts repeated until at least that many lines."""
    times = 1 if rows is None else max(1, -(-rows // max(1, len(texts))))
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for _ in range(times):
            out.write("".join(t + "\n" for t in texts))
    return times * len(texts)


def scores(y_true: Sequence[int], y_pred: Sequence[int], prob: Sequence[float]) -> dict:
    roc = roc_auc_score(y_true, prob) if len(set(y_true)) == 2 else None
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": None if roc is None else float(roc),
    }


def default_positive(labels: Iterable[str]) -> str:
    names = sorted(set(labels))
    for name in names:
        if name.lower() in POSITIVE_NAMES:
            return name
    return names[-1]


def ours_vectorizer_defaults() -> dict[str, Any]:
    from dataclasses import asdict

    from sentiment_cli.config import VectorizerConfig

    params = asdict(VectorizerConfig())
    params["ngram_range"] = list(params["ngram_range"])
    return params


# ------------------------------------------------------------------------------------ systems


class Runner:
    """Runs every selected system on one split; one call per repeat."""

    def __init__(self, work: Path, throughput_rows: int, log: Callable[[str], None]) -> None:
        self.work = work
        self.throughput_rows = throughput_rows
        self.log = log

    def run(self, system: System, split: Split, context: dict[str, Any]) -> dict[str, Any]:
        folder = self.work / split.name / system.key
        folder.mkdir(parents=True, exist_ok=True)
        if system.key == "ours":
            return self._ours(split, folder, context)
        return self._peer(system, split, folder, context)

    def _predict_files(self, split: Split) -> tuple[Path, Path, int]:
        base = self.work / split.name
        base.mkdir(parents=True, exist_ok=True)
        test_lines = base / "test_texts.txt"
        bulk_lines = base / "bulk_texts.txt"
        if not test_lines.exists():
            write_lines(test_lines, split.test_texts)
        bulk_rows = write_lines(bulk_lines, split.test_texts, self.throughput_rows)
        return test_lines, bulk_lines, bulk_rows

    def _predict_steps(self, cmd: list[str], split: Split, folder: Path,
                       bulk_extra: Sequence[str] = ()) -> tuple[dict, Path]:
        test_lines, bulk_lines, bulk_rows = self._predict_files(split)
        empty = checked(run_measured(cmd, stdout=folder / "empty.out"), f"{cmd} < /dev/null")
        test = checked(run_measured(cmd, stdin=test_lines, stdout=folder / "test.out"),
                       f"{cmd} < {test_lines}")
        bulk = checked(run_measured([*cmd, *bulk_extra], stdin=bulk_lines,
                                    stdout=folder / "bulk.out"),
                       f"{cmd} < {bulk_lines}")
        return {
            "startup_wall_s": empty.wall,
            "startup_peak_rss_mb": empty.peak_rss_mb,
            "predict_wall_s": test.wall,
            "predict_peak_rss_mb": test.peak_rss_mb,
            "bulk_rows": bulk_rows,
            "bulk_wall_s": bulk.wall,
            "bulk_peak_rss_mb": bulk.peak_rss_mb,
        }, folder / "test.out"

    def _ours(self, split: Split, folder: Path, context: dict[str, Any]) -> dict[str, Any]:
        model = folder / "model"
        train = checked(run_measured(
            [BIN / "bce-train", split.train, "-o", model, "--force", "--quiet", "--seed", "0",
             "--json"], stdout=folder / "train.json"), f"bce-train {split.train}")
        summary = json.loads((folder / "train.json").read_text(encoding="utf-8"))
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
        positive = config["positive_label"]
        context["positive_label"] = positive
        context["vectorizer"] = config["vectorizer"]
        context["labels"] = config["labels"]
        steps, out = self._predict_steps([str(BIN / "bce-predict"), str(model), "--format",
                                          "jsonl"], split, folder)
        # Split on "\n" only: texts may hold U+0085/U+2028, which str.splitlines() breaks on.
        records = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n")
                   if line.strip()]
        if len(records) != len(split.test_texts):
            raise RuntimeError(f"bce-predict gave {len(records)} rows for "
                               f"{len(split.test_texts)} texts of {split.name}")
        mismatched = sum(r["text"] != t for r, t in zip(records, split.test_texts, strict=True))
        if mismatched:
            raise RuntimeError(f"bce-predict echoed {mismatched} texts differently ({split.name})")
        y_true = [int(v == positive) for v in split.test_labels]
        y_pred = [int(r["label"] == positive) for r in records]
        prob = [float(r["probability"]) for r in records]
        return {
            "train_wall_s": train.wall,
            "train_peak_rss_mb": train.peak_rss_mb,
            "train_inprocess_s": summary["seconds"],
            "epochs_run": summary.get("epochs_run"),
            "best_epoch": summary.get("best_epoch"),
            "vocabulary": summary.get("vocabulary"),
            "train_rows_used": summary.get("train_rows"),
            **steps,
            **scores(y_true, y_pred, prob),
        }

    def _peer(self, system: System, split: Split, folder: Path,
              context: dict[str, Any]) -> dict[str, Any]:
        positive = context.get("positive_label") or default_positive(split.test_labels)
        tool = system.peer
        params = dict(system.params)
        if params.get("vectorizer") == "ours":
            params["vectorizer"] = context.get("vectorizer") or ours_vectorizer_defaults()
        model = folder / ("model.pkl" if tool == "sklearn" else "model.bin")
        train = train_peer(tool, split.train, split.text_column, split.label_column, positive,
                           params, model, folder, f"{system.key} train on {split.name}")
        stats = train.stats
        steps, out = self._predict_steps(
            [sys.executable, str(WORKER), f"{tool}-predict", "--model", str(model)], split, folder,
            ["--stats", str(folder / "bulk_stats.json")])
        bulk_stats = json.loads((folder / "bulk_stats.json").read_text(encoding="utf-8"))
        prob = [float(v) for v in out.read_text(encoding="utf-8").split()]
        if len(prob) != len(split.test_texts):
            raise RuntimeError(f"{system.key} gave {len(prob)} probabilities for "
                               f"{len(split.test_texts)} texts of {split.name}")
        y_true = [int(v == positive) for v in split.test_labels]
        y_pred = [int(p >= 0.5) for p in prob]
        result = {
            "train_wall_s": train.wall,
            "train_peak_rss_mb": train.peak_rss_mb,
            "train_inprocess_s": stats["seconds"],
            "vocabulary": stats.get("vocabulary"),
            "model_file_mb": model.stat().st_size / 2**20,
            "predict_inprocess_s": bulk_stats["seconds"],
            **steps,
            **scores(y_true, y_pred, prob),
        }
        for key in ("iterations", "threads", "dim", "bucket"):
            if key in stats:
                result[key] = stats[key]
        result["failed_attempts"] = train.failures
        result["train_parts_wall_s"] = train.parts_wall_s
        if tool == "fasttext":
            model.unlink()  # up to ~800 MB with wordNgrams=2 (2M hash buckets x 100 dims)
        return result


def summarize(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """Medians over repeats, plus every repeat's raw value for the timing keys."""
    out: dict[str, Any] = {"repeats": len(runs)}
    timing = ("train_wall_s", "startup_wall_s", "predict_wall_s", "bulk_wall_s")
    memory = ("train_peak_rss_mb", "startup_peak_rss_mb", "predict_peak_rss_mb",
              "bulk_peak_rss_mb")
    for key in timing + memory + ("accuracy", "f1", "roc_auc"):
        values = [r[key] for r in runs]
        out[key] = median(values)
        out[f"{key}_all"] = values
    for key in ("epochs_run", "best_epoch", "vocabulary", "train_rows_used", "iterations",
                "threads", "dim", "bucket", "model_file_mb", "bulk_rows"):
        if key in runs[0]:
            out[key] = runs[0][key]
    out["failed_attempts"] = [f for r in runs for f in r.get("failed_attempts", [])]
    if "predict_inprocess_s" in runs[0]:
        # The peers' own clock around predict_proba / predict on the bulk lines: no start-up.
        seconds = median(r["predict_inprocess_s"]["predict"] for r in runs)
        out["predict_inprocess_s"] = seconds
        out["predict_throughput_inprocess"] = runs[0]["bulk_rows"] / seconds if seconds else None
    if "train_parts_wall_s" in runs[0]:
        parts = [r["train_parts_wall_s"] for r in runs]
        out["train_parts_wall_s"] = {k: median(p[k] for p in parts) for k in parts[0]}
    inproc = [r["train_inprocess_s"] for r in runs]
    out["train_inprocess_s"] = {k: median(r.get(k) for r in inproc) for k in inproc[0]}
    out["train_inprocess_all"] = inproc
    startup = out["startup_wall_s"]
    net = out["predict_wall_s"] - startup
    out["predict_net_s"] = net
    out["predict_throughput_test"] = rows / net if net > 0 else None
    bulk_net = out["bulk_wall_s"] - startup
    out["predict_net_bulk_s"] = bulk_net
    out["predict_throughput"] = out["bulk_rows"] / bulk_net if bulk_net > 0 else None
    out["test_rows"] = rows
    return out


def ratios(ours: dict[str, Any], peer: dict[str, Any]) -> dict[str, Any]:
    def div(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def diff(key: str) -> float | None:
        a, b = ours.get(key), peer.get(key)
        return a - b if a is not None and b is not None else None

    return {
        "accuracy_diff": diff("accuracy"),
        "f1_diff": diff("f1"),
        "roc_auc_diff": diff("roc_auc"),
        "train_time_ratio": div(ours["train_wall_s"], peer["train_wall_s"]),
        "predict_wall_ratio": div(ours["predict_wall_s"], peer["predict_wall_s"]),
        "predict_net_time_ratio": div(ours["predict_net_bulk_s"], peer["predict_net_bulk_s"]),
        "throughput_ratio": div(ours["predict_throughput"], peer["predict_throughput"]),
        "startup_ratio": div(ours["startup_wall_s"], peer["startup_wall_s"]),
        "train_memory_ratio": div(ours["train_peak_rss_mb"], peer["train_peak_rss_mb"]),
        "predict_memory_ratio": div(ours["predict_peak_rss_mb"], peer["predict_peak_rss_mb"]),
    }


# ------------------------------------------------------------------------------ machine, probes


def machine_info() -> dict[str, Any]:
    def read(path: str) -> str:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    cpuinfo = read("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next((int(line.split()[1]) for line in read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal:")), None)
    versions = {}
    for dist in ("sentiment-cli", "torch", "scikit-learn", "numpy", "scipy", "pandas",
                 "fasttext", "fasttext-wheel"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    git = {}
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        git["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                                       capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain"],
                                 cwd=ROOT, check=True, capture_output=True, text=True).stdout
        git["dirty_files"] = [line[3:] for line in changed.splitlines()]
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": None if mem_kb is None else round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git": git,
        "load_average_start": os.getloadavg(),
        "sentiment_cli_source_digest_start": source_digest(),
    }


def source_digest() -> str | None:
    """sha256 over the installed package's sources, to tell whether they changed mid-run."""
    import hashlib

    spec = importlib.util.find_spec("sentiment_cli")
    if spec is None or spec.origin is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(Path(spec.origin).parent.rglob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def startup_probe(repeats: int, with_fasttext: bool) -> dict[str, Any]:
    """Fresh-interpreter wall times of the imports each system pays, minus a bare interpreter."""
    probes = {
        "python (bare interpreter)": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "import pandas": [sys.executable, "-c", "import pandas"],
        "import sklearn (CountVectorizer, LogisticRegression)": [
            sys.executable, "-c", "from sklearn.feature_extraction.text import CountVectorizer;"
            "from sklearn.linear_model import LogisticRegression"],
        "bce-train --help (CLI without heavy imports)": [str(BIN / "bce-train"), "--help"],
    }
    if with_fasttext:
        probes["import fasttext"] = [sys.executable, "-c", "import fasttext"]
    out: dict[str, Any] = {}
    for name, cmd in probes.items():
        runs = [checked(run_measured(cmd), name) for _ in range(max(3, repeats))]
        out[name] = {"wall_s": median(r.wall for r in runs),
                     "peak_rss_mb": median(r.peak_rss_mb for r in runs)}
    bare = out["python (bare interpreter)"]["wall_s"]
    for row in out.values():
        row["over_bare_s"] = row["wall_s"] - bare
    return out


# ---------------------------------------------------------------------------------------- scale


def scale_benchmark(sst2_train: Path, work: Path, factors: Sequence[int],
                    peer_factors: Sequence[int], peers: Sequence[str],
                    log: Callable[[str], None],
                    ours_modes: Sequence[str] = ("",)) -> dict[str, Any]:
    """SST-2 train repeated k times: ours (1 epoch, once per extra option string in
    ``ours_modes``) at each k, the peers at ``peer_factors``."""
    base = pd.read_csv(sst2_train, dtype=str, keep_default_na=False)
    folder = work / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    vectorizer = ours_vectorizer_defaults()
    for factor in sorted(set(factors) | set(peer_factors)):
        data = folder / f"sst2_train_x{factor}.csv"
        pd.concat([base] * factor, ignore_index=True).to_csv(data, index=False)
        size_mb = data.stat().st_size / 2**20
        n = len(base) * factor
        for how in ours_modes if "ours" in peers and factor in factors else ():
            log(f"scale x{factor}: ours (1 epoch{', ' + how if how else ''})")
            result = checked(run_measured(
                [BIN / "bce-train", data, "-o", folder / "ours_model", "--force", "--quiet",
                 "--seed", "0", "--epochs", "1", "--json", *how.split()],
                stdout=folder / "ours.json"), f"bce-train x{factor}")
            summary = json.loads((folder / "ours.json").read_text(encoding="utf-8"))
            config = json.loads((folder / "ours_model" / "config.json").read_text(encoding="utf-8"))
            vectorizer = config["vectorizer"]
            rows.append({"system": "ours", "factor": factor, "rows": n, "csv_mb": size_mb,
                         "wall_s": result.wall, "peak_rss_mb": result.peak_rss_mb,
                         "inprocess_s": summary["seconds"],
                         "options": " ".join(["--epochs 1", how]).strip()})
        if factor not in peer_factors:
            data.unlink()
            continue
        peer_runs = []
        if "sklearn" in peers:
            peer_runs.append(("sklearn_cv_ours", "sklearn", {"vectorizer": vectorizer,
                                                              "max_iter": 100},
                              "our CountVectorizer settings, liblinear max_iter=100"))
        if "fasttext" in peers:
            peer_runs.append(("fasttext_default", "fasttext", {"epoch": 1}, "defaults, epoch=1"))
        for key, tool, params, options in peer_runs:
            log(f"scale x{factor}: {key}")
            model = folder / f"{key}.model"
            row = {"system": key, "factor": factor, "rows": n, "csv_mb": size_mb,
                   "options": options}
            try:
                result = train_peer(tool, data, "sentence", "label", "1", params, model, folder,
                                    f"{key} x{factor}")
            except RuntimeError as err:
                # Keep the rest of the scale table; say why this cell is empty.
                row.update(wall_s=None, peak_rss_mb=None, inprocess_s={},
                           error=str(err).strip().splitlines()[-1])
                rows.append(row)
                continue
            model.unlink()
            row.update(wall_s=result.wall, peak_rss_mb=result.peak_rss_mb,
                       inprocess_s=result.stats["seconds"], failed_attempts=result.failures,
                       parts_wall_s=result.parts_wall_s)
            rows.append(row)
        data.unlink()
    shutil.rmtree(folder / "ours_model", ignore_errors=True)
    return {"source": str(sst2_train), "base_rows": len(base), "repeats": 1, "runs": rows}


# ----------------------------------------------------------------------------------- reporting


def scale_table(scale: dict[str, Any]) -> list[str]:
    """The scale runs as a markdown section."""
    lines = [
        f"## Scale: SST-2 train repeated (base {scale['base_rows']:,} rows, one run each)",
        "",
        "| system | options | x | rows | CSV MiB | wall s | peak RSS MiB | in-process seconds |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in scale["runs"]:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in row["inprocess_s"].items())
        if row.get("failed_attempts"):
            parts += f"; {len(row['failed_attempts'])} failed attempt(s) before (NaN)"
        if row.get("error"):
            parts = f"failed: {row['error']}"
        wall = "n/a" if row["wall_s"] is None else f"{row['wall_s']:.1f}"
        rss = "n/a" if row["peak_rss_mb"] is None else f"{row['peak_rss_mb']:.0f}"
        lines.append(
            f"| {row['system']} | {row['options']} | {row['factor']} | {row['rows']:,} | "
            f"{row['csv_mb']:.0f} | {wall} | {rss} | {parts} |"
        )
    lines.append("")
    return lines


def fmt(value: Any, digits: int = 3, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):.1f}-{max(values):.1f})"


def render_markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    lines = [
        "# Benchmark: ours vs scikit-learn vs fastText",
        "",
        f"Command: `{cfg['command']}`  ",
        f"Started {cfg['started']}, took {cfg['duration_s']:.0f} s; {cfg['repeats']} repeat(s), "
        "medians shown (min-max over repeats in brackets for train time).",
        "",
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB RAM, "
        f"Python {m['python']}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in m.get('load_average_end', []))}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".  ",
        f"Git: {m['git'].get('commit', '?')[:12]}"
        + (f" with uncommitted changes in {', '.join(m['git']['dirty_files'])}"
           if m["git"].get("dirty_files") else "") + ".",
        "",
        *([f"**Warning**: the sentiment_cli sources changed during the run (digest "
           f"{m['sentiment_cli_source_digest_start']} -> {m['sentiment_cli_source_digest_end']});"
           " figures may mix two versions of ours.", ""]
          if m["sentiment_cli_source_digest_start"] != m["sentiment_cli_source_digest_end"]
          else [f"sentiment_cli source digest {m['sentiment_cli_source_digest_start']} "
                "(unchanged during the run).", ""]),
        f"fastText: {results['fasttext']}",
        "",
        "Columns: accuracy, F1 (positive class) and ROC-AUC in % on the held-out split; train = "
        "wall time of the whole train process (start-up, reading the CSV, fitting, saving; for "
        "fastText two processes: CSV -> __label__ file, then training from it); "
        "start-up = wall time of the predict command on empty input (interpreter, imports, "
        "loading the model); pred/s = rows / (predict wall - start-up) on the test texts repeated "
        f"to {cfg['throughput_rows']:,} lines; pred/s in-process = the same rows over the "
        "peer's own clock around predict_proba/predict (not available for ours); predict = raw "
        "wall time on the test texts; RSS = peak resident memory of that process (MiB), "
        f"measured with {cfg['rss_method']}.",
        "",
    ]
    for name, ds in results["datasets"].items():
        lines += [
            f"## {name}",
            "",
            f"train `{ds['train']}` ({ds['train_rows']:,} rows) -> test `{ds['test']}` "
            f"({ds['test_rows']:,} rows, positive `{ds['positive_label']}` "
            f"{100 * ds['test_positive_rate']:.1f}%)." + (" " + " ".join(ds["notes"])
                                                          if ds["notes"] else ""),
            "",
            "| system | acc % | F1 % | AUC % | train s | train RSS MiB | start-up s | "
            "predict s | pred/s | pred/s in-process | predict RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in ds["systems"].values():
            lines.append(
                f"| {s['title']} | {fmt(s['accuracy'], pct=True)} | {fmt(s['f1'], pct=True)} | "
                f"{fmt(s['roc_auc'], pct=True)} | {s['train_wall_s']:.2f}"
                f"{spread(s['train_wall_s_all'])} | {s['train_peak_rss_mb']:.0f} | "
                f"{s['startup_wall_s']:.2f} | {s['predict_wall_s']:.2f} | "
                f"{fmt(s['predict_throughput'])} | {fmt(s.get('predict_throughput_inprocess'))} | "
                f"{s['predict_peak_rss_mb']:.0f} |"
            )
        for s in ds["systems"].values():
            if s.get("failed_attempts"):
                lines += ["", f"Note: {s['title']}: {len(s['failed_attempts'])} train attempt(s) "
                          "failed with fastText's \"Encountered NaN\" and were rerun; only "
                          "the successful runs are timed."]
        if ds["ratios"]:
            lines += [
                "",
                "Ours relative to each peer (diff = ours - peer in points; ratios ours/peer, "
                "below 1 means ours is faster or smaller):",
                "",
                "| peer | Δacc | ΔF1 | ΔAUC | train time | start-up | predict wall | "
                "pred/s ratio | train RSS | predict RSS |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for key, r in ds["ratios"].items():
                def pts(v: float | None) -> str:
                    return "n/a" if v is None else f"{100 * v:+.1f}"

                def x(v: float | None) -> str:
                    return "n/a" if v is None else f"{v:.2f}x"

                lines.append(
                    f"| {ds['systems'][key]['title']} | {pts(r['accuracy_diff'])} | "
                    f"{pts(r['f1_diff'])} | {pts(r['roc_auc_diff'])} | "
                    f"{x(r['train_time_ratio'])} | {x(r['startup_ratio'])} | "
                    f"{x(r['predict_wall_ratio'])} | {x(r['throughput_ratio'])} | "
                    f"{x(r['train_memory_ratio'])} | {x(r['predict_memory_ratio'])} |"
                )
        lines.append("")
    profile = results.get("profile")
    if profile:
        lines += [
            f"## Where ours spends its training time ({profile['dataset']}, medians)",
            "",
            "From `bce-train --json` \"seconds\" (in-process) and the process wall time. "
            "read: the CSV (with importing pandas), while a helper process forked when the "
            "command started imports scikit-learn; vectorize: tokenising every row in that helper "
            "(a second one too above 250,000 rows) while torch is imported in the training "
            "process, then the grouped validation split and the vocabulary; train: the epochs; "
            "finish: final "
            "metrics and writing the folder, of which report wait is the time spent waiting "
            "for the report's helper process to finish the plots; start-up = wall - total "
            "(interpreter, CLI imports, exit).",
            "",
            "| part | seconds | share of wall |",
            "|---|---:|---:|",
        ]
        for part in ("startup", "read", "vectorize", "train", "finish", "report_wait", "wall"):
            value = profile[part]
            lines.append(f"| {part} | {value:.2f} | {100 * value / profile['wall']:.0f}% |")
        lines.append("")
    probe = results.get("startup_probe")
    if probe:
        lines += [
            "## Start-up costs (fresh interpreter, medians)",
            "",
            "| what | wall s | over bare python s | peak RSS MiB |",
            "|---|---:|---:|---:|",
        ]
        for name, row in probe.items():
            lines.append(f"| {name} | {row['wall_s']:.2f} | {row['over_bare_s']:.2f} | "
                         f"{row['peak_rss_mb']:.0f} |")
        lines.append("")
    scale = results.get("scale")
    if scale:
        lines += scale_table(scale)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- main


def fasttext_status() -> tuple[bool, str]:
    if importlib.util.find_spec("fasttext") is None:
        return False, f"not installed in {sys.prefix} (pip install fasttext); fastText skipped"
    version = None
    for dist in ("fasttext", "fasttext-wheel"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            version = f"{dist} {importlib.metadata.version(dist)}"
            break
    return True, f"installed ({version})"


def select_systems(peers: Sequence[str]) -> list[System]:
    unknown = set(peers) - set(PEERS) - {s.key for s in SYSTEMS}
    if unknown:
        raise ValueError(f"unknown peers {sorted(unknown)}; choose from {PEERS} or "
                         f"{[s.key for s in SYSTEMS]}")
    return [s for s in SYSTEMS if s.peer in peers or s.key in peers]


def run_benchmarks(
    datasets: dict[str, tuple[Path, Path]],
    out: Path,
    repeats: int = 3,
    peers: Sequence[str] = PEERS,
    work: Path | None = None,
    throughput_rows: int = 40_000,
    probe: bool = True,
    scale_source: Path | None = None,
    scale_factors: Sequence[int] = (1, 2, 5, 10),
    scale_peer_factors: Sequence[int] = (1, 10),
    profile_dataset: str = "sst2",
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Benchmark the selected systems on ``{name: (train csv, test csv)}``; write results.*."""
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    have_fasttext, ft_note = fasttext_status()
    peers = list(peers)
    if not have_fasttext and "fasttext" in peers:
        peers.remove("fasttext")
    systems = select_systems(peers)
    results: dict[str, Any] = {
        "config": {
            "command": command or "run_benchmarks(...)",
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "repeats": repeats,
            "peers": peers,
            "systems": {s.key: s.title for s in systems},
            "throughput_rows": throughput_rows,
            "rss_method": rss_method(),
        },
        "machine": machine_info(),
        "fasttext": ft_note,
        "datasets": {},
    }
    own_work = work is None
    work = Path(tempfile.mkdtemp(prefix="bench_")) if work is None else Path(work)
    try:
        if probe:
            log("start-up probe")
            results["startup_probe"] = startup_probe(repeats, have_fasttext)
        runner = Runner(work, throughput_rows, log)
        splits = {name: load_split(name, Path(tr), Path(te)) for name, (tr, te) in
                  datasets.items()}
        for name, split in splits.items():
            runs: dict[str, list[dict[str, Any]]] = {s.key: [] for s in systems}
            context: dict[str, Any] = {}
            for repeat in range(repeats):
                # Ours first (the peers read its vectorizer settings), then the peers rotated
                # so that no peer always runs at the same point of a noisy stretch.
                peer_systems = [s for s in systems if s.key != "ours"]
                shift = repeat % len(peer_systems) if peer_systems else 0
                order = [s for s in systems if s.key == "ours"]
                order += peer_systems[shift:] + peer_systems[:shift]
                for system in order:
                    t0 = time.perf_counter()
                    runs[system.key].append(runner.run(system, split, context))
                    log(f"{name} repeat {repeat + 1}/{repeats} {system.key}: "
                        f"acc {runs[system.key][-1]['accuracy']:.4f}, "
                        f"{time.perf_counter() - t0:.1f} s")
            positive = context.get("positive_label") or default_positive(split.test_labels)
            summary = {key: {"title": next(s.title for s in systems if s.key == key),
                             **summarize(value, len(split.test_texts))}
                       for key, value in runs.items()}
            ds = {
                "train": str(split.train),
                "test": str(split.test),
                "train_rows": split.train_rows,
                "test_rows": len(split.test_texts),
                "positive_label": positive,
                "test_positive_rate": float(np.mean([v == positive for v in split.test_labels])),
                "notes": split.notes,
                "systems": summary,
                "ratios": {key: ratios(summary["ours"], value) for key, value in summary.items()
                           if key != "ours" and "ours" in summary},
            }
            results["datasets"][name] = ds
        prof_name = profile_dataset if profile_dataset in results["datasets"] else None
        if prof_name is None and results["datasets"]:
            prof_name = next(iter(results["datasets"]))
        if prof_name and any(s.key == "ours" for s in systems):
            results["profile"] = _profile(prof_name, _ours_runs(results, prof_name))
        if scale_source is not None:
            write_results(results, out, started)  # kept if the scale part fails
            results["scale"] = scale_benchmark(scale_source, work, scale_factors,
                                               scale_peer_factors, peers, log)
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    write_results(results, out, started)
    return results


def write_results(results: dict[str, Any], out: Path, started: float) -> None:
    results["machine"]["load_average_end"] = os.getloadavg()
    results["machine"]["sentiment_cli_source_digest_end"] = source_digest()
    results["config"]["duration_s"] = time.perf_counter() - started
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(render_markdown(results), encoding="utf-8")


def _ours_runs(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    ours = results["datasets"][name]["systems"]["ours"]
    return [{"wall": w, "seconds": s} for w, s in
            zip(ours["train_wall_s_all"], ours["train_inprocess_all"], strict=True)]


def _profile(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    parts: dict[str, list[float]] = {k: [] for k in ("read", "vectorize", "train", "finish",
                                                      "report_wait", "total", "startup",
                                                      "wall")}
    for run in runs:
        s = run["seconds"]
        parts["read"].append(s["read"])
        parts["vectorize"].append(s["vectorize"])
        parts["train"].append(s["train"])
        parts["total"].append(s["total"])
        parts["finish"].append(s["total"] - s["read"] - s["vectorize"] - s["train"])
        parts["report_wait"].append(s.get("report_wait", 0.0))
        parts["wall"].append(run["wall"])
        parts["startup"].append(run["wall"] - s["total"])
    profile: dict[str, Any] = {"dataset": name, "repeats": len(runs)}
    profile.update({k: median(v) for k, v in parts.items()})
    profile["all"] = parts
    return profile


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--work", type=Path, default=HERE / "work" / "bench",
                        help="scratch folder for splits and models (default benchmarks/work)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", choices=DATASET_ORDER)
    parser.add_argument("--peers", nargs="+", default=list(PEERS))
    parser.add_argument("--throughput-rows", type=int, default=40_000)
    parser.add_argument("--no-probe", action="store_true",
                        help="skip the fresh-interpreter import timings")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: uci_sentences only, 1 repeat, no start-up probe")
    parser.add_argument("--scale", action="store_true",
                        help="also SST-2 train x1, x2, x5, x10 (ours 1 epoch; peers at x1, x10)")
    args = parser.parse_args(argv)
    names = list(args.datasets or DATASET_ORDER)
    repeats = args.repeats
    if args.quick:
        names, repeats = ["uci_sentences"], 1
    args.work.mkdir(parents=True, exist_ok=True)
    available = make_splits(args.shared, args.work / "splits")
    missing = [n for n in names if n not in available]
    if missing:
        raise SystemExit(f"datasets not found under {args.shared}: {missing}")
    scale_source = args.shared / "sst2_train.csv" if args.scale else None
    if scale_source is not None and not scale_source.exists():
        raise SystemExit(f"--scale needs {scale_source}")
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results = run_benchmarks(
        {n: available[n] for n in names}, args.out, repeats=repeats, peers=args.peers,
        work=args.work, throughput_rows=args.throughput_rows,
        probe=not (args.quick or args.no_probe), scale_source=scale_source,
        command=command.strip(),
    )
    print(f"wrote {args.out / 'results.md'} and results.json "
          f"in {results['config']['duration_s']:.0f} s")


if __name__ == "__main__":
    main()
