"""The sparse first layer, the loss and why logits: checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch import nn

from sentiment_cli.model.module import (
    ModelConfig,
    SparseBatch,
    SparseLinear,
    SparseMLP,
    predict_logits,
)
from sentiment_cli.model.optim import Adam


def random_csr(rows: int, cols: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(rows, cols, density=density, format="csr", random_state=seed,
                       dtype=np.float32)
    matrix = matrix.tolil()
    matrix[3, :] = 0  # an empty row: gets the bias alone
    return matrix.tocsr()


def test_sparse_layer_equals_linear_on_densified_rows() -> None:
    torch.manual_seed(0)
    matrix = random_csr(40, 500, 0.02, seed=1)
    layer = SparseLinear(500, 7)
    linear = nn.Linear(500, 7)
    with torch.no_grad():
        linear.weight.copy_(layer.bag.weight.T)
        linear.bias.copy_(layer.bias)
    sparse_out = layer(SparseBatch.from_csr(matrix))
    dense_out = linear(torch.from_numpy(matrix.toarray()))
    assert torch.allclose(sparse_out, dense_out, atol=1e-6)
    assert torch.allclose(sparse_out[3], layer.bias)


def test_sparse_layer_batches_of_a_slice_match_the_whole() -> None:
    matrix = random_csr(30, 200, 0.05, seed=2)
    layer = SparseLinear(200, 4)
    whole = layer(SparseBatch.from_csr(matrix))
    part = layer(SparseBatch.from_csr(matrix[10:20]))
    assert torch.allclose(whole[10:20], part, atol=1e-6)


def test_sparse_layer_is_initialised_like_linear() -> None:
    torch.manual_seed(0)
    layer = SparseLinear(10_000, 32)
    bound = 1 / np.sqrt(10_000)
    weights = layer.bag.weight.detach().numpy()
    assert np.abs(weights).max() <= bound
    assert weights.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)


def bce_numpy(x: np.ndarray, y: np.ndarray, pos_weight: np.ndarray | float = 1.0) -> float:
    """-[w_p * y * log(s(x)) + (1 - y) * log(1 - s(x))], averaged, in float64 NumPy."""
    x = x.astype(np.float64)
    log_s = -np.logaddexp(0, -x)
    log_1_minus_s = -np.logaddexp(0, x)
    return float(np.mean(-(pos_weight * y * log_s + (1 - y) * log_1_minus_s)))


@pytest.mark.parametrize("pos_weight", [None, 3.5])
def test_loss_matches_the_formula(pos_weight: float | None) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 3, size=200).astype(np.float32)
    y = (rng.random(200) < 0.3).astype(np.float32)
    weight = None if pos_weight is None else torch.tensor([pos_weight])
    loss = nn.BCEWithLogitsLoss(pos_weight=weight)(torch.from_numpy(x), torch.from_numpy(y))
    expected = bce_numpy(x, y, 1.0 if pos_weight is None else pos_weight)
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_multilabel_loss_broadcasts_pos_weight_per_label() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2, size=(50, 4)).astype(np.float32)
    y = (rng.random((50, 4)) < 0.2).astype(np.float32)
    pos_weight = np.array([1.0, 2.0, 5.0, 9.0], dtype=np.float32)
    loss = nn.BCEWithLogitsLoss(pos_weight=torch.from_numpy(pos_weight))(
        torch.from_numpy(x), torch.from_numpy(y))
    assert float(loss) == pytest.approx(bce_numpy(x, y, pos_weight[None, :]), rel=1e-5)


def test_logits_stay_exact_where_probabilities_saturate() -> None:
    y = torch.tensor([1.0, 0.0])
    moderate = torch.tensor([2.0, -1.5])
    assert torch.allclose(nn.BCELoss()(torch.sigmoid(moderate), y),
                          nn.BCEWithLogitsLoss()(moderate, y), atol=1e-6)

    # Confidently wrong logits: the true loss is softplus(150) = 150 for each row.
    logits = torch.tensor([-150.0, 150.0], requires_grad=True)
    exact = bce_numpy(logits.detach().numpy(), y.numpy())
    with_logits = nn.BCEWithLogitsLoss()(logits, y)
    with_logits.backward()
    assert float(with_logits.detach()) == pytest.approx(exact, rel=1e-6)
    assert exact == pytest.approx(150.0)
    assert torch.allclose(logits.grad, torch.tensor([-0.5, 0.5]))  # (sigmoid(x) - y) / n

    logits.grad = None
    via_probabilities = nn.BCELoss()(torch.sigmoid(logits), y)
    via_probabilities.backward()
    assert float(via_probabilities.detach()) == pytest.approx(100.0)  # log clamped at -100
    assert float(logits.grad.abs().max()) < 1e-30  # the gradient that should be 0.5 vanished


def test_adam_matches_torch_adam_on_dense_parameters() -> None:
    torch.manual_seed(0)
    ours = nn.Linear(5, 3)
    theirs = nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    opt_ours = Adam(ours.parameters(), lr=0.01, weight_decay=0.1)
    opt_theirs = torch.optim.Adam(theirs.parameters(), lr=0.01, weight_decay=0.1)
    for step in range(5):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_lazy_adam_updates_only_the_rows_in_the_batch() -> None:
    model = SparseMLP(ModelConfig(vocab_size=50, hidden=[4], dropout=0.0))
    before = model.first.bag.weight.detach().clone()
    optimizer = Adam(model.parameters(), lr=0.1)
    batch = SparseBatch(torch.tensor([2, 7, 7]), torch.tensor([0, 2]), torch.ones(3))
    model(batch).sum().backward()
    optimizer.step()
    changed = (model.first.bag.weight.detach() != before).any(dim=1)
    assert changed.nonzero().flatten().tolist() == [2, 7]


@pytest.mark.parametrize("width", [1, 4])
def test_summing_duplicate_rows_equals_coalesce(width: int) -> None:
    from sentiment_cli.model.optim import _sum_duplicates

    generator = torch.Generator().manual_seed(width)
    indices = torch.randint(0, 30, (200,), generator=generator)
    values = torch.randn(200, width, generator=generator)
    grad = torch.sparse_coo_tensor(indices[None], values, (40, width), check_invariants=True)
    rows, summed = _sum_duplicates(grad)
    expected = grad.coalesce()
    assert torch.equal(rows, expected.indices()[0])
    assert torch.allclose(summed, expected.values(), atol=1e-5)
    rows, summed = _sum_duplicates(expected)  # already coalesced: passed through
    assert torch.equal(rows, expected.indices()[0]) and torch.equal(summed, expected.values())


def test_input_dropout_leaves_terms_out_in_training_only() -> None:
    """With every term's weight 1 and no bias, the logit counts the terms: in training each
    one counts 0 or 1 / (1 - p) = 2 times, drawn anew each step; in evaluation once."""
    torch.manual_seed(0)
    model = SparseMLP(ModelConfig(vocab_size=1000, hidden=[], dropout=0.0), input_dropout=0.5)
    with torch.no_grad():
        model.first.bag.weight.fill_(1.0)
        model.first.bias.zero_()
    batch = SparseBatch(torch.arange(1000), torch.tensor([0]), torch.ones(1000))
    model.eval()
    assert float(model(batch).detach()) == 1000.0
    model.train()
    counts = [float(model(batch).detach()) for _ in range(5)]
    assert all(c % 2 == 0 and 850 < c < 1150 for c in counts), counts  # 2 x about 500 kept
    assert len(set(counts)) > 1


def test_predict_logits_in_batches_equals_one_pass() -> None:
    model = SparseMLP(ModelConfig(vocab_size=300, hidden=[8, 4], dropout=0.5))
    matrix = random_csr(25, 300, 0.05, seed=3)
    assert np.allclose(predict_logits(model, matrix, batch_size=7),
                       predict_logits(model, matrix, batch_size=100), atol=1e-6)


@pytest.mark.parametrize("hidden", [[], [8], [8, 4]])
def test_numpy_forward_equals_the_torch_module(hidden: list[int]) -> None:
    from sentiment_cli.model.architecture import forward_numpy

    torch.manual_seed(0)
    model = SparseMLP(ModelConfig(vocab_size=300, hidden=hidden, dropout=0.5))
    matrix = random_csr(25, 300, 0.05, seed=4)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    assert np.allclose(forward_numpy(weights, model.config, matrix),
                       predict_logits(model, matrix), atol=1e-5)
