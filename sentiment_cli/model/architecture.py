"""The model's architecture without torch: its config, the tensors it has, and a NumPy forward
pass for CPU inference (so bce-predict and bce-eval start without importing torch).

The layout mirrors ``model.SparseMLP``: ``first.bag.weight`` (V x H0) and ``first.bias`` (H0)
for the sparse first layer, then ``rest.{3i+2}.weight``/``.bias`` for each following Linear
(ReLU and Dropout in between; Dropout is the identity at inference).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import scipy.sparse as sp


@dataclass
class ModelConfig:
    vocab_size: int
    hidden: list[int] = field(default_factory=list)
    dropout: float = 0.2
    n_outputs: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dense_layer_names(config: ModelConfig) -> list[str]:
    sizes = [*config.hidden, config.n_outputs]
    return [f"rest.{3 * i + 2}" for i in range(len(sizes) - 1)]


def parameter_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes a model of this config has: what a weights file must hold."""
    sizes = [*config.hidden, config.n_outputs]
    shapes: dict[str, tuple[int, ...]] = {
        "first.bag.weight": (config.vocab_size, sizes[0]),
        "first.bias": (sizes[0],),
    }
    for name, (width_in, width_out) in zip(_dense_layer_names(config), pairwise(sizes),
                                           strict=True):
        shapes[f"{name}.weight"] = (width_out, width_in)
        shapes[f"{name}.bias"] = (width_out,)
    return shapes


def parameter_count(vocab_size: int, hidden: list[int], n_outputs: int) -> int:
    """How many numbers a model of this shape holds (without building it)."""
    shapes = parameter_shapes(ModelConfig(vocab_size, list(hidden), 0.0, n_outputs))
    return sum(math.prod(shape) for shape in shapes.values())


def forward_numpy(
    weights: dict[str, np.ndarray], config: ModelConfig, matrix: sp.csr_matrix
) -> np.ndarray:
    """Logits (rows, outputs) of the model on CSR rows: the same function as SparseMLP.eval()."""
    return after_first_layer(weights, config,
                             matrix @ weights["first.bag.weight"] + weights["first.bias"])


def after_first_layer(weights: dict[str, np.ndarray], config: ModelConfig,
                      hidden: np.ndarray) -> np.ndarray:
    """Logits from the first layer's outputs (before its ReLU): the rest of the forward pass."""
    for name in _dense_layer_names(config):
        hidden = np.maximum(hidden, 0.0) @ weights[f"{name}.weight"].T + weights[f"{name}.bias"]
    return np.asarray(hidden, dtype=np.float32)
