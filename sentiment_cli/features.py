"""The bag-of-words features: scikit-learn's CountVectorizer, built from options, stored as JSON.

The vectorizer is saved as its parameters plus the vocabulary in index order (plain JSON), never
pickled, so loading a model folder cannot run code.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sentiment_cli.errors import BundleError, DataError, SentimentError, damaged
from sentiment_cli.options import MAX_NGRAM, finite
from sentiment_cli.workers import Helper, available_cores

if TYPE_CHECKING:
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer

T = TypeVar("T")

# scikit-learn's default pattern, r"(?u)\b\w\w+\b", drops one-letter words, "!" and "?", and cuts
# "don't" into "don". For sentiment those matter, so the default keeps contractions whole
# ("don't", "isn't"), the split negation of tokenised corpora ("does n't"), single letters, and
# "!"/"?" as tokens of their own. README ("Choosing the defaults") has the measurements.
SENTIMENT_TOKEN_PATTERN = r"(?u)\w+(?:'\w+)*|'\w+|[!?]"
SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
# Linear-time patterns, tokenised by scikit-learn's own ``re`` tokenizer; any other pattern goes
# through BoundedTokenizer.
BUILTIN_PATTERNS = frozenset({SENTIMENT_TOKEN_PATTERN, SKLEARN_TOKEN_PATTERN})

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
        if lo < 1 or hi < lo or hi > MAX_NGRAM:
            raise DataError(f"--ngram-range must be MIN,MAX with 1 <= MIN <= MAX <= {MAX_NGRAM}, "
                            f"got {lo},{hi}")
        for name, value in (("--min-df", self.min_df), ("--max-df", self.max_df)):
            if not finite(value) or value < 0 or (
                    isinstance(value, float) and value > 1.0 and not value.is_integer()):
                raise DataError(
                    f"{name} must be a fraction in [0, 1] or a whole document count, got {value}"
                )
        low = _df_value(self.min_df, whole_at_one=True)
        high = _df_value(self.max_df, whole_at_one=False)
        if high == 0 or (type(low) is type(high) and high < low):
            raise DataError(f"--max-df {self.max_df:g} keeps fewer documents than --min-df "
                            f"{self.min_df:g} needs, so no term could be kept; lower --min-df "
                            f"or raise --max-df")
        if not self.token_pattern:
            raise DataError("--token-pattern must not be empty (leave it out for the default)")
        if self.max_features is not None and self.max_features < 1:
            raise DataError(f"--max-features must be at least 1, got {self.max_features}")
        if self.stop_words not in (None, "english"):
            raise DataError(f"--stop-words accepts 'english' or 'none', got {self.stop_words!r}")
        if self.token_pattern not in BUILTIN_PATTERNS:
            BoundedTokenizer(self.token_pattern)  # a bad pattern fails here, before any reading


# A custom pattern gets this long per text (plus a microsecond per character, so a long review
# is never cut off by a linear pattern), and all its texts together twice that plus 10 us per
# character: far more than any linear pattern needs (under 1 us per character), far less than
# anyone would wait for a pattern that backtracks catastrophically, even on many short texts.
SECONDS_PER_TEXT = 1.0
_SECONDS_PER_CHAR_IN_ALL = 10e-6
_PROBES = ("a" * 3000 + "!", "1" * 3000 + "\x00", " " * 3000 + "a", "ab " * 1000 + "!",
           "a-" * 1500 + "!", "\u00e9" * 3000 + "?", "aA1_" * 750 + " ")


class BoundedTokenizer:
    """A custom token pattern's ``findall`` with a time limit per text.

    Python's ``re`` cannot be interrupted: a pattern with catastrophic backtracking (typed by
    mistake, or in a model folder from someone else) would hang on the first text that triggers
    it. The ``regex`` module (a superset of ``re``'s syntax) takes a ``timeout``, and avoids
    most such backtracking in the first place. ``folder``: the model folder the pattern comes
    from (errors then call it damaged), or None for ``--token-pattern``.
    """

    def __init__(self, pattern: str, folder: Path | None = None) -> None:
        import regex

        self.pattern, self.folder = pattern, folder
        self._spent, self._chars = 0.0, 0  # seconds and characters tokenised so far
        try:
            self._compiled = regex.compile(pattern)
        except (regex.error, ValueError, OverflowError, RecursionError) as err:
            raise self._error(f"is not a valid regular expression ({err})", "fix it") from None
        if self._compiled.groups > 1:
            raise self._error(f"has {self._compiled.groups} capturing groups",
                              "a token pattern may have one at most (use (?:...) for the others)")

    def _error(self, problem: str, fix: str) -> SentimentError:
        if self.folder is None:
            return DataError(f"--token-pattern {self.pattern!r} {problem}; {fix}")
        return damaged(self.folder, f"its token_pattern {self.pattern!r:.80} {problem}")

    def _too_slow(self, limit: float) -> SentimentError:
        self._spent = math.inf  # every later text fails at once (scikit-learn swallows some)
        return self._error(f"took more than {limit:.2f} s on one text, or too long on all of "
                           f"them: it backtracks catastrophically", "simplify the pattern")

    def __call__(self, text: str) -> list[str]:
        self._chars += len(text)
        left = 2 * SECONDS_PER_TEXT + _SECONDS_PER_CHAR_IN_ALL * self._chars - self._spent
        limit = min(SECONDS_PER_TEXT + len(text) * 1e-6, left)
        if limit <= 0:
            raise self._too_slow(SECONDS_PER_TEXT)
        started = time.perf_counter()
        try:
            tokens = self._compiled.findall(text, timeout=limit)
        except TimeoutError:
            raise self._too_slow(SECONDS_PER_TEXT) from None
        self._spent += time.perf_counter() - started
        return tokens

    def vet(self, limit: float = 0.25) -> None:
        """Refuse a pattern that is slow on a few texts known to trigger backtracking."""
        for probe in _PROBES:
            try:
                self._compiled.findall(probe, timeout=limit)
            except TimeoutError:
                raise self._too_slow(limit) from None

    def __reduce__(self) -> tuple[Any, ...]:  # workers get the pattern, not a compiled object
        return BoundedTokenizer, (self.pattern, self.folder)


def _df_value(value: float, whole_at_one: bool) -> float | int:
    """CountVectorizer reads an int as a document count and a float as a proportion.

    From the command line both arrive as floats: --min-df 1 or 2 means a count of documents,
    while --max-df 1.0 means "all documents" (a proportion); above 1 it is a count.
    """
    if float(value).is_integer() and (value > 1 or (value == 1 and whole_at_one)):
        return int(value)
    return float(value)


def _tokenizing(pattern: str, folder: Path | None = None) -> dict[str, Any]:
    """CountVectorizer's tokenizer arguments for a pattern: its own for the built-in ones, a
    :class:`BoundedTokenizer` (vetted, when it comes from a model folder) for any other."""
    if pattern in BUILTIN_PATTERNS:
        return {"token_pattern": pattern}
    tokenizer = BoundedTokenizer(pattern, folder)
    if folder is not None:
        tokenizer.vet()
    return {"token_pattern": None, "tokenizer": tokenizer}


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
        dtype=np.float32,
        **_tokenizing(options.token_pattern),
    )


_EMPTY_VOCABULARY = (
    "the vocabulary is empty: every token was dropped (all stop words, or --min-df too high / "
    "--max-df too low for this data); relax --min-df/--max-df or drop --stop-words"
)
# Below this many rows one process tokenises. A second one first imports scikit-learn (0.7 s of
# CPU) and its chunk is merged afterwards: on 2 cores, SST-2 repeated 1x-3x (67k-202k rows) was
# tokenised as fast or faster by one process, 5x (337k) 20% faster by two.
PARALLEL_MIN_ROWS = 250_000


@dataclass
class TermCounts:
    """Every text tokenised once: raw counts over all of their terms (sorted), before pruning."""

    terms: list[str]
    counts: sp.csr_matrix  # rows x len(terms), float32 counts


class Counters:
    """Forked processes that tokenise for :func:`count_terms` (``counters=``) and run other
    scikit-learn work (:meth:`run`); leaving the ``with`` block ends them.

    Started before the data is read, the first imports scikit-learn (about 0.7 s) while this
    process reads the file, then tokenises while this one imports torch, so the trainer itself
    does not import scikit-learn (only ``--stop-words english`` loads its list there). The
    others import it only when given a chunk of a large input: on two cores, two processes
    importing it next to this one's read and torch import were slower than one.
    """

    def __init__(self, jobs: int) -> None:
        self.helpers = [Helper(_import_vectorizer)] + [Helper() for _ in range(jobs - 1)]

    def run(self, task: Callable[..., T], /, **kwargs: Any) -> T:
        """``task(**kwargs)`` in the process that has scikit-learn loaded."""
        return self.helpers[0].run(task, **kwargs)

    def __enter__(self) -> Counters:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for helper in self.helpers:
            helper.close()


def start_counters() -> Counters | None:
    """One tokenising helper per core this process may use; none on a single core."""
    cores = available_cores()
    return Counters(cores) if cores > 1 else None


def _import_vectorizer() -> None:
    from sklearn.feature_extraction.text import CountVectorizer  # noqa: F401


def count_terms(
    texts: Sequence[str],
    options: VectorizerOptions,
    jobs: int = 1,
    while_waiting: Callable[[], object] | None = None,
    counters: Counters | None = None,
) -> TermCounts:
    """Tokenise ``texts`` with the options' analyzer and count every term (no pruning yet).

    Tokenising (pure Python, most of the cost) runs in ``counters``, or, with ``jobs`` > 1 and
    enough rows, in that many processes forked for it. With enough rows the texts are cut into
    contiguous chunks, one per process, whose vocabularies are then merged. ``while_waiting``
    runs in this process meanwhile (the trainer imports torch there).
    """
    if counters is None and jobs > 1 and len(texts) >= PARALLEL_MIN_ROWS:
        with Counters(jobs) as own:
            return count_terms(texts, options, jobs, while_waiting, own)
    if counters is None:
        parts = [_count_chunk(options, texts)]
        if while_waiting is not None:
            while_waiting()
        return _merge(parts)
    helpers = counters.helpers if len(texts) >= PARALLEL_MIN_ROWS else counters.helpers[:1]
    size = -(-len(texts) // len(helpers))
    for i, helper in enumerate(helpers):
        helper.submit(_count_chunk, options=options, texts=texts[i * size : (i + 1) * size])
    if while_waiting is not None:
        while_waiting()
    return _merge([helper.result() for helper in helpers])


def fit_counts(
    counts: TermCounts, options: VectorizerOptions, rows: np.ndarray | None = None
) -> tuple[list[str], np.ndarray]:
    """The vocabulary scikit-learn's ``fit`` on just those rows (all if None) would give, in
    column order, and the columns of ``counts`` it keeps: the same terms, min_df/max_df/
    max_features pruning and order (tested equal). Selecting the training rows after tokenising
    every row once gives a validation matrix equal to ``transform`` of the validation texts."""
    options.validate()
    part = counts.counts if rows is None else counts.counts[rows]
    try:
        keep = _pruning_mask(part, options)
    except ValueError as err:
        if "no terms remain" in str(err):
            raise DataError(_EMPTY_VOCABULARY) from None
        raise DataError(
            "--max-df keeps fewer documents than --min-df requires; lower --min-df or raise "
            "--max-df"
        ) from None
    columns = np.flatnonzero(keep)
    return [counts.terms[c] for c in columns], columns


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
    terms, columns = fit_counts(counts, options)
    vectorizer = vectorizer_from_json(vectorizer_to_json(options, terms))
    return vectorizer, select(counts, None, columns, options.binary)


def _counting_vectorizer(options: VectorizerOptions) -> CountVectorizer:
    """The options' analyzer, counting every term: pruning is done afterwards, per row subset."""
    return build_vectorizer(options).set_params(min_df=1, max_df=1.0, max_features=None,
                                                 binary=False)


def _count_chunk(options: VectorizerOptions,
                 texts: Sequence[str]) -> tuple[list[str], sp.csr_matrix]:
    """Raw counts of ``texts`` over their own sorted terms ([] when no text has a token)."""
    import scipy.sparse as sp

    local = _counting_vectorizer(options)
    try:
        counts = local.fit_transform(texts).tocsr()
    except ValueError as err:
        if "empty vocabulary" in str(err):
            return [], sp.csr_matrix((len(texts), 0), dtype=np.float32)
        raise DataError(f"vectorizer options rejected: {err}") from None
    terms = [""] * len(local.vocabulary_)
    for term, column in local.vocabulary_.items():
        terms[column] = term
    return terms, counts


def _merge(parts: list[tuple[list[str], sp.csr_matrix]]) -> TermCounts:
    """One count matrix over the sorted union of the chunks' terms, rows in chunk order."""
    import scipy.sparse as sp

    terms = sorted(set().union(*(chunk_terms for chunk_terms, _ in parts)))
    if not terms:
        raise DataError(_EMPTY_VOCABULARY)
    if len(parts) == 1:
        return TermCounts(terms, parts[0][1])
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


def _pruning_mask(matrix: sp.csr_matrix, options: VectorizerOptions) -> np.ndarray:
    """The terms scikit-learn's fit keeps under min_df, max_df and max_features (same rules,
    same tie order); terms absent from these rows are never kept."""
    from numbers import Integral

    n_docs = matrix.shape[0]
    max_df = _df_value(options.max_df, whole_at_one=False)
    min_df = _df_value(options.min_df, whole_at_one=True)
    high = max_df if isinstance(max_df, Integral) else max_df * n_docs
    low = min_df if isinstance(min_df, Integral) else min_df * n_docs
    if high < low:
        raise ValueError("max_df corresponds to < documents than min_df")
    dfs = np.bincount(matrix.indices, minlength=matrix.shape[1])
    mask = (dfs <= high) & (dfs >= low) & (dfs > 0)
    limit = options.max_features
    if limit is not None and mask.sum() > limit:
        if options.binary:  # scikit-learn counts presence here when binary
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


def vectorizer_to_json(options: VectorizerOptions, terms: Sequence[str]) -> dict[str, Any]:
    """Parameters and the vocabulary in column order: everything ``transform`` needs."""
    params = asdict(options)
    params["ngram_range"] = list(options.ngram_range)
    params["stop_word_list"] = english_stop_words() if options.stop_words == "english" else None
    return {"params": params, "terms": list(terms)}


def vectorizer_from_json(payload: dict[str, Any], folder: Path | None = None) -> CountVectorizer:
    """The fitted vectorizer of :func:`vectorizer_to_json`'s payload. ``folder``: the model
    folder it comes from (its token pattern is then vetted, and errors call it damaged)."""
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
            vocabulary=vocabulary,
            dtype=np.float32,
            **_tokenizing(str(params["token_pattern"]), folder),
        )
        # Validate once now, so a broken vocabulary fails at load time, not mid-stream.
        vectorizer._validate_vocabulary()
    except (KeyError, TypeError, ValueError) as err:
        if folder is not None:
            raise damaged(folder, f"vocabulary.json: {err}") from None
        raise BundleError(f"the vocabulary file is malformed ({err})") from None
    return vectorizer


def transform(vectorizer: CountVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    return vectorizer.transform(texts).tocsr()
