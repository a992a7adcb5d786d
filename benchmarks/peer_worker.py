"""One peer step in a fresh process, so that imports and start-up count as they do for ours.

    python benchmarks/peer_worker.py sklearn-train --train CSV --text-column C --label-column L \
        --positive P --params JSON --model FILE [--stats FILE]
    python benchmarks/peer_worker.py sklearn-predict --model FILE [--stats FILE] < texts > probs
    python benchmarks/peer_worker.py fasttext-prep --train CSV ... --model LABELS.txt
    python benchmarks/peer_worker.py fasttext-train --train LABELS.txt --params JSON --model FILE
    python benchmarks/peer_worker.py fasttext-predict --model FILE [--stats FILE] < texts > probs

Train steps read the same CSV files as ``bce-train`` and save a model file (as ``bce-train``
writes a model folder); fastText's is two processes, the CSV -> __label__ file conversion and
the training itself (see the note at the imports). Predict steps read one text per line from
stdin, split on "\\n" only (like ``bce-predict``), and write one positive-class probability per
line. ``--stats`` receives the in-process timings as JSON. The runner (benchmarks/run.py)
measures wall time and peak RSS from outside.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

STARTED = time.perf_counter()

# Imports happen at module level on purpose: they are part of each step's start-up.
if len(sys.argv) > 1 and sys.argv[1].startswith("sklearn"):
    import pickle

    import pandas as pd
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
elif len(sys.argv) > 1 and sys.argv[1] == "fasttext-prep":
    import pandas as pd
elif len(sys.argv) > 1 and sys.argv[1].startswith("fasttext"):
    # No pandas here: fastText 0.9.3 (as built here) can hit "Encountered NaN" when it trains in
    # a process whose heap was used before (reading a 670k-row CSV with pandas or csv, then
    # freeing it, reproduces it), so fastText trains from a prepared file in a fresh process.
    import fasttext

IMPORTED = time.perf_counter()


def read_train(args: argparse.Namespace) -> tuple[list[str], list[int]]:
    frame = pd.read_csv(args.train, dtype=str, keep_default_na=False)
    texts = frame[args.text_column].tolist()
    y = (frame[args.label_column].str.strip() == args.positive).astype(int).tolist()
    return texts, y


def read_stdin_lines() -> list[str]:
    """One text per line, split on b"\\n" only (U+0085 and friends stay inside a text)."""
    data = sys.stdin.buffer.read()
    if not data:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.decode("utf-8-sig" if i == 0 else "utf-8").rstrip("\r")
            for i, line in enumerate(lines)]


def df_value(value: float, whole_at_one: bool) -> float | int:
    """CountVectorizer reads an int as a document count and a float as a proportion."""
    if float(value).is_integer() and (value > 1 or (value == 1 and whole_at_one)):
        return int(value)
    return float(value)


def sklearn_vectorizer(params: dict) -> CountVectorizer:
    kwargs = {}
    if "ngram_range" in params:
        kwargs["ngram_range"] = tuple(params["ngram_range"])
    if "min_df" in params:
        kwargs["min_df"] = df_value(params["min_df"], whole_at_one=True)
    if "max_df" in params:
        kwargs["max_df"] = df_value(params["max_df"], whole_at_one=False)
    for key in ("binary", "lowercase", "token_pattern", "max_features"):
        if key in params:
            kwargs[key] = params[key]
    if params.get("stop_word_list"):
        kwargs["stop_words"] = list(params["stop_word_list"])
    return CountVectorizer(**kwargs)


def sklearn_train(args: argparse.Namespace) -> dict:
    params = json.loads(args.params)
    texts, y = read_train(args)
    read = time.perf_counter()
    pipeline = make_pipeline(
        sklearn_vectorizer(params.get("vectorizer", {})),
        LogisticRegression(solver="liblinear", C=1.0, max_iter=int(params.get("max_iter", 1000))),
    )
    pipeline.fit(texts, y)
    fitted = time.perf_counter()
    with open(args.model, "wb") as handle:
        pickle.dump(pipeline, handle, protocol=pickle.HIGHEST_PROTOCOL)
    saved = time.perf_counter()
    return {
        "rows": len(texts),
        "vocabulary": len(pipeline[0].vocabulary_),
        "iterations": int(pipeline[1].n_iter_.max()),
        "seconds": {"read": read - IMPORTED, "fit": fitted - read, "save": saved - fitted},
    }


def _emit_probabilities(probs: list[float], loaded: float, read: float) -> dict:
    """Print one probability per line; return the row count and the phase timings."""
    predicted = time.perf_counter()
    sys.stdout.write("".join(f"{p:.6f}\n" for p in probs))
    sys.stdout.flush()
    return {
        "rows": len(probs),
        "seconds": {"load": loaded - IMPORTED, "read": read - loaded,
                    "predict": predicted - read, "write": time.perf_counter() - predicted},
    }


def sklearn_predict(args: argparse.Namespace) -> dict:
    with open(args.model, "rb") as handle:
        pipeline = pickle.load(handle)  # our own file, written by sklearn_train just before
    loaded = time.perf_counter()
    texts = read_stdin_lines()
    read = time.perf_counter()
    probs = pipeline.predict_proba(texts)[:, 1].tolist() if texts else []
    return _emit_probabilities(probs, loaded, read)


def one_line(text: str) -> str:
    # fastText reads one example per line; the runner already refuses texts with line breaks.
    return text.replace("\n", " ").replace("\r", " ")


def fasttext_prep(args: argparse.Namespace) -> dict:
    """The training CSV as fastText's input format, one "__label__pos|neg text" line per row."""
    texts, y = read_train(args)
    read = time.perf_counter()
    with open(args.model, "w", encoding="utf-8", newline="\n") as out:
        out.write("".join(f"__label__{'pos' if label else 'neg'} {one_line(text)}\n"
                          for text, label in zip(texts, y, strict=True)))
    return {"rows": len(texts),
            "seconds": {"read": read - IMPORTED, "write": time.perf_counter() - read}}


