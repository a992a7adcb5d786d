"""The bag-of-words features: scikit-learn's CountVectorizer, built from options, stored as JSON.

The vectorizer is saved as its parameters plus the vocabulary in index order (plain JSON), never
pickled, so loading a model folder cannot run code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BundleError, DataError
from .workers import fork_context, quiet_signals

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

# scikit-learn's default pattern, r"(?u)\b\w\w+\b", drops one-letter words, "!" and "?", and cuts
# "don't" into "don". For sentiment those matter, so the default keeps contractions whole
# ("don't", "isn't"), the split negation of tokenised corpora ("does n't"), single letters, and
# "!"/"?" as tokens of their own. README ("Choosing the defaults") has the measurements.
SENTIMENT_TOKEN_PATTERN = r"(?u)\w+(?:'\w+)*|'\w+|[!?]"
SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"

# Negations that scikit-learn's English stop list would remove: "not good" must not become "good".
NEGATIONS = frozenset(
    {"no", "not", "nor", "never", "none", "nothing", "nobody", "nowhere", "neither", "cannot",
     "cant", "n't", "without"}
)


def english_stop_words() -> list[str]:
    """scikit-learn's English stop words without the negations."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return sorted(ENGLISH_STOP_WORDS - NEGATIONS)


@dataclass
class VectorizerOptions:
    """CountVectorizer parameters the CLI exposes; the defaults were measured (see README)."""

    ngram_range: tuple[int, int] = (1, 2)
    min_df: float = 1
    max_df: float = 1.0
    max_features: int | None = None
    binary: bool = True
    lowercase: bool = True
    stop_words: str | None = None  # None or "english" (negations kept)
    token_pattern: str = SENTIMENT_TOKEN_PATTERN

    def validate(self) -> None:
        lo, hi = self.ngram_range
        if lo < 1 or hi < lo:
            raise DataError(f"--ngram-range must be MIN,MAX with 1 <= MIN <= MAX, got {lo},{hi}")
        for name, value in (("--min-df", self.min_df), ("--max-df", self.max_df)):
            if value < 0 or (isinstance(value, float) and value > 1.0 and not value.is_integer()):
                raise DataError(
                    f"{name} must be a fraction in [0, 1] or a whole document count, got {value}"
                )
        if self.max_features is not None and self.max_features < 1:
            raise DataError(f"--max-features must be at least 1, got {self.max_features}")
        if self.stop_words not in (None, "english"):
            raise DataError(f"--stop-words accepts 'english' or 'none', got {self.stop_words!r}")


def _df_value(value: float, whole_at_one: bool) -> float | int:
    """CountVectorizer reads an int as a document count and a float as a proportion.

    From the command line both arrive as floats: --min-df 1 or 2 means a count of documents,
    while --max-df 1.0 means "all documents" (a proportion); above 1 it is a count.
    """
    if float(value).is_integer() and (value > 1 or (value == 1 and whole_at_one)):
        return int(value)
    return float(value)


def build_vectorizer(options: VectorizerOptions) -> CountVectorizer:
    from sklearn.feature_extraction.text import CountVectorizer

    options.validate()
    return CountVectorizer(
        ngram_range=tuple(options.ngram_range),
        min_df=_df_value(options.min_df, whole_at_one=True),
        max_df=_df_value(options.max_df, whole_at_one=False),
        max_features=options.max_features,
        binary=options.binary,
        lowercase=options.lowercase,
        stop_words=english_stop_words() if options.stop_words == "english" else None,
        token_pattern=options.token_pattern,
        dtype=np.float32,
    )


_EMPTY_VOCABULARY = (
    "the vocabulary is empty: every token was dropped (all stop words, or --min-df too high / "
    "--max-df too low for this data); relax --min-df/--max-df or drop --stop-words"
)
PARALLEL_MIN_ROWS = 20_000  # below this, starting worker processes costs more than it saves
# Set before forking and inherited by the workers, so the texts are never pickled.
_CHUNKS: list[Sequence[str]] = []
_LOCAL_TEMPLATE: Any = None


@dataclass
class TermCounts:
    """Every text tokenised once: raw counts over all of their terms (sorted), before pruning."""

    terms: list[str]
    counts: sp.csr_matrix  # rows x len(terms), float32 counts


