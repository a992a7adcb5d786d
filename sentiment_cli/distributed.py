"""Training in several processes, on one machine or many, on PyTorch's own engine.

``torchrun`` starts the processes and describes them in the environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); :func:`joined` joins the process group it set up, and
the ranks' parameters meet by local SGD (training/averaging.py). What the training needs
beyond that is here: a :class:`World` that says which process this is, and the few collective
steps of a run:

- every rank reads the data and computes the same split and vocabulary (they are
  deterministic), then trains on its share of each batch; with --stream each rank keeps its
  own share of the rows instead (:mod:`.streaming`), and rank 0 merges the term counts
  (:meth:`World.gather`, :meth:`World.from_main`);
- an error found by any rank before training (a file missing on one node, an option another
  rank refused) is exchanged (:meth:`World.agree`), so that every rank stops and rank 0 prints
  the one line;
- rank 0 alone checks and locks the output, writes checkpoints and the model folder, and reads
  a checkpoint back, which it sends to the others (:meth:`World.from_main`);
- the epoch's metrics are sums over every rank's rows (:meth:`World.sum`).

The backend is gloo, on CPU and on CUDA alike: the first layer's gradient is sparse (the
vocabulary rows a batch touched) and gloo all-reduces sparse tensors; NCCL has no sparse
all-reduce, and a dense V x H gradient would move the whole table every step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sentiment_cli.errors import DataError, SentimentError

if TYPE_CHECKING:
    import numpy as np
    import torch

T = TypeVar("T")

BACKEND = "gloo"
# How long a collective step waits for the other ranks. Every rank does the same work between
# two steps, so a wait this long means a rank is gone (torchrun then ends the others anyway).
STEP_TIMEOUT = timedelta(minutes=10)


class ReportedByMain(SentimentError):
    """An error rank 0 prints for the whole job: this rank exits with its status, silently."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("reported by rank 0")
        self.exit_code = exit_code


class PeerLost(SentimentError):
    """A collective step failed: another rank of the job is gone (it failed or was killed; its
    own message, or torchrun's, says why). Each rank says so itself."""

    every_rank_reports = True


@contextmanager
def peers_watched(world: World) -> Iterator[None]:
    """Turn the backend's error for a rank that went away into :class:`PeerLost`."""
    try:
        yield
    except RuntimeError as err:
        if not world.distributed or not _from_backend(err):
            raise
        detail = _backend_detail(err).split(". ", 1)[0]
        raise PeerLost(f"lost another rank of the job ({detail}); its message above, or "
                       f"torchrun's, says why") from None


def _backend_detail(err: Exception) -> str:
    """A backend error's message without the C++ source location in front of it."""
    return str(err).split("]", 1)[-1].strip(" :")


def _from_backend(err: RuntimeError) -> bool:
    import torch.distributed as dist

    return isinstance(err, dist.DistError) or "gloo" in str(err)


