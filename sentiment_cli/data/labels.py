"""Label values: spelling-insensitive keys, the pairs understood without help, and the mapping
of a label column to 0/1 with the user's own names kept."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from sentiment_cli.errors import DataError

# Pairs of label spellings understood without --positive-label: (negative, positive).
KNOWN_LABEL_PAIRS = (
    ("0", "1"),
    ("-1", "1"),
    ("false", "true"),
    ("no", "yes"),
    ("neg", "pos"),
    ("negative", "positive"),
)
_FLOAT_INT = re.compile(r"^[+-]?\d+\.0*$")
# The label keys of a binary task's (negative, positive) sides: one each, or several on a side
# ("--positive-label 4,5": stars 4 and 5 against 1, 2 and 3).
Pair = tuple[tuple[str, ...], tuple[str, ...]]


def canonical_label(value: str) -> str:
    """The spelling-insensitive key of a label: stripped, lower-cased, '1.0' read as '1'."""
    key = value.strip().lower()
    if _FLOAT_INT.match(key):
        key = str(int(float(key)))
    return key


def format_counts(counts: Counter[str], limit: int = 6) -> str:
    shown = [f"{value!r} ({n})" for value, n in counts.most_common(limit)]
    if len(counts) > limit:
        shown.append(f"... {len(counts) - limit} more")
    return ", ".join(shown)


def rows_text(mask: np.ndarray, limit: int = 5, offset: int = 0) -> str:
    """The rows ``mask`` marks, numbered from 1 (``offset``: rows of the file before them)."""
    rows = (np.flatnonzero(mask) + 1 + offset).tolist()
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def resolve_binary_labels(
    values: Sequence[str], positive_label: str | None, column: str, where: str,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Map label strings to 0/1; with ``classes`` (a model's [negative, positive] names), onto
    that model's classes (:func:`pair_for_model`).

    Returns (y, [negative name, positive name] as the file spells them, valid mask). Blank
    values and values outside the chosen pair are marked invalid; the caller decides whether
    that is an error.
    """
    # Work on the distinct values (two or three in a file of any length), in order of appearance.
    first_seen: dict[str, int] = {}
    codes = np.fromiter((first_seen.setdefault(v, len(first_seen)) for v in values),
                        dtype=np.int64, count=len(values))
    distinct = list(first_seen)
    occurrences = np.bincount(codes, minlength=len(distinct))
    seen = dict(zip(distinct, occurrences.tolist(), strict=True))
    pair, names = (binary_pair(seen, positive_label, column, where) if classes is None else
                   pair_for_model(seen, classes, positive_label, column, where))
    keys = [canonical_label(v) for v in distinct]
    is_negative = np.array([k in pair[0] for k in keys], dtype=bool)[codes]
    is_positive = np.array([k in pair[1] for k in keys], dtype=bool)[codes]
    return is_positive.astype(np.float32), names, is_negative | is_positive


def map_binary(values: Sequence[str], pair: Pair) -> tuple[np.ndarray, np.ndarray]:
    """0/1 targets and the valid mask of ``values`` under a pair chosen before
    (:func:`binary_pair`): how a file read in chunks maps each chunk alike."""
    keys = {v: canonical_label(v) for v in set(values)}
    y = np.fromiter((keys[v] in pair[1] for v in values), dtype=bool, count=len(values))
    negative = np.fromiter((keys[v] in pair[0] for v in values), dtype=bool, count=len(values))
    return y.astype(np.float32), y | negative


def _spellings(occurrences: dict[str, int]) -> tuple[
        Counter[str], dict[str, Counter[str]], Counter[str]]:
    """Of a label column's values (raw value -> rows): the rows of each non-blank key, the
    spellings of each key, and the rows of each key under its most common spelling."""
    counts: Counter[str] = Counter()
    spelled: dict[str, Counter[str]] = {}
    for raw, n in occurrences.items():
        key = canonical_label(raw)
        if key:
            counts[key] += n
            spelled.setdefault(key, Counter())[raw.strip()] += n
    shown = Counter({spelled[k].most_common(1)[0][0]: n for k, n in counts.items()})
    return counts, spelled, shown


