"""Training in several processes under torchrun (gloo on CPU): the same model as one process,
rank 0 alone writes and speaks, and a rank's error stops the whole job.

A torchrun job of two ranks costs about 7 s of start-up on two cores (three imports of torch),
so the quick suite runs two of them (local SGD, and one training compared with one process's);
the other jobs (streaming, errors, kills, nodes) are ``slow``."""

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
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sentiment_cli.distributed import SOLO, World, from_environment, rank_device
from sentiment_cli.errors import DataError
from sentiment_cli.training.batches import Epoch
from tests.conftest import SAMPLE, SHARED_DATA, run

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


def test_each_rank_keeps_its_own_rows_and_draws_its_own_numbers() -> None:
    ranks = [World(rank=r, size=3) for r in range(3)]
    kept = [np.flatnonzero(world.owns(np.arange(10))).tolist() for world in ranks]
    assert kept == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert SOLO.owns(np.arange(4)).all() and SOLO.seed(5) == 5
    assert len({str(np.random.default_rng(w.seed(5)).random()) for w in ranks}) == 3
    generator = torch.Generator().manual_seed(1)
    SOLO.reseed_epoch(5, 2, generator)  # one process draws on: nothing reseeded
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(1).get_state())
    draws = []
    for world in (*ranks, ranks[1]):
        world.reseed_epoch(5, 2, generator)
        draws.append((torch.rand(1).item(), torch.rand(1, generator=generator).item()))
    assert len(set(draws)) == 3 and draws[1] == draws[3]  # own per rank, the same again


