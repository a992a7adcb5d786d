"""Training data larger than memory: the file read in chunks into CSR shards on disk.

- A first, quick pass reads the label columns only: how many rows there are, and which label
  value is the positive class, or which the classes are (known before any row is mapped).
- Pass 1 reads text and labels a chunk at a time, checks and maps them as the in-memory reader
  does, and sends each row to validation by a hash of its text (so a duplicate always lands
  on the side of its twin). It counts each training chunk's terms with the CountVectorizer
  analyzer, and saves the counts in pieces: each row goes to one of the shards-to-be, drawn at
  random (seeded), so every shard is a uniform sample of the file, even of a file sorted by
  label. The document frequencies, summed over the chunks, give the vocabulary
  scikit-learn's ``fit`` on all training rows would give: min_df, max_df and max_features are
  applied once, to the sums (tested equal).
- Pass 2 puts each shard's pieces together, mapped onto that vocabulary.

Training then reads the shards in a shuffled order, a few at a time (shards.py: ShardedRows, a
bounded shuffle buffer). The validation rows (about ``--val-max-rows``) are kept in memory.
The shards live in a folder of their own beside the output, removed at the end, also when the
run fails or is interrupted (after a kill -9, by the next run of that output).

Under torchrun, each rank keeps its own share of the rows (every N-th row of the file): its
shards hold only those, rank 0 adds up every rank's term counts into the one vocabulary and
sends it to all, and the validation rows are gathered on every rank (:func:`stream_rows`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from sentiment_cli import interruption
from sentiment_cli.checks import stream_unsupported
from sentiment_cli.config import TrainConfig
from sentiment_cli.data.files import file_state, read_table_chunks
from sentiment_cli.data.labels import (
    Pair,
    binary_pair,
    class_names,
    map_binary,
    multiclass_keys,
    resolve_classes,
)
from sentiment_cli.data.reading import (
    Dataset,
    checked_rows,
    header_columns,
    load_dataset,
)
from sentiment_cli.distributed import SOLO, World
from sentiment_cli.errors import DataError
from sentiment_cli.features import (
    pruned_vocabulary,
    raw_counts,
    vectorizer_from_json,
    vectorizer_to_json,
)
from sentiment_cli.memory import available_bytes
from sentiment_cli.shards import ShardedRows, Unkept, save_piece, save_shard
from sentiment_cli.split import in_validation_by_hash
from sentiment_cli.text import has_control
from sentiment_cli.training.progress import TrainProgress

CHUNK_ROWS = 50_000
# bce-train in memory peaks at about 20x its CSV's size (761 MiB for the 36 MiB of SST-2 x10,
# benchmarks/results/results.md); it streams on its own when that would take over half of the
# memory available.
IN_MEMORY_EXPANSION = 20


def wanted(config: TrainConfig, processes: int = 1) -> bool:
    """Whether this run streams: --stream, or a file whose in-memory training would take more
    than half of the memory available now, in each of the ``processes`` of this machine
    (never with --no-stream, nor with what --stream cannot do yet: checks.stream_unsupported)."""
    if config.stream is not None:
        return config.stream
    if config.data_path is None or stream_unsupported(config):
        return False
    available = available_bytes()
    size = config.data_path.stat().st_size
    return available is not None and IN_MEMORY_EXPANSION * size * processes > available / 2


@dataclass
class Streamed:
    """A streamed run's rows: every row's summary (``data``, texts unkept), the training side
    as shards, the validation side in memory, and the vocabulary."""

    data: Dataset
    train: Dataset
    val: Dataset | None
    x_train: ShardedRows
    x_val: Any
    vectorizer: dict[str, Any]
    source_rows: np.ndarray  # each training row's row in DATA (0 = the first data row)
    train_rows: int  # over every rank (``train`` holds this rank's)


@dataclass
class _Columns:
    text: str
    labels: list[str]
    multilabel: bool


def _columns(config: TrainConfig, path: Path) -> _Columns:
    text, labels = header_columns(path, config.text_column, list(config.label_columns) or None,
                                  config.delimiter, config.encoding)
    return _Columns(text, labels, len(labels) > 1)


@dataclass
class _Plan:
    """What the label pass found: the rows, the classes, the validation share, the shards."""

    total: int
    pair: Pair | None  # binary: the sides' keys
    keys: list[str] | None  # multi-class: the classes' keys
    names: list[str] | None
    column: str
    share: float
    buckets: int

    def binary(self, values: list[str]) -> tuple[np.ndarray, list[str], np.ndarray]:
        """A chunk's labels under the pair or the classes the whole file gave (for
        checked_rows)."""
        assert self.names is not None
        if self.keys is not None:
            y, _, valid = resolve_classes(values, self.keys, self.column, "")
            return y, self.names, valid
        assert self.pair is not None
        y, valid = map_binary(values, self.pair)
        return y, self.names, valid


def _label_pass(config: TrainConfig, path: Path, columns: _Columns, read: dict[str, Any],
                progress: TrainProgress, world: World) -> _Plan:
    """Count the rows and resolve the positive class from the label columns alone."""
    where = str(path)
    occurrences: Counter[str] = Counter()
    total = 0
    for frame in read_table_chunks(path, columns=columns.labels, **read):
        total += len(frame)
        if not columns.multilabel:
            occurrences.update(frame[columns.labels[0]].tolist())
        progress.phase("counting rows", len(frame))
        interruption.check()
    if total == 0:
        raise DataError(f"{path} has a header but no data rows")
    pair = names = None
    column, seen = columns.labels[0], dict(occurrences)
    keys = None if columns.multilabel or config.positive_label is not None else (
        multiclass_keys(seen, config.task == "multiclass", column, where))
    if keys is not None:
        resolve_classes([], keys, column, where)  # not too many
        names = class_names(seen, keys)
    elif not columns.multilabel:
        pair, names = binary_pair(seen, config.positive_label, column, where)
    strange = [n for n in (columns.labels if columns.multilabel else names or [])
               if has_control(n)]
    if strange:
        raise DataError(f"{where}: the label {strange[0]!r} holds control or line-break "
                        f"characters; clean the label column first")
    if config.val_data is not None:  # its columns are there, before hours of reading
        _columns(config, Path(config.val_data))
    share = 0.0
    if config.val_data is None and config.val_split > 0:
        share = config.val_split if config.val_max_rows == 0 else min(
            config.val_split, config.val_max_rows / total)
    # shards of about CHUNK_ROWS rows, each a random sample of this rank's rows
    buckets = max(1, -(-total // (CHUNK_ROWS * world.size)))
    return _Plan(total, pair, keys, names, columns.labels[0], share, buckets)


@dataclass
class _Counted:
    """Pass 1 on this rank's rows: the counts of every term, the pieces of the shards-to-be,
    the validation rows, and how many rows of the file were dropped."""

    terms: list[str]
    df: np.ndarray
    tf: np.ndarray
    pieces: list[list[Path]]  # per shard, its chunks' rows
    piece_y: list[list[np.ndarray]]
    piece_rows: list[list[np.ndarray]]  # their rows in DATA
    val_texts: list[str]
    val_y: list[np.ndarray]
    dropped: int

    @property
    def train_rows(self) -> int:
        return sum(len(part) for parts in self.piece_y for part in parts)


def _changed(path: Path, rows: int) -> DataError:
    return DataError(f"{path} changed while --stream read it ({rows:,} rows at first); it reads "
                     f"the file twice: train on a copy, or once the file is written whole")


def _count_pass(config: TrainConfig, path: Path, columns: _Columns, read: dict[str, Any],
                plan: _Plan, folder: Path, progress: TrainProgress, world: World) -> _Counted:
    """Pass 1: check every row of each chunk (every rank alike), and keep this rank's rows
    (every ``world.size``-th row of the file): send them to validation by their hash, count
    the training rows' terms and save them as pieces of the shards-to-be."""
    where = str(path)
    draw = np.random.default_rng(world.seed(config.training.seed))
    terms: dict[str, int] = {}  # every term of the training rows -> its id in the pieces
    counted = _Counted([], np.zeros(0, np.int64), np.zeros(0, np.float64),
                       [[] for _ in range(plan.buckets)], [[] for _ in range(plan.buckets)],
                       [[] for _ in range(plan.buckets)], [], [], 0)
    offset = 0
    for frame in read_table_chunks(path, columns=[columns.text, *columns.labels], **read):
        texts, y, _, valid = checked_rows(frame, columns.text, list(columns.labels),
                                          plan.binary, config.drop_invalid, where, offset)
        counted.dropped += int((~valid).sum()) + frame.attrs.get("malformed", 0)
        rows_in_data = np.arange(offset, offset + len(frame))
        offset += len(frame)
        if offset > plan.total:
            raise _changed(path, plan.total)
        valid &= world.owns(rows_in_data)
        rows_in_data = rows_in_data[valid]
        texts, y = [str(t) for t in texts[valid]], y[valid]
        to_val = in_validation_by_hash(texts, plan.share, config.training.seed) if plan.share else \
            np.zeros(len(texts), dtype=bool)
        counted.val_texts += [t for t, v in zip(texts, to_val, strict=True) if v]
        counted.val_y.append(y[to_val])
        train_texts = [t for t, v in zip(texts, to_val, strict=True) if not v]
        progress.phase("pass 1/2: counting terms", len(frame), plan.total)
        interruption.check()
        if not train_texts:
            continue
        chunk_terms, counts = raw_counts(train_texts, config.vectorizer)
        ids = np.fromiter((terms.setdefault(t, len(terms)) for t in chunk_terms), dtype=np.int64,
                          count=len(chunk_terms))
        if len(terms) > len(counted.df):
            grown = max(len(terms), 2 * len(counted.df))
            counted.df = np.concatenate([counted.df, np.zeros(grown - len(counted.df), np.int64)])
            counted.tf = np.concatenate([counted.tf, np.zeros(grown - len(counted.tf))])
        counted.df[ids] += np.bincount(counts.indices, minlength=len(chunk_terms))
        counted.tf[ids] += np.asarray(counts.sum(axis=0)).ravel()
        chosen = draw.integers(0, plan.buckets, size=len(train_texts))
        counts = counts.tocsr()
        y_train_chunk, rows_train_chunk = y[~to_val], rows_in_data[~to_val]
        for bucket in np.unique(chosen):
            mine = np.flatnonzero(chosen == bucket)
            index = len(counted.pieces[bucket])
            counted.pieces[bucket].append(save_piece(
                folder / f"piece-{bucket:05d}-{index:05d}.npz", counts[mine], ids))
            counted.piece_y[bucket].append(y_train_chunk[mine])
            counted.piece_rows[bucket].append(rows_train_chunk[mine])
    counted.terms = [""] * len(terms)
    for term, index in terms.items():
        counted.terms[index] = term
    counted.df, counted.tf = counted.df[: len(terms)], counted.tf[: len(terms)]
    return counted


