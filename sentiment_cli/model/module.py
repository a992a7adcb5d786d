"""The classifier: an MLP whose first layer reads sparse bag-of-words rows directly.

``nn.EmbeddingBag(V, H, mode="sum")`` fed with a CSR row's column indices and values (as
per-sample weights), plus a bias, computes exactly ``nn.Linear(V, H)`` on that row without ever
building the dense rows x vocabulary matrix. It is initialised as ``nn.Linear`` would be.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from sentiment_cli.model.architecture import ModelConfig, parameter_shapes

__all__ = ["ModelConfig", "SparseBatch", "SparseLinear", "SparseMLP", "parameter_shapes",
           "predict_logits"]


@dataclass
class SparseBatch:
    """A CSR slice as the three tensors ``EmbeddingBag`` takes."""

    indices: torch.Tensor
    offsets: torch.Tensor
    values: torch.Tensor

    @classmethod
    def from_csr(cls, matrix: sp.csr_matrix, device: torch.device | str = "cpu") -> SparseBatch:
        start = int(matrix.indptr[0])
        end = int(matrix.indptr[-1])
        indptr = matrix.indptr[:-1] - start
        return cls(
            indices=torch.from_numpy(matrix.indices[start:end].astype(np.int64)).to(device),
            offsets=torch.from_numpy(indptr.astype(np.int64)).to(device),
            values=torch.from_numpy(np.asarray(matrix.data[start:end], dtype=np.float32)).to(
                device
            ),
        )


class SparseLinear(nn.Module):
    """``Linear(V, H)`` on sparse rows: EmbeddingBag(sum) with per-sample weights, plus a bias.

    ``sparse=True`` makes the gradient of the V x H table touch only the rows in the batch, so the
    optimizer step costs the batch's vocabulary, not the whole vocabulary.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(in_features, out_features, mode="sum", sparse=True)
        self.bias = nn.Parameter(torch.empty(out_features))
        # nn.Linear's init: kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(in), 1/sqrt(in)).
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.bag.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        return self.bag(batch.indices, batch.offsets, per_sample_weights=batch.values) + self.bias


class SparseMLP(nn.Module):
    """Bag of words -> [Linear -> ReLU -> Dropout]* -> Linear -> one logit per output.

    ``input_dropout`` (training only, not part of the saved model): each term of a row is left
    out with this probability and the rest scaled by 1 / (1 - p), as ``nn.Dropout`` does to a
    dense input (word dropout, as in Iyyer et al. 2015's deep averaging networks)."""

    def __init__(self, config: ModelConfig, input_dropout: float = 0.0) -> None:
        super().__init__()
        self.config = config
        self.input_dropout = input_dropout
        sizes = [*config.hidden, config.n_outputs]
        self.first = SparseLinear(config.vocab_size, sizes[0])
        layers: list[nn.Module] = []
        for width_in, width_out in itertools.pairwise(sizes):
            layers += [nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(width_in, width_out)]
        self.rest = nn.Sequential(*layers)

    def forward(self, batch: SparseBatch) -> torch.Tensor:
        if self.training and self.input_dropout > 0:
            values = nn.functional.dropout(batch.values, self.input_dropout, training=True)
            batch = SparseBatch(batch.indices, batch.offsets, values)
        return self.rest(self.first(batch))

    def output_bias(self) -> nn.Parameter:
        """The bias of the layer that gives the logits."""
        return self.rest[-1].bias if len(self.rest) else self.first.bias  # type: ignore[return-value]


def iter_csr_batches(matrix: sp.csr_matrix, batch_size: int):
    """Consecutive row slices of a CSR matrix, each a few hundred rows."""
    for start in range(0, matrix.shape[0], batch_size):
        yield matrix[start : start + batch_size]


@torch.no_grad()
def predict_logits(
    model: SparseMLP,
    matrix: sp.csr_matrix,
    device: torch.device | str = "cpu",
    batch_size: int = 4096,
) -> np.ndarray:
    """Logits of shape (rows, outputs) for a CSR matrix, scored in batches (eval mode)."""
    was_training = model.training
    model.eval()
    chunks = [
        model(SparseBatch.from_csr(part, device)).float().cpu().numpy()
        for part in iter_csr_batches(matrix, batch_size)
    ]
    model.train(was_training)
    if not chunks:
        return np.zeros((0, model.config.n_outputs), dtype=np.float32)
    return np.concatenate(chunks, axis=0)
