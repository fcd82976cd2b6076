"""Adversarial cases against PyTorch: the forms a PyTorch user writes, drawn at random.

Each test names the defect class it guards: permutations with negative axes, the index
forms of ``torch`` indexing (repeated indices accumulate), reductions spelled either way and
on 0-d tensors, mixed float32/float64 operands, size-0 and size-1 axes, ``x ** 0`` at 0,
threads sharing one leaf, one tensor used several times, truthiness and iteration, and
NumPy 2's ``copy`` contract for ``np.array(tensor)``. Values and gradients (for one random
upstream gradient) are compared with torch on the CPU, in float32 and in float64.
"""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from signdigits import Tensor, no_grad
from signdigits import autograd as ag
from signdigits import functional as F
from signdigits.errors import ShapeError

from .helpers import (
    FLOAT_DTYPES,
    SEEDS,
    assert_close,
    check_against_torch,
    check_gradient,
    random_arrays,
)

SETTINGS = settings(max_examples=30, deadline=None)
SHAPES_1_TO_4 = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
TORCH_REDUCTIONS = {"sum": torch.sum, "mean": torch.mean, "max": torch.amax, "min": torch.amin}


def leaf(values, dtype=np.float64) -> Tensor:
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# -- transpose with negative axes ---------------------------------------------------------------
@st.composite
def signed_permutations(draw):
    """A shape of 1 to 4 axes and a permutation of its axes, each entry maybe negative."""
    shape = draw(SHAPES_1_TO_4)
    ndim = len(shape)
    perm = draw(st.permutations(range(ndim)))
    signs = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    return shape, tuple(
        p - ndim if negative else p for p, negative in zip(perm, signs, strict=True)
    )


