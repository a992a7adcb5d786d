"""--autotune: a search of the training options on the validation rows, within a time budget."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import SAMPLE, assert_clean_error, run

from sentiment_cli.config import TrainingConfig
from sentiment_cli.options import parse_duration
from sentiment_cli.training import autotune


def test_durations_read_as_people_write_them() -> None:
    assert [parse_duration(v) for v in ("90", "90s", "1.5m", "2h", " 5M ", "none")] == \
        [90, 90, 90, 7200, 300, None]


def test_the_given_options_come_first_then_new_ones_never_twice() -> None:
    given = autotune.searched(TrainingConfig())
    drawn = autotune._candidates(given, seed=3, best=lambda: given)
    first = [next(drawn) for _ in range(40)]
    assert first[0] == given
    keys = [repr(sorted(c.items())) for c in first]
    assert len(set(keys)) == len(keys)
    for candidate in first:
        assert set(candidate) == set(autotune.SEARCHED)
        assert candidate["hidden"] in autotune.SPACE["hidden"]
        if not candidate["hidden"]:  # no hidden layer: dropout does nothing, kept as given
            assert candidate["dropout"] == given["dropout"]
        assert candidate["lr"] == float(f"{candidate['lr']:.3g}")  # as printed
    again = autotune._candidates(given, seed=3, best=lambda: given)
    assert [next(again) for _ in range(40)] == first  # seeded


def _sample_split() -> tuple:
    from sentiment_cli.config import VectorizerConfig
    from sentiment_cli.data.reading import load_dataset
    from sentiment_cli.features import count_terms, fit_counts, select

    data = load_dataset(SAMPLE)
    counts = count_terms(data.texts, VectorizerConfig())
    rows = [i for i in range(len(data.y))]
    train, val = rows[: int(0.8 * len(rows))], rows[int(0.8 * len(rows)):]
    _, columns = fit_counts(counts, VectorizerConfig(), train)
    x = select(counts, None, columns, True)
    return x[train], data.y[train], x[val], data.y[val]


def test_the_search_keeps_the_trial_with_the_lowest_validation_loss() -> None:
    x_train, y_train, x_val, y_val = _sample_split()
    heard = []
    found = autotune.search(x_train, y_train, x_val, y_val, TrainingConfig(epochs=4), 3.0,
                            on_trial=lambda trial, best: heard.append((trial, best)))
    assert found.trials and [t for t, _ in heard] == found.trials
    assert found.trials[0].options == autotune.searched(TrainingConfig(epochs=4))
    best = min(found.trials, key=lambda t: t.val_loss)
    assert found.best == best.number
    assert autotune.searched(found.chosen) == best.options
    assert found.chosen.epochs == 4  # what is not searched stays as given
    assert heard[0][1] and all(
        b == (t.val_loss < min(u.val_loss for u, _ in heard[: i])) for i, (t, b) in
        enumerate(heard) if i)
    # each trial's loss is the unweighted log loss of the model it trained
    assert all(math.isfinite(t.val_loss) and 0 < t.val_loss < 1.5 for t in found.trials)


def test_a_budget_too_short_for_any_trial_keeps_the_given_options() -> None:
    x_train, y_train, x_val, y_val = _sample_split()
    options = TrainingConfig(hidden=(64,), epochs=30, patience=30, batch_size=1)
    found = autotune.search(x_train, y_train, x_val, y_val, options, 0.01)
    assert found.best is None and found.trials == [] and found.stopped == 1
    assert found.chosen == options


def test_bce_train_autotune_records_the_choice_everywhere(tmp_path: Path) -> None:
    out = tmp_path / "m"
    result = run("bce-train", str(SAMPLE), "-o", str(out), "--autotune", "4s", "--epochs", "5",
                 "--json")
    assert result.returncode == 0, result.stderr
    assert "autotune chose trial" in result.stderr and "trial 1: --hidden none" in result.stderr
    config = json.loads((out / "config.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    search = config["training"]["autotune"]
    assert search["budget_seconds"] == 4.0 and "trials" not in search
    trials = metrics["autotune"]["trials"]
    best = next(t for t in trials if t["trial"] == search["best_trial"])
    assert best["val_loss"] == min(t["val_loss"] for t in trials)
    for name in ("lr", "input_dropout", "weight_decay", "batch_size", "hidden"):
        assert config["training"][name] == best[name], name
    assert config["training"]["epochs"] == 5
    assert config["model"]["hidden"] == best["hidden"]  # the model trained is the chosen one
    report = (out / "report.md").read_text()
    assert f"of {len(trials)} trials" in report
    predicted = run("bce-predict", str(out), "a wonderful film", "-F", "jsonl")
    assert predicted.returncode == 0 and json.loads(predicted.stdout)["label"]


@pytest.mark.parametrize(("args", "needle"), [
    (["--autotune", "soon"], "--autotune takes a duration like 90, 90s, 5m or 1h, got 'soon'"),
    (["--autotune", "0"], "--autotune must be a duration over 0 s and at most a week"),
    (["--autotune", ""], "--autotune takes a duration"),
    (["--autotune", "1m", "--val-split", "0"], "--autotune needs validation rows"),
    (["--autotune", "1m", "--resume"], "--resume cannot go on with an --autotune search"),
])
def test_autotune_refusals_are_one_line_before_reading(tmp_path: Path, args: list[str],
                                                       needle: str) -> None:
    result = run("bce-train", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "m"), *args)
    assert_clean_error(result, 2, needle)
    assert not (tmp_path / "m").exists()
