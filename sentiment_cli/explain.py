"""``bce-predict --explain N``: which terms of a text moved its logit, and by how much.

For each text, the logit of the output that decided it (binary: the positive class; multi-class:
the predicted class), divided by the model's temperature so that for a binary model
``sigmoid(logit)`` is the reported probability, is written as ``bias + sum of contributions``:

- a linear model (``--hidden none``): exact. The bias is the output's bias and a term's
  contribution is its weight times its value in the text's row (1 with binary features); they
  add up to the logit.
- an MLP: leave-one-term-out. The bias is the logit of an empty text and a term's contribution
  is how much the logit drops when that term alone is taken out of the text. The nonlinearity
  means these need not add up to the logit; each is exact for what it says.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from sentiment_cli.model.architecture import ModelConfig, after_first_layer, forward_numpy


def explain_rows(weights: dict[str, np.ndarray], config: ModelConfig, matrix: sp.csr_matrix,
                 outputs: np.ndarray, terms: np.ndarray, temperature: float,
                 n: int) -> list[dict[str, Any]]:
    """Per row of ``matrix``: its logit and bias for output ``outputs[row]``, and its ``n``
    terms with the largest absolute contribution (0: all), largest first."""
    empty = forward_numpy(weights, config, sp.csr_matrix((1, matrix.shape[1]),
                                                         dtype=np.float32))[0]
    found = []
    for row in range(matrix.shape[0]):
        part = matrix[row]
        columns, values = part.indices, part.data.astype(np.float64)
        j = int(outputs[row])
        logit = float(forward_numpy(weights, config, part)[0, j])
        if not config.hidden:
            bias = float(weights["first.bias"][j])
            contributions = weights["first.bag.weight"][columns, j] * values
        else:  # the first layer is linear: taking term i out subtracts its row of weights
            bias = float(empty[j])
            first = weights["first.bag.weight"][columns] * values[:, None]  # (terms, hidden)
            pre = part @ weights["first.bag.weight"] + weights["first.bias"]
            contributions = logit - after_first_layer(weights, config, pre - first)[:, j]
        order = np.argsort(-np.abs(contributions), kind="stable")
        if n:
            order = order[:n]
        found.append({
            "logit": round(logit / temperature, 6),
            "bias": round(bias / temperature, 6),
            "explanation": [{"term": str(terms[columns[i]]),
                             "contribution": round(float(contributions[i]) / temperature, 6)}
                            for i in order],
        })
    return found


def shown(explanation: list[dict[str, Any]]) -> str:
    """The terms in one cell of CSV/TSV or a table: ``term +0.531; other -0.204``."""
    return "; ".join(f"{e['term']} {e['contribution']:+.3f}" for e in explanation)
