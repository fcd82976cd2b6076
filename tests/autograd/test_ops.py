"""Every operation against PyTorch (values and gradients) and against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from signdigits import autograd as ag

from .helpers import (
    BROADCAST_PAIRS,
    FLOAT_DTYPES,
    SEEDS,
    SETTINGS,
    SHAPES,
    check_op,
    random_arrays,
)

# name: (ours, torch's, whether the input must be positive)
UNARY = {
    "neg": (lambda x: -x, lambda x: -x, False),
    "exp": (lambda x: x.exp(), torch.exp, False),
    "log": (lambda x: x.log(), torch.log, True),
    "sqrt": (lambda x: x.sqrt(), torch.sqrt, True),
    "tanh": (lambda x: x.tanh(), torch.tanh, False),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid, False),
    "relu": (lambda x: x.relu(), torch.relu, False),
    "leaky_relu": (lambda x: ag.leaky_relu(x, 0.1), lambda x: tF.leaky_relu(x, 0.1), False),
    "abs": (abs, torch.abs, False),
    "clip": (lambda x: x.clip(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7), False),
    "clip_min": (lambda x: ag.clip(x, min=0.2), lambda x: x.clamp(min=0.2), False),
    "pow3": (lambda x: x**3, lambda x: x**3, False),
    "pow_half": (lambda x: x**0.5, lambda x: x**0.5, True),
    "pow_neg": (lambda x: x**-1.5, lambda x: x**-1.5, True),
    "rpow": (lambda x: 2.0**x, lambda x: 2.0**x, False),
    "radd": (lambda x: 1.5 + x, lambda x: 1.5 + x, False),
    "rsub": (lambda x: 1.5 - x, lambda x: 1.5 - x, False),
    "rmul": (lambda x: 2.5 * x, lambda x: 2.5 * x, False),
    "rdiv": (lambda x: 2.0 / x, lambda x: 2.0 / x, True),
    "sub_scalar": (lambda x: x - 1.0, lambda x: x - 1.0, False),
    "div_scalar": (lambda x: x / 4.0, lambda x: x / 4.0, False),
    "square_by_mul": (lambda x: x * x, lambda x: x * x, False),
}


@pytest.mark.parametrize("name", UNARY)
@SETTINGS
@given(shape=SHAPES, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_unary(name, shape, seed, dtype):
    ours, theirs, positive = UNARY[name]
    check_op(ours, theirs, random_arrays(seed, [shape], positive), dtype)


BINARY = {
    "add": (lambda a, b: a + b, False),
    "sub": (lambda a, b: a - b, False),
    "mul": (lambda a, b: a * b, False),
    "div": (lambda a, b: a / b, True),
}


@pytest.mark.parametrize("name", BINARY)
@SETTINGS
@given(shapes=BROADCAST_PAIRS, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_binary_broadcasting(name, shapes, seed, dtype):
    fn, positive_b = BINARY[name]
    a, _ = random_arrays(seed, shapes.input_shapes)
    _, b = random_arrays(seed, shapes.input_shapes, positive=positive_b)
    check_op(fn, fn, [a, b], dtype)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div"])
@SETTINGS
@given(shapes=BROADCAST_PAIRS, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_binary_with_constant_array(name, shapes, seed, dtype):
    """A constant ndarray operand, on either side, broadcasts and gets no gradient."""
    fn, _ = BINARY[name]
    x, constant = random_arrays(seed, shapes.input_shapes, positive=True)
    check_op(
        lambda t: fn(t, constant) + fn(constant, t),
        lambda t: (
            fn(t, torch.tensor(constant, dtype=t.dtype))
            + fn(torch.tensor(constant, dtype=t.dtype), t)
        ),
        [x],
        dtype,
    )


@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=4),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_where(shapes, seed, dtype):
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = np.random.default_rng(seed).random(cond_shape) > 0.5
    check_op(
        lambda a, b: ag.where(cond, a, b),
        lambda a, b: torch.where(torch.tensor(cond), a, b),
        random_arrays(seed, [a_shape, b_shape]),
        dtype,
    )


@st.composite
def matmul_shapes(draw):
    """Operand shapes for a @ b: batched with broadcasting, and 1-D operands."""
    n, k, m = draw(st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)))
    batch = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    a_shape = (k,) if draw(st.booleans()) else (*batch.input_shapes[0], n, k)
    b_shape = (k,) if draw(st.booleans()) else (*batch.input_shapes[1], k, m)
    return a_shape, b_shape


@SETTINGS
@given(shapes=matmul_shapes(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_matmul(shapes, seed, dtype):
    check_op(lambda a, b: a @ b, lambda a, b: a @ b, random_arrays(seed, shapes), dtype)


@SETTINGS
@given(batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_matmul_with_constant_array(batch, seed, dtype):
    x, w = random_arrays(seed, [(*batch, 3, 3), (3, 3)])
    check_op(
        lambda t: w @ t + t @ w,
        lambda t: torch.tensor(w, dtype=t.dtype) @ t + t @ torch.tensor(w, dtype=t.dtype),
        [x],
        dtype,
    )


@st.composite
def reduction_cases(draw):
    """A shape and an axis argument for it: None, an int or a non-empty tuple of axes."""
    shape = draw(SHAPES)
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"])) if ndim else "none"
    if kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    elif kind == "tuple":
        axis = tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, unique=True)))
    else:
        axis = None
    return shape, axis, draw(st.booleans())


TORCH_REDUCTIONS = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}


@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
@SETTINGS
@given(case=reduction_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_reductions(name, case, seed, dtype):
    shape, axis, keepdims = case
    dim = tuple(range(len(shape))) if axis is None else axis
    check_op(
        lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
        lambda x: TORCH_REDUCTIONS[name](x, dim=dim, keepdim=keepdims),
        random_arrays(seed, [shape]),
        dtype,
    )


def test_max_splits_gradient_between_ties():
    x = ag.Tensor(np.array([1.0, 3.0, 3.0, 2.0]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0, 0.5, 0.5, 0])


@SETTINGS
@given(shape=SHAPES, seed=SEEDS, dtype=FLOAT_DTYPES, data=st.data())
def test_reshape_and_transpose(shape, seed, dtype, data):
    target = data.draw(st.sampled_from([(-1,), shape[::-1], (1, *shape, 1)]))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check_op(
        lambda x: x.reshape(target).reshape(shape).transpose(perm) * 2 + x.T.sum(),
        lambda x: (
            x.reshape(target).reshape(shape).permute(perm) * 2
            + x.permute(tuple(reversed(range(x.ndim)))).sum()
        ),
        random_arrays(seed, [shape]),
        dtype,
    )


INDEXES = {
    "basic_slices": ((slice(1, None), slice(None, None, 2)), None),
    "integer": (1, None),
    "negative_step": (slice(None, None, -1), lambda t: t.flip(0)),
    "ellipsis_newaxis": ((Ellipsis, None, 1), None),
    "repeated_integers": ([0, 2, 0, 0], None),
    "integer_array_and_slice": ((np.array([2, 0, 2]), slice(1, 3)), None),
    "two_integer_arrays": ((np.array([0, 1, 1]), np.array([3, 3, 3])), None),
    "boolean_mask": (np.array([True, False, True]), None),
    "boolean_mask_2d": ("mask", None),
}


@pytest.mark.parametrize("name", INDEXES)
@SETTINGS
@given(seed=SEEDS, dtype=FLOAT_DTYPES)
def test_getitem(name, seed, dtype):
    (x,) = random_arrays(seed, [(3, 4)])
    index, torch_fn = INDEXES[name]
    if isinstance(index, str):  # a mask made from the data
        index = x > 0
    check_op(lambda t: t[index], torch_fn or (lambda t: t[index]), [x], dtype)


@st.composite
def join_cases(draw):
    """Shapes for concatenate (differing along ``axis``) and an axis."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    shapes = [tuple(s if i != axis % len(shape) else n for i, s in enumerate(shape)) for n in sizes]
    return shapes, axis