def count_terms(
    texts: Sequence[str],
    options: VectorizerOptions,
    jobs: int = 1,
    while_waiting: Callable[[], object] | None = None,
) -> TermCounts:
    """Tokenise ``texts`` with the options' analyzer and count every term (no pruning yet).

    With ``jobs`` > 1 and enough rows, tokenising (pure Python, most of the cost) runs in that
    many forked processes on contiguous chunks, whose vocabularies are then merged.
    ``while_waiting`` runs in this process while they work (the trainer imports torch there).
    """
    local = _counting_vectorizer(options)
    if jobs > 1 and len(texts) >= PARALLEL_MIN_ROWS and (context := fork_context()) is not None:
        return _parallel_counts(local, texts, jobs, context, while_waiting)
    try:
        counts = local.fit_transform(texts).tocsr()
    except ValueError as err:
        if "empty vocabulary" in str(err):
            raise DataError(_EMPTY_VOCABULARY) from None
        raise DataError(f"vectorizer options rejected: {err}") from None
    if while_waiting is not None:
        while_waiting()
    return TermCounts(_terms_in_order(local.vocabulary_), counts)


def fit_counts(
    counts: TermCounts, options: VectorizerOptions, rows: np.ndarray | None = None
) -> tuple[CountVectorizer, np.ndarray]:
    """The vectorizer scikit-learn's ``fit`` on just those rows (all if None) would give, and
    the columns of ``counts`` it keeps: the same terms, min_df/max_df/max_features pruning and
    order (tested equal). Selecting the training rows after tokenising every row once gives a
    validation matrix equal to ``transform`` of the validation texts."""
    vectorizer = build_vectorizer(options)
    part = counts.counts if rows is None else counts.counts[rows]
    try:
        keep = _pruning_mask(part, vectorizer)
    except ValueError as err:
        if "no terms remain" in str(err):
            raise DataError(_EMPTY_VOCABULARY) from None
        raise DataError(
            "--max-df keeps fewer documents than --min-df requires; lower --min-df or raise "
            "--max-df"
        ) from None
    columns = np.flatnonzero(keep)
    vectorizer.vocabulary_ = {counts.terms[c]: new for new, c in enumerate(columns)}
    # Stop words pruned by min_df/max_df are kept by scikit-learn for inspection only; they can be
    # large and are not needed for transform.
    vectorizer.stop_words_ = None
    return vectorizer, columns


def select(counts: TermCounts, rows: np.ndarray | None, columns: np.ndarray,
           binary: bool) -> sp.csr_matrix:
    """Rows of ``counts`` restricted to a fitted vocabulary's columns, as the vectorizer gives."""
    part = counts.counts if rows is None else counts.counts[rows]
    matrix = part[:, columns].tocsr()
    matrix.sort_indices()
    if binary:
        matrix.data.fill(1)
    return matrix


def fit_vectorizer(
    texts: Sequence[str], options: VectorizerOptions, jobs: int = 1
) -> tuple[CountVectorizer, sp.csr_matrix]:
    """Fit the vocabulary on ``texts`` and return the vectorizer and their CSR matrix, as
    scikit-learn's ``fit_transform`` does (tested equal), with ``jobs`` tokenising processes."""
    counts = count_terms(texts, options, jobs)
    vectorizer, columns = fit_counts(counts, options)
    return vectorizer, select(counts, None, columns, options.binary)


def _counting_vectorizer(options: VectorizerOptions) -> CountVectorizer:
    """The options' analyzer, counting every term: pruning is done afterwards, per row subset."""
    return build_vectorizer(options).set_params(min_df=1, max_df=1.0, max_features=None,
                                                 binary=False)


def _terms_in_order(vocabulary: dict[str, int]) -> list[str]:
    terms = [""] * len(vocabulary)
    for term, column in vocabulary.items():
        terms[column] = term
    return terms


def _count_chunk(index: int) -> tuple[list[str], sp.csr_matrix]:
    """Raw counts of one chunk with its own vocabulary, in a forked worker."""
    import scipy.sparse as sp

    local = _LOCAL_TEMPLATE
    try:
        counts = local.fit_transform(_CHUNKS[index])
    except ValueError:  # a chunk with no token at all
        return [], sp.csr_matrix((len(_CHUNKS[index]), 0), dtype=np.float32)
    return _terms_in_order(local.vocabulary_), counts.tocsr()