@SETTINGS
@given(case=signed_permutations(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_transpose_with_negative_axes_matches_permute(case, seed, dtype):
    """``x.transpose(perm)`` and ``ag.transpose(x, perm)`` with a permutation tuple holding
    negative axes permute as ``torch.permute`` and send the gradient back through the inverse
    permutation. (The unpacked form ``x.transpose(0, 1)`` is left out on purpose: NumPy reads
    it as a permutation, torch as a swap of two axes.)"""
    shape, perm = case
    arrays = random_arrays(seed, [shape])
    check_against_torch(lambda x: x.transpose(perm), lambda x: x.permute(perm), arrays, dtype)
    check_against_torch(lambda x: ag.transpose(x, perm), lambda x: x.permute(perm), arrays, dtype)


@SETTINGS
@given(shape=SHAPES_1_TO_4, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_transpose_without_axes_and_T_reverse_the_axes(shape, seed, dtype):
    """``x.T`` and ``x.transpose()`` reverse every axis, forward and backward."""
    arrays = random_arrays(seed, [shape])
    reverse = tuple(reversed(range(len(shape))))
    check_against_torch(lambda x: x.T, lambda x: x.permute(reverse), arrays, dtype)
    check_against_torch(lambda x: x.transpose(), lambda x: x.permute(reverse), arrays, dtype)


# -- indexing -----------------------------------------------------------------------------------
def _torch_index(index):
    """The same index for torch: sequences and arrays used as index lists become tensors."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for part in parts:
        if isinstance(part, Tensor):
            converted.append(torch.tensor(part.data))
        elif isinstance(part, np.ndarray | list | tuple):
            converted.append(torch.tensor(np.asarray(part)))
        else:
            converted.append(part)
    return tuple(converted) if isinstance(index, tuple) else converted[0]


@st.composite
def torch_style_indexes(draw, mode: str):
    """A shape and an index for it, made of parts that a PyTorch user writes.

    ``mode``: "basic" (ints, negative too, and slices), "array" (slices and integer index
    lists of one length, repeats allowed, as list, tuple, int64 ndarray or int Tensor),
    "mask" (slices and one boolean mask over one or more axes, as ndarray or bool Tensor),
    "mixed" (at least one int and one integer index list). ``None`` and one ``...`` may be
    anywhere.
    """
    shape = draw(SHAPES_1_TO_4.filter(lambda s: mode != "mixed" or len(s) >= 2))
    ndim = len(shape)
    mask_axes = 0
    if mode == "mask":
        mask_axes = draw(st.integers(1, ndim))
        kinds = draw(st.permutations(["slice"] * draw(st.integers(0, ndim - mask_axes)) + ["mask"]))
    elif mode == "mixed":
        more = draw(st.lists(st.sampled_from(["int", "slice", "array"]), max_size=ndim - 2))
        kinds = draw(st.permutations(["int", "array", *more]))
    else:
        choices = ["int", "slice"] if mode == "basic" else ["slice", "array"]
        kinds = draw(st.lists(st.sampled_from(choices), min_size=1, max_size=ndim))
        if mode == "array" and "array" not in kinds:
            kinds[draw(st.integers(0, len(kinds) - 1))] = "array"
    width = {"mask": mask_axes}
    consumed = sum(width.get(k, 1) for k in kinds)
    ellipsis_at = draw(st.none() | st.integers(0, len(kinds)))
    if (
        mode == "array"
        and consumed == ndim
        and ellipsis_at is not None
        and "array" in kinds[:ellipsis_at]
        and "array" in kinds[ellipsis_at:]
    ):  # a "..." of no axes between index lists: NumPy and torch place axes differently
        ellipsis_at = None
    # the axes each consuming part applies to: from the front, or from the back after "..."
    starts, axis = [], 0
    for i, kind in enumerate(kinds):
        if ellipsis_at is not None and i == ellipsis_at:
            axis = ndim - sum(width.get(k, 1) for k in kinds[i:])
        starts.append(axis)
        axis += width.get(kind, 1)
    assert consumed <= ndim
    length = draw(st.integers(1, 4))
    parts: list = []
    for kind, start in zip(kinds, starts, strict=True):
        n = shape[start]
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            bound = st.none() | st.integers(-n - 2, n + 2)
            step = draw(st.sampled_from([None, 1, 2, 3]))
            parts.append(slice(draw(bound), draw(bound), step))
        elif kind == "array":
            values = draw(st.lists(st.integers(-n, n - 1), min_size=length, max_size=length))
            forms = {
                "list": lambda v: v,
                "tuple": tuple,
                "ndarray": lambda v: np.array(v, dtype=np.int64),
                "Tensor": lambda v: Tensor(np.array(v, dtype=np.int64)),
            }
            parts.append(forms[draw(st.sampled_from(list(forms)))](values))
        else:
            mask_shape = shape[start : start + mask_axes]
            mask = np.asarray(draw(hnp.arrays(np.bool_, mask_shape)))
            parts.append(mask if draw(st.booleans()) else Tensor(mask))
    if ellipsis_at is not None:
        parts.insert(ellipsis_at, Ellipsis)
    for _ in range(draw(st.integers(0, 2))):
        parts.insert(draw(st.integers(0, len(parts))), None)
    # one part alone may be written bare (x[2], x[[0, 0]], x[mask]); a tuple part may not,
    # since x[(0, 0)] is a multi-index
    if len(parts) == 1 and not isinstance(parts[0], tuple) and draw(st.booleans()):
        return shape, parts[0]
    return shape, tuple(parts)


def _check_index(shape, index, seed, dtype):
    check_against_torch(
        lambda x: x[index], lambda x: x[_torch_index(index)], random_arrays(seed, [shape]), dtype
    )


@pytest.mark.parametrize("mode", ["basic", "array", "mask"])
@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, dtype=FLOAT_DTYPES, data=st.data())
def test_getitem_random_torch_style_index(mode, seed, dtype, data):
    """Random indexes from ints, slices (negative bounds), None, ..., index lists (list,
    tuple, ndarray, Tensor; repeated entries accumulate their gradients) and boolean masks."""
    shape, index = data.draw(torch_style_indexes(mode), label="shape, index")
    _check_index(shape, index, seed, dtype)


def _numpy_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return tuple(p.data if isinstance(p, Tensor) else p for p in parts)


@SETTINGS
@given(seed=SEEDS, data=st.data())
def test_getitem_ints_mixed_with_index_lists_follow_numpy(seed, data):
    """Ints next to index lists: here NumPy's rule holds, on purpose (the README says so):
    an int counts as one more index array, and index arrays that are not adjacent put their
    axis first (torch applies the int first: ``x[0, :, idx]`` differs in axis order). The
    values are NumPy's, the gradient is checked against finite differences."""
    shape, index = data.draw(torch_style_indexes("mixed"), label="shape, index")
    (x,) = random_arrays(seed, [shape])
    np.testing.assert_array_equal(Tensor(x)[index].data, x[_numpy_index(index)])
    check_gradient(lambda t: t[index], [x])


@pytest.mark.parametrize(
    "index",
    [
        pytest.param((0, slice(None), [1, 1, 2]), id="x[0, :, [1, 1, 2]]"),
        pytest.param((None, [0, 1], Ellipsis, 1), id="x[None, [0, 1], ..., 1]"),
        pytest.param((slice(None), [0, 2], Ellipsis, [1, 1], 2), id="x[:, [0, 2], ..., [1, 1], 2]"),
        pytest.param((slice(None), [0], Ellipsis, [3], slice(None)), id="x[:, [0], ..., [3], :]"),
    ],
)
def test_getitem_places_index_list_axes_as_numpy(index):
    """Known cases where NumPy's placement of the index-list axes differs from torch's."""
    (x,) = random_arrays(1, [(2, 3, 4, 5)])
    np.testing.assert_array_equal(Tensor(x)[index].data, x[index])
    check_gradient(lambda t: t[index], [x])


@pytest.mark.parametrize(
    "index",
    [
        pytest.param((slice(None), (2, 2)), id="x[:, (2, 2)]"),
        pytest.param(((0, 0),), id="x[((0, 0),)]"),
        pytest.param([1, 1, 1], id="x[[1, 1, 1]]"),
        pytest.param((Ellipsis, [-1, 3, -1]), id="x[..., [-1, 3, -1]]"),
        pytest.param(Tensor(np.array([2, 2, 0])), id="x[Tensor([2, 2, 0])]"),
        pytest.param((np.array([0, 0]), np.array([1, 1])), id="x[arr, arr]"),
        pytest.param((None, (1, 1), slice(None, None, 2)), id="x[None, (1, 1), ::2]"),
    ],
)
def test_repeated_indices_accumulate_gradients(index):
    """Each repetition of an index adds its gradient, whatever the form of the index list."""
    for dtype in (np.float32, np.float64):
        _check_index((3, 4), index, 0, dtype)


def test_index_with_bool_tensor_from_a_comparison():
    """``x[x > 0]`` with the boolean Tensor that a comparison gives."""
    (x,) = random_arrays(3, [(3, 4)])
    for dtype in (np.float32, np.float64):
        check_against_torch(lambda t: t[t > 0], lambda t: t[t > 0], [x], dtype)


# -- reductions ---------------------------------------------------------------------------------
@st.composite
def reduction_cases(draw):
    """A shape, an axis argument (None, an int, a tuple or list of mixed-sign distinct axes)
    and keepdims."""
    shape = draw(SHAPES_1_TO_4)
    ndim = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple", "list"]))
    if kind == "none":
        axis = None
    elif kind == "int":
        axis = draw(st.integers(-ndim, ndim - 1))
    else:
        axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, unique=True))
        signs = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
        axis = [a - ndim if s else a for a, s in zip(axes, signs, strict=True)]
        axis = tuple(axis) if kind == "tuple" else axis
    return shape, axis, draw(st.booleans())


def _reduce(x: Tensor, name: str, axis, keepdims: bool, spelling: str) -> Tensor:
    method = getattr(x, name)
    if spelling == "axis":
        return method(axis=axis, keepdims=keepdims)
    if spelling == "dim":
        return method(dim=axis, keepdim=keepdims)
    return method(axis, keepdims)  # positional, as both x.sum(1, True) spell it


@pytest.mark.parametrize("spelling", ["axis", "dim", "positional"])
@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
@SETTINGS
@given(case=reduction_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_reductions_with_signed_axes_and_both_spellings(name, spelling, case, seed, dtype):
    """sum/mean/max/min over None, an int, or mixed-sign tuples and lists of axes, spelled
    ``axis=/keepdims=`` (NumPy), ``dim=/keepdim=`` (PyTorch) or positionally."""
    shape, axis, keepdims = case
    dim = tuple(range(len(shape))) if axis is None else axis
    check_against_torch(
        lambda x: _reduce(x, name, axis, keepdims, spelling),
        lambda x: TORCH_REDUCTIONS[name](x, dim=dim, keepdim=keepdims),
        random_arrays(seed, [shape]),
        dtype,
    )


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("spelling", ["axis", "dim"])
@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)], ids=str)
@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
def test_reductions_of_a_0d_tensor_over_dim_0_or_minus_1(name, axis, spelling, keepdims):
    """torch accepts dim 0 and -1 on a 0-d tensor (the result is 0-d, the gradient g)."""
    for dtype in (np.float32, np.float64):
        check_against_torch(
            lambda x: _reduce(x, name, axis, keepdims, spelling),
            lambda x: TORCH_REDUCTIONS[name](x, dim=axis, keepdim=keepdims),
            [np.array(1.75)],
            dtype,
        )


