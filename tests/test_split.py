"""The validation split: related texts (sub-phrases, duplicates) stay on one side."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, assert_clean_error, needs_shared, run, write_csv
from sklearn.model_selection import train_test_split

from sentiment_cli.config import VectorizerConfig
from sentiment_cli.errors import DataError
from sentiment_cli.features import count_terms
from sentiment_cli.split import related_groups, split_rows

WORDS = [f"w{i}" for i in range(3000)] + ["good", "bad", "film", "the", "not"]


def phrase_rows(sentences: int = 150, seed: int = 0) -> tuple[list[str], list[int], list[int]]:
    """Sentences, each followed by a few of its contiguous sub-phrases (as SST-2's training file
    has them), with the sentence number of every row."""
    rng = random.Random(seed)
    texts, labels, origin = [], [], []
    for s in range(sentences):
        words = rng.sample(WORDS, rng.randint(8, 16))
        for _ in range(rng.randint(0, 5)):
            i = rng.randrange(len(words) - 2)
            j = rng.randrange(i + 2, len(words) + 1)
            texts.append(" ".join(words[i:j]))
            labels.append(s % 2)
            origin.append(s)
        texts.append(" ".join(words))
        labels.append(s % 2)
        origin.append(s)
    return texts, labels, origin


def groups_of(texts: list[str]) -> np.ndarray:
    return related_groups(count_terms(texts, VectorizerConfig()).counts)


def test_sub_phrases_and_duplicates_join_their_sentence() -> None:
    texts, _, origin = phrase_rows()
    texts.append(texts[0])  # a duplicate of sentence 0's first row
    origin.append(origin[0])
    groups = groups_of(texts)
    for sentence in set(origin):
        rows = [i for i, o in enumerate(origin) if o == sentence]
        assert len({groups[i] for i in rows}) == 1, sentence
    # ... and different sentences (random words from 3000) stay apart
    assert len(set(groups)) == len(set(origin))


def test_chunked_grouping_equals_one_pass() -> None:
    texts, _, _ = phrase_rows(seed=5)
    counts = count_terms(texts, VectorizerConfig()).counts
    assert related_groups(counts, chunk_rows=7).tolist() == related_groups(counts).tolist()


def test_one_very_long_row_is_grouped_without_copying_it_per_row() -> None:
    """A 1.2M-term row (a 10 MB text) holding the terms of 2,000 short rows: each short row
    joins it, and those beyond it stay apart. Its length times the row count overflows int32,
    and copying the long row once per short row would take about 20 GB."""
    import scipy.sparse as sp

    long_terms, short_rows = 1_200_000, 2_000
    rng = np.random.default_rng(0)
    inside = [rng.choice(long_terms, 3, replace=False) for _ in range(short_rows)]
    outside = [long_terms + 2 * i + np.arange(2) for i in range(5)]  # terms of their own
    rows = [np.arange(long_terms), *inside, *outside]
    presence = sp.csr_matrix(
        (np.ones(sum(map(len, rows)), dtype=np.float32),
         np.concatenate([np.sort(r) for r in rows]),
         np.concatenate([[0], np.cumsum([len(r) for r in rows])])),
        shape=(len(rows), long_terms + 10))
    groups = related_groups(presence, chunk_rows=500)
    assert len(set(groups[: short_rows + 1].tolist())) == 1
    assert len(set(groups.tolist())) == 1 + len(outside)


def test_unrelated_texts_and_common_words_do_not_chain() -> None:
    texts = ["good film", "not a good film at all", "a good day", "good", "good",
             "the worst", "", "bad bad bad"]
    groups = groups_of(texts)
    # "good film" is inside the second text; "good" (twice) joins one longest holder only
    assert groups[0] == groups[1]
    assert groups[3] == groups[4]
    assert len(set(groups[[1, 2, 5, 6, 7]])) == 5  # no chaining through the common word
    assert len(set(groups)) == 5


def test_without_related_rows_the_split_is_train_test_split() -> None:
    y = np.array([i % 3 == 0 for i in range(200)], dtype=np.float32)
    train_rows, val_rows = split_rows(y, 0.1, seed=4, groups=np.arange(200))
    expected_train, expected_val = train_test_split(
        np.arange(200), test_size=20, random_state=4, shuffle=True, stratify=y)
    assert val_rows.tolist() == sorted(expected_val.tolist())
    assert train_rows.tolist() == sorted(expected_train.tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_never_straddle_the_split(seed: int) -> None:
    texts, labels, origin = phrase_rows(seed=seed)
    y = np.array(labels, dtype=np.float32)
    groups = groups_of(texts)
    train_rows, val_rows = split_rows(y, 0.2, seed=seed, groups=groups)
    assert not set(np.asarray(origin)[train_rows]) & set(np.asarray(origin)[val_rows])
    assert sorted([*train_rows, *val_rows]) == list(range(len(texts)))
    assert abs(len(val_rows) - 0.2 * len(texts)) <= 8  # within a group of the share
    assert 0.35 < y[val_rows].mean() < 0.65  # both labels, about as in the data
    again = split_rows(y, 0.2, seed=seed, groups=groups)
    assert again[1].tolist() == val_rows.tolist()


def test_too_few_rows_or_groups_name_the_fix() -> None:
    y = np.array([0, 1, 0], dtype=np.float32)
    with pytest.raises(DataError, match="--val-split"):
        split_rows(y, 0.1, seed=0)
    y = np.array([0, 1] * 10, dtype=np.float32)
    with pytest.raises(DataError, match="--val-grouping none"):
        split_rows(y, 0.5, seed=0, groups=np.array([0] * 19 + [1]))


@pytest.mark.slow
def test_cli_says_it_grouped_and_can_be_told_not_to(tmp_path: Path) -> None:
    texts, labels, _ = phrase_rows()
    data = write_csv(tmp_path / "phrases.csv", ["sentence", "label"],
                     [(t, str(y)) for t, y in zip(texts, labels, strict=True)])
    grouped = run("bce-train", str(data), "-o", str(tmp_path / "g"), "--no-report",
                  "--epochs", "2")
    assert grouped.returncode == 0, grouped.stderr
    assert "sub-texts or duplicates" in grouped.stderr
    free = run("bce-train", str(data), "-o", str(tmp_path / "f"), "--no-report", "--epochs", "2",
               "--val-grouping", "none")
    assert free.returncode == 0, free.stderr
    assert "sub-texts or duplicates" not in free.stderr
    bad = run("bce-train", str(data), "-o", str(tmp_path / "b"), "--val-grouping", "sentence")
    assert_clean_error(bad, 2, "--val-grouping")
    assert not (tmp_path / "b").exists()


@needs_shared
def test_sst2_phrases_group_by_sentence() -> None:
    import pandas as pd

    texts = pd.read_csv(SHARED_DATA / "sst2_train.csv")["sentence"].astype(str).tolist()
    groups = groups_of(texts)
    sizes = np.bincount(groups)
    # 67,349 phrases of about 6,900 sentences: most rows are linked, no group runs away
    assert (sizes > 1).sum() > 5000
    assert (sizes[groups] > 1).mean() > 0.9
    assert sizes.max() < 200


def test_max_rows_caps_the_validation_split() -> None:
    y = np.array([0, 1] * 500)
    train, val = split_rows(y, 0.1, seed=0, max_rows=40)
    assert len(val) == 40 and len(train) == 960
    assert y[val].mean() == 0.5  # still stratified
    assert [r.tolist() for r in split_rows(y, 0.1, seed=0, max_rows=0)] == [
        r.tolist() for r in split_rows(y, 0.1, seed=0)]  # 0: no cap, 100 rows
    assert len(split_rows(y, 0.1, seed=0, max_rows=500)[1]) == 100  # the cap only lowers
    texts, labels, _ = phrase_rows(sentences=300)
    groups = groups_of(texts)
    _, grouped_val = split_rows(np.array(labels), 0.2, seed=1, groups=groups, max_rows=50)
    assert 40 <= len(grouped_val) <= 60  # whole groups, as close to the cap as they allow
    assert set(groups[grouped_val]).isdisjoint(set(np.delete(groups, grouped_val)))


@pytest.mark.slow
def test_cli_val_max_rows(tmp_path: Path) -> None:
    texts, labels, _ = phrase_rows()
    data = write_csv(tmp_path / "phrases.csv", ["sentence", "label"],
                     [(t, str(y)) for t, y in zip(texts, labels, strict=True)])
    capped = run("bce-train", str(data), "-o", str(tmp_path / "c"), "--no-report",
                 "--epochs", "1", "--val-grouping", "none", "--val-max-rows", "25")
    assert capped.returncode == 0, capped.stderr
    assert f"{len(texts) - 25} training rows, 25 validation rows" in capped.stderr
    for value in ("-3", "1"):
        bad = run("bce-train", str(data), "-o", str(tmp_path / "b"), "--val-max-rows", value)
        assert_clean_error(bad, 2, "--val-max-rows")
    assert not (tmp_path / "b").exists()
