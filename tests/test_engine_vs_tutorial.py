"""The engine's gradients of logistic regression equal the tutorial's hand-derived ones."""

from __future__ import annotations

import numpy as np
import pytest

from signdigits import functional as F
from signdigits import tutorial
from signdigits.autograd import Tensor


@pytest.fixture(scope="module")
def tutorial_split(dataset):
    X, Y = tutorial.load_zeros_and_ones(dataset)
    return tutorial.split_flatten_transpose(X, Y)


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
@pytest.mark.parametrize("iterations", [0, 30])
def test_engine_matches_hand_derived_gradients_on_real_data(tutorial_split, fused, iterations):
    x_train, y_train, _, _ = tutorial_split
    w, b = tutorial.initialize_weights_and_bias(x_train.shape[0])
    if iterations:  # move away from the uniform start so every weight's gradient differs
        parameters, _, _ = tutorial.update(w, b, x_train, y_train, 0.01, iterations)
        w, b = parameters["weight"], parameters["bias"]
    cost, gradients = tutorial.forward_backward_propagation(w, b, x_train, y_train)

    engine_cost, dw, db = engine_gradients(w, b, x_train, y_train, fused)

    assert x_train.dtype == np.float64 and dw.dtype == np.float64
    assert relative_difference(engine_cost, cost) <= 1e-10
    assert relative_difference(dw, gradients["derivative_weight"]) <= 1e-10
    assert relative_difference(db, gradients["derivative_bias"]) <= 1e-10
