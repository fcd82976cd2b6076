"""The engine's gradients of logistic regression, the tutorial's hand-derived ones, and PyTorch's.

Two implementations of ours (the engine's autograd, the tutorial's formulas) and one
that is not ours (PyTorch's autograd, ``tests.reference``) must give the same cost and
gradients on the tutorial's real training images.
"""

from __future__ import annotations

import numpy as np
import pytest

from signdigits import functional as F
from signdigits import tutorial
from signdigits.autograd import Tensor
from tests.reference import torch_cost_and_gradients


@pytest.fixture(scope="module")
def tutorial_split(dataset):
    X, Y = tutorial.load_zeros_and_ones(dataset)
    return tutorial.split_flatten_transpose(X, Y)


@pytest.fixture(scope="module", params=[0, 30], ids=["start", "after-30-steps"])
def parameters(request, tutorial_split):
    """w and b at the tutorial's start, or after 30 steps (where every weight's gradient
    differs), with the reference cost and gradients of PyTorch at that point."""
    x_train, y_train, _, _ = tutorial_split
    w, b = tutorial.initialize_weights_and_bias(x_train.shape[0])
    if request.param:
        learned, _, _ = tutorial.update(w, b, x_train, y_train, 0.01, request.param)
        w, b = learned["weight"], learned["bias"]
    return w, b, torch_cost_and_gradients(w, b, x_train, y_train)


def engine_gradients(w, b, x, y, fused: bool):
    """dcost/dw and dcost/db by the engine, features first as in the tutorial."""
    w_, b_ = Tensor(w, requires_grad=True), Tensor(np.float64(b), requires_grad=True)
    z = w_.T @ Tensor(x) + b_
    if fused:
        cost = F.binary_cross_entropy_with_logits(z, Tensor(y))
    else:
        y_head = z.sigmoid()
        cost = (-(y * y_head.log() + (1 - y) * (1 - y_head).log())).mean()
    cost.backward()
    return cost.item(), w_.grad, float(b_.grad)


def relative_difference(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


@pytest.mark.parametrize("fused", [True, False], ids=["fused-bce", "tutorial-formula"])
def test_engine_matches_torch_and_the_tutorial_on_real_data(tutorial_split, parameters, fused):
    x_train, y_train, _, _ = tutorial_split
    w, b, (torch_cost, torch_dw, torch_db) = parameters

    engine_cost, dw, db = engine_gradients(w, b, x_train, y_train, fused)
    cost, gradients = tutorial.forward_backward_propagation(w, b, x_train, y_train)

    assert x_train.dtype == np.float64 and dw.dtype == np.float64
    assert dw.shape == torch_dw.shape == (4096, 1)
    for ours_cost, ours_dw, ours_db in (
        (engine_cost, dw, db),
        (cost, gradients["derivative_weight"], gradients["derivative_bias"]),
    ):
        assert relative_difference(ours_cost, torch_cost) <= 1e-10
        assert relative_difference(ours_dw, torch_dw) <= 1e-10
        assert relative_difference(ours_db, torch_db) <= 1e-10
