"""The model folder: weights (safetensors) + JSON, written atomically, loaded without running code.

Layout (format version 1)::

    config.json        format, labels, thresholds, temperature, architecture, vectorizer options,
                       training options, data summary, library versions
    vocabulary.json    the vectorizer's terms in column order
    model.safetensors  the weights of the kept (best validation) epoch
    metrics.json       train/validation metrics of the kept epoch
    history.csv        one row per epoch
    report.md, plots/  the training report (unless --no-report)
    manifest.json      every file's size and SHA-256, written last (format version 2)

Loading reads every file through one handle of the folder and checks it against the manifest
(:class:`.folders.FolderReader`), validates config.json field by field (:mod:`.schema`), and
checks the sizes against the architecture and the memory available before reading the weights.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sentiment_cli import __version__
from sentiment_cli.artifacts.atomic import FolderChanged, FolderReader, folder_identity
from sentiment_cli.artifacts.folders import MANIFEST_FILE, umask
from sentiment_cli.artifacts.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ConfigProblem,
    ModelSpec,
    NewerFormat,
    parse_config,
)
from sentiment_cli.errors import BundleError, damaged
from sentiment_cli.features import Vectorizer, vectorizer_from_json
from sentiment_cli.memory import JSON_EXPANSION, check_fits, human
from sentiment_cli.model.architecture import ModelConfig, parameter_count, parameter_shapes

if TYPE_CHECKING:
    from sentiment_cli.model.module import SparseMLP

__all__ = ["CONFIG_FILE", "FORMAT_NAME", "FORMAT_VERSION", "VOCABULARY_FILE", "WEIGHTS_FILE",
           "Bundle", "load_bundle", "save_tensors", "save_weights", "versions",
           "write_json"]

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
REQUIRED_FILES = (CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE)


def write_json(path: Path, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def versions() -> dict[str, str]:
    from importlib.metadata import version  # not ``import sklearn``: training never loads it

    import numpy
    import torch

    return {
        "sentiment_cli": __version__,
        "torch": torch.__version__,
        "scikit_learn": version("scikit-learn"),
        "numpy": numpy.__version__,
    }


def save_weights(model: SparseMLP, path: Path) -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_tensors(tensors, path, metadata={"format": FORMAT_NAME})


def save_tensors(tensors: dict[str, Any], path: Path,
                 metadata: dict[str, str] | None = None) -> None:
    """A safetensors file with the umask's permissions (safetensors' own save_file makes every
    file private to its owner, so a model could not be shared)."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    os.chmod(path, 0o666 & ~umask())


@dataclass
class Bundle:
    """A loaded model folder, ready to score texts. Weights are NumPy arrays; ``model`` builds
    the torch module on first use (training tools and CUDA inference need it, CPU scoring not)."""

    path: Path
    config: dict[str, Any]
    vectorizer: Vectorizer
    model_config: ModelConfig
    weights: dict[str, np.ndarray]
    spec: ModelSpec
    metrics: dict[str, Any] | None = None  # metrics.json, when the folder has one
    files: dict[str, int] = field(default_factory=dict)  # name -> bytes, as read (manifest)
    _model: SparseMLP | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return self.spec.labels

    @property
    def thresholds(self) -> list[float]:
        return self.spec.thresholds

    @property
    def temperature(self) -> float:
        return self.spec.temperature

    @property
    def multilabel(self) -> bool:
        return self.spec.multilabel

    @property
    def task(self) -> str:
        return "multilabel" if self.spec.multilabel else (
            "multiclass" if self.spec.multiclass else "binary")

    @property
    def model(self) -> SparseMLP:
        if self._model is None:
            import torch

            from sentiment_cli.model.module import SparseMLP

            model = SparseMLP(self.model_config)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()})
            self._model = model.eval()
        return self._model




# A safetensors file is its tensors plus a JSON header (names, shapes, offsets): a few hundred
# bytes for our models; anything far beyond the tensors' size was not written by us.
_HEADER_SLACK = 64 << 10


_ATTEMPTS = 5  # reads of a folder that keeps being replaced under the reader


