from __future__ import annotations

import json
import os

import numpy as np
import pytest

from sentiment_cli.errors import DataError
from sentiment_cli.features import (
    VectorizerOptions,
    build_vectorizer,
    english_stop_words,
    fit_vectorizer,
    transform,
    vectorizer_from_json,
    vectorizer_to_json,
)


def tokens(text: str) -> list[str]:
    return build_vectorizer(VectorizerOptions(ngram_range=(1, 1))).build_analyzer()(text)


def test_default_tokenizer_keeps_negations_exclamations_and_single_letters() -> None:
    assert tokens("I don't like it!") == ["i", "don't", "like", "it", "!"]
    assert tokens("does n't work ?") == ["does", "n't", "work", "?"]
    assert "a" in tokens("a 5 star hotel")


def test_english_stop_words_keep_negations() -> None:
    stop = set(english_stop_words())
    assert "the" in stop
    assert not {"not", "no", "nor", "never"} & stop


def test_json_round_trip_transforms_identically() -> None:
    texts = ["not good at all!", "really great movie", "great, not bad", "the worst ?"]
    options = VectorizerOptions(stop_words="english", ngram_range=(1, 2))
    vectorizer, matrix = fit_vectorizer(texts, options)
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    payload = json.loads(json.dumps(vectorizer_to_json(options, terms)))
    loaded = vectorizer_from_json(payload)
    assert (transform(build_vectorizer(options).fit(texts), texts) != matrix).nnz == 0
    new = ["great not bad", "unknown words only", ""]
    assert (transform(loaded, new) != transform(vectorizer, new)).nnz == 0
    assert (transform(loaded, texts) != matrix).nnz == 0
    assert matrix.dtype == np.float32


def test_empty_vocabulary_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="vocabulary is empty"):
        fit_vectorizer(["the the", "and of"], VectorizerOptions(stop_words="english"))
    with pytest.raises(DataError, match="min-df"):
        fit_vectorizer(["a b", "c d"], VectorizerOptions(min_df=5))


def test_min_df_counts_documents_and_max_df_one_means_all() -> None:
    options = VectorizerOptions(ngram_range=(1, 1), min_df=2, max_df=1.0)
    vectorizer, _ = fit_vectorizer(["good film", "good book", "bad"], options)
    assert set(vectorizer.vocabulary_) == {"good"}


def test_invalid_options_name_the_flag() -> None:
    with pytest.raises(DataError, match="--ngram-range"):
        VectorizerOptions(ngram_range=(2, 1)).validate()
    with pytest.raises(DataError, match="--stop-words"):
        VectorizerOptions(stop_words="french").validate()


@pytest.mark.parametrize(
    "options",
    [VectorizerOptions(), VectorizerOptions(min_df=2, max_df=0.3, binary=False),
     VectorizerOptions(max_features=300, ngram_range=(1, 3)),
     VectorizerOptions(stop_words="english", binary=True, max_features=50, min_df=0.001)],
)
def test_parallel_fit_equals_scikit_learn(options: VectorizerOptions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import random

    import sentiment_cli.features as features

    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)] + ["not", "good", "!", "don't", "the"]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(3000)]
    monkeypatch.setattr(features, "PARALLEL_MIN_ROWS", 100)
    reference = build_vectorizer(options)
    x_reference = reference.fit_transform(texts)
    for jobs in (1, 3):
        fitted, matrix = fit_vectorizer(texts, options, jobs=jobs)
        assert fitted.vocabulary_ == reference.vocabulary_
        assert matrix.shape == x_reference.shape and (matrix != x_reference).nnz == 0
        assert matrix.dtype == np.float32 and matrix.has_sorted_indices
        assert (transform(fitted, texts[:50]) != x_reference[:50]).nnz == 0

    # Tokenising every row once, then fitting on a subset of rows, is scikit-learn's fit on
    # those rows plus transform of the others (terms only in the others are not kept).
    train_rows = np.array(sorted(rng.sample(range(len(texts)), 2000)))
    other_rows = np.setdiff1d(np.arange(len(texts)), train_rows)
    texts[int(other_rows[0])] = "zzonlyinvalidation w1"
    reference = build_vectorizer(options)
    x_train = reference.fit_transform([texts[i] for i in train_rows])
    x_other = reference.transform([texts[i] for i in other_rows])
    counts = features.count_terms(texts, options, jobs=3)
    terms, columns = features.fit_counts(counts, options, train_rows)
    assert terms == sorted(reference.vocabulary_, key=reference.vocabulary_.__getitem__)
    assert "zzonlyinvalidation" not in terms
    for rows, expected in ((train_rows, x_train), (other_rows, x_other)):
        got = features.select(counts, rows, columns, options.binary)
        assert got.shape == expected.shape and (got != expected).nnz == 0


def test_count_terms_runs_the_waiting_work_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sentiment_cli.features as features

    monkeypatch.setattr(features, "PARALLEL_MIN_ROWS", 10)
    texts = [f"text number {i}" for i in range(40)]
    calls: list[int] = []
    for jobs in (1, 2):
        counts = features.count_terms(texts, VectorizerOptions(), jobs=jobs,
                                      while_waiting=lambda jobs=jobs: calls.append(jobs))
        assert counts.counts.shape[0] == 40
    assert calls == [1, 2]


def _pid() -> int:
    return os.getpid()


def test_counters_started_before_reading_count_as_in_process(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sentiment_cli.features as features

    texts = [f"not good {i} !" if i % 3 else f"great film {i}" for i in range(300)]
    options = VectorizerOptions()
    alone = features.count_terms(texts, options)
    for min_rows in (10, 1000):  # two chunks merged, or one chunk in one worker
        monkeypatch.setattr(features, "PARALLEL_MIN_ROWS", min_rows)
        with features.Counters(2) as counters:
            pooled = features.count_terms(texts, options, jobs=2, counters=counters)
            with pytest.raises(DataError, match="vocabulary is empty"):
                features.count_terms(["the", "and"], VectorizerOptions(stop_words="english"),
                                     counters=counters)
            assert counters.run(_pid) != os.getpid()  # in the process with scikit-learn
        assert pooled.terms == alone.terms
        assert (pooled.counts != alone.counts).nnz == 0
