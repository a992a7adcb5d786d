from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentiment_cli.config import VectorizerConfig
from sentiment_cli.errors import DataError
from sentiment_cli.features import (
    TermCounter,
    build_vectorizer,
    count_terms,
    english_stop_words,
    fit_vectorizer,
    raw_counts,
    vectorizer_from_json,
    vectorizer_to_json,
)
from sentiment_cli.options import check_fields
from sentiment_cli.tokens import SKLEARN_TOKEN_PATTERN
from tests.conftest import SAMPLE, SHARED_DATA


def tokens(text: str) -> list[str]:
    return build_vectorizer(VectorizerConfig(ngram_range=(1, 1))).build_analyzer()(text)


def test_default_tokenizer_keeps_negations_exclamations_and_single_letters() -> None:
    assert tokens("I don't like it!") == ["i", "don't", "like", "it", "!"]
    assert tokens("does n't work ?") == ["does", "n't", "work", "?"]
    assert "a" in tokens("a 5 star hotel")


def test_look_alike_apostrophes_read_as_one_unless_turned_off() -> None:
    curly = "I DON\u2019T like it, it\u02bcs Bob\u00b4s"
    assert tokens(curly) == tokens("I don't like it, it's Bob's")
    assert tokens("isn`t it") == tokens("isn't it")  # the ASCII one
    kept = build_vectorizer(VectorizerConfig(ngram_range=(1, 1), fold_apostrophes=False,
                                             lowercase=False)).build_analyzer()(curly)
    assert kept[:3] == ["I", "DON", "T"]  # as scikit-learn splits them
    cased = build_vectorizer(VectorizerConfig(ngram_range=(1, 1), lowercase=False))
    assert cased.build_analyzer()(curly)[:2] == ["I", "DON'T"]


def test_a_folder_written_before_apostrophe_folding_keeps_its_tokens() -> None:
    fitted, _ = fit_vectorizer(["don't stop", "i won't"], VectorizerConfig())
    payload = vectorizer_to_json(VectorizerConfig(), list(fitted.get_feature_names_out()))
    assert payload["params"]["fold_apostrophes"] is True
    older = {**payload, "params": {k: v for k, v in payload["params"].items()
                                   if k != "fold_apostrophes"}}
    curly = ["don\u2019t stop"]
    assert vectorizer_from_json(payload).transform(curly)[0, 0] == 1  # "don't"
    assert vectorizer_from_json(older).transform(curly).sum() == 1  # "stop" alone


def test_english_stop_words_keep_negations() -> None:
    stop = set(english_stop_words())
    assert "the" in stop
    assert not {"not", "no", "nor", "never"} & stop


def test_json_round_trip_transforms_identically() -> None:
    texts = ["not good at all!", "really great movie", "great, not bad", "the worst ?"]
    options = VectorizerConfig(stop_words="english", ngram_range=(1, 2))
    vectorizer, matrix = fit_vectorizer(texts, options)
    terms = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.__getitem__)
    payload = json.loads(json.dumps(vectorizer_to_json(options, terms)))
    loaded = vectorizer_from_json(payload)
    assert (build_vectorizer(options).fit(texts).transform(texts) != matrix).nnz == 0
    new = ["great not bad", "unknown words only", ""]
    assert (loaded.transform(new) != vectorizer.transform(new)).nnz == 0
    assert (loaded.transform(texts) != matrix).nnz == 0
    assert matrix.dtype == np.float32


def test_empty_vocabulary_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="vocabulary is empty"):
        fit_vectorizer(["the the", "and of"], VectorizerConfig(stop_words="english"))
    with pytest.raises(DataError, match="min-df"):
        fit_vectorizer(["a b", "c d"], VectorizerConfig(min_df=5))


def test_min_df_counts_documents_and_max_df_one_means_all() -> None:
    options = VectorizerConfig(ngram_range=(1, 1), min_df=2, max_df=1.0)
    vectorizer, _ = fit_vectorizer(["good film", "good book", "bad"], options)
    assert set(vectorizer.vocabulary_) == {"good"}


def test_invalid_options_name_the_flag() -> None:
    with pytest.raises(DataError, match="--ngram-range"):
        check_fields(VectorizerConfig(ngram_range=(2, 1)))
    with pytest.raises(DataError, match="--stop-words"):
        check_fields(VectorizerConfig(stop_words="french"))