# -- mixed float32 / float64 --------------------------------------------------------------------
def check_mixed_precision(
    ours: Callable[..., Tensor],
    theirs: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    dtypes: Sequence[type],
) -> None:
    """Operands of mixed dtypes: the result has NumPy's result_type of the operands; its
    values and each input's gradient match torch (computed in float64 from the same rounded
    inputs) to float32 tolerance, and each gradient has its own input's dtype."""
    cast = [a.astype(d) for a, d in zip(arrays, dtypes, strict=True)]
    ts = [Tensor(a, requires_grad=True) for a in cast]
    tt = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in cast]
    out, ref = ours(*ts), theirs(*tt)
    assert out.dtype == np.result_type(*cast), (out.dtype, [a.dtype for a in cast])
    assert_close(out.data.astype(np.float64), ref.detach().numpy(), np.float32)
    upstream = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(upstream.astype(out.dtype))
    ref.backward(torch.tensor(upstream.astype(out.dtype).astype(np.float64)))
    for t, r, d in zip(ts, tt, dtypes, strict=True):
        assert t.grad is not None and t.grad.dtype == d, (t.grad, d)
        assert_close(t.grad.astype(np.float64), r.grad.numpy(), np.float32)


def mixed_dtypes(n: int) -> list[tuple[type, ...]]:
    """Every choice of ``n`` operand dtypes with float32 and float64 both among them."""
    return [ds for ds in itertools.product([np.float32, np.float64], repeat=n) if len(set(ds)) == 2]


