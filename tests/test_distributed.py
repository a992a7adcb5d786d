"""Training in several processes under torchrun (gloo on CPU): the same model as one process,
rank 0 alone writes and speaks, and a rank's error stops the whole job."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sentiment_cli.distributed import SOLO, World, from_environment, rank_device
from sentiment_cli.errors import DataError
from sentiment_cli.training.loop import _plan_epoch
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


def _start_job(tmp_path: Path, jobs: list[subprocess.Popen], *options: str) -> subprocess.Popen:
    """torchrun with 2 CPU ranks training an MLP on SST-2 (epochs of a few seconds)."""
    jobs.append(subprocess.Popen(
        [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *options, "-m", "sentiment_cli",
         "train", str(SST2), "-o", "model", "--seed", "0", "--hidden", "32", "--no-report"],
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
def test_a_killed_rank_is_restarted_and_the_job_resumes(tmp_path: Path,
                                                       jobs: list[subprocess.Popen]) -> None:
    job = _start_job(tmp_path, jobs, "--max-restarts", "1")
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