def pair_for_model(occurrences: dict[str, int], classes: Sequence[str],
                   positive_label: str | None, column: str,
                   where: str) -> tuple[Pair, list[str]]:
    """The (negative, positive) keys of a labeled file scored by a model of ``classes`` (its
    [negative, positive] names), and their names as the file spells them.

    The file's value named by ``positive_label`` is the model's positive class and the other
    its negative (as in training); without it, the model's own two values in any spelling
    ('Positive', '1.0'), or else two values understood without help (0/1, no/yes, neg/pos...)
    when the model's are such a pair too: a negative/positive model scores a 0/1 file; or the
    values a model of several values per side was trained on ('1/2/3' and '4/5')."""
    if positive_label is not None:
        return binary_pair(occurrences, positive_label, column, where, extra_classes=True)
    counts, spelled, shown = _spellings(occurrences)
    model = (canonical_label(classes[0]), canonical_label(classes[1]))
    if not counts:
        raise DataError(f"{where}: the label column {column!r} is empty in every row")
    if set(model) <= set(counts):
        return ((model[0],), (model[1],)), [spelled[k].most_common(1)[0][0] for k in model]
    # a model of several values per side: each side present, no class of the file on neither
    sides = tuple(tuple(canonical_label(v) for v in name.split("/")) for name in classes[:2])
    strays = [k for k, n in counts.items()
              if k not in sides[0] + sides[1] and is_class(n, counts.total())]
    if len(sides[0]) + len(sides[1]) > 2 and all(set(side) & set(counts) for side in sides) and (
            not strays):
        present = [tuple(k for k in side if k in counts) for side in sides]
        return (sides[0], sides[1]), [_joined_name(keys, spelled) for keys in present]
    if model in KNOWN_LABEL_PAIRS and any(set(p) <= set(counts) for p in KNOWN_LABEL_PAIRS):
        return binary_pair(occurrences, None, column, where, extra_classes=True)
    raise DataError(
        f"{where}: column {column!r} holds {format_counts(shown)}, not the model's classes "
        f"{classes[0]!r} and {classes[1]!r}; pass --positive-label with the value (or "
        f"comma-separated values) that means {classes[1]!r}"
    )


MAX_CLASSES = 1000


def _class_order(key: str) -> tuple[int, float, str]:
    """Numbers in numeric order (stars 1 to 5, -1 0 1), then words alphabetically."""
    try:
        return 0, float(key), key
    except ValueError:
        return 1, 0.0, key


def multiclass_keys(occurrences: dict[str, int], every_value: bool = False, column: str = "",
                    where: str = "") -> list[str] | None:
    """The class keys of a label column (raw value -> rows) with three classes or more
    (:func:`is_class`), in order; None for fewer. ``every_value`` (--task multiclass): every
    non-blank value is a class, and fewer than three, or a class of one row, is an error."""
    counts, _, shown = _spellings(occurrences)
    if not every_value:
        keys = [k for k, n in counts.items() if is_class(n, counts.total())]
        return sorted(keys, key=_class_order) if len(keys) >= 3 else None
    if len(counts) < 3:
        raise DataError(f"{where}: --task multiclass needs three classes or more; column "
                        f"{column!r} has {len(counts)} ({format_counts(shown)}): leave --task "
                        f"out to train a binary model")
    single = [name for name, n in shown.items() if n == 1]
    if single:
        raise DataError(f"{where}: class {single[0]!r} of column {column!r} has one row"
                        f"{f' (and {len(single) - 1} more classes)' if len(single) > 1 else ''}"
                        f"; a class needs two at least, to train on and to validate: fix its "
                        f"label, or leave --task out to count it as an invalid row")
    return sorted(counts, key=_class_order)