def _parallel_counts(
    local: CountVectorizer,
    texts: Sequence[str],
    jobs: int,
    context: BaseContext,
    while_waiting: Callable[[], object] | None,
) -> TermCounts:
    import scipy.sparse as sp

    global _CHUNKS, _LOCAL_TEMPLATE

    _LOCAL_TEMPLATE = local
    size = -(-len(texts) // jobs)
    _CHUNKS = [texts[i : i + size] for i in range(0, len(texts), size)]
    try:
        with context.Pool(len(_CHUNKS), initializer=quiet_signals) as pool:
            pending = pool.map_async(_count_chunk, range(len(_CHUNKS)))
            if while_waiting is not None:
                while_waiting()
            parts = pending.get()
    finally:
        _CHUNKS, _LOCAL_TEMPLATE = [], None
    terms = sorted(set().union(*(chunk_terms for chunk_terms, _ in parts)))
    if not terms:
        raise DataError(_EMPTY_VOCABULARY)
    position = {term: i for i, term in enumerate(terms)}
    blocks = []
    for chunk_terms, counts in parts:
        remap = np.fromiter((position[t] for t in chunk_terms), dtype=np.int64,
                            count=len(chunk_terms))
        block = sp.csr_matrix((counts.data, remap[counts.indices], counts.indptr),
                              shape=(counts.shape[0], len(terms)), dtype=np.float32)
        block.sort_indices()
        blocks.append(block)
    return TermCounts(terms, sp.vstack(blocks, format="csr"))


def _pruning_mask(matrix: sp.csr_matrix, vectorizer: CountVectorizer) -> np.ndarray:
    """The terms scikit-learn's fit keeps under min_df, max_df and max_features (same rules,
    same tie order); terms absent from these rows are never kept."""
    from numbers import Integral

    n_docs = matrix.shape[0]
    max_df, min_df = vectorizer.max_df, vectorizer.min_df
    high = max_df if isinstance(max_df, Integral) else max_df * n_docs
    low = min_df if isinstance(min_df, Integral) else min_df * n_docs
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    dfs = np.bincount(matrix.indices, minlength=matrix.shape[1])
    mask = (dfs <= high) & (dfs >= low) & (dfs > 0)
    limit = vectorizer.max_features
    if limit is not None and mask.sum() > limit:
        if vectorizer.binary:  # scikit-learn counts presence here when binary
            matrix = matrix.copy()
            matrix.data.fill(1)
        tfs = np.asarray(matrix.sum(axis=0)).ravel()
        chosen = (-tfs[mask]).argsort()[:limit]
        new_mask = np.zeros(len(dfs), dtype=bool)
        new_mask[np.flatnonzero(mask)[chosen]] = True
        mask = new_mask
    if not mask.any():
        raise ValueError("After pruning, no terms remain")
    return mask


def vectorizer_to_json(vectorizer: CountVectorizer, options: VectorizerOptions) -> dict[str, Any]:
    """Parameters and the vocabulary in column order: everything ``transform`` needs."""
    vocabulary = vectorizer.vocabulary_
    terms = [""] * len(vocabulary)
    for term, index in vocabulary.items():
        terms[index] = term
    params = asdict(options)
    params["ngram_range"] = list(options.ngram_range)
    stop = vectorizer.get_params()["stop_words"]
    params["stop_word_list"] = list(stop) if stop else None
    return {"params": params, "terms": terms}


def vectorizer_from_json(payload: dict[str, Any]) -> CountVectorizer:
    from sklearn.feature_extraction.text import CountVectorizer

    try:
        params = payload["params"]
        terms = payload["terms"]
        if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
            raise TypeError("terms must be a list of strings")
        vocabulary = {term: index for index, term in enumerate(terms)}
        if len(vocabulary) != len(terms):
            raise ValueError("the vocabulary repeats a term")
        vectorizer = CountVectorizer(
            ngram_range=tuple(params["ngram_range"]),
            binary=bool(params["binary"]),
            lowercase=bool(params["lowercase"]),
            stop_words=params.get("stop_word_list"),
            token_pattern=str(params["token_pattern"]),
            vocabulary=vocabulary,
            dtype=np.float32,
        )
        # Validate once now, so a broken vocabulary fails at load time, not mid-stream.
        vectorizer._validate_vocabulary()
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"the vocabulary file is malformed ({err})") from None
    return vectorizer


def transform(vectorizer: CountVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    return vectorizer.transform(texts).tocsr()
