"""gradcheck accepts right derivatives, and finds and locates wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from signdigits import InvalidArgumentError, Tensor, gradcheck
from signdigits.autograd import Function, apply


class WrongSquare(Function):
    """y = x², with a derivative that is wrong at index 2 only."""

    __slots__ = ()
    name = "wrong_square"

    def forward(self, x):
        self.saved = (x,)
        return x * x

    def backward(self, g):
        (x,) = self.saved
        derivative = 2 * x
        derivative[2] += 0.5
        return (g * derivative,)


def test_passes_a_right_derivative():
    result = gradcheck(lambda a, b: (a * b).tanh(), [np.ones((2, 3)), np.full(3, 0.5)])
    assert result and result.ok and result.max_error < 1e-8
    assert "passed" in str(result)


def test_finds_and_locates_a_wrong_derivative():
    a = np.arange(5.0)
    result = gradcheck(lambda c, x: c * apply(WrongSquare(), x), [np.ones(5), a])
    assert not result
    assert (result.input_index, result.index) == (1, (2,))
    assert result.analytical - result.numerical == pytest.approx(
        0.5 * np.random.default_rng(0).standard_normal(5)[2]
    )
    assert "FAILED" in str(result)


def test_checks_in_float64_and_skips_constants():
    constant = Tensor(np.ones(3, dtype=np.float32))  # requires_grad=False: not checked
    seen = []

    def fn(x, c):
        seen.append(x.dtype)
        return x * c

    assert gradcheck(fn, [np.ones(3, dtype=np.float32), constant])
    assert set(seen) == {np.dtype(np.float64)}


def test_needs_something_to_check():
    with pytest.raises(InvalidArgumentError):
        gradcheck(lambda x: x * 2, [Tensor([1.0])])


class NanAtOne(Function):
    """y = 3x, with a derivative that is NaN at index 1 only."""

    __slots__ = ()
    name = "nan_at_one"

    def forward(self, x):
        return 3 * x

    def backward(self, g):
        derivative = np.full(g.shape, 3.0)
        derivative[1] = np.nan
        return (g * derivative,)


def test_a_nan_gradient_is_reported_with_its_input_and_index():
    result = gradcheck(lambda c, x: c * apply(NanAtOne(), x), [np.ones(3), np.arange(3.0)])
    assert not result
    assert (result.input_index, result.index) == (1, (1,))
    assert result.max_error == np.inf
    assert "analytical gradient is NaN at input 1, index (1,)" in str(result)