@SETTINGS
@given(case=join_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_concatenate(case, seed, dtype):
    shapes, axis = case
    check_op(
        lambda *ts: ag.concatenate(ts, axis=axis),
        lambda *ts: torch.cat(ts, dim=axis),
        random_arrays(seed, shapes),
        dtype,
    )


@SETTINGS
@given(shape=SHAPES, count=st.integers(1, 3), seed=SEEDS, dtype=FLOAT_DTYPES, data=st.data())
def test_stack(shape, count, seed, dtype, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    check_op(
        lambda *ts: ag.stack(ts, axis=axis),
        lambda *ts: torch.stack(ts, dim=axis),
        random_arrays(seed, [shape] * count),
        dtype,
    )


@SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
    data=st.data(),
)
def test_pad(shape, seed, dtype, data):
    widths = [tuple(data.draw(st.lists(st.integers(0, 2), min_size=2, max_size=2))) for _ in shape]
    value = data.draw(st.sampled_from([0.0, -1.5]))
    torch_widths = [w for pair in reversed(widths) for w in pair]  # last axis first
    check_op(
        lambda x: ag.pad(x, widths, value=value),
        lambda x: tF.pad(x, torch_widths, value=value),
        random_arrays(seed, [shape]),
        dtype,
    )


def test_pad_accepts_numpy_style_widths():
    x = ag.Tensor(np.ones((2, 3)))
    assert ag.pad(x, 1).shape == (4, 5)
    assert ag.pad(x, (1, 2)).shape == (5, 6)


def test_module_level_functions_match_methods():
    x = ag.Tensor(np.linspace(0.5, 2.0, 6).reshape(2, 3))
    pairs = [
        (ag.exp(x), x.exp()),
        (ag.log(x), x.log()),
        (ag.sqrt(x), x.sqrt()),
        (ag.tanh(x), x.tanh()),
        (ag.sigmoid(x), x.sigmoid()),
        (ag.relu(x), x.relu()),
        (ag.reshape(x, (3, 2)), x.reshape(3, 2)),
        (ag.transpose(x), x.T),
        (ag.matmul(x, x.T), x @ x.T),
    ]
    for functional, method in pairs:
        np.testing.assert_array_equal(functional.data, method.data)