@dataclass(frozen=True)
class World:
    """Which process of the job this is. One process alone: rank 0 of 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # the ranks on this machine
    backend: str | None = None  # set once the process group is joined

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def keeping(self) -> str:
        """How the ranks share the rows, for a note ('' for one process)."""
        return f", each of {self.size} ranks keeping 1 row in {self.size}" if self.size > 1 else ""

    def share(self, rows: np.ndarray) -> np.ndarray:
        """This rank's part of ``rows``: every ``size``-th, from position ``rank``."""
        return rows[self.rank :: self.size]

    def owns(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` (row numbers in the data) this rank keeps: every ``size``-th."""
        return rows % self.size == self.rank

    def seed(self, seed: int) -> int | list[int]:
        """A numpy seed of this rank's own, from the run's ``seed`` (one process: ``seed``)."""
        return seed if not self.distributed else [seed, self.rank]

    def reseed_epoch(self, seed: int, epoch: int, generator: torch.Generator | None) -> None:
        """With several ranks: this rank's own dropout masks (and, given its ``generator``,
        its own shuffle of its own rows) in ``epoch``, the same after a resume. One process
        draws on from where the last epoch left off."""
        if self.distributed:
            import torch

            epoch_seed = seed * 1_000_003 + epoch * 1009 + self.rank
            torch.manual_seed(epoch_seed)
            if generator is not None:
                generator.manual_seed(epoch_seed)

    def sum(self, values: Sequence[float]) -> list[float]:
        """The sums of ``values`` over every rank (in float64: every rank gets the same)."""
        if not self.distributed:
            return [float(v) for v in values]
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree(self, error: SentimentError | None) -> None:
        """Tell every rank whether any rank failed; if one did, every rank raises: rank 0 the
        error itself (another rank's, named by its rank), the others :class:`ReportedByMain`.
        Every rank must call this at the same point."""
        if not self.distributed:
            if error is not None:
                raise error
            return
        import torch.distributed as dist

        mine = None if error is None else (str(error), error.exit_code,
                                           isinstance(error, ReportedByMain))
        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, mine)
        reports = [(rank, report) for rank, report in enumerate(gathered) if report is not None]
        if not reports:
            return
        # a rank that stops for an error rank 0 already printed (an inner step) is no news
        failed = [(rank, r) for rank, r in reports if not r[2]] or reports
        rank, (message, exit_code, _) = failed[0]
        if not self.main:
            raise ReportedByMain(exit_code)
        differ = sum(report[0] != message for _, report in failed)  # the same error: no news
        others = f" (and {differ} other rank(s) failed with another error)" if differ else ""
        if rank == 0 and error is not None and not others:
            raise error
        problem = SentimentError(f"{'' if rank == 0 else f'rank {rank}: '}{message}{others}")
        problem.exit_code = exit_code
        raise problem

    @contextmanager
    def agreed(self) -> Iterator[None]:
        """A step every rank runs: our errors in it are exchanged at its end (:meth:`agree`).
        An unexpected one is exchanged too (so no rank waits for it), then raised as it is on
        its own rank."""
        error: SentimentError | None = None
        unexpected: Exception | None = None
        try:
            yield
        except SentimentError as err:
            error = err
        except Exception as err:
            if not self.distributed:
                raise
            unexpected, error = err, SentimentError(f"unexpected {type(err).__name__}: {err}")
        try:
            self.agree(error)
        except SentimentError:
            if unexpected is not None:
                raise unexpected from None
            raise

    def from_main(self, produce: Callable[[], T]) -> T:
        """``produce()`` run on rank 0 and sent to every rank (its error stops every rank)."""
        value: Any = None
        with self.agreed():
            if self.main:
                value = produce()
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: T) -> list[T] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None on the others)."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.size if self.main else []
        dist.gather_object(value, gathered if self.main else None, dst=0)
        return gathered if self.main else None

    def everyone(self, value: T) -> list[T]:
        """Every rank's ``value``, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered: list[Any] = [None] * self.size
        dist.all_gather_object(gathered, value)
        return gathered


SOLO = World()


def _integer(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DataError(f"the environment variable {name} must be an integer, got {raw!r} "
                        f"(torchrun sets it: start the job with torchrun)") from None


def from_environment(environ: Mapping[str, str] = os.environ) -> World:
    """The World torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); one process without it."""
    size = _integer(environ, "WORLD_SIZE", 1)
    rank = _integer(environ, "RANK", 0)
    local_rank = _integer(environ, "LOCAL_RANK", rank)
    local_size = _integer(environ, "LOCAL_WORLD_SIZE", size)
    if size < 1 or not 0 <= rank < size or not 0 <= local_rank < max(local_size, 1):
        raise DataError(f"RANK {rank} and WORLD_SIZE {size} do not describe a process of a job "
                        f"(0 <= RANK < WORLD_SIZE); start the job with torchrun")
    if size > 1:
        missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not environ.get(n)]
        if missing:
            raise DataError(f"WORLD_SIZE is {size} but {' and '.join(missing)} is not set; "
                            f"start the job with torchrun")
    return World(rank, size, local_rank, max(local_size, 1))


def _lenient(name: str, default: int) -> int:
    """An integer torchrun set, or ``default`` when it is not set or not readable (for
    deciding what to print: :func:`from_environment` says what is wrong with it)."""
    try:
        return max(int(os.environ.get(name) or default), default)
    except ValueError:
        return default


def environment_rank() -> int:
    """This process's rank as torchrun set it (0 when not under torchrun or unreadable)."""
    return _lenient("RANK", 0)


def job_identity() -> str | None:
    """This torchrun job, as its checkpoints record it: its run id, and the machine and agent
    process of this rank (the same in every attempt torchrun restarts). None without torchrun."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id is None:
        return None
    import socket

    return f"{run_id}/{socket.gethostname()}/{os.getppid()}"


def restarted() -> bool:
    """Whether torchrun restarted this job after a failure (``--max-restarts``)."""
    return os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") not in ("", "0")


def rank_device(world: World, name: str) -> str:
    """The device a rank trains on: with several ranks, ``cuda`` (or ``auto`` on a machine
    with CUDA) means this rank's own GPU, ``cuda:LOCAL_RANK``."""
    if not world.distributed or name.strip().lower() not in ("auto", "cuda"):
        return name
    import torch

    if name.strip().lower() == "auto" and not torch.cuda.is_available():
        return "cpu"
    if torch.cuda.is_available() and world.local_rank >= torch.cuda.device_count():
        raise DataError(f"--device {name}: this machine runs rank {world.rank} as its process "
                        f"{world.local_rank} (LOCAL_RANK) but has {torch.cuda.device_count()} "
                        f"GPU(s); start at most one process per GPU (--nproc-per-node)")
    return f"cuda:{world.local_rank}"


class JoinFailed(SentimentError):
    """This rank could not join the job's process group (each rank says so itself)."""

    every_rank_reports = True


@contextmanager
def joined(world: World) -> Iterator[World]:
    """This process in torchrun's process group (gloo) for the block; the World with its
    backend. One process alone joins nothing."""
    if not world.distributed:
        yield world
        return
    import torch.distributed as dist

    address = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
    try:
        store = _attempt_store(world)
        dist.init_process_group(BACKEND, timeout=STEP_TIMEOUT,
                                **({} if store is None else {"store": store, "rank": world.rank,
                                                             "world_size": world.size}))
    except (RuntimeError, ValueError) as err:
        detail = _backend_detail(err)[:200]
        raise JoinFailed(f"could not join the job at {address} ({detail}); check torchrun's "
                         f"--master-addr and --master-port") from None
    try:
        yield replace(world, backend=BACKEND)
    finally:
        dist.destroy_process_group()


def _attempt_store(world: World) -> Any:
    """The key-value store for this attempt's process group, when torchrun's agent hosts it.

    torchrun shares its rendezvous store with the workers, and a job it restarts
    (``--max-restarts``) would find the keys of the attempt before: gloo then connects to the
    dead processes' ports (pytorch/pytorch#135712). So the keys of each attempt get a prefix of
    their own: torchrun's restart count (the same on every rank of a node, which restarts its
    ranks together), and how many ranks joined before in that count (every rank of an attempt
    joins once). None: the default (env://) store."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from torch.distributed import PrefixStore, TCPStore

    store = TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world.size,
                     is_master=False, timeout=STEP_TIMEOUT)
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    joined_before = store.add(f"sentiment-cli/joined-{restart}", 1) - 1
    return PrefixStore(f"sentiment-cli/attempt-{restart}-{joined_before // world.size}", store)
