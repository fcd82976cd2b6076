"""The engine's gradients of the tutorial's networks, the hand-derived ones, and PyTorch's.

Two implementations of ours (the engine's autograd, the tutorial's formulas) and one
that is not ours (PyTorch's autograd, ``tests.reference``) must give the same cost and
gradients on the tutorial's real training images: for part 1's logistic regression and
for part 2's two-layer network.
"""

from __future__ import annotations

import numpy as np
import pytest

from signdigits import functional as F
from signdigits import tutorial
from signdigits.autograd import Tensor
from tests.reference import torch_cost_and_gradients, torch_two_layer


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


# --- Part 2: the two-layer network ------------------------------------------------------------


@pytest.fixture(scope="module", params=[0, 50], ids=["start", "after-50-steps"])
def network(request, tutorial_split):
    """Part 2's network from the seed 42 generator, at its start or after 50 steps, with
    PyTorch's cost and gradients at that point."""
    x_train, y_train, x_test, y_test = tutorial_split
    if request.param:
        parameters = tutorial.two_layer_neural_network(
            x_train,
            y_train,
            x_test,
            y_test,
            num_iterations=request.param,
            rng=np.random.default_rng(42),
        ).parameters
    else:
        parameters = tutorial.initialize_parameters_and_layer_sizes_NN(
            x_train, y_train, np.random.default_rng(42)
        )
    return parameters, torch_two_layer(parameters, x_train, y_train)


def engine_network_gradients(parameters, x, y, fused: bool):
    """The cost of part 2's network and its gradients by the engine, features first."""
    leaves = {name: Tensor(value, requires_grad=True) for name, value in parameters.items()}
    A1 = (leaves["weight1"] @ Tensor(x) + leaves["bias1"]).tanh()
    Z2 = leaves["weight2"] @ A1 + leaves["bias2"]
    if fused:
        cost = F.binary_cross_entropy_with_logits(Z2, Tensor(y))
    else:
        A2 = Z2.sigmoid()
        cost = (-(y * A2.log() + (1 - y) * (1 - A2).log())).mean()
    cost.backward()
    return cost.item(), {"d" + name: leaf.grad for name, leaf in leaves.items()}


@pytest.mark.parametrize("fused", [True, False], ids=["fused-bce", "tanh-sigmoid-log"])
def test_engine_matches_torch_and_the_tutorial_on_the_two_layer_network(
    tutorial_split, network, fused
):
    x_train, y_train, _, _ = tutorial_split
    parameters, reference = network

    engine_cost, engine_grads = engine_network_gradients(parameters, x_train, y_train, fused)
    _, cache = tutorial.forward_propagation_NN(x_train, parameters)
    cost = tutorial.compute_cost_NN(cache, y_train)
    grads = tutorial.backward_propagation_NN(parameters, cache, x_train, y_train)

    assert engine_grads["dweight1"].dtype == np.float64
    for ours_cost, ours_grads in ((engine_cost, engine_grads), (cost, grads)):
        assert relative_difference(ours_cost, reference.cost) <= 1e-10
        for name, reference_grad in reference.grads.items():
            assert ours_grads[name].shape == reference_grad.shape
            assert relative_difference(ours_grads[name], reference_grad) <= 1e-10, name
