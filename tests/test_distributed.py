"""Training in several processes under torchrun (gloo on CPU): the same model as one process,
rank 0 alone writes and speaks, and a rank's error stops the whole job."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sentiment_cli.distributed import SOLO, World, from_environment, rank_device
from sentiment_cli.errors import DataError
from sentiment_cli.streaming import ShardedRows
from sentiment_cli.training.loop import _own_rows_blocks, _plan_epoch
from tests.conftest import SAMPLE, SHARED_DATA, command

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _without_torchrun_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
                 "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    return env


def _torchrun(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, *args], cwd=cwd, env=_without_torchrun_env(),
                          capture_output=True, text=True, timeout=timeout)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("bce-train: error:")]


def test_the_environment_names_the_process() -> None:
    assert from_environment({}) == SOLO
    world = from_environment({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                              "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"})
    assert (world.rank, world.size, world.local_rank, world.main) == (1, 2, 1, False)
    for env in ({"WORLD_SIZE": "two"}, {"RANK": "2", "WORLD_SIZE": "2"},
                {"RANK": "0", "WORLD_SIZE": "2"}):
        with pytest.raises(DataError):
            from_environment(env)


def test_each_rank_trains_on_its_device() -> None:
    two = World(rank=1, size=2, local_rank=1)
    assert rank_device(SOLO, "cuda") == "cuda"
    assert rank_device(two, "cuda") == "cuda:1"
    assert rank_device(two, "cuda:0") == "cuda:0"  # an explicit device is kept
    assert rank_device(two, "cpu") == "cpu"


def test_the_ranks_steps_together_are_one_process_s_batches() -> None:
    order = np.random.default_rng(0).permutation(1003)
    solo = _plan_epoch(order, 100, SOLO)
    ranks = [_plan_epoch(order, 100, World(rank=r, size=3)) for r in range(3)]
    assert len({len(plan.bounds) for plan in ranks}) == 1  # every rank takes as many steps
    for step, batch in enumerate(solo.step_rows):
        parts = [plan.rows[slice(*plan.bounds[step])] for plan in ranks]
        assert all(len(part) for part in parts)
        real = [part for plan, part in zip(ranks, parts, strict=True) if not plan.filler[step]]
        assert sorted(np.concatenate(real).tolist()) == sorted(batch.tolist())


def test_a_rank_without_a_row_in_a_batch_takes_a_filler_that_weighs_nothing() -> None:
    plans = [_plan_epoch(np.arange(9), 4, World(rank=r, size=3)) for r in range(3)]
    assert [len(p.bounds) for p in plans] == [3, 3, 3]
    assert [p.rows[slice(*p.bounds[-1])].tolist() for p in plans] == [[8], [8], [8]]
    assert [p.filler for p in plans] == [[False] * 3, [False, False, True],
                                         [False, False, True]]


@dataclass(frozen=True)
class _Told(World):
    """A rank whose peers' step sizes are given (no process group)."""

    others: tuple[tuple[int, ...], ...] = ()

    def everyone(self, value: Any) -> list[Any]:
        told = [list(o) for o in self.others]
        return [*told[: self.rank], value, *told[self.rank :]]


def _own_shards(tmp_path: Path, sizes: list[int]) -> ShardedRows:
    paths = []
    for i, n in enumerate(sizes):
        paths.append(tmp_path / f"shard-{i:05d}.npz")
        sp.save_npz(paths[-1], sp.csr_matrix(np.arange(n, dtype=np.float32)[:, None] + 1))
    return ShardedRows(paths, sizes, 1, partitioned=True)


def test_a_rank_with_its_own_rows_steps_with_the_others_and_fills_in_at_the_end(
        tmp_path: Path) -> None:
    shards = _own_shards(tmp_path, [7, 5, 6, 4, 3, 9])  # two blocks of 4 shards at most
    order = torch.randperm(6, generator=torch.Generator().manual_seed(0)).tolist()
    longer = tuple([5] * 10)  # the other rank: 10 steps of 5 rows (batch 10 over 2 ranks)
    blocks = list(_own_rows_blocks(shards, order, 10, torch.Generator().manual_seed(1),
                                   _Told(rank=1, size=2, others=(longer,))))
    plans = [plan for _, _, plan in blocks]
    steps = [b for plan in plans for b in plan.bounds]
    fillers = [f for plan in plans for f in plan.filler]
    assert len(steps) == 10 and fillers[-1] and not fillers[0]
    real = [(plan, b) for plan in plans for b, f in zip(plan.bounds, plan.filler, strict=True)
            if not f]
    assert sum(e - s for _, (s, e) in real) == 34  # each of this rank's rows once
    assert all(e - s == 1 for plan in plans
               for (s, e), f in zip(plan.bounds, plan.filler, strict=True) if f)
    mine = [e - s for _, (s, e) in real]
    totals = [t for plan in plans for t in plan.totals]
    assert totals == [5 + (mine[i] if i < len(mine) else 0) for i in range(10)]
    for (_, positions, plan) in blocks:  # a block's positions are its shards' rows
        assert len(plan.rows) >= len(positions)
    alone = list(_own_rows_blocks(shards, order, 10, torch.Generator().manual_seed(1),
                                  _Told(rank=0, size=2, others=((5,),))))
    assert not any(f for _, _, plan in alone for f in plan.filler)  # the longest: no filler
    assert sum(len(plan.bounds) for _, _, plan in alone) == len(mine)


