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
from signdigits.errors import IndexingError, InvalidArgumentError, ShapeError

from .helpers import (
    BROADCAST_PAIRS,
    FLOAT_DTYPES,
    SEEDS,
    SETTINGS,
    SHAPES,
    check_against_torch,
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
    "softplus": (ag.softplus, tF.softplus, False),
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


# -- regressions found against PyTorch --------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "perm"),
    [((2, 3), (-1, 0)), ((2, 3, 4), (0, -1, -2)), ((2, 3, 4), (-3, 2, -2)), ((5,), (-1,))],
)
def test_transpose_with_negative_axes(shape, perm):
    torch_perm = tuple(p % len(shape) for p in perm)
    check_op(
        lambda x: x.transpose(perm),
        lambda x: x.permute(torch_perm),
        random_arrays(0, [shape]),
        np.float64,
    )


def test_transpose_that_is_not_a_permutation_is_named():
    x = ag.Tensor(np.ones((2, 3, 4)))
    for perm in [(0, 0, 1), (0, 1), (0, 1, 3)]:
        with pytest.raises(ShapeError, match="transpose"):
            x.transpose(perm)


@pytest.mark.parametrize(
    "index",
    [
        (slice(None), (2, 2)),
        ((0, 0),),
        ((0, 2, 0), (1, 1, 1)),
        [[0, 0], [2, 2]],
        (np.int64(1), [3, 3, 0]),
        [],
    ],
    ids=["tuple_in_tuple", "nested_tuple", "two_tuples", "nested_lists", "npint_list", "empty"],
)
def test_every_integer_array_form_accumulates_repeated_indices(index):
    def torch_index(i):
        if isinstance(i, tuple):
            return tuple(torch.tensor(p) if isinstance(p, tuple | list) else p for p in i)
        return torch.tensor(i, dtype=torch.long)

    check_op(
        lambda x: x[index], lambda x: x[torch_index(index)], random_arrays(1, [(3, 4)]), np.float64
    )


def test_indexing_with_a_tensor_of_integers_or_a_boolean_tensor():
    (x,) = random_arrays(2, [(4, 3)])
    rows = ag.Tensor(np.array([3, 1, 3]))
    check_op(lambda t: t[rows], lambda t: t[torch.tensor([3, 1, 3])], [x], np.float64)
    mask = ag.Tensor(x > 0)
    check_op(lambda t: t[mask], lambda t: t[torch.tensor(x > 0)], [x], np.float64)


def test_index_out_of_range_is_a_library_index_error():
    with pytest.raises(IndexingError, match=r"getitem.*\(3,\)") as info:
        ag.Tensor(np.ones(3))[5]
    assert isinstance(info.value, IndexError)


def test_power_zero_has_zero_gradient_at_zero():
    check_against_torch(lambda x: x**0, lambda x: x**0, [np.array([0.0, 1.0, -2.0])])


def test_power_of_an_integer_tensor():
    with pytest.raises(InvalidArgumentError, match=r"integer tensor.*negative power"):
        ag.Tensor(np.arange(3)) ** -1
    np.testing.assert_array_equal((ag.Tensor(np.arange(3)) ** 2).data, [0, 1, 4])
    with pytest.raises(InvalidArgumentError, match="exponent"):
        ag.Tensor(np.ones(2)) ** "2"


def test_array_to_the_power_of_a_tensor():
    base = np.array([0.5, 2.0, 3.0])
    check_op(
        lambda x: base**x,
        lambda x: torch.tensor(base) ** x,
        [np.array([1.0, -1.0, 0.5])],
        np.float64,
    )
    with pytest.raises(InvalidArgumentError, match="positive base"):
        np.array([-1.0, 2.0]) ** ag.Tensor(np.ones(2))


@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)])
def test_reductions_of_a_0d_tensor_over_axis_0_or_minus_1(name, axis):
    torch_dim = axis if isinstance(axis, int) else axis[0]
    for keepdims in (False, True):
        check_op(
            lambda x, k=keepdims: getattr(x, name)(axis=axis, keepdims=k),
            lambda x, k=keepdims: TORCH_REDUCTIONS[name](x, dim=torch_dim, keepdim=k),
            [np.array(1.5)],
            np.float64,
        )


@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
def test_reductions_take_torch_names_dim_and_keepdim(name):
    (x,) = random_arrays(3, [(2, 3, 4)])
    for dim, keepdim in [(0, False), (-1, True), ((0, -1), False), ((-2, 0), True)]:
        check_op(
            lambda t, d=dim, k=keepdim: getattr(t, name)(dim=d, keepdim=k),
            lambda t, d=dim, k=keepdim: TORCH_REDUCTIONS[name](t, dim=d, keepdim=k),
            [x],
            np.float64,
        )
    t = ag.Tensor(x)
    with pytest.raises(InvalidArgumentError, match="axis or dim"):
        t.sum(axis=0, dim=0)
    with pytest.raises(ShapeError, match="axis 3 is out of range"):
        t.sum(dim=3)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda x: x.relu(), torch.relu),
        (abs, torch.abs),
        (lambda x: x.clip(-1.0, 1.0), lambda x: x.clamp(-1.0, 1.0)),
        (lambda x: ag.leaky_relu(x, 0.2), lambda x: torch.nn.functional.leaky_relu(x, 0.2)),
        (lambda x: x.min(), torch.amin),
        (lambda x: x.max(axis=0), lambda x: torch.amax(x, dim=0)),
        (lambda x: x.min(axis=-1, keepdims=True), lambda x: torch.amin(x, dim=-1, keepdim=True)),
    ],
    ids=["relu", "abs", "clip", "leaky_relu", "min", "max_axis", "min_axis"],
)
def test_gradients_at_kinks_and_ties_match_torch(ours, theirs):
    """At x = 0 for ReLU and Abs, at the bounds of Clip, and where min/max tie, the gradient
    is the one PyTorch chose (a subgradient), not NaN or a finite-difference average."""
    kinks = np.array([[0.0, -1.0, 1.0, 0.0], [1.0, 0.0, -1.0, 1.0], [1.0, -1.0, 0.0, -1.0]])
    check_against_torch(ours, theirs, [kinks])


def test_softplus_never_overflows_and_matches_torch_at_extremes():
    """log(1 + eᶻ) at z = ±1000: finite, as torch's, with the gradient σ(z)."""
    check_against_torch(
        ag.softplus, torch.nn.functional.softplus, [np.array([-1000.0, -3.0, 0.0, 2.5, 1000.0])]
    )