def _merged_vocabulary(parts: list[tuple[list[str], np.ndarray, np.ndarray]], n_docs: int,
                       config: TrainConfig) -> tuple[list[str], int]:
    """The vocabulary of every rank's term counts together (one rank: its own), and how many
    terms were counted."""
    if len(parts) == 1:
        return pruned_vocabulary(*parts[0], n_docs, config.vectorizer), len(parts[0][0])
    index: dict[str, int] = {}
    for terms, _, _ in parts:
        for term in terms:
            index.setdefault(term, len(index))
    df, tf = np.zeros(len(index), np.int64), np.zeros(len(index), np.float64)
    for terms, part_df, part_tf in parts:
        ids = np.fromiter((index[t] for t in terms), dtype=np.int64, count=len(terms))
        df[ids] += part_df
        tf[ids] += part_tf
    return pruned_vocabulary(list(index), df, tf, n_docs, config.vectorizer), len(index)


def stream_rows(config: TrainConfig, folder: Path, note: Callable[[str], None],
                progress: TrainProgress | None = None, world: World = SOLO) -> Streamed:
    """Read ``config.data`` in chunks into shards in ``folder``; see the module docstring.

    Under torchrun each rank keeps every ``world.size``-th row of the file: its shards hold its
    own training rows, the term counts of all ranks are added up on rank 0 into the one
    vocabulary, and the validation rows are gathered on every rank. Every rank reads the
    whole file (a CSV cannot be cut at byte offsets: a quoted field may hold line breaks)."""
    assert config.data_path is not None  # config.check: --stream needs one data file
    path = config.data_path
    progress = progress or TrainProgress()
    read = dict(delimiter=config.delimiter, encoding=config.encoding, chunk_rows=CHUNK_ROWS,
                skip_malformed=config.drop_invalid)
    started = time.perf_counter()
    with world.agreed():
        read_first = file_state(path)
        columns = _columns(config, path)
        plan = _label_pass(config, path, columns, read, progress, world)
    note(f"streaming {plan.total:,} rows of {path} in chunks of {CHUNK_ROWS:,}{world.keeping} "
         f"({time.perf_counter() - started:.1f} s to count them)")
    with world.agreed():
        counted = _count_pass(config, path, columns, read, plan, folder, progress, world)
        if file_state(path) != read_first:
            raise _changed(path, plan.total)
    per_rank = world.everyone(counted.train_rows)
    n_train = sum(per_rank)
    n_val = int(world.sum([len(counted.val_texts)])[0])
    with world.agreed():
        if n_train == 0:
            raise DataError(f"{path}: no usable training rows remain")
        if min(per_rank) == 0:
            raise DataError(f"{path}: {n_train} training rows are too few for "
                            f"{world.size} processes (a rank would have none); start fewer")
        if plan.share and n_val < 2:
            raise DataError(f"{path}: {plan.total} rows are too few for --val-split "
                            f"{config.val_split}; add rows, change --val-split, or pass "
                            f"--val-split 0")
    parts = world.gather((counted.terms, counted.df, counted.tf))
    counted.df, counted.tf = counted.df[:0], counted.tf[:0]
    vocabulary, n_terms = world.from_main(partial(_merged_vocabulary, parts or [], n_train,
                                                  config))
    del parts  # rank 0: every rank's terms
    skipped = f", {counted.dropped:,} invalid rows skipped" if counted.dropped else ""
    note(f"pass 1/2: {n_train:,} training rows, {n_terms:,} terms counted, "
         f"{len(vocabulary):,} kept{skipped} ({time.perf_counter() - started:.1f} s)")
    return _assembled(config, path, columns, plan, counted, vocabulary, n_train, folder, note,
                      progress, world, started)