def fasttext_train(args: argparse.Namespace) -> dict:
    """Train from the file fasttext-prep wrote (--train) and save the model (--model)."""
    params = json.loads(args.params)
    model = fasttext.train_supervised(input=args.train, verbose=0, **params)
    fitted = time.perf_counter()
    model.save_model(args.model)
    saved = time.perf_counter()
    return {
        "vocabulary": len(model.words),
        "threads": model.thread,
        "dim": model.dim,
        "bucket": model.bucket,
        "seconds": {"fit": fitted - IMPORTED, "save": saved - fitted},
    }


def fasttext_predict(args: argparse.Namespace) -> dict:
    model = fasttext.load_model(args.model)
    loaded = time.perf_counter()
    texts = [one_line(t) for t in read_stdin_lines()]
    read = time.perf_counter()
    probs = []
    if texts:
        # A list input avoids fastText 0.9.3's numpy-2 failure on single strings
        # (np.array(..., copy=False)); k=-1 returns every label with its probability.
        labels, scores = model.predict(texts, k=-1)
        for names, values in zip(labels, scores, strict=True):
            by_name = dict(zip(names, values, strict=True))
            probs.append(float(by_name.get("__label__pos", 0.0)))
    return _emit_probabilities(probs, loaded, read)


STEPS = {
    "sklearn-train": sklearn_train,
    "sklearn-predict": sklearn_predict,
    "fasttext-prep": fasttext_prep,
    "fasttext-train": fasttext_train,
    "fasttext-predict": fasttext_predict,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--train")
    parser.add_argument("--text-column")
    parser.add_argument("--label-column")
    parser.add_argument("--positive")
    parser.add_argument("--params", default="{}")
    parser.add_argument("--model", required=True)
    parser.add_argument("--stats")
    args = parser.parse_args()
    stats = STEPS[args.step](args)
    stats["seconds"]["imports"] = IMPORTED - STARTED
    if args.stats:
        with open(args.stats, "w", encoding="utf-8") as handle:
            json.dump(stats, handle)


if __name__ == "__main__":
    main()
