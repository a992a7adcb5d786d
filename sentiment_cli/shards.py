"""A streamed run's training rows on disk: CSR shards in a folder of the run's own beside the
output (:func:`shard_folder`), written from pieces of counted chunks (:func:`save_piece`,
:func:`save_shard`) and read back a few shards at a time in a shuffled order
(:class:`ShardedRows`, a bounded shuffle buffer). streaming.py decides what goes in them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_cli.distributed import SOLO, World

BUFFER_SHARDS = 4  # shards shuffled together in training: 200,000 rows


class Unkept(Sequence[str]):
    """The texts of a streamed run: counted, not kept (the shards hold their terms)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return self.rows

    def __getitem__(self, index: Any) -> Any:
        raise TypeError("a streamed run does not keep its training texts")


class ShardedRows:
    """This rank's training rows as CSR shards on disk, in row order; read a few at a time.
    Under torchrun each rank has its own rows (every ``world.size``-th of the file); one
    process has every row."""

    def __init__(self, paths: list[Path], sizes: list[int], n_terms: int) -> None:
        self.paths, self.sizes = paths, sizes
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.shape = (int(self.starts[-1]), n_terms)

    def load(self, index: int) -> Any:
        import scipy.sparse as sp

        return sp.load_npz(self.paths[index]).tocsr()

    def blocks(self) -> Iterator[tuple[Any, np.ndarray]]:
        """Every shard in row order: (its CSR rows, their positions among all rows)."""
        for i in range(len(self.paths)):
            yield self.load(i), np.arange(self.starts[i], self.starts[i + 1])

    def block_sizes(self, shard_order: Sequence[int], buffer: int = BUFFER_SHARDS) -> list[int]:
        """The rows of each block :meth:`shuffled_blocks` yields, in order."""
        return [sum(self.sizes[i] for i in shard_order[lo : lo + buffer])
                for lo in range(0, len(shard_order), buffer)]

    def shuffled_blocks(self, shard_order: Sequence[int],
                        buffer: int = BUFFER_SHARDS) -> Iterator[tuple[Any, np.ndarray]]:
        """The shards in ``shard_order``, ``buffer`` at a time stacked into one block."""
        import scipy.sparse as sp

        for lo in range(0, len(shard_order), buffer):
            chosen = list(shard_order[lo : lo + buffer])
            matrix = sp.vstack([self.load(i) for i in chosen], format="csr")
            yield matrix, np.concatenate(
                [np.arange(self.starts[i], self.starts[i + 1]) for i in chosen])


def remove_stale_shards(output: Path) -> None:
    """Remove the shard folders (``.NAME.shards-*``) an earlier run of ``output`` left when it
    was killed (SIGKILL, the OOM killer). Only with the output's lock held: no other run of
    this output is going on then."""
    for stale in output.parent.glob(f".{output.name}.shards-*"):
        if stale.is_dir() and not stale.is_symlink() and all(
                p.name.startswith(("shard-", "piece-")) and p.suffix == ".npz"
                for p in stale.iterdir()):
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def shard_folder(output: Path, world: World = SOLO) -> Iterator[Path]:
    """A folder of this rank's own beside ``output`` for its shards, removed afterwards, named
    after its rank (on a shared filesystem the ranks' sit side by side). Made once rank 0
    holds the output's lock and has removed the stale ones (:func:`remove_stale_shards`)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{output.name}.shards-rank{world.rank}-",
                                   dir=output.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_piece(path: Path, counts: Any, ids: np.ndarray) -> Path:
    """Rows of a chunk's raw counts, with the chunk's columns renumbered to the term ids."""
    import scipy.sparse as sp

    matrix = sp.csr_matrix((counts.data, ids[counts.indices], counts.indptr),
                           shape=(counts.shape[0], int(ids.max(initial=0)) + 1))
    sp.save_npz(path, matrix, compressed=False)
    return path


def save_shard(path: Path, pieces: list[Path], column: np.ndarray, n_terms: int,
                binary: bool) -> Path:
    """A shard from its pieces: their term ids mapped onto the vocabulary's columns (pruned
    terms dropped), the pieces removed."""
    import scipy.sparse as sp

    parts = []
    for piece in pieces:
        counts = sp.load_npz(piece).tocsr()
        mapped = column[counts.indices]
        kept = mapped >= 0
        rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))[kept]
        data = counts.data[kept].astype(np.float32)
        if binary:
            data.fill(1)
        parts.append(sp.csr_matrix((data, (rows, mapped[kept])),
                                   shape=(counts.shape[0], n_terms), dtype=np.float32))
        piece.unlink()
    matrix = sp.vstack(parts, format="csr")
    matrix.sort_indices()
    sp.save_npz(path, matrix, compressed=False)
    return path