def _assembled(config: TrainConfig, path: Path, columns: _Columns, plan: _Plan,
               counted: _Counted, vocabulary: list[str], n_train: int, folder: Path,
               note: Callable[[str], None], progress: TrainProgress, world: World,
               started: float) -> Streamed:
    """Pass 2 (this rank's shards on the vocabulary) and the run's rows as training sees them."""
    where = str(path)
    column = np.full(len(counted.terms), -1, dtype=np.int64)  # a piece's term id -> its column
    position = {term: i for i, term in enumerate(vocabulary)}
    for i, term in enumerate(counted.terms):
        column[i] = position.get(term, -1)
    del position
    counted.terms = []
    paths, sizes, y_parts, source = [], [], [], []
    with world.agreed():
        for bucket in range(plan.buckets):
            if counted.pieces[bucket]:
                paths.append(save_shard(folder / f"shard-{bucket:05d}.npz",
                                         counted.pieces[bucket], column, len(vocabulary),
                                         config.vectorizer.binary))
                sizes.append(sum(len(part) for part in counted.piece_y[bucket]))
                y_parts += counted.piece_y[bucket]
                source += counted.piece_rows[bucket]
            progress.phase("pass 2/2: shards", 1, plan.buckets, "shards")
            interruption.check()
    note(f"pass 2/2: {len(paths)} shards of random rows{world.keeping and ' per rank'}"
         f", on the vocabulary ({time.perf_counter() - started:.1f} s)")

    y_train = np.concatenate(y_parts)
    label_names = list(columns.labels) if columns.multilabel else list(plan.names or [])
    vectorizer = vectorizer_to_json(config.vectorizer, vocabulary)
    val, x_val = None, None
    gathered_val = world.everyone((counted.val_texts, counted.val_y))
    val_texts = [t for texts, _ in gathered_val for t in texts]
    multiclass = plan.keys is not None
    if config.val_data is not None:
        with world.agreed():
            val = load_dataset(config.val_data, text_column=config.text_column,
                               label_columns=list(config.label_columns) or None,
                               positive_label=None if columns.multilabel or multiclass else (
                                   config.positive_label or label_names[1]),
                               class_names=label_names if multiclass else None,
                               delimiter=config.delimiter, encoding=config.encoding,
                               drop_invalid=config.drop_invalid)
    elif val_texts:
        val = Dataset(val_texts, np.concatenate([y for _, ys in gathered_val for y in ys]),
                      label_names, where, columns.text, columns.labels,
                      multilabel=columns.multilabel, multiclass=multiclass)
    if val is not None:
        x_val = vectorizer_from_json(vectorizer).transform(val.texts).tocsr()
    # every row of DATA (a --val-data file's rows are not DATA's), over every rank
    train_sums = world.sum(y_train.reshape(len(y_train), -1).sum(axis=0).tolist())
    val_sums = [0.0] * len(train_sums) if val is None or config.val_data is not None else \
        val.y.reshape(len(val.y), -1).sum(axis=0).tolist()
    positives = [int(a + b) for a, b in zip(train_sums, val_sums, strict=True)]
    n_all = n_train + (0 if val is None or config.val_data is not None else len(val))
    with world.agreed():
        if columns.multilabel:
            empty = [n for n, k in zip(label_names, train_sums, strict=True) if k == 0]
            if empty:
                raise DataError(f"{where}: label {empty[0]!r} has no positive training row; "
                                f"remove the column (--stream does not drop empty labels)")
    counts = dict(zip(label_names, positives, strict=True)) if y_train.ndim == 2 else \
        {label_names[0]: n_all - positives[0], label_names[1]: positives[0]}
    data = Dataset(Unkept(n_all), y_train, label_names, where, columns.text, columns.labels,
                   dropped_rows=counted.dropped, multilabel=columns.multilabel,
                   class_counts=counts, multiclass=multiclass)
    train = Dataset(Unkept(len(y_train)), y_train, label_names, where, columns.text,
                    columns.labels, multilabel=columns.multilabel, multiclass=multiclass)
    return Streamed(data, train, val,
                    ShardedRows(paths, sizes, len(vocabulary)),
                    x_val, vectorizer, np.concatenate(source), n_train)