def _dtype_id(dtypes: tuple[type, ...]) -> str:
    return "-".join(np.dtype(d).name for d in dtypes)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
}


@pytest.mark.parametrize("dtypes", mixed_dtypes(2), ids=_dtype_id)
@pytest.mark.parametrize("name", BINARY)
@settings(max_examples=20, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    seed=SEEDS,
)
def test_mixed_precision_elementwise(name, shapes, seed, dtypes):
    """float32 op float64 (either order, broadcasting, 0-d included) promotes as NumPy."""
    a, b = random_arrays(seed, shapes.input_shapes, positive=True)
    check_mixed_precision(BINARY[name], BINARY[name], [a, b], dtypes)


MIXED_CASES = {
    "matmul": ([(2, 3, 4), (4, 5)], lambda a, b: a @ b, lambda a, b: a @ b),
    "matmul_vector": ([(4,), (3, 4, 2)], lambda a, b: a @ b, lambda a, b: a @ b),
    "where": (
        [(3, 4), (4,)],
        lambda a, b: ag.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b),
        lambda a, b: torch.where(torch.arange(12).reshape(3, 4) % 3 == 0, a, b),
    ),
    "concatenate": (
        [(2, 3), (4, 3)],
        lambda a, b: ag.concatenate([a, b], axis=0),
        lambda a, b: torch.cat([a, b], dim=0),
    ),
    "stack": (
        [(2, 3), (2, 3)],
        lambda a, b: ag.stack([a, b], 1),
        lambda a, b: torch.stack([a, b], 1),
    ),
    "linear": ([(5, 3), (4, 3), (4,)], F.linear, tF.linear),
    "conv2d": ([(2, 2, 5, 5), (3, 2, 3, 3), (3,)], F.conv2d, tF.conv2d),
    "mse_loss": ([(3, 4), (3, 4)], F.mse_loss, tF.mse_loss),
}