def resolve_classes(values: Sequence[str], keys: Sequence[str], column: str, where: str,
                    ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One-hot (rows, classes) targets of a multi-class column over the class ``keys`` (from
    :func:`multiclass_keys`, or a model's classes), the classes' names as the file spells them
    most often, and the valid mask (a value of no class is invalid)."""
    if len(keys) > MAX_CLASSES:
        raise DataError(f"{where}: column {column!r} has {len(keys)} classes, more than "
                        f"{MAX_CLASSES}: is it an id or free-text column? name the label column "
                        f"with --label-column")
    first_seen: dict[str, int] = {}
    codes = np.fromiter((first_seen.setdefault(v, len(first_seen)) for v in values),
                        dtype=np.int64, count=len(values))
    occurrences = dict(zip(first_seen, np.bincount(codes, minlength=len(first_seen)).tolist(),
                           strict=True))
    position = {key: j for j, key in enumerate(keys)}
    column_of = np.array([position.get(canonical_label(v), -1) for v in first_seen],
                         dtype=np.int64)[codes]
    valid = column_of >= 0
    y = np.zeros((len(values), len(keys)), dtype=np.float32)
    y[np.flatnonzero(valid), column_of[valid]] = 1.0
    return y, class_names(occurrences, keys), valid


def class_names(occurrences: dict[str, int], keys: Sequence[str]) -> list[str]:
    """The classes ``keys`` as a label column (raw value -> rows) spells them most often."""
    _, spelled, _ = _spellings(occurrences)
    return [spelled[k].most_common(1)[0][0] if k in spelled else k for k in keys]


def is_class(rows: int, labeled_rows: int) -> bool:
    """Whether a label value with this many rows is a class of its own rather than a stray
    value (a typo, a placeholder) that --drop-invalid may skip: 10 rows and 0.1% of the labeled
    rows at least (so up to 1,000 classes)."""
    return rows >= max(10, 0.001 * labeled_rows)


def binary_pair(occurrences: dict[str, int], positive_label: str | None, column: str,
                where: str, extra_classes: bool = False) -> tuple[Pair, list[str]]:
    """The (negative, positive) keys a label column's values (raw value -> rows, in order of
    appearance) map to, and their names as the file spells them most often. For training
    (``extra_classes`` False) a third value that is a class (:func:`is_class`) is refused: its
    rows are no stray values to skip. Scoring a model on a file may leave such rows out."""
    counts, _, shown = _spellings(occurrences)
    if len(counts) > 2 and positive_label is None and not extra_classes:
        _check_label_like(counts, shown, column, where)
    pair, names = _binary_pair(occurrences, positive_label, column, where)
    classes = [k for k, n in counts.items()
               if k not in pair[0] + pair[1] and is_class(n, counts.total())]
    if classes and not extra_classes:
        extra = format_counts(Counter({k: v for k, v in shown.items()
                                       if canonical_label(k) in classes}))
        raise DataError(
            f"{where}: column {column!r} has {len(pair) + len(classes)} classes "
            f"({format_counts(shown)}) and a binary model two: leave --positive-label out to "
            f"train a multi-class model ({extra} is a class, not stray rows for --drop-invalid "
            f"to skip)")
    return pair, names


def _check_label_like(counts: Counter[str], shown: Counter[str], column: str,
                      where: str) -> None:
    """A column with more distinct values than half its rows (an id, a free-text column) is
    no label column: one line saying so, not an offer to skip most rows as invalid."""
    total = counts.total()
    if len(counts) <= 20 or 2 * len(counts) <= total:
        return
    raise DataError(
        f"{where}: column {column!r} has {len(counts):,} distinct values in {total:,} rows "
        f"({format_counts(shown)}): is it the label column? name it with --label-column")


def positive_keys(positive_label: str, counts: Counter[str], shown: Counter[str], column: str,
                  where: str) -> tuple[str, ...]:
    """The keys ``--positive-label`` names: one value of the column, or several separated by
    commas ("4,5": stars 4 and 5) when no value is spelled so."""
    whole = canonical_label(positive_label)
    parts = [whole] if whole in counts else [canonical_label(p) for p in positive_label.split(",")]
    if not all(parts):
        raise DataError(f"{where}: --positive-label {positive_label!r} has an empty value; give "
                        f"the values of column {column!r} separated by single commas")
    missing = [p for p in parts if p not in counts]
    if missing:
        what = (repr(positive_label) if len(parts) == 1 else
                f"{positive_label!r}: {', '.join(map(repr, missing))}")
        raise DataError(f"{where}: --positive-label {what} does not occur in column {column!r}; "
                        f"its values are: {format_counts(shown)}")
    return tuple(sorted(set(parts), key=_class_order))


def _one_class(column: str, shown: Counter[str], where: str) -> DataError:
    return DataError(f"{where}: column {column!r} has one class only ({format_counts(shown)}); "
                     f"a classifier needs examples of both classes")


def _binary_pair(occurrences: dict[str, int], positive_label: str | None, column: str,
                 where: str) -> tuple[Pair, list[str]]:
    counts, spelled, shown = _spellings(occurrences)
    if not counts:
        raise DataError(f"{where}: the label column {column!r} is empty in every row")
    if positive_label is not None:
        positive = positive_keys(positive_label, counts, shown, column, where)
        others = [k for k in counts if k not in positive]
        if not others and len(counts) > 1:
            raise DataError(f"{where}: --positive-label {positive_label!r} names every value of "
                            f"column {column!r}; leave one out for the negative class")
        if not others:
            raise _one_class(column, shown, where)
        # the rest of the classes is the negative one; values too rare to be a class (typos)
        # stay invalid, unless nothing is a class (a small file): then a known partner, or all
        classes = [k for k in others if is_class(counts[k], counts.total())]
        known = [n for n, p in KNOWN_LABEL_PAIRS if (p,) == positive and n in others]
        pair = (tuple(sorted(classes or known[:1] or others, key=_class_order)), positive)
    elif len(counts) == 1:
        raise _one_class(column, shown, where)
    else:
        present = set(counts)
        matches = [p for p in KNOWN_LABEL_PAIRS if set(p) <= present]
        if len(present) == 2 and matches:
            pair = ((matches[0][0],), (matches[0][1],))
        elif len(present) == 2:
            first, second = (spelled[k].most_common(1)[0][0] for k in sorted(present))
            raise DataError(
                f"{where}: cannot tell which value of column {column!r} is the positive class "
                f"({format_counts(shown)}); pass --positive-label {second!r} (or {first!r})"
            )
        elif matches:
            # e.g. positive/negative/neutral: the extra value is invalid
            pair = ((matches[-1][0],), (matches[-1][1],))
        else:
            raise DataError(
                f"{where}: column {column!r} has {len(counts)} values ({format_counts(shown)}); "
                f"a binary model needs two: filter the file, or use --label-columns for several "
                f"0/1 columns"
            )
    return pair, [_joined_name(keys, spelled) for keys in pair]


def _joined_name(keys: Sequence[str], spelled: dict[str, Counter[str]]) -> str:
    """A side's name: its value as the file spells it most often; several joined by '/'."""
    return "/".join(spelled[k].most_common(1)[0][0] for k in keys)
