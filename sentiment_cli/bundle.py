"""The model folder: weights (safetensors) + JSON, written atomically, loaded without running code.

Layout (format version 1)::

    config.json        format, labels, thresholds, temperature, architecture, vectorizer options,
                       training options, data summary, library versions
    vocabulary.json    the vectorizer's terms in column order
    model.safetensors  the weights of the kept (best validation) epoch
    metrics.json       train/validation metrics of the kept epoch
    history.csv        one row per epoch
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .architecture import ModelConfig
from .errors import BundleError, DataError

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import CountVectorizer

    from .model import SparseMLP

FORMAT_NAME = "sentiment-cli-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.json"
WEIGHTS_FILE = "model.safetensors"
REQUIRED_FILES = (CONFIG_FILE, VOCABULARY_FILE, WEIGHTS_FILE)


def write_json(path: Path, payload: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def check_output_free(path: Path, force: bool) -> None:
    """Refuse up front (before any training) to replace an existing folder without --force."""
    if path.exists() and not path.is_dir():
        raise DataError(f"--output {path} is a file, not a folder; choose another --output")
    if path.exists() and any(path.iterdir()) and not force:
        raise DataError(f"{path} already exists; pass --force to replace it, or choose --output")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _fsync_tree(folder: Path) -> None:
    for item in folder.rglob("*"):
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove_stale_staging(path: Path) -> None:
    """Staging folders left by a killed process (its pid no longer running)."""
    for pattern in (f".{path.name}.tmp-*", f".{path.name}.old-*"):
        for stale in path.parent.glob(pattern):
            pid = stale.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_folder_atomically(path: Path, fill: Callable[[Path], None], force: bool) -> None:
    """Build the folder beside ``path`` under a temporary name, then move it into place.

    A crash or a kill at any moment leaves either the previous complete folder or the new
    complete one at ``path`` (an existing folder is swapped in one step where the OS allows).
    """
    path = Path(path)
    check_output_free(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(path)
    staging = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fill(staging)
        _fsync_tree(staging)
        if path.exists():
            if _exchange(staging, path):
                shutil.rmtree(staging)  # now holds the previous folder
                return
            retired = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, retired)
            os.replace(staging, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def versions() -> dict[str, str]:
    from importlib.metadata import version  # not ``import sklearn``: training never loads it

    import numpy
    import torch

    from . import __version__

    return {
        "sentiment_cli": __version__,
        "torch": torch.__version__,
        "scikit_learn": version("scikit-learn"),
        "numpy": numpy.__version__,
    }


def save_weights(model: SparseMLP, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": FORMAT_NAME})


@dataclass
class Bundle:
    """A loaded model folder, ready to score texts. Weights are NumPy arrays; ``model`` builds
    the torch module on first use (training tools and CUDA inference need it, CPU scoring not)."""

    path: Path
    config: dict[str, Any]
    vectorizer: CountVectorizer
    model_config: ModelConfig
    weights: dict[str, np.ndarray]
    labels: list[str]
    thresholds: list[float]
    temperature: float
    _model: SparseMLP | None = field(default=None, repr=False)

    @property
    def multilabel(self) -> bool:
        return self.config.get("task") == "multilabel"

    @property
    def model(self) -> SparseMLP:
        if self._model is None:
            import torch

            from .model import SparseMLP

            model = SparseMLP(self.model_config)
            model.load_state_dict({k: torch.from_numpy(v) for k, v in self.weights.items()})
            self._model = model.eval()
        return self._model


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(
            f"{path} is unreadable or not valid JSON ({err}); the model folder is damaged: "
            f"train it again"
        ) from None


def read_config(folder: Path) -> dict[str, Any]:
    """Check the folder and its format version, and return config.json."""
    folder = Path(folder)
    if not folder.exists():
        raise BundleError(f"model folder {folder} does not exist; train one with bce-train")
    if not folder.is_dir():
        raise BundleError(f"{folder} is a file, not a model folder (give the folder bce-train "
                          f"wrote)")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise BundleError(
            f"{folder} is not a complete model folder (missing {', '.join(missing)}); "
            f"train it again with bce-train"
        )
    config = _read_json(folder / CONFIG_FILE)
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise BundleError(f"{folder / CONFIG_FILE} is not a sentiment-cli model config")
    version = config.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(f"{folder / CONFIG_FILE} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{folder} was written by a newer sentiment-cli (model format {version}, this one "
            f"reads up to {FORMAT_VERSION}); upgrade sentiment-cli"
        )
    return config


def _load_state(path: Path, expected: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise BundleError(
            f"{path} is not a valid safetensors weights file ({err}); the model folder is "
            f"damaged or was tampered with: train it again"
        ) from None
    if set(state) != set(expected):
        raise BundleError(
            f"{path} holds tensors {sorted(state)} but the config describes {sorted(expected)}; "
            f"the model folder is inconsistent: train it again"
        )
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape or state[name].dtype != np.float32:
            raise BundleError(
                f"{path}: tensor {name} has shape {tuple(state[name].shape)} "
                f"({state[name].dtype}), the config says {shape} (float32); the model folder is "
                f"inconsistent: train it again"
            )
        if not np.isfinite(state[name]).all():
            raise BundleError(f"{path}: tensor {name} holds NaN or infinite values")
    return state


def load_bundle(folder: str | os.PathLike[str]) -> Bundle:
    """Load a model folder. Only JSON and safetensors are read: nothing in it can run code."""
    from .architecture import parameter_shapes
    from .features import vectorizer_from_json

    folder = Path(folder)
    config = read_config(folder)
    try:
        model_config = ModelConfig.from_dict(config["model"])
        if model_config.vocab_size < 1 or model_config.n_outputs < 1 or min(
            [*model_config.hidden, 1]
        ) < 1:
            raise ValueError("layer sizes must be positive")
        labels = [str(x) for x in config["labels"]]
        thresholds = [float(t) for t in config["thresholds"]]
        temperature = float(config.get("temperature", 1.0))
        vectorizer_params = config["vectorizer"]
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{folder / CONFIG_FILE} is missing or has a bad field ({err})") from None
    if len(thresholds) != model_config.n_outputs or not all(0 <= t <= 1 for t in thresholds):
        raise BundleError(f"{folder / CONFIG_FILE}: thresholds do not match the model outputs")
    if not temperature > 0:
        raise BundleError(f"{folder / CONFIG_FILE}: temperature must be positive")
    vocabulary = _read_json(folder / VOCABULARY_FILE)
    terms = vocabulary.get("terms") if isinstance(vocabulary, dict) else None
    if not isinstance(terms, list) or len(terms) != model_config.vocab_size:
        raise BundleError(
            f"{folder / VOCABULARY_FILE} does not hold the {model_config.vocab_size} terms the "
            f"model expects; the model folder is inconsistent: train it again"
        )
    vectorizer = vectorizer_from_json({"params": vectorizer_params, "terms": terms})
    weights = _load_state(folder / WEIGHTS_FILE, parameter_shapes(model_config))
    return Bundle(folder, config, vectorizer, model_config, weights, labels, thresholds,
                  temperature)