def test_each_rank_steps_through_its_own_rows_of_every_epoch() -> None:
    matrix = sp.csr_matrix(np.ones((1003, 4), dtype=np.float32))
    epochs = [Epoch(matrix, 1003, 50, torch.Generator().manual_seed(7), World(rank=r, size=3))
              for r in range(3)]
    orders = [order for epoch in epochs for _, _, order in epoch.blocks()]
    assert sorted(np.concatenate(orders).tolist()) == list(range(1003))  # each row once
    assert [epoch.steps for epoch in epochs] == [-(-len(o) // 50) for o in orders] == [7, 7, 7]
    solo = Epoch(matrix, 1003, 50, torch.Generator().manual_seed(7), SOLO)
    assert solo.steps == 21 and len(next(solo.blocks())[2]) == 1003


LOCAL_SGD_SCRIPT = """
import torch, torch.distributed as dist
from sentiment_cli.distributed import from_environment, joined
from sentiment_cli.training.averaging import LocalSGD
with joined(from_environment()) as world:
    torch.manual_seed(world.rank)  # different starts: rank 0's is taken
    table = torch.nn.Parameter(torch.rand(4, 2))
    start = table.detach().clone()
    dist.broadcast(start, src=0)
    ranks = LocalSGD(world, [table], period=2)
    assert torch.equal(table.data, start)
    ranks.epoch_start(3 if world.rank == 0 else 2)  # rank 0 takes a step more, alone
    with torch.no_grad():
        table[world.rank] += 1.0  # a row only this rank's rows had
        table[2] += 2.0 * (world.rank + 1)  # a row both had
    ranks.step()
    ranks.step()  # the 2nd step: an exchange
    with torch.no_grad():
        table[3] += 5.0 if world.rank == 0 else 0.0
    if world.rank == 0:
        ranks.step()  # its 3rd step: no exchange (the other rank takes 2)
    ranks.epoch_end()
    want = start.clone()
    want[0] += 1.0; want[1] += 1.0; want[2] += 3.0; want[3] += 5.0
    assert torch.allclose(table.data, want), (table.data, want)
    # 2 exchanges of 2 x 8 floats, of which a ring all-reduce sends 2 (n - 1) / n from a rank
    assert ranks.bytes_per_epoch == 2 * (2 * 8 * 4) * 2 * (2 - 1) / 2
    print("ok", world.rank)
"""


def test_local_sgd_moves_each_parameter_by_the_mean_change_of_the_ranks_that_changed_it(
        tmp_path: Path) -> None:
    """A row one rank's rows had moves by that rank's change, not half of it; a row both had
    by the mean of their changes; a rank's extra step is in the epoch's last exchange."""
    script = tmp_path / "local_sgd.py"
    script.write_text(LOCAL_SGD_SCRIPT)
    result = _torchrun("--standalone", "--nproc-per-node", "2", str(script), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok") == 2  # both ranks (their lines may interleave)


def test_two_processes_train_a_model_as_good_as_one_process_s(tmp_path: Path) -> None:
    """The CI check of torchrun on gloo: each rank trains on its own rows and the ranks
    exchange their changes (local SGD); the model is as accurate as one process's (not the
    same: each rank's optimiser sees its own rows)."""
    solo = run("bce-train", str(SAMPLE), "-o", "solo", "--seed", "0", "--json", "--no-report",
               cwd=tmp_path)
    assert solo.returncode == 0, solo.stderr
    two = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                    str(SAMPLE), "-o", "two", "--seed", "0", "--json", "--no-report",
                    cwd=tmp_path)
    assert two.returncode == 0, two.stderr
    lines = two.stdout.splitlines()
    assert len(lines) == 1  # rank 0 alone prints the summary
    one, both = json.loads(solo.stdout), json.loads(lines[0])
    assert (both["world_size"], one["world_size"]) == (2, 1)
    assert both["val_rows"] == one["val_rows"]  # the same split
    assert both["validation"]["accuracy"] >= one["validation"]["accuracy"] - 0.05
    # an exchange of the changes (and which changed) every 32 steps and at the epoch's end
    params = both["vocabulary"] + 1
    exchanges = -(-both["train_rows"] // 2 // 256) // 32 + 1
    assert both["sent_mb_per_epoch"] == pytest.approx(exchanges * 2 * params * 4 / 1e6,
                                                      abs=1e-3)
    assert "MB per epoch to the others" in two.stderr
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert (config["training"]["world_size"], config["training"]["backend"]) == (2, "gloo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solo", "two"]  # nothing else left
    predicted = run("bce-predict", "two", "a wonderful phone", cwd=tmp_path)
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["label"] == "positive"


@pytest.mark.slow
def test_a_long_run_of_many_small_steps_ends_cleanly(tmp_path: Path) -> None:
    """The long runs that crashed (SIGSEGV, malloc aborts in backward: DDP's sparse-gradient
    all-reduce on gloo) in 5 of 11 runs of 30 SST-2 epochs: here 100 epochs of many 8-row steps
    a rank, an MLP. On the DDP code (abeb1b6) this very command crashed in 3 of 6 runs (two
    SIGSEGV, one "malloc(): unaligned tcache chunk detected", in loss.backward()), within 16 s;
    with local SGD, 10 of 10 ended cleanly, 8 s each."""
    two = _torchrun("--standalone", "--nproc-per-node", "2", "-m", "sentiment_cli", "train",
                    str(SAMPLE), "-o", "two", "--seed", "0", "--json", "--no-report",
                    "--batch-size", "8", "--epochs", "100", "--patience", "100",
                    "--hidden", "16", cwd=tmp_path, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    summary = json.loads(two.stdout)
    assert summary["epochs_run"] == 100 and summary["validation"]["accuracy"] > 0.6


@pytest.mark.slow
def test_two_processes_stream_their_own_rows_into_the_model_of_one_vocabulary(
        tmp_path: Path) -> None:
    """--stream under torchrun: each rank keeps every other row of the file in shards of its
    own, the term counts are merged into the vocabulary one process counts, and rank 0's
    record counts every rank's rows; no shard folder is left."""
    solo = run("bce-train", str(SAMPLE), "-o", "solo", "--seed", "0", "--stream", "--json",
               "--no-report", cwd=tmp_path)
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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("form", ["master-addr", "c10d"])
def test_a_node_that_never_joins_is_given_up_after_the_limit_the_readme_names(
        tmp_path: Path, form: str) -> None:
    """README: `--rdzv-conf timeout=` bounds the wait with --master-addr, `join_timeout=` with
    the c10d rendezvous (where `timeout=` does not)."""
    port = _free_port()
    rendezvous = (["--node-rank", "0", "--master-addr", "127.0.0.1", "--master-port", str(port),
                   "--rdzv-conf", "timeout=5"] if form == "master-addr" else
                  ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
                   "--rdzv-id", "job", "--rdzv-conf", "join_timeout=5"])
    started = time.monotonic()
    result = _torchrun("--nnodes", "2", "--nproc-per-node", "1", *rendezvous, "-m",
                       "sentiment_cli", "train", str(SAMPLE), "-o", "model", cwd=tmp_path,
                       timeout=120)
    assert result.returncode != 0
    assert time.monotonic() - started < 60, "waited past the limit"
    assert "Timed out" in result.stderr or "RendezvousTimeoutError" in result.stderr, \
        result.stderr[-2000:]
    assert not (tmp_path / "model").exists()  # bce-train never started
