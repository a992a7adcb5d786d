"""The validation split: seeded, stratified, and keeping related texts on the same side.

Some datasets hold texts cut from other texts: SST-2's training file has every phrase of each
parsed sentence as a row of its own, and scraped data has duplicates. A random split then puts a
phrase in validation and its sentence in training; validation accuracy reads about 0.93 where
new sentences score about 0.83, and early stopping, misled, trains on for twice the epochs.
So rows are grouped before splitting: a row all of whose terms occur in a longer row (a
sub-phrase, a duplicate) joins that row's group, and whole groups go to one side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sentiment_cli.config import TrainConfig
from sentiment_cli.data.reading import Dataset
from sentiment_cli.data.rows import check_empty_labels, keep_labels, subset
from sentiment_cli.errors import DataError

if TYPE_CHECKING:
    import scipy.sparse as sp


def in_validation_by_hash(texts: Sequence[str], share: float, seed: int) -> np.ndarray:
    """Whether each row goes to validation, as --stream splits a file read in chunks: its
    text's hash (seeded) below ``share``, so a duplicate always lands beside its twin."""
    key = f"{seed}\0".encode()
    limit = int(share * 2**64)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(key + t.encode("utf-8", "surrogatepass"),
                                        digest_size=8).digest(), "big") < limit
         for t in texts), dtype=bool, count=len(texts))


