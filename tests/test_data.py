from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, needs_shared, toy_rows, write_csv

from sentiment_cli.data.files import read_table
from sentiment_cli.data.labels import is_class, resolve_binary_labels, resolve_classes
from sentiment_cli.data.reading import load_dataset
from sentiment_cli.errors import DataError


def test_detects_text_and_label_columns_by_common_names(toy_csv: Path) -> None:
    data = load_dataset(toy_csv)
    assert (data.text_column, data.label_columns) == ("review", ["sentiment"])
    assert data.label_names == ["negative", "positive"]
    assert data.y.dtype == np.float32 and set(np.unique(data.y)) == {0.0, 1.0}


@pytest.mark.parametrize("delimiter", [",", "\t", ";", "|"])
def test_sniffs_the_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "d.txt", ["Text", "Label"], toy_rows(20), delimiter=delimiter)
    data = load_dataset(path)
    assert len(data) == 20 and data.text_column == "Text"


def test_reads_bom_crlf_and_quoted_newlines(tmp_path: Path) -> None:
    rows = [("line one\nline two, with comma", "1"), ('he said "wow"', "0")] * 3
    path = write_csv(tmp_path / "q.csv", ["text", "label"], rows, encoding="utf-8-sig",
                     newline="\r\n")
    data = load_dataset(path)
    assert data.texts[0] == "line one\nline two, with comma"
    assert data.texts[1] == 'he said "wow"'
    assert data.label_names == ["0", "1"]


def test_tsv_is_read_without_quote_processing(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text('sentence\tlabel\n"quoted start\t1\nplain\t0\n', encoding="utf-8")
    data = load_dataset(path)
    assert data.texts == ['"quoted start', "plain"]


def test_latin1_file_fails_naming_the_encoding_and_reads_with_the_flag(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "l.csv", ["review", "sentiment"],
                     [("caf\u00e9 tr\u00e8s bon", "pos"), ("mauvais", "neg")] * 3,
                     encoding="latin-1")
    with pytest.raises(DataError, match=r"not valid UTF-8 text \(byte 0xe9 on line 2\).*--encoding "
                       r"latin-1"):
        load_dataset(path)
    data = load_dataset(path, encoding="latin-1")
    assert data.texts[0] == "caf\u00e9 tr\u00e8s bon"


def test_the_undecodable_line_is_named_deep_in_a_long_file(tmp_path: Path) -> None:
    rows = [(f"review number {i}, " + "words " * 40, "pos" if i % 2 else "neg")
            for i in range(30_000)]  # about 8 MB: the bad byte lies several blocks in
    rows[25_000] = ("na\u00efve", "pos")
    path = write_csv(tmp_path / "l.csv", ["review", "sentiment"], rows[:25_000])
    with open(path, "ab") as handle:
        handle.write("na\u00efve,pos\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"byte 0xef on line 25002\)"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("values", "positive"),
    [(["0", "1"], "1"), (["False", "TRUE"], "TRUE"), (["no", "yes"], "yes"),
     (["neg", "pos"], "pos"), (["Negative", "Positive"], "Positive"), (["0.0", "1.0"], "1.0")],
)
def test_understands_common_label_pairs(values: list[str], positive: str) -> None:
    y, names, valid = resolve_binary_labels(values * 2, None, "label", "f.csv")
    assert names[1] == positive and valid.all()
    assert y.tolist() == [0, 1, 0, 1]


def test_other_label_pairs_need_positive_label_and_keep_user_names() -> None:
    with pytest.raises(DataError, match="--positive-label"):
        resolve_binary_labels(["spam", "ham", "ham"], None, "label", "f.csv")
    y, names, _ = resolve_binary_labels(["spam", "ham", "ham"], "spam", "label", "f.csv")
    assert names == ["ham", "spam"] and y.tolist() == [1, 0, 0]


def test_one_class_and_three_values_are_errors_with_counts() -> None:
    with pytest.raises(DataError, match=r"one class only \('pos' \(3\)\)"):
        resolve_binary_labels(["pos"] * 3, None, "label", "f.csv")
    with pytest.raises(DataError, match="3 values"):
        resolve_binary_labels(["a", "b", "c"], None, "label", "f.csv")


def test_blank_labels_are_an_error_naming_rows_unless_dropped(tmp_path: Path) -> None:
    rows = toy_rows(10)
    rows[3] = (rows[3][0], "")
    rows[7] = ("   ", "positive")
    path = write_csv(tmp_path / "b.csv", ["review", "sentiment"], rows)
    with pytest.raises(DataError, match=r"rows 4 .*--drop-invalid"):
        load_dataset(path)
    data = load_dataset(path, drop_invalid=True)
    assert len(data) == 8 and data.dropped_rows == 2


def test_extra_label_value_is_dropped_with_drop_invalid(tmp_path: Path) -> None:
    rows = [*toy_rows(10), ("meh", "neutral")]
    path = write_csv(tmp_path / "n.csv", ["review", "sentiment"], rows)
    with pytest.raises(DataError, match="other than 'negative'/'positive' \\('neutral' \\(1\\)\\)"):
        load_dataset(path)
    assert load_dataset(path, drop_invalid=True).dropped_rows == 1