def load_bundle(folder: str | os.PathLike[str]) -> Bundle:
    """Load a model folder: one whole folder's files or a clear error, and never code (JSON and
    safetensors only). A folder replaced while it is read (another bce-train --force) is read
    again; one whose files do not add up is damaged."""
    folder = Path(folder)
    replaced, problem = 0, ""
    for attempt in range(_ATTEMPTS):
        try:
            reader = FolderReader(folder)
        except FileNotFoundError:
            if attempt == 0:  # between the two renames of a replacement
                time.sleep(0.05)
                continue
            raise BundleError(f"model folder {folder} does not exist; train one with "
                              f"bce-train") from None
        except NotADirectoryError:
            raise BundleError(f"{folder} is a file, not a model folder (give the folder "
                              f"bce-train wrote)") from None
        except OSError as err:
            raise BundleError(f"{folder}: cannot read the model folder ({err})") from None
        with reader:
            try:
                return _load(folder, reader)
            except FolderChanged as err:
                problem = str(err)
                if folder_identity(folder) != reader.identity:  # replaced: read the new one
                    replaced += 1
                    time.sleep(0.02 * (attempt + 1))
                    continue
                if attempt == 0:
                    time.sleep(0.05)  # once more, to be sure
                    continue
                break
    else:
        raise BundleError(f"{folder} was replaced {replaced} times while it was being read "
                          f"(another bce-train --force?); try again")
    if not (folder / CONFIG_FILE).exists() and not (folder / MANIFEST_FILE).exists():
        raise BundleError(f"{folder} is not a model folder (it has no {CONFIG_FILE}); give the "
                          f"folder bce-train wrote")
    raise damaged(folder, problem)


def _load(folder: Path, reader: FolderReader) -> Bundle:
    missing = [name for name in REQUIRED_FILES if not reader.exists(name)]
    if missing:
        raise FolderChanged(f"missing {', '.join(missing)}")
    config = reader.read_json(CONFIG_FILE)
    try:
        spec = parse_config(config)
    except ConfigProblem as err:
        raise damaged(folder, f"config.json: {err}") from None
    except NewerFormat as newer:
        raise BundleError(
            f"{folder} was written by a newer sentiment-cli (model format {newer.version}, this "
            f"one reads 1 to {FORMAT_VERSION}); upgrade sentiment-cli"
        ) from None
    if spec.format_version >= 2 and reader.manifest is None:
        raise FolderChanged(f"{MANIFEST_FILE} is missing")
    model = spec.model
    weights_bytes = 4 * parameter_count(model.vocab_size, model.hidden, model.n_outputs)
    weights_size = reader.size(WEIGHTS_FILE)
    if not weights_bytes < weights_size <= weights_bytes + _HEADER_SLACK:
        raise damaged(folder, f"{WEIGHTS_FILE} is {human(weights_size)}, the architecture in "
                              f"config.json needs {human(weights_bytes)}")
    vocabulary_size = reader.size(VOCABULARY_FILE)
    # The file's bytes and the arrays made from them are both held for a moment.
    check_fits(2 * weights_size + JSON_EXPANSION * vocabulary_size, f"loading {folder}",
               "free memory, or use a smaller model", error=BundleError)
    vocabulary = reader.read_json(VOCABULARY_FILE, limit=vocabulary_size)
    terms = vocabulary.get("terms") if isinstance(vocabulary, dict) else None
    if not isinstance(terms, list) or len(terms) != model.vocab_size:
        raise damaged(folder, f"{VOCABULARY_FILE} does not hold the {model.vocab_size} terms "
                              f"the model expects")
    vectorizer = vectorizer_from_json({"params": spec.vectorizer, "terms": terms}, folder)
    weights = _load_state(reader.read(WEIGHTS_FILE, weights_size), parameter_shapes(model))
    if isinstance(weights, str):
        raise damaged(folder, f"{WEIGHTS_FILE}: {weights}")
    metrics = reader.read_json(METRICS_FILE) if reader.exists(METRICS_FILE) else None
    files = ({name: entry.get("bytes", 0) for name, entry in reader.manifest.items()}
             if reader.manifest is not None else
             {name: reader.size(name) for name in (*REQUIRED_FILES, METRICS_FILE)
              if reader.exists(name)})
    return Bundle(folder, config, vectorizer, model, weights, spec,
                  metrics if isinstance(metrics, dict) else None, files)


def _load_state(data: bytes, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray] | str:
    """The tensors of a safetensors file, or what is wrong with them."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        state = load(data)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        return f"not a valid safetensors file ({err})"
    if set(state) != set(expected):
        return f"holds tensors {sorted(state)} but the config describes {sorted(expected)}"
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape or state[name].dtype != np.float32:
            return (f"tensor {name} has shape {tuple(state[name].shape)} ({state[name].dtype}), "
                    f"the config says {shape} (float32)")
        if not np.isfinite(state[name]).all():
            return f"tensor {name} holds NaN or infinite values"
    return state