@pytest.mark.parametrize(
    ("name", "dtypes"),
    [(name, ds) for name, case in MIXED_CASES.items() for ds in mixed_dtypes(len(case[0]))],
    ids=lambda v: _dtype_id(v) if isinstance(v, tuple) else v,
)
@settings(max_examples=5, deadline=None)
@given(seed=SEEDS)
def test_mixed_precision_other_operations(name, dtypes, seed):
    """Products, joins, where, and the fused layers (bias included) promote as NumPy too."""
    shapes, ours, theirs = MIXED_CASES[name]
    check_mixed_precision(ours, theirs, random_arrays(seed, shapes), dtypes)


# -- size-0 and size-1 axes ---------------------------------------------------------------------
DEGENERATE_SHAPES = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3)
UNARY = {
    "exp": (lambda x: x.exp(), torch.exp),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "relu": (lambda x: x.relu(), torch.relu),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "pow2": (lambda x: x**2, lambda x: x**2),
    "reshape": (lambda x: x.reshape(-1), lambda x: x.reshape(-1)),
}


@pytest.mark.parametrize("name", [*BINARY, *UNARY])
@SETTINGS
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_elementwise_with_empty_and_unit_axes(name, shapes, seed, dtype):
    """Elementwise operations and broadcasting where axes have size 0 or 1."""
    a, b = random_arrays(seed, shapes.input_shapes, positive=True)
    if name in BINARY:
        check_against_torch(BINARY[name], BINARY[name], [a, b], dtype)
    else:
        ours, theirs = UNARY[name]
        check_against_torch(ours, theirs, [a], dtype)


@pytest.mark.parametrize("name", TORCH_REDUCTIONS)
@SETTINGS
@given(shape=DEGENERATE_SHAPES, seed=SEEDS, dtype=FLOAT_DTYPES, data=st.data())
def test_reductions_with_empty_and_unit_axes(name, shape, seed, dtype, data):
    """sum and mean over any axes (an empty sum is 0, an empty mean NaN in both, with no
    warning); max and min over non-empty axes of arrays that may be empty elsewhere."""
    ndim = len(shape)
    # both refuse a maximum over an empty axis: max and min reduce non-empty axes only
    allowed = [a for a in range(ndim) if name in ("sum", "mean") or shape[a] > 0]
    assume(allowed)
    whole = st.none() if len(allowed) == ndim else st.nothing()
    axes = data.draw(whole | st.lists(st.sampled_from(allowed), min_size=1, unique=True))
    axis = None if axes is None else tuple(axes)
    keepdims = data.draw(st.booleans())
    dim = tuple(range(ndim)) if axis is None else axis
    check_against_torch(
        lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
        lambda x: TORCH_REDUCTIONS[name](x, dim=dim, keepdim=keepdims),
        random_arrays(seed, [shape]),
        dtype,
    )


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, -1)], ids=str)
@pytest.mark.parametrize("shape", [(0, 3), (2, 0, 4), (3, 0), (1, 0, 1)], ids=str)
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_and_mean_of_empty_arrays(name, shape, axis, keepdims):
    """Named empty shapes: an empty sum is 0 and an empty mean NaN (no warning, no error);
    the gradient is empty or zero, as in torch."""
    dim = tuple(range(len(shape))) if axis is None else axis
    for dtype in (np.float32, np.float64):
        check_against_torch(
            lambda x: getattr(x, name)(axis=axis, keepdims=keepdims),
            lambda x: TORCH_REDUCTIONS[name](x, dim=dim, keepdim=keepdims),
            [np.zeros(shape)],
            dtype,
        )


@SETTINGS
@given(
    sizes=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)).filter(
        lambda s: 0 in s
    ),
    batch=st.sampled_from([(), (0,), (2,), (2, 1)]),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_matmul_with_empty_dimensions(sizes, batch, seed, dtype):
    """(n, k) @ (k, m) with an empty inner or outer dimension, or an empty batch: zeros or an
    empty result, like torch."""
    n, k, m = sizes
    check_against_torch(
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        random_arrays(seed, [(*batch, n, k), (k, m)]),
        dtype,
    )