def test_several_positive_values_make_one_binary_side(tmp_path: Path) -> None:
    """--positive-label 4,5 on a column of stars 1 to 5: 4 and 5 against 1, 2 and 3; a value
    too rare to be a class stays invalid, and a value that does not occur is named."""
    stars = ["1", "2", "3", "4", "5"] * 12 + ["4.0", "5", "", "?"]
    y, names, valid = resolve_binary_labels(stars, "4, 5", "stars", "f.csv")
    assert names == ["1/2/3", "4/5"]
    assert valid.tolist() == [True] * 62 + [False, False]
    assert y[:5].tolist() == [0, 0, 0, 1, 1] and y[60:62].tolist() == [1, 1]
    assert resolve_binary_labels(stars, "5", "stars", "f.csv")[1] == ["1/2/3/4", "5"]
    with pytest.raises(DataError, match=r"--positive-label '4,6': '6' does not occur"):
        resolve_binary_labels(stars, "4,6", "stars", "f.csv")
    # a value spelled with a comma is one value
    y, names, _ = resolve_binary_labels(["good, really", "bad"] * 3, "good, really", "l", "f")
    assert names == ["bad", "good, really"] and y.tolist() == [1, 0] * 3
    # a model trained so scores a file of the same values without --positive-label
    y, names, valid = resolve_binary_labels(stars, None, "stars", "f.csv", ["1/2/3", "4/5"])
    assert names == ["1/2/3", "4/5"] and y[:5].tolist() == [0, 0, 0, 1, 1]
    assert valid.sum() == 62
    # ... also when the file lacks one of a side's values (a small test file)
    no_three = [v for v in stars if v != "3"]
    y, names, valid = resolve_binary_labels(no_three, None, "stars", "f.csv", ["1/2/3", "4/5"])
    assert names == ["1/2", "4/5"] and valid.sum() == 50
    with pytest.raises(DataError, match=r"'4,,5' has an empty value"):
        resolve_binary_labels(stars, "4,,5", "stars", "f.csv")
    with pytest.raises(DataError, match=r"names every value of column 'stars'; leave one out"):
        resolve_binary_labels(stars[:60], "1,2,3,4,5", "stars", "f.csv")


def test_three_classes_make_a_multiclass_dataset_and_stray_values_stay_invalid(
        tmp_path: Path) -> None:
    """positive/negative/neutral: neutral is a class (10 rows and 0.1% of the rows or more),
    so the file is multi-class, never a binary one with a class dropped; two stray rows are
    still invalid (an error naming them, or skipped with --drop-invalid)."""
    rows = [*toy_rows(40), *[(f"so so {i}", "Neutral") for i in range(10)]]
    path = write_csv(tmp_path / "three.csv", ["review", "sentiment"], rows)
    data = load_dataset(path)
    assert data.task == "multiclass" and data.label_names == ["negative", "Neutral", "positive"]
    assert data.y.shape == (50, 3) and (data.y.sum(axis=1) == 1).all()
    assert data.class_counts == {"negative": 20, "Neutral": 10, "positive": 20}
    assert data.y[-1].tolist() == [0, 1, 0]
    # asked for, --positive-label makes a binary task: that class against the rest
    binary = load_dataset(path, positive_label="positive")
    assert binary.task == "binary" and binary.label_names == ["negative/Neutral", "positive"]
    assert binary.class_counts == {"negative/Neutral": 30, "positive": 20}
    stray = write_csv(tmp_path / "stray.csv", ["review", "sentiment"],
                      [*rows, ("hm", "meh"), ("uh", "meh")])
    with pytest.raises(DataError, match=r"labels other than 'negative'/'Neutral'/'positive' "
                                        r"\('meh' \(2\)\) .* rows 51, 52"):
        load_dataset(stray)
    assert load_dataset(stray, drop_invalid=True).dropped_rows == 2
    binary = write_csv(tmp_path / "two.csv", ["review", "sentiment"],
                       [*toy_rows(40), ("so so", "neutral"), ("meh", "neutral")])
    assert load_dataset(binary, drop_invalid=True).task == "binary"
    assert not is_class(9, 100) and is_class(10, 100) and not is_class(199, 200_000)


def test_an_id_column_as_labels_is_one_line_not_an_offer_to_drop_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ids.csv", ["text", "label"],
                     [(f"text {i}", str(i)) for i in range(300)])
    for drop in (False, True):
        with pytest.raises(DataError, match=r"300 distinct values in 300 rows .* label column"):
            load_dataset(path, drop_invalid=drop)


