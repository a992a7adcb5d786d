"""The training loop: repeatability, pos_weight, early stopping, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import toy_rows

from sentiment_cli.config import TrainingConfig, VectorizerConfig
from sentiment_cli.device import resolve_device
from sentiment_cli.errors import DataError
from sentiment_cli.features import fit_vectorizer
from sentiment_cli.model.module import predict_logits
from sentiment_cli.model.optim import Adam
from sentiment_cli.training import loop
from sentiment_cli.training.loop import compute_pos_weight, fit


@pytest.fixture(scope="module")
def toy_matrix():  # type: ignore[no-untyped-def]
    rows = toy_rows(300, seed=3)
    _, matrix = fit_vectorizer([t for t, _ in rows], VectorizerConfig())
    y = np.array([lab == "positive" for _, lab in rows], dtype=np.float32)
    return matrix[:240], y[:240], matrix[240:], y[240:]


def test_same_seed_gives_the_same_model_on_cpu(toy_matrix) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    options = TrainingConfig(hidden=[8], epochs=3, seed=7, device="cpu")
    a, b = fit(x, y, xv, yv, options), fit(x, y, xv, yv, options)
    assert [h.val_loss for h in a.history] == [h.val_loss for h in b.history]
    assert np.array_equal(predict_logits(a.model, xv), predict_logits(b.model, xv))
    c = fit(x, y, xv, yv, TrainingConfig(hidden=[8], epochs=3, seed=8, device="cpu"))
    assert [h.val_loss for h in a.history] != [h.val_loss for h in c.history]


def test_learns_the_toy_task(toy_matrix) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    result = fit(x, y, xv, yv, TrainingConfig(hidden=[], lr=0.01, epochs=20, device="cpu"))
    accuracy = ((predict_logits(result.model, xv)[:, 0] > 0) == (yv > 0.5)).mean()
    assert accuracy > 0.95


def test_a_tiny_gradient_moves_a_weight_by_a_full_step_only_at_adams_default_epsilon() -> None:
    """What the larger epsilon of models with several outputs is for: a (term, output) pair
    whose gradient is noise-sized moves in proportion to it, not by the learning rate."""
    moved = {}
    for eps in (loop.adam_eps(1), loop.adam_eps(28)):
        weight = torch.nn.Parameter(torch.zeros(1))
        optimizer = Adam([weight], lr=0.02, eps=eps)
        weight.grad = torch.full((1,), 1e-5)
        optimizer.step()
        moved[eps] = -float(weight)
    assert moved[1e-8] == pytest.approx(0.02, rel=0.05)
    assert moved[loop.MULTI_OUTPUT_EPS] < 0.001


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_fit_gives_adam_the_epsilon_of_its_number_of_outputs(
        toy_matrix, monkeypatch, n_outputs: int) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    given = []

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        given.append(kwargs.get("eps"))
        return Adam(*args, **kwargs)

    monkeypatch.setattr(loop, "Adam", recording)
    ys = np.repeat(y[:, None], n_outputs, axis=1) if n_outputs > 1 else y
    yvs = np.repeat(yv[:, None], n_outputs, axis=1) if n_outputs > 1 else yv
    fit(x, ys, xv, yvs, TrainingConfig(hidden=[], epochs=1, device="cpu"))
    assert given == [1e-8 if n_outputs == 1 else loop.MULTI_OUTPUT_EPS]


def test_auto_pos_weight_is_negatives_over_positives() -> None:
    y = np.array([1, 0, 0, 0, 0, 1, 0, 0], dtype=np.float32)
    assert compute_pos_weight("auto", y).tolist() == [3.0]
    assert compute_pos_weight("balanced", y).tolist() == [3.0]
    assert compute_pos_weight(None, y) is None
    assert compute_pos_weight(2.5, y).tolist() == [2.5]
    y2 = np.array([[1, 0], [0, 0], [1, 1], [0, 0]], dtype=np.float32)
    assert compute_pos_weight("auto", y2).tolist() == [1.0, 3.0]
    with pytest.raises(DataError, match="no positive rows"):
        compute_pos_weight("auto", np.zeros((4, 2), dtype=np.float32))
    with pytest.raises(DataError, match="positive on every training row"):
        compute_pos_weight("balanced", np.array([[1, 0], [1, 1]], dtype=np.float32))


@pytest.mark.parametrize("hidden", [[], [8]])
def test_balanced_trains_as_auto_then_shifts_the_output_bias_by_log_w(
        toy_matrix, hidden: list[int]) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    positives = np.flatnonzero(y == 1)
    keep = np.sort(np.concatenate([np.flatnonzero(y == 0), positives[: len(positives) // 4]]))
    x, y = x[keep], y[keep]
    auto, balanced = (fit(x, y, xv, yv, TrainingConfig(hidden=hidden, epochs=4, seed=1,
                                                     device="cpu", pos_weight=setting))
                      for setting in ("auto", "balanced"))
    assert auto.pos_weight == balanced.pos_weight and auto.pos_weight[0] > 3
    shift = np.log(np.float32(auto.pos_weight[0]))
    a, b = auto.model.state_dict(), balanced.model.state_dict()
    bias = "rest.2.bias" if hidden else "first.bias"
    for name in a:
        if name == bias:
            assert torch.allclose(b[name], a[name] - shift)
        else:
            assert torch.equal(a[name], b[name]), name
    logits_a, logits_b = predict_logits(auto.model, xv), predict_logits(balanced.model, xv)
    assert np.allclose(logits_b, logits_a - shift, atol=1e-5)
    assert (logits_b > 0).mean() < (logits_a > 0).mean()  # fewer positives called at 0.5


def test_early_stopping_keeps_the_best_epoch(toy_matrix) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    noisy = y.copy()
    noisy[::4] = 1 - noisy[::4]  # label noise: validation loss turns up once it is memorised
    result = fit(x, noisy, xv, yv, TrainingConfig(hidden=[64], lr=0.05, epochs=30, patience=2,
                                                average_epochs=False))
    assert result.averaged_epochs == 0
    val_losses = [h.val_loss for h in result.history]
    assert result.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.stopped_early and len(result.history) == result.best_epoch + 2
    from sentiment_cli.training.batches import evaluate_loss

    kept_loss, _, _ = evaluate_loss(result.model, xv, yv, None, None, torch.device("cpu"))
    assert kept_loss == pytest.approx(min(val_losses), rel=1e-5)


# On this toy task (seeded, so deterministic on CPU) the linear model's mean of epochs wins on
# validation loss and the MLP's does not: both branches are exercised.
@pytest.mark.parametrize(("hidden", "averages"), [([], True), ([16], False)])
def test_the_mean_of_the_epochs_is_kept_only_when_validation_prefers_it(
        toy_matrix, hidden: list[int], averages: bool) -> None:  # type: ignore[no-untyped-def]
    from sentiment_cli.training.batches import evaluate_loss

    x, y, xv, yv = toy_matrix
    noisy = y.copy()
    noisy[::4] = 1 - noisy[::4]
    snapshots: list[dict[str, torch.Tensor]] = []
    result = fit(x, noisy, xv, yv, TrainingConfig(hidden=hidden, lr=0.05, epochs=30, patience=2),
                 checkpoint=lambda state: snapshots.append(state.model_state))
    best_loss = min(h.val_loss for h in result.history)
    kept_loss, _, _ = evaluate_loss(result.model, xv, yv, None, None, torch.device("cpu"))
    assert kept_loss == pytest.approx(result.val_loss, rel=1e-5)
    mean = {k: torch.stack([s[k].double() for s in snapshots]).mean(0) for k in snapshots[0]}
    assert bool(result.averaged_epochs) == averages
    if result.averaged_epochs:
        assert result.averaged_epochs == len(result.history) == len(snapshots)
        assert kept_loss < best_loss
        for name, value in result.model.state_dict().items():
            assert torch.allclose(value.double(), mean[name], atol=1e-6)
    else:
        assert kept_loss == pytest.approx(best_loss, rel=1e-5)
    without = fit(x, noisy, xv, yv, TrainingConfig(hidden=hidden, lr=0.05, epochs=30, patience=2,
                                                 average_epochs=False))
    assert result.val_loss <= without.val_loss + 1e-9


def test_sample_weights_change_the_model(toy_matrix) -> None:  # type: ignore[no-untyped-def]
    x, y, xv, yv = toy_matrix
    options = TrainingConfig(hidden=[], epochs=2, device="cpu")
    plain = fit(x, y, xv, yv, options)
    weights = np.where(y > 0, 5.0, 1.0).astype(np.float32)
    weighted = fit(x, y, xv, yv, options, w_train=weights)
    assert predict_logits(weighted.model, xv).mean() > predict_logits(plain.model, xv).mean()


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DataError, match="--device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="CUDA is not available.*--device cpu"):
            resolve_device("cuda")


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_training_runs_on_each_available_device(toy_matrix, device: str) -> None:  # type: ignore[no-untyped-def]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    x, y, xv, yv = toy_matrix
    result = fit(x, y, xv, yv, TrainingConfig(hidden=[8], epochs=2, device=device,
                                            pos_weight="auto"))
    assert result.device.startswith(device)
    assert next(result.model.parameters()).device.type == "cpu"  # returned ready to save
    assert np.isfinite(predict_logits(result.model, xv)).all()


def test_diverging_loss_stops_with_a_message(toy_matrix) -> None:  # type: ignore[no-untyped-def]
    from sentiment_cli.training.loop import TrainingDiverged

    x, y, xv, yv = toy_matrix
    bad = x.copy()
    bad.data[:] = np.inf
    with pytest.raises(TrainingDiverged, match="epoch 1.*--lr"):
        fit(bad, y, xv, yv, TrainingConfig(hidden=[8], epochs=2))