@pytest.mark.parametrize(
    ("x_shape", "n_out", "with_bias"),
    [
        ((0, 3), 4, True),
        ((0, 3), 4, False),
        ((2, 0, 3), 4, True),
        ((0, 0, 3), 2, True),
        ((2, 0), 4, True),  # no input features: the output is the bias
        ((2, 3), 0, True),  # no output features
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_with_empty_dimensions(x_shape, n_out, with_bias, dtype):
    """``F.linear`` on an empty batch (or with no input or output features) gives what
    torch gives, forward and backward."""
    n_in = x_shape[-1]
    shapes = [x_shape, (n_out, n_in)] + ([(n_out,)] if with_bias else [])
    check_against_torch(F.linear, tF.linear, random_arrays(0, shapes), dtype)


EMPTY_BATCH = {
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), lambda x: tF.max_pool2d(x, 2)),
    "max_pool2d_stride_1": (lambda x: F.max_pool2d(x, 2, 1), lambda x: tF.max_pool2d(x, 2, 1)),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), lambda x: tF.avg_pool2d(x, 2)),
}


@pytest.mark.parametrize("name", EMPTY_BATCH)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pools_with_an_empty_batch(name, dtype):
    """Pooling a batch of 0 images gives 0 pooled images, not an error."""
    ours, theirs = EMPTY_BATCH[name]
    check_against_torch(ours, theirs, random_arrays(0, [(0, 2, 4, 4)]), dtype)


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_with_an_empty_batch(with_bias, padding, dtype):
    """Convolving a batch of 0 images gives 0 images; the kernel's gradient is zero."""
    shapes = [(0, 2, 5, 5), (3, 2, 3, 3)] + ([(3,)] if with_bias else [])
    check_against_torch(
        lambda *ts: F.conv2d(*ts, padding=padding),
        lambda *ts: tF.conv2d(*ts, padding=padding),
        random_arrays(0, shapes),
        dtype,
    )


