"""Token patterns: the two built-in ones (linear time, tokenised by scikit-learn's own ``re``
tokenizer), and :class:`BoundedTokenizer` for any other, with a time limit per text."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from sentiment_cli.errors import DataError, SentimentError, damaged

# Words with inner apostrophes (don't, it's), and ! and ? as tokens of their own.
SENTIMENT_TOKEN_PATTERN = r"(?u)\w+(?:'\w+)*|'\w+|[!?]"
SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default

# Apostrophes typed as other characters by phones, word processors and keyboards: the right and
# left single quotation marks, the modifier letter apostrophe, the prime, the acute and grave
# accents and the fullwidth apostrophe. Read as ' (--fold-apostrophes), don(U+2019)t is don't.
_APOSTROPHES = str.maketrans(dict.fromkeys("\u2019\u2018\u02bc\u2032\u00b4\u0060\uff07", "'"))


class Preprocessor:
    """CountVectorizer's preprocessor with apostrophes folded to ', then lowercased as asked
    (a preprocessor replaces scikit-learn's lowercasing). A class, not a closure, so that a
    vectorizer with it pickles into prediction workers."""

    def __init__(self, lowercase: bool) -> None:
        self.lowercase = lowercase

    def __call__(self, text: str) -> str:
        if not text.isascii() or "`" in text:  # the grave accent is the one ASCII among them
            text = text.translate(_APOSTROPHES)
        return text.lower() if self.lowercase else text


# Linear-time patterns, tokenised by scikit-learn's own ``re`` tokenizer; any other pattern goes
# through BoundedTokenizer.
BUILTIN_PATTERNS = frozenset({SENTIMENT_TOKEN_PATTERN, SKLEARN_TOKEN_PATTERN})

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