def related_groups(presence: sp.csr_matrix, chunk_rows: int = 50_000) -> np.ndarray:
    """A group number per row of a term matrix (non-zero = present); related rows share one.

    Each row is linked to the longest row holding the row's rarest term (the first such row on
    ties), when that row holds all of its terms; groups are the connected rows. Every row has
    at most one link, to a row at least as long, so groups stay near their sentence's size
    instead of chaining across the data (a common word's rows never merge). Vectorised, in
    chunks of ``chunk_rows`` rows so that the temporary arrays stay small on big files.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_rows, n_terms = presence.shape
    row = np.arange(n_rows)
    lengths = np.diff(presence.indptr).astype(np.int64)  # int32 products would overflow
    filled = lengths > 0
    if n_rows == 0 or not filled.any():
        return row
    df = np.bincount(presence.indices, minlength=n_terms).astype(np.int64)
    rarest = np.zeros(n_rows, dtype=np.int64)
    # per term, the longest row holding it as one number: length * (n + 1) + (n - row)
    holder_key = np.zeros(n_terms, dtype=np.int64)
    for lo in range(0, n_rows, chunk_rows):
        hi = min(lo + chunk_rows, n_rows)
        indptr = presence.indptr[lo : hi + 1]
        indices = presence.indices[indptr[0] : indptr[-1]]
        starts = (indptr[:-1] - indptr[0])[filled[lo:hi]]
        # the rarest term of each row: smallest (document frequency, column)
        keys = df[indices] * n_terms + indices
        rarest[lo:hi][filled[lo:hi]] = np.minimum.reduceat(keys, starts) % n_terms
        rows = np.repeat(np.arange(lo, hi), lengths[lo:hi])
        np.maximum.at(holder_key, indices, lengths[rows] * (n_rows + 1) + (n_rows - rows))
    holder = n_rows - holder_key % (n_rows + 1)
    parent = np.where(filled, holder[rarest], row)
    # How many of each row's terms its parent holds: each (parent, term) looked up among the
    # matrix's (row, term) pairs, sorted as CSR stores them. Memory follows the matrix's size:
    # taking the parents' rows instead would copy one long text once per row it holds.
    if not presence.has_sorted_indices:
        presence = presence.sorted_indices()
    present = presence.data != 0
    owner = np.repeat(row, lengths)
    pairs = (owner * n_terms + presence.indices)[present]
    shared = np.zeros(n_rows, dtype=np.int64)
    for lo in range(0, len(owner), chunk_rows * 16):
        hi = min(lo + chunk_rows * 16, len(owner))
        wanted = parent[owner[lo:hi]] * n_terms + presence.indices[lo:hi]
        at = np.minimum(np.searchsorted(pairs, wanted), max(len(pairs) - 1, 0))
        found = present[lo:hi] & (pairs[at] == wanted) if len(pairs) else present[lo:hi]
        shared += np.bincount(owner[lo:hi][found], minlength=n_rows)
    linked = filled & (parent != row) & (shared == lengths)
    graph = coo_matrix((np.ones(int(linked.sum())), (row[linked], parent[linked])),
                       shape=(n_rows, n_rows))
    return connected_components(graph, directed=False)[1]


def split_rows(
    y: np.ndarray,
    fraction: float,
    seed: int,
    groups: np.ndarray | None = None,
    source: str = "data",
    max_rows: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (training rows, validation rows), about ``fraction`` of the rows in validation,
    but no more than ``max_rows`` of them when that is above 0.

    Binary labels are stratified. Without groups, or when every group is a single row, this is
    scikit-learn's ``train_test_split`` (so such data splits as it always did); otherwise whole
    groups are drawn in a seeded order, per majority label when binary, until each stratum has
    its share.
    """
    n_rows = len(y)
    n_val = round(n_rows * fraction)
    if max_rows > 0:
        n_val = min(n_val, max_rows)
    if n_val < 2 or n_rows - n_val < 2:
        raise DataError(
            f"{source}: {n_rows} rows are too few for --val-split {fraction}; add rows, change "
            f"--val-split, or pass --val-split 0"
        )
    binary = y.ndim == 1
    if groups is None or np.bincount(groups).max() == 1:
        return _plain_split(y, n_val, seed, binary)
    n_groups = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=n_groups)
    if binary:
        positives = np.bincount(groups, weights=(y > 0.5).astype(float), minlength=n_groups)
        strata = (2 * positives >= sizes).astype(np.int64)
    elif _one_hot(y):  # multi-class: each group's most common class
        votes = np.zeros((n_groups, y.shape[1]))
        np.add.at(votes, groups, y)
        strata = votes.argmax(axis=1)
    else:
        strata = np.zeros(n_groups, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(n_groups)
    chosen = np.zeros(n_groups, dtype=bool)
    for stratum in np.unique(strata):
        members = order[strata[order] == stratum]
        rows_in = sizes[members].sum()
        target = n_val * rows_in / n_rows
        filled = np.cumsum(sizes[members])
        take = int(np.searchsorted(filled, target, side="right"))
        if take < len(members) and abs(filled[take] - target) < abs(
                (filled[take - 1] if take else 0) - target):
            take += 1  # one more group lands closer to the share
        chosen[members[:take]] = True
    in_val = chosen[groups]
    if in_val.sum() < 2 or (~in_val).sum() < 2:
        raise DataError(
            f"{source}: its related texts form too few groups for --val-split {fraction}; "
            f"change --val-split, pass --val-data FILE, or --val-grouping none"
        )
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def _one_hot(y: np.ndarray) -> bool:
    """Multi-class targets: one 1 per row."""
    return y.ndim == 2 and bool((y.sum(axis=1) == 1).all())


def _plain_split(y: np.ndarray, n_val: int, seed: int,
                 binary: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    strata = None
    if binary or _one_hot(y):
        classes = y if binary else y.argmax(axis=1)
        _, counts = np.unique(classes, return_counts=True)
        if counts.min() >= 2 and min(n_val, len(y) - n_val) >= len(counts):
            strata = classes
    train_rows, val_rows = train_test_split(np.arange(len(y)), test_size=n_val,
                                            random_state=seed, shuffle=True, stratify=strata)
    return np.sort(train_rows), np.sort(val_rows)


@dataclass
class TrainSplit:
    """The rows of a run, split: ``data`` has every row (multi-label columns without a positive
    training row dropped, if asked), ``train``/``val`` the two sides, and ``train_rows`` and
    ``val_rows`` their rows in the term counts (None: all of them train)."""

    data: Dataset
    train: Dataset
    val: Dataset | None
    train_rows: np.ndarray | None
    val_rows: np.ndarray | None


def split_off_validation(
    config: TrainConfig,
    data: Dataset,
    val: Dataset | None,
    counts: sp.csr_matrix,
    executor: Executor,
    note: Callable[[str], None],
) -> TrainSplit:
    """The validation rows: a ``--val-data`` file's (counted after the training rows), or a
    seeded stratified share of ``data`` with related rows kept together (``counts``: every
    row's terms). The split itself is scikit-learn's ``train_test_split`` when no rows are
    related, run by ``executor``'s worker, which has scikit-learn loaded."""
    train_rows = val_rows = groups = None
    train = data
    if val is not None:
        train_rows = np.arange(len(data))
        val_rows = np.arange(len(data), len(data) + len(val))
    elif config.val_split > 0:
        groups = related_groups(counts) if config.val_grouping == "contained" else None
        train_rows, val_rows = executor.submit(
            split_rows, y=data.y, fraction=config.val_split, seed=config.training.seed,
            groups=groups, source=data.source, max_rows=config.val_max_rows).result()
        train, val = subset(data, train_rows), subset(data, val_rows)
    if train.multilabel:
        train, val = check_empty_labels(train, val, config.drop_empty_labels, note)
        if train.label_names != data.label_names:
            data = keep_labels(data, np.isin(data.label_names, train.label_names))
    related = 0 if groups is None else len(data) - int((np.bincount(groups) == 1).sum())
    if related:
        note(f"{related} rows are sub-texts or duplicates of other rows: the validation split "
             f"keeps each with its longest text (--val-grouping none to split rows freely)")
    return TrainSplit(data, train, val, train_rows, val_rows)
