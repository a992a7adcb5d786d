from __future__ import annotations

import json

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
    payload = json.loads(json.dumps(vectorizer_to_json(vectorizer, options)))
    loaded = vectorizer_from_json(payload)
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
    single, x_single = fit_vectorizer(texts, options, jobs=1)
    multi, x_multi = fit_vectorizer(texts, options, jobs=3)
    assert multi.vocabulary_ == single.vocabulary_
    assert x_multi.shape == x_single.shape and (x_multi != x_single).nnz == 0
    assert (transform(multi, texts[:50]) != x_single[:50]).nnz == 0