@pytest.mark.parametrize(
    "options",
    [VectorizerConfig(), VectorizerConfig(min_df=2, max_df=0.3, binary=False),
     VectorizerConfig(max_features=300, ngram_range=(1, 3)),
     VectorizerConfig(stop_words="english", binary=True, max_features=50, min_df=0.001)],
)
def test_fit_equals_scikit_learn(options: VectorizerConfig) -> None:
    import random

    import sentiment_cli.features as features

    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)] + ["not", "good", "!", "don't", "the"]
    texts = [" ".join(rng.choices(words, k=rng.randint(0, 12))) for _ in range(3000)]
    reference = build_vectorizer(options)
    x_reference = reference.fit_transform(texts)
    fitted, matrix = fit_vectorizer(texts, options)
    assert fitted.vocabulary_ == reference.vocabulary_
    assert matrix.shape == x_reference.shape and (matrix != x_reference).nnz == 0
    assert matrix.dtype == np.float32 and matrix.has_sorted_indices
    assert (fitted.transform(texts[:50]) != x_reference[:50]).nnz == 0

    # Tokenising every row once, then fitting on a subset of rows, is scikit-learn's fit on
    # those rows plus transform of the others (terms only in the others are not kept).
    train_rows = np.array(sorted(rng.sample(range(len(texts)), 2000)))
    other_rows = np.setdiff1d(np.arange(len(texts)), train_rows)
    texts[int(other_rows[0])] = "zzonlyinvalidation w1"
    reference = build_vectorizer(options)
    x_train = reference.fit_transform([texts[i] for i in train_rows])
    x_other = reference.transform([texts[i] for i in other_rows])
    counts = features.count_terms(texts, options)
    terms, columns = features.fit_counts(counts, options, train_rows)
    assert terms == sorted(reference.vocabulary_, key=reference.vocabulary_.__getitem__)
    assert "zzonlyinvalidation" not in terms
    for rows, expected in ((train_rows, x_train), (other_rows, x_other)):
        got = features.select(counts, rows, columns, options.binary)
        assert got.shape == expected.shape and (got != expected).nnz == 0


def test_counting_in_runs_equals_counting_at_once() -> None:
    """The training counts a large file in runs of rows (for its progress bar): the merged
    counts are the counts of all the texts at once, term for term and row for row, also when a
    run has no token at all or terms no other run has."""
    texts = ["good film", "a bad film", "!!", "zebra crossing film", "", "not good at all",
             "film film film", "bad"]
    options = VectorizerConfig(ngram_range=(1, 2))
    whole = count_terms(texts, options)
    runs = [texts[0:3], texts[3:5], texts[5:6], texts[6:8]]
    counter = TermCounter()
    for run in runs:
        counter.add(raw_counts(run, options))
    merged = counter.counts()
    assert merged.terms == whole.terms
    assert merged.counts.shape == whole.counts.shape
    assert (merged.counts != whole.counts).nnz == 0
    assert merged.counts.dtype == whole.counts.dtype
    with pytest.raises(DataError, match="vocabulary is empty"):
        count_terms(["", " "], options)


# Option sets that change each step of the analyzer: preprocessing (lowercase, apostrophes),
# the token pattern (both built-in ones and a custom one), stop words, n-grams, counts.
ANALYZERS = [
    VectorizerConfig(),
    VectorizerConfig(lowercase=False, fold_apostrophes=False, binary=False),
    VectorizerConfig(token_pattern=SKLEARN_TOKEN_PATTERN, ngram_range=(2, 3)),
    VectorizerConfig(stop_words="english", ngram_range=(1, 3), fold_apostrophes=False),
    VectorizerConfig(token_pattern=r"[a-z]+|(!)", ngram_range=(1, 1), binary=False),
]


def _ours_and_scikit_learns(options: VectorizerConfig, texts: list[str]) -> tuple[Any, Any]:
    reference = build_vectorizer(options).fit(texts)
    terms = list(reference.get_feature_names_out())
    payload = json.loads(json.dumps(vectorizer_to_json(options, terms)))
    return vectorizer_from_json(payload), reference


def _real_texts() -> tuple[list[str], list[str]]:
    """rt_polarity when ../shared is there (its latin-1 accents, contractions split as
    "does n't"), else the bundled sample; trained on one part, scored on the other."""
    path = SHARED_DATA / "rt_polarity.csv"
    texts = pd.read_csv(path if path.exists() else SAMPLE)["review"].astype(str).tolist()
    return texts[::4], texts[1::8]  # both classes (rt_polarity lists its positives first)


@pytest.mark.parametrize("options", ANALYZERS, ids=range(len(ANALYZERS)))
def test_the_vectorizer_transforms_real_texts_as_scikit_learn_does(
        options: VectorizerConfig) -> None:
    """Prediction applies the fitted vocabulary without scikit-learn (:class:`Vectorizer`):
    the same terms from every text and the same matrix, on texts it was not fitted on."""
    fitted_on, scored = _real_texts()
    ours, reference = _ours_and_scikit_learns(options, fitted_on)
    analyze = reference.build_analyzer()
    assert all(ours.analyze(text) == analyze(text) for text in scored)
    got, expected = ours.transform(scored), reference.transform(scored)
    assert got.shape == expected.shape and (got != expected).nnz == 0
    assert got.dtype == np.float32 and got.has_sorted_indices
    assert list(ours.get_feature_names_out()) == list(reference.get_feature_names_out())
    copy = pickle.loads(pickle.dumps(ours))  # as prediction workers get it
    assert (copy.transform(scored[:100]) != expected[:100]).nnz == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
                min_size=1, max_size=8))
def test_the_vectorizer_analyzes_any_text_as_scikit_learn_does(texts: list[str]) -> None:
    words = ["don't", "DON\u2019T", "not", "good", "the", "a", "!", "?", "\u00e9t\u00e9", "n't"]
    fitted_on = [" ".join(words), *texts]
    for options in ANALYZERS:
        ours, reference = _ours_and_scikit_learns(options, fitted_on)
        analyze = reference.build_analyzer()
        assert [ours.analyze(t) for t in texts] == [analyze(t) for t in texts]
        assert (ours.transform(texts) != reference.transform(texts)).nnz == 0