def test_two_processes_train_the_model_one_process_trains(tmp_path: Path) -> None:
    """The CI check of torchrun + DDP on gloo: each rank takes half of every batch, and the
    gradients averaged by DDP are the whole batch's, so the model is the same."""
    solo = subprocess.run([command("bce-train"), str(SAMPLE), "-o", "solo", "--seed", "0",
                           "--json", "--no-report"], cwd=tmp_path, env=_without_torchrun_env(),
                          capture_output=True, text=True, timeout=240)
    assert solo.returncode == 0, solo.stderr
    two = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                    str(SAMPLE), "-o", "two", "--seed", "0", "--json", "--no-report",
                    cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    lines = two.stdout.splitlines()
    assert len(lines) == 1  # rank 0 alone prints the summary
    one, both = json.loads(solo.stdout), json.loads(lines[0])
    assert (both["world_size"], one["world_size"]) == (2, 1)
    assert both["best_epoch"] == one["best_epoch"]
    assert both["validation"]["loss"] == pytest.approx(one["validation"]["loss"], abs=1e-5)
    assert both["validation"]["accuracy"] == one["validation"]["accuracy"]
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert (config["training"]["world_size"], config["training"]["backend"]) == (2, "gloo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solo", "two"]  # nothing else left
    predicted = subprocess.run([command("bce-predict"), "two", "a wonderful phone"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["label"] == "positive"


def test_two_processes_stream_their_own_rows_into_the_model_of_one_vocabulary(
        tmp_path: Path) -> None:
    """--stream under torchrun: each rank keeps every other row of the file in shards of its
    own, the term counts are merged into the vocabulary one process counts, and rank 0's
    record counts every rank's rows; no shard folder is left."""
    solo = subprocess.run([command("bce-train"), str(SAMPLE), "-o", "solo", "--seed", "0",
                           "--stream", "--json", "--no-report"], cwd=tmp_path,
                          env=_without_torchrun_env(), capture_output=True, text=True,
                          timeout=240)
    assert solo.returncode == 0, solo.stderr
    two = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                    str(SAMPLE), "-o", "two", "--seed", "0", "--stream", "--json",
                    "--no-report", cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    assert "each of 2 ranks keeping 1 row in 2" in two.stderr
    assert (tmp_path / "solo" / "vocabulary.json").read_bytes() == \
        (tmp_path / "two" / "vocabulary.json").read_bytes()
    one, both = (json.loads((tmp_path / m / "config.json").read_text()) for m in ("solo", "two"))
    assert both["data"] == one["data"]  # rows, the split and class counts over both ranks
    assert (both["training"]["world_size"], both["training"]["backend"]) == (2, "gloo")
    summary = json.loads(two.stdout.splitlines()[0])
    assert summary["validation"]["rows"] == json.loads(solo.stdout)["validation"]["rows"]
    assert summary["validation"]["accuracy"] > 0.6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solo", "two"]  # no shard folder


def test_a_bad_row_in_a_streamed_job_stops_every_rank_with_one_line(tmp_path: Path) -> None:
    with SAMPLE.open(encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    rows[8][rows[0].index("review")] = " "  # data row 8: rank 1's share (every other row)
    data = tmp_path / "bad.csv"
    with data.open("w", encoding="utf-8", newline="") as file:
        csv.writer(file).writerows(rows)
    result = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                       str(data), "-o", "mine", "--stream", cwd=tmp_path)
    assert result.returncode != 0
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "empty text" in errors[0] and "rows 8" in errors[0], \
        result.stderr
    assert "sentiment_cli/" not in result.stderr  # no traceback of ours (torchrun prints its own)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_an_error_stops_every_rank_with_one_line_from_rank_0(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                       str(SAMPLE), "-o", "mine", "--force", cwd=tmp_path)
    assert result.returncode != 0
    errors = _errors(result.stderr)
    assert len(errors) == 1 and "holds files bce-train did not write" in errors[0], result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _nodes(tmp_path: Path, data: list[Path], port: int) -> list[subprocess.CompletedProcess]:
    """Two torchrun invocations as two nodes of one job on this machine."""
    started = [subprocess.Popen(
        [*TORCHRUN, "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
         "--master-addr", "127.0.0.1", "--master-port", str(port), "--rdzv-conf", "timeout=120",
         "-m", "sentiment_cli", "train", str(data[rank]), "-o", "model", "--seed", "0",
         "--json", "--no-report"],
        cwd=tmp_path / f"node{rank}", env=_without_torchrun_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    done = []
    for process in started:
        out, err = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


@pytest.mark.slow
def test_two_nodes_train_one_model_and_a_different_copy_stops_them(tmp_path: Path) -> None:
    for rank in (0, 1):
        (tmp_path / f"node{rank}").mkdir()
    first, second = _nodes(tmp_path, [SAMPLE, SAMPLE], _free_port())
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert json.loads(first.stdout)["world_size"] == 2 and second.stdout == ""
    assert (tmp_path / "node0" / "model" / "config.json").is_file()
    assert not (tmp_path / "node1" / "model").exists()  # only rank 0 writes

    shutil.rmtree(tmp_path / "node0" / "model")
    other = tmp_path / "node1" / "reviews.csv"
    other.write_bytes(SAMPLE.read_bytes()[:20000].rsplit(b"\n", 1)[0] + b"\n")
    first, second = _nodes(tmp_path, [SAMPLE, other], _free_port())
    assert first.returncode != 0 and second.returncode != 0
    assert _errors(first.stderr) == ["bce-train: error: rank 1: this node's copy of DATA "
                                     "differs from rank 0's (SHA-256); every node must read "
                                     "the same file"]
    assert _errors(second.stderr) == []


SST2 = SHARED_DATA / "sst2_train.csv"
needs_sst2 = pytest.mark.skipif(not SST2.is_file(), reason="needs ../shared/data/sst2_train.csv")


@pytest.fixture
def jobs() -> Iterator[list[subprocess.Popen]]:
    """The torchrun jobs a test starts: whatever is left of them is killed at its end."""
    started: list[subprocess.Popen] = []
    yield started
    for job in started:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.communicate()


def _start_job(tmp_path: Path, jobs: list[subprocess.Popen], *options: str,
               train: tuple[str, ...] = ()) -> subprocess.Popen:
    """torchrun (``options``) with 2 CPU ranks training an MLP on SST-2 (epochs of a few
    seconds; ``train``: more bce-train options)."""
    jobs.append(subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *options, "-m", "sentiment_cli",
         "train", str(SST2), "-o", "model", "--seed", "0", "--hidden", "32", "--no-report",
         *train],
        cwd=tmp_path, env=_without_torchrun_env(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True))
    return jobs[-1]


def _wait_for_epoch(tmp_path: Path, job: subprocess.Popen, seconds: float = 180) -> None:
    state = tmp_path / "model.checkpoint" / "state.json"
    deadline = time.monotonic() + seconds
    while not state.is_file():
        assert job.poll() is None and time.monotonic() < deadline, job.communicate()
        time.sleep(0.2)


def _rank_pids(agent: int, rank: int) -> list[int]:
    """The processes torchrun (``agent``) started as ``rank`` (their environment says so)."""
    found = []
    for task in Path(f"/proc/{agent}/task").glob("*"):
        for child in (task / "children").read_text().split():
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in env:
                found.append(int(child))
    return found


@pytest.mark.slow
@needs_sst2
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("train", [(), ("--stream",)], ids=["in-memory", "stream"])
def test_a_killed_rank_is_restarted_and_the_job_resumes(tmp_path: Path,
                                                       jobs: list[subprocess.Popen],
                                                       train: tuple[str, ...]) -> None:
    """Also with --stream: the killed rank's shard folder is removed by the next attempt,
    which streams again and resumes."""
    # 2 restarts, not 1: in one of some 25 runs a rank once ended with SIGSEGV on its own
    # (not reproduced since), and this test is about the kill, not about that crash
    job = _start_job(tmp_path, jobs, "--max-restarts", "2", train=train)
    _wait_for_epoch(tmp_path, job)
    victims = _rank_pids(job.pid, 1)
    assert len(victims) == 1
    os.kill(victims[0], signal.SIGKILL)
    _out, err = job.communicate(timeout=600)
    assert job.returncode == 0, err
    # rank 0 stops when its all-reduce fails, or when torchrun ends it first (SIGTERM)
    assert any("lost another rank of the job" in line or "interrupted; epoch" in line
               for line in _errors(err)), err
    assert "resuming after epoch" in err
    assert (tmp_path / "model" / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # checkpoint and lock gone


@pytest.mark.slow
@needs_sst2
def test_ctrl_c_stops_every_rank_and_rank_0_says_how_to_resume(
        tmp_path: Path, jobs: list[subprocess.Popen]) -> None:
    job = _start_job(tmp_path, jobs)
    _wait_for_epoch(tmp_path, job)
    os.killpg(job.pid, signal.SIGINT)  # as Ctrl-C at a terminal: every process of the group
    workers = _rank_pids(job.pid, 0) + _rank_pids(job.pid, 1)
    assert len(workers) == 2, list(Path(f"/proc/{job.pid}/task").glob("*/children"))
    _out, err = job.communicate(timeout=120)
    assert job.returncode != 0
    errors = _errors(err)
    assert len(errors) == 1 and "is saved in" in errors[0] and "--resume" in errors[0], err
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert (tmp_path / "model.checkpoint" / "state.json").is_file()