# -- powers at zero -----------------------------------------------------------------------------
@pytest.mark.parametrize("exponent", [0, 0.0, np.int64(0), 1, 2, 3, 2.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_powers_at_zero(exponent, dtype):
    """``x ** 0`` has gradient 0 everywhere, 0 included (torch), not NaN from 0 · 0⁻¹; the
    other small integer powers at 0 are finite too, with no warning."""
    x = np.array([0.0, -0.0, 1.5, -2.0, 0.0])
    check_against_torch(lambda t: t**exponent, lambda t: t**exponent, [x], dtype)


# -- threads ------------------------------------------------------------------------------------
def test_concurrent_backward_into_one_leaf_loses_no_gradient():
    """8 threads each run 200 forward+backward passes from one shared leaf; its ``.grad``
    must be the exact sum of all of them (accumulation into ``.grad`` is thread-safe)."""
    n_threads, steps = 8, 200
    rng = np.random.default_rng(0)
    w = leaf(np.zeros(20_000))
    xs = [rng.integers(-3, 4, size=w.shape).astype(np.float64) for _ in range(n_threads)]
    start = threading.Barrier(n_threads)
    errors: list[BaseException] = []

    def work(x: np.ndarray) -> None:
        try:
            constant = Tensor(x)
            start.wait()
            for _ in range(steps):
                (w * constant).sum().backward()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that a race shows
    try:
        threads = [threading.Thread(target=work, args=(x,)) for x in xs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    np.testing.assert_array_equal(w.grad, steps * np.sum(xs, axis=0))  # integers: exact


def test_no_grad_in_one_thread_leaves_recording_on_in_another():
    """While one thread is inside ``no_grad()``, another still records graphs and can run
    backward; the first records nothing until it leaves."""
    w = leaf([1.0, 2.0])
    inside, checked = threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def quiet() -> None:
        with no_grad():
            inside.set()
            checked.wait(10)
            seen["inside"] = (w * 2).requires_grad
        seen["after"] = (w * 2).requires_grad

    worker = threading.Thread(target=quiet)
    worker.start()
    assert inside.wait(10)
    y = (w * 3).sum()
    seen["other"] = y.requires_grad
    y.backward()
    checked.set()
    worker.join()
    assert seen == {"inside": False, "after": True, "other": True}
    np.testing.assert_array_equal(w.grad, [3.0, 3.0])


# -- one tensor used several times ------------------------------------------------------------
REUSE = {
    "x * x": lambda x: x * x,
    "x + x": lambda x: x + x,
    "x - x + x": lambda x: x - x + x,
    "x / x": lambda x: x / x,
    "x[0] + x[0]": lambda x: x[0] + x[0],
    "x[0] * x[-3]": lambda x: x[0] * x[-3],
    "x @ x": lambda x: x @ x,
    "x @ x.T": lambda x: x @ x.T,
    "two branches": lambda x: x.exp() * x.tanh() + (x * 2).sum(axis=0),
}


@pytest.mark.parametrize("name", REUSE)
@SETTINGS
@given(seed=SEEDS, dtype=FLOAT_DTYPES)
def test_one_tensor_used_several_times(name, seed, dtype):
    """A leaf used several times in one expression gets the sum of every use's gradient."""
    (x,) = random_arrays(seed, [(3, 3)], positive=True)
    check_against_torch(REUSE[name], REUSE[name], [x], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_tensor_joined_with_itself(dtype):
    """A leaf stacked or concatenated with itself (and its transpose) gets every part's
    gradient."""
    (x,) = random_arrays(4, [(3, 3)])
    check_against_torch(
        lambda t: ag.stack([t, t, t.T], axis=0),
        lambda t: torch.stack([t, t, t.T], dim=0),
        [x],
        dtype,
    )
    check_against_torch(
        lambda t: ag.concatenate([t, t[:, 1:], t], axis=-1),
        lambda t: torch.cat([t, t[:, 1:], t], dim=-1),
        [x],
        dtype,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_twice_with_retain_graph_accumulates_like_torch(dtype):
    """Two backward passes through one retained graph add up in ``.grad``, as in torch."""
    (x,) = random_arrays(5, [(2, 3)])
    upstream = np.random.default_rng(2).standard_normal((3,)).astype(dtype)
    ours, theirs = leaf(x, dtype), torch.tensor(x.astype(dtype), requires_grad=True)
    y, ref = (ours * ours.exp()).sum(axis=0), (theirs * theirs.exp()).sum(dim=0)
    for _ in range(2):
        y.backward(upstream, retain_graph=True)
        ref.backward(torch.tensor(upstream), retain_graph=True)
    assert_close(ours.grad, theirs.grad.numpy(), dtype)


# -- linear with a (1, out) bias ----------------------------------------------------------------
@SETTINGS
@given(
    batch=st.sampled_from([(1,), (3,), (2, 3), (0,)]),
    bias_shape=st.sampled_from(["(out,)", "(1, out)"]),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_linear_with_a_row_bias(batch, bias_shape, seed, dtype):
    """``F.linear(x, w, b)`` with ``b`` of shape (1, out) broadcasts over the batch like
    torch, and ``b``'s gradient keeps the shape (1, out)."""
    n_in, n_out = 3, 4
    b_shape = (n_out,) if bias_shape == "(out,)" else (1, n_out)
    check_against_torch(
        F.linear, tF.linear, random_arrays(seed, [(*batch, n_in), (n_out, n_in), b_shape]), dtype
    )


def test_linear_of_a_vector_with_a_row_bias_is_refused():
    """torch's ``F.linear`` of a 1-D ``x`` with a (1, out) bias quietly gives shape (out,);
    here the bias must broadcast to the output, so this is a clear error instead."""
    with pytest.raises(ShapeError, match=r"bias of shape \(1, 4\).*\(4,\)"):
        F.linear(Tensor(np.ones(3)), Tensor(np.ones((4, 3))), Tensor(np.ones((1, 4))))


# -- truthiness and iteration -------------------------------------------------------------------
def test_truthiness_of_one_element_tensors():
    """``bool`` of a one-element tensor is the truth of its value, whatever its shape."""
    assert not bool(Tensor([0.0]))
    assert bool(Tensor([0.5]))
    assert bool(Tensor(3.0))
    assert not bool(Tensor(0.0))
    assert not bool(Tensor(np.zeros((1, 1))))
    assert bool(Tensor(np.array([True])))


@pytest.mark.parametrize("data", [[1.0, 2.0], [[0.0], [0.0]], np.zeros((2, 2))], ids=str)
def test_truthiness_of_several_elements_is_an_error(data):
    """``bool`` of a tensor of several elements is ambiguous: an error, as in torch."""
    with pytest.raises((ValueError, RuntimeError), match=r"(?i)ambiguous|more than one"):
        bool(Tensor(data))
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(torch.tensor(np.asarray(data)))


def test_comparison_of_a_0d_loss_in_an_if():
    """``if loss > 5:`` works on a 0-d tensor, as a PyTorch training loop writes it."""
    x = leaf([2.0, 3.0])
    loss = (x * x).sum()  # 13
    branch = "big" if loss > 5 else "small"
    assert branch == "big"
    assert not (loss < 5)
    assert (loss >= 13) and (loss <= 13)
    assert ("yes" if x.sum() > 4 else "no") == "yes"


def test_iteration_is_like_torch():
    """``list`` of a 0-d tensor is a TypeError; of a 1-D tensor, one 0-d tensor per entry;
    of a 2-D tensor, its rows."""
    with pytest.raises(TypeError):
        list(Tensor(1.0))
    with pytest.raises(TypeError):
        list(torch.tensor(1.0))
    items = list(Tensor([1.0, 2.0]))
    assert len(items) == 2 and all(isinstance(t, Tensor) and t.shape == () for t in items)
    assert [t.item() for t in items] == [1.0, 2.0]
    rows = list(Tensor(np.arange(6.0).reshape(3, 2)))
    assert [r.shape for r in rows] == [(2,)] * 3
    assert [float(r.data[1]) for r in rows] == [1.0, 3.0, 5.0]


@pytest.mark.parametrize("shape", [(4,), (3, 2)])
def test_iterating_a_tensor_that_requires_grad_keeps_the_graph(shape):
    """Gradients flow through the items of an iteration: the sum of their sums has gradient
    ones; a weighted sum of the items has the weights as gradient, as in torch."""
    (x,) = random_arrays(1, [shape])
    t = leaf(x)
    total = None
    for item in t:
        assert item.requires_grad
        total = item.sum() if total is None else total + item.sum()
    total.backward()
    np.testing.assert_array_equal(t.grad, np.ones(shape))

    weights = np.arange(1.0, shape[0] + 1)
    check_against_torch(
        lambda a: sum(w * item for w, item in zip(weights, a, strict=True)),
        lambda a: sum(w * item for w, item in zip(weights, a, strict=True)),
        [x],
        np.float64,
    )


# -- NumPy's copy contract ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_np_array_of_a_tensor_is_a_copy(dtype):
    """``np.array(t)`` and ``np.array(t, dtype=...)`` copy (NumPy 2's ``copy=True`` default),
    so that changing the result never changes the tensor; ``np.asarray`` may share."""
    t = Tensor(np.arange(6.0, dtype=dtype).reshape(2, 3))
    original = t.data.copy()
    for result in (
        np.array(t),
        np.array(t, dtype=dtype),
        np.array(t, dtype=np.float64),
        np.array(t, copy=True),
    ):
        assert not np.shares_memory(result, t.data)
        np.testing.assert_array_equal(result, original)
        result += 100
    np.testing.assert_array_equal(t.data, original)
    assert np.array(t).dtype == dtype
    np.testing.assert_array_equal(np.asarray(t), original)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_np_array_copy_false_behaves_as_for_an_ndarray(dtype):
    """``np.array(t, copy=False)``: without a dtype change it succeeds (sharing, as for an
    ndarray); when a dtype change needs a copy it raises ValueError, as for an ndarray."""
    t = Tensor(np.arange(4.0, dtype=dtype))
    other = np.float32 if dtype == np.float64 else np.float64
    shared = np.array(t.data, copy=False)
    assert np.shares_memory(shared, t.data)  # NumPy's own behaviour, for reference
    np.testing.assert_array_equal(np.array(t, copy=False), t.data)
    np.testing.assert_array_equal(np.array(t, dtype=dtype, copy=False), t.data)
    with pytest.raises(ValueError):
        np.array(t.data, dtype=other, copy=False)
    with pytest.raises(ValueError):
        np.array(t, dtype=other, copy=False)
