"""Each leaf owns its .grad: no two leaves, nor the caller's array, share one gradient array."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from signdigits import functional as F
from signdigits.autograd import Tensor


def test_pass_through_gradients_are_not_shared_between_leaves():
    a = Tensor(np.ones(3), requires_grad=True)
    b = Tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.ones(3))
    assert a.grad is not b.grad
    a.grad[0] = 100.0
    assert b.grad[0] == 1.0


def test_callers_gradient_array_is_copied():
    x = Tensor(np.ones(3), requires_grad=True)
    upstream = np.full(3, 2.0)
    x.reshape(3).backward(upstream)
    upstream[:] = 0.0
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_fresh_gradients_kept_without_copy_still_accumulate_correctly():
    rng = np.random.default_rng(0)
    w = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    x = Tensor(rng.standard_normal((5, 3)))
    F.linear(x, w).sum().backward()
    first = w.grad.copy()
    F.linear(x, w).sum().backward()  # .grad accumulates, as in PyTorch
    np.testing.assert_allclose(w.grad, 2 * first)
    np.testing.assert_allclose(first, np.ones((5, 4)).T @ x.data)


def test_weight_used_twice_gets_the_sum_of_both_paths():
    rng = np.random.default_rng(1)
    w = Tensor(rng.standard_normal((2, 2)), requires_grad=True)
    x = Tensor(rng.standard_normal((3, 2)))
    (F.linear(x, w).sum() + (x @ w).sum()).backward()
    expected = np.ones((3, 2)).T @ x.data + x.data.T @ np.ones((3, 2))
    np.testing.assert_allclose(w.grad, expected)


def _assert_owned(leaves, upstream):
    """Each leaf's .grad is its own array: writing into one changes no other, nor upstream."""
    before = upstream.copy()
    grads = [t.grad for t in leaves]
    for i, g in enumerate(grads):
        assert g.flags.writeable
        for j, other in enumerate(grads):
            if i != j:
                assert not np.shares_memory(g, other)
        assert not np.shares_memory(g, upstream)
    for g in grads:
        g += 1000.0
    np.testing.assert_array_equal(upstream, before)


def test_matmul_gradients_are_owned_and_accumulate():
    rng = np.random.default_rng(2)
    a = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    upstream = rng.standard_normal((3, 2))
    (a @ b).backward(upstream)
    expected_a, expected_b = upstream @ b.data.T, a.data.T @ upstream
    np.testing.assert_allclose(a.grad, expected_a)
    _assert_owned([a, b], upstream)
    a.grad, b.grad = None, None
    (a @ b).backward(upstream)
    (a @ b).backward(upstream)
    np.testing.assert_allclose(a.grad, 2 * expected_a)
    np.testing.assert_allclose(b.grad, 2 * expected_b)


def test_conv2d_gradients_are_owned_and_accumulate():
    rng = np.random.default_rng(3)
    x = Tensor(rng.standard_normal((2, 2, 5, 5)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2, 3, 3)), requires_grad=True)
    b = Tensor(rng.standard_normal(3), requires_grad=True)
    y = F.conv2d(x, w, b, padding=1)
    upstream = rng.standard_normal(y.shape)
    y.backward(upstream)
    first = [t.grad.copy() for t in (x, w, b)]
    _assert_owned([x, w, b], upstream)
    for t in (x, w, b):
        t.grad = None
    for _ in range(2):
        F.conv2d(x, w, b, padding=1).backward(upstream)
    for t, g in zip((x, w, b), first, strict=True):
        np.testing.assert_allclose(t.grad, 2 * g)


ELEMENTWISE = {  # ops whose backward makes new arrays, kept by a leaf without a copy
    "mul": lambda x: x * x,
    "div": lambda x: x / (x * x + 1),
    "neg": lambda x: -x,
    "pow": lambda x: x**3,
    "exp": lambda x: x.exp(),
    "log": lambda x: (x * x + 1).log(),
    "sqrt": lambda x: (x * x + 1).sqrt(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": F.relu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "abs": lambda x: x.abs(),
    "clip": lambda x: x.clip(-0.5, 0.5),
}


@pytest.mark.parametrize("shape", [(), (1,), (3, 4)])
@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_gradients_are_owned_arrays_that_accumulate(name, shape):
    """The gradient a leaf keeps is a writable ndarray of its own, also for 0-d input
    (where NumPy's arithmetic gives scalars), and a second backward adds to it."""
    op = ELEMENTWISE[name]
    x_data = np.random.default_rng(2).uniform(-1, 1, shape)
    x = Tensor(x_data, requires_grad=True)
    upstream = np.random.default_rng(3).standard_normal(shape)
    op(x).backward(upstream)
    first = x.grad
    assert isinstance(first, np.ndarray) and first.flags.writeable and first.shape == shape
    assert not np.shares_memory(first, upstream) and not np.shares_memory(first, x_data)
    xt = torch.tensor(x_data, requires_grad=True)
    torch_ops = {
        "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, 0.1),
        "relu": torch.relu,
    }
    reference = torch_ops.get(name, op)(xt)
    reference.backward(torch.from_numpy(upstream))
    np.testing.assert_allclose(first, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    snapshot = first.copy()
    op(x).backward(upstream)
    np.testing.assert_allclose(x.grad, 2 * snapshot, rtol=1e-12, atol=1e-12)