def test_classes_are_ordered_and_mapped_onto_a_models(tmp_path: Path) -> None:
    rows = [(f"t {i}", str(1 + i % 5)) for i in range(100)]
    path = write_csv(tmp_path / "stars.csv", ["text", "label"], rows)
    assert load_dataset(path).label_names == ["1", "2", "3", "4", "5"]
    other = write_csv(tmp_path / "two_stars.csv", ["text", "label"], [("a", "5"), ("b", "2.0")])
    scored = load_dataset(other, class_names=["1", "2", "3", "4", "5"])
    assert scored.y.tolist() == [[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]]
    with pytest.raises(DataError, match="1001 classes, more than 1000"):
        resolve_classes(["a"], [str(i) for i in range(1001)], "label", "f.csv")


def test_the_only_column_beside_the_text_is_the_label_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "stars.csv", ["text", "stars"], [*toy_rows(6)])
    data = load_dataset(path)
    assert data.label_columns == ["stars"] and data.label_names == ["negative", "positive"]


@pytest.mark.parametrize(
    ("header", "match"),
    [(["words", "sentiment"], "no text column found.*'words'.*--text-column"),
     (["text", "review", "label"], "several columns could be the text.*--text-column"),
     (["text", "id", "stars"], "no label column found.*--label-column COLUMN "
                               r"\(several 0/1 label columns.*--label-columns A,B,\.\.\. or "
                               "all-but-text")],
)
def test_missing_or_ambiguous_columns_list_what_exists(
    tmp_path: Path, header: list[str], match: str
) -> None:
    rows = [[f"{t}"] * (len(header) - 1) + [lab] for t, lab in toy_rows(6)]
    path = write_csv(tmp_path / "c.csv", header, rows)
    with pytest.raises(DataError, match=match):
        load_dataset(path)


def test_explicit_columns_and_weights(tmp_path: Path) -> None:
    rows = [(t, lab, "2.5" if i % 2 else "7.5") for i, (t, lab) in enumerate(toy_rows(6))]
    path = write_csv(tmp_path / "w.csv", ["body_text", "tag", "W"], rows)
    data = load_dataset(path, text_column="body_text", label_columns=["tag"], weight_column="w")
    # relative weights, scaled to a mean of 1; the column name is found case-insensitively
    assert data.weights is not None and data.weights.tolist() == [1.5, 0.5] * 3
    with pytest.raises(DataError, match="no column 'nope'"):
        load_dataset(path, text_column="nope")


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "no such file"), ("", "is empty"), ("text,label\n", "no data rows")],
)
def test_unusable_files_get_clear_errors(tmp_path: Path, content: str | None, match: str) -> None:
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_table(path)
    with pytest.raises(DataError, match="is a folder"):
        read_table(tmp_path)


def test_multilabel_columns(tmp_path: Path) -> None:
    rows = [("happy and thankful", "1", "1"), ("sad", "0", "0"), ("thanks", "0", "1")]
    path = write_csv(tmp_path / "m.csv", ["text", "joy", "gratitude"], rows)
    data = load_dataset(path, label_columns=["joy", "gratitude"])
    assert data.multilabel and data.label_names == ["joy", "gratitude"]
    assert data.y.tolist() == [[1, 1], [0, 0], [0, 1]]


@needs_shared
def test_reads_the_real_files_with_their_quirks() -> None:
    uci = load_dataset(SHARED_DATA / "uci_sentences.csv")
    assert len(uci) == 3000 and uci.class_counts == {"0": 1500, "1": 1500}
    assert any('"' in t for t in uci.texts)
    rt = load_dataset(SHARED_DATA / "rt_polarity.csv")
    assert len(rt) == 10662 and rt.positive_label == "positive"
    with pytest.raises(DataError, match="--encoding latin-1"):
        read_table(SHARED_DATA / "raw" / "rt-polarity.pos", delimiter="\t")


@pytest.mark.parametrize(
    ("values", "classes", "expected"),
    [
        (["Positive ", "negative", "POSITIVE"], ["negative", "positive"], [1, 0, 1]),
        (["1.0", "0", "1"], ["0", "1"], [1, 0, 1]),
        (["1", "0", "1"], ["negative", "positive"], [1, 0, 1]),  # both pairs known: by convention
        (["yes", "no", "no"], ["neg", "pos"], [1, 0, 0]),
        (["ham", "spam", "ham"], ["ham", "spam"], [0, 1, 0]),
        (["1", "0", "1"], ["1", "0"], [0, 1, 0]),  # a model trained with --positive-label 0
    ],
)
def test_labels_map_onto_a_model_s_classes(values: list[str], classes: list[str],
                                           expected: list[int]) -> None:
    y, _names, ok = resolve_binary_labels(values, None, "label", "f.csv", classes)
    assert y.tolist() == expected and ok.all()


def test_labels_a_model_cannot_map_are_refused_with_the_way_out() -> None:
    with pytest.raises(DataError, match="not the model's classes 'ham' and 'spam'; pass "
                                        r"--positive-label with the value \(or "
                                        r"comma-separated values\) that means 'spam'"):
        resolve_binary_labels(["0", "1"], None, "label", "f.csv", ["ham", "spam"])
    y, names, _ok = resolve_binary_labels(["0", "1"], "1", "label", "f.csv", ["ham", "spam"])
    assert y.tolist() == [0, 1] and names == ["0", "1"]
