"""The rows of a file that fits in memory, read and tokenised once: the counterpart of
:mod:`.streaming`. The texts' terms are counted in runs of rows by one worker (see
:mod:`.parallel`) while this process imports torch, so the bar follows the counting of a large
file; the validation rows are then split off."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from sentiment_cli import interruption, parallel
from sentiment_cli.config import TrainConfig
from sentiment_cli.data.rows import read_rows
from sentiment_cli.distributed import World
from sentiment_cli.features import TermCounter, TermCounts, raw_counts, warm_up
from sentiment_cli.reporting import plots
from sentiment_cli.split import TrainSplit, split_off_validation
from sentiment_cli.training import checkpoint as ckpt
from sentiment_cli.training.progress import TrainProgress

# From this size on, one worker counts terms while this process imports torch: on two idle
# cores that took 0.76-0.89x the wall time of one process, from 3,000 to 67,000 rows
# (benchmarks/results/pool_break_even.md). Smaller inputs gain from the overlapped imports too
# (0.83x on the 675-row sample) but only by keeping the second core busy for a toy file.
POOL_MIN_BYTES = 200_000
# Rows counted at a time: the progress bar moves once a run is counted. A run is also at most
# COUNT_RUN_CHARS characters (about half a second of counting), which bounds how long a Ctrl-C
# waits for the worker to finish the runs it was handed (parallel.py does not kill it).
COUNT_RUN_ROWS = 20_000
COUNT_RUN_CHARS = 1_000_000


def read_and_split(config: TrainConfig, note: Callable[[str], None], world: World,
                   progress: TrainProgress | None) -> tuple[TrainSplit, TermCounts, float]:
    """The split rows and every row's term counts (training rows first, then those of
    ``--val-data``), and the seconds spent reading."""
    started = time.perf_counter()
    with parallel.pool(_workers(config, world)) as executor:
        executor.submit(warm_up)  # the worker imports scikit-learn while pandas reads here
        data, val = read_rows(config, note, progress and progress.phase)
        interruption.check()
        read_seconds = time.perf_counter() - started
        texts = data.texts if val is None else [*data.texts, *val.texts]
        counts = _counted(texts, config, executor, progress)
        split = split_off_validation(config, data, val, counts.counts, executor, note)
    return split, counts, read_seconds


def _counted(texts: list[str], config: TrainConfig, executor: Executor,
             progress: TrainProgress | None) -> TermCounts:
    """Every text's terms, counted in runs by the worker while torch is imported here (with
    no worker: after the import) and added up here as each run comes, the bar advancing."""
    runs = _runs(texts)
    serial = isinstance(executor, parallel.SerialExecutor)
    pending = [] if serial else [executor.submit(raw_counts, run, config.vectorizer)
                                 for run in runs]
    _import_trainer(config.report)
    counter = TermCounter()
    for run in runs:  # each worker's result is let go of once added up
        counter.add(raw_counts(run, config.vectorizer) if serial else pending.pop(0).result())
        if progress is not None:
            progress.phase("counting terms", len(run), len(texts))
        interruption.check()
    return counter.counts()


def _runs(texts: list[str]) -> list[list[str]]:
    """Consecutive texts, COUNT_RUN_ROWS or COUNT_RUN_CHARS at most a run (one long text alone
    may be longer)."""
    runs, start, chars = [], 0, 0
    for end, text in enumerate(texts, 1):
        chars += len(text)
        if end - start >= COUNT_RUN_ROWS or chars >= COUNT_RUN_CHARS:
            runs.append(texts[start:end])
            start, chars = end, 0
    return [*runs, texts[start:]] if start < len(texts) else runs


def _workers(config: TrainConfig, world: World) -> int:
    """One worker when this rank has a second core (the machine's cores shared among the
    ranks torchrun started on it) and the input is large enough to pay for it."""
    paths = [p for p in ckpt.run_inputs(config).values() if p is not None]
    size = sum(Path(p).stat().st_size for p in paths)
    cores = parallel.available_cores() // world.local_size
    return 1 if cores > 1 and size >= POOL_MIN_BYTES else 0


def _import_trainer(report: bool) -> None:
    """Load torch and the training code (1.1-1.6 s), and matplotlib for the report (0.3 s),
    while the worker counts terms."""
    import scipy.sparse.csgraph  # noqa: F401  (the split's grouping, 0.07 s)
    from safetensors import torch as _  # noqa: F401

    from sentiment_cli.training import loop  # noqa: F401

    if report:
        plots.load_pyplot()
