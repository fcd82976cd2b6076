"""The fast conv2d and max-pool kernels of :mod:`signdigits.autograd.nn_ops` against the
plain implementations they replaced (kept here as the reference), against PyTorch, and
against finite differences: strides, padding, odd sizes, kernels from 1×1 to 5×5,
rectangular kernels, batches of 0 and 1, one channel, windows that do and do not tile the
image, and ties (the first maximum of a window in row-major order takes the gradient)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import assume, given
from hypothesis import strategies as st

from signdigits import Tensor
from signdigits import functional as F
from signdigits.autograd import nn_ops
from signdigits.autograd.nn_ops import _col2im, _windows
from signdigits.autograd.tensor import Function, apply
from tests.autograd.helpers import (
    FLOAT_DTYPES,
    SEEDS,
    SETTINGS,
    assert_close,
    check_against_torch,
    check_gradient,
    random_arrays,
)


# -- the reference implementations: the engine's kernels before the fast paths ---------------
class ReferenceConv2d(Function):
    """im2col as a windows view of the padded NCHW image, contracted with tensordot."""

    __slots__ = ("padding", "stride")
    name = "reference_conv2d"

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x, w, b=None):
        ph, pw = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = _windows(padded, w.shape[2:], self.stride)
        y = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))
        if b is not None:
            y = y + b
        self.saved = (cols, w, padded.shape)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, g):
        cols, w, padded_shape = self.saved
        gcols = np.tensordot(g, w, axes=(1, 0)).transpose(0, 3, 4, 5, 1, 2)
        gx = _col2im(gcols, padded_shape, self.stride)
        ph, pw = self.padding
        gx = gx[:, :, ph : padded_shape[2] - ph, pw : padded_shape[3] - pw]
        grads = [gx, np.tensordot(g, cols, axes=([0, 2, 3], [0, 2, 3]))]
        if len(self.needs_input_grad) == 3:
            grads.append(g.sum(axis=(0, 2, 3)))
        return grads


class ReferenceMaxPool2d(Function):
    """argmax over the windows view; the gradient through a one-hot of the winner."""

    __slots__ = ("kernel", "shape", "stride")
    name = "reference_max_pool2d"

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        self.kernel, self.stride = kernel, stride

    def forward(self, x):
        self.shape = x.shape
        cols = _windows(x, self.kernel, self.stride)
        kh, kw = self.kernel
        flat = cols.reshape(*cols.shape[:4], kh * kw)
        winner = flat.argmax(axis=-1)
        self.saved = (winner,)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]

    def backward(self, g):
        (winner,) = self.saved
        kh, kw = self.kernel
        onehot = winner[..., None] == np.arange(kh * kw)
        gcols = (g[..., None] * onehot).reshape(*g.shape, kh, kw).transpose(0, 1, 4, 5, 2, 3)
        return (_col2im(gcols, self.shape, self.stride),)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference_conv2d(x, w, b=None, stride=1, padding=0):
    op = ReferenceConv2d(_pair(stride), _pair(padding))
    return apply(op, x, w) if b is None else apply(op, x, w, b)


def reference_max_pool2d(x, kernel, stride=None):
    return apply(ReferenceMaxPool2d(_pair(kernel), _pair(kernel if stride is None else stride)), x)


def check_against_reference(ours, reference, arrays, dtype, exact=False):
    """Same output, and the same gradients for the same random upstream gradient; bit for
    bit where ``exact`` (max-pool routes values, it does no arithmetic)."""
    ts = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    rs = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    out, ref = ours(*ts), reference(*rs)
    upstream = np.random.default_rng(7).standard_normal(out.shape).astype(dtype)
    out.backward(upstream)
    ref.backward(upstream)
    pairs = [(out.data, ref.data)] + [(t.grad, r.grad) for t, r in zip(ts, rs, strict=True)]
    for actual, expected in pairs:
        assert actual.dtype == expected.dtype
        if exact:
            np.testing.assert_array_equal(actual, expected)
        else:
            assert_close(actual, expected, dtype)


# -- convolution ------------------------------------------------------------------------------
@st.composite
def conv_cases(draw, max_side=9):
    n = draw(st.sampled_from([0, 1, 2, 3]))
    c, o = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(st.tuples(st.integers(0, 2), st.integers(0, 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), max_side))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), max_side))
    with_bias = draw(st.booleans())
    shapes = [(n, c, h, w), (o, c, kh, kw)] + ([(o,)] if with_bias else [])
    return shapes, stride, padding


@SETTINGS
@given(case=conv_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_conv2d_matches_torch_and_the_reference(case, seed, dtype):
    shapes, stride, padding = case
    arrays = random_arrays(seed, shapes)
    ours = lambda *ts: F.conv2d(*ts, stride=stride, padding=padding)  # noqa: E731
    check_against_torch(
        ours, lambda *ts: tF.conv2d(*ts, stride=stride, padding=padding), arrays, dtype
    )
    check_against_reference(
        ours, lambda *ts: reference_conv2d(*ts, stride=stride, padding=padding), arrays, dtype
    )


@SETTINGS
@given(case=conv_cases(max_side=6), seed=SEEDS)
def test_conv2d_gradient_by_finite_differences(case, seed):
    shapes, stride, padding = case
    assume(shapes[0][0] > 0)
    check_gradient(
        lambda *ts: F.conv2d(*ts, stride=stride, padding=padding), random_arrays(seed, shapes)
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shapes", "stride", "padding"),
    [
        ([(1, 1, 7, 5), (1, 1, 1, 1), (1,)], 1, 0),  # 1×1 kernel, one channel
        ([(2, 3, 8, 8), (4, 3, 5, 5), (4,)], 1, 2),  # 5×5, "same" padding
        ([(2, 3, 9, 7), (2, 3, 2, 5)], (2, 3), (1, 2)),  # rectangular, strided
        ([(3, 2, 6, 6), (5, 2, 2, 2), (5,)], 2, 0),  # windows that tile the image
        ([(1, 4, 5, 5), (3, 4, 5, 5), (3,)], 1, 0),  # one output pixel
        ([(2, 1, 64, 64), (8, 1, 3, 3), (8,)], 1, 1),  # a CNN's first layer, small batch
    ],
)
def test_conv2d_fixed_cases(shapes, stride, padding, dtype):
    arrays = random_arrays(5, shapes)
    ours = lambda *ts: F.conv2d(*ts, stride=stride, padding=padding)  # noqa: E731
    check_against_torch(
        ours, lambda *ts: tF.conv2d(*ts, stride=stride, padding=padding), arrays, dtype
    )
    check_against_reference(
        ours, lambda *ts: reference_conv2d(*ts, stride=stride, padding=padding), arrays, dtype
    )


def test_conv2d_does_no_work_for_gradients_nobody_wants():
    """Images that need no gradient: the weight matrix is not kept and x gets nothing; a
    frozen weight: the columns are not kept; the other gradients still match torch."""
    x, w, b = random_arrays(4, [(2, 3, 6, 6), (4, 3, 3, 3), (4,)])
    for needs in [(False, True, True), (True, False, True), (True, True, False)]:
        ts = [Tensor(a, requires_grad=r) for a, r in zip((x, w, b), needs, strict=True)]
        tt = [torch.tensor(a, requires_grad=r) for a, r in zip((x, w, b), needs, strict=True)]
        out = F.conv2d(*ts, padding=1)
        cols, wm = out.creator.saved[:2]
        assert (cols is None) == (not needs[1]) and (wm is None) == (not needs[0])
        out.backward(np.ones(out.shape))
        tF.conv2d(*tt, padding=1).backward(torch.ones(out.shape, dtype=torch.float64))
        for t, r in zip(ts, tt, strict=True):
            if r.grad is None:
                assert t.grad is None
            else:
                np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_conv2d_output_and_gradients_are_fresh_contiguous_arrays():
    ts = [
        Tensor(a, requires_grad=True) for a in random_arrays(6, [(2, 3, 5, 5), (4, 3, 3, 3), (4,)])
    ]
    out = F.conv2d(*ts, stride=2, padding=1)
    assert out.data.flags.c_contiguous
    out.backward(np.ones(out.shape))
    for t in ts:
        assert t.grad.flags.c_contiguous and not np.shares_memory(t.grad, t.data)


def test_conv2d_kernel_larger_than_the_padded_input_is_refused():
    from signdigits.errors import ShapeError

    with pytest.raises(ShapeError, match="larger than the padded input"):
        F.conv2d(Tensor(np.ones((1, 1, 2, 2))), Tensor(np.ones((1, 1, 3, 3))))


# -- max-pool ---------------------------------------------------------------------------------
@st.composite
def pool_cases(draw):
    kernel = draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    tiles = draw(st.booleans())
    stride = kernel if tiles else draw(st.tuples(st.integers(1, 4), st.integers(1, 4)))
    n = draw(st.sampled_from([0, 1, 2]))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(kernel[0], 10))
    w = draw(st.integers(kernel[1], 10))
    return (n, c, h, w), kernel, stride


@SETTINGS
@given(case=pool_cases(), seed=SEEDS, dtype=FLOAT_DTYPES, ties=st.booleans())
def test_max_pool_matches_torch_and_the_reference(case, seed, dtype, ties):
    """With ``ties`` the values are drawn from {0, 1, 2}: most windows hold several maxima,
    and the first in row-major order takes the gradient, in PyTorch as here."""
    shape, kernel, stride = case
    if ties:
        arrays = [np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)]
    else:
        arrays = random_arrays(seed, [shape])
    check_against_torch(
        lambda x: F.max_pool2d(x, kernel, stride),
        lambda x: tF.max_pool2d(x, kernel, stride),
        arrays,
        dtype,
    )
    check_against_reference(
        lambda x: F.max_pool2d(x, kernel, stride),
        lambda x: reference_max_pool2d(x, kernel, stride),
        arrays,
        dtype,
        exact=True,
    )


@SETTINGS
@given(case=pool_cases(), seed=SEEDS)
def test_max_pool_gradient_by_finite_differences(case, seed):
    shape, kernel, stride = case
    assume(shape[0] > 0)
    check_gradient(lambda x: F.max_pool2d(x, kernel, stride), random_arrays(seed, [shape]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("shape", "kernel"),
    [
        ((2, 3, 8, 8), 2),
        ((1, 1, 7, 9), 2),
        ((2, 2, 9, 9), 3),
        ((1, 2, 6, 8), (2, 4)),
        ((3, 1, 5, 5), 5),
    ],
)
def test_max_pool_tiling_windows_with_all_equal_values(shape, kernel, dtype):
    """Every window is one tie (zeros, as after a ReLU): the first place of each gets g."""
    for fill in (0.0, -1.0):
        arrays = [np.full(shape, fill)]
        check_against_torch(
            lambda x: F.max_pool2d(x, kernel), lambda x: tF.max_pool2d(x, kernel), arrays, dtype
        )
        check_against_reference(
            lambda x: F.max_pool2d(x, kernel),
            lambda x: reference_max_pool2d(x, kernel),
            arrays,
            dtype,
            exact=True,
        )


@pytest.mark.parametrize("kernel", [2, (2, 3)])
def test_max_pool_with_nan_and_infinities_routes_as_the_reference(kernel):
    """A window whose maximum is NaN gives NaN, and its gradient goes to its first NaN (the
    fast path hands such a batch to argmax); infinities are ordinary maxima."""
    x = np.random.default_rng(3).integers(0, 3, (2, 2, 6, 6)).astype(np.float64)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = np.nan
    x[1, 1, 2, 2] = np.inf
    x[1, 0, 4:, 4:] = -np.inf
    check_against_reference(
        lambda t: F.max_pool2d(t, kernel),
        lambda t: reference_max_pool2d(t, kernel),
        [x],
        np.float64,
        exact=True,
    )


def test_max_pool_backward_twice_with_retain_graph_gives_the_same_gradient():
    for value in (1.0, np.nan):
        x = np.random.default_rng(2).standard_normal((2, 3, 6, 6))
        x[0, 0, 0, 0] = value
        t = Tensor(x, requires_grad=True)
        out = F.max_pool2d(t, 2)
        upstream = np.random.default_rng(1).standard_normal(out.shape)
        out.backward(upstream, retain_graph=True)
        first = t.grad.copy()
        t.grad = None
        out.backward(upstream)
        np.testing.assert_array_equal(t.grad, first)


def test_max_pool_keeps_nothing_when_no_gradient_is_wanted():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)))
    out = F.max_pool2d(x, 2)
    assert out.creator is None or all(s is None for s in out.creator.saved)


@pytest.mark.parametrize("chunk_values", [1, 2 * 180, 10**9])  # an image: 180 values
def test_conv2d_input_gradient_is_the_same_in_any_number_of_chunks(monkeypatch, chunk_values):
    """One image per chunk, two per chunk with a short last chunk (5 images), or all at once."""
    monkeypatch.setattr(nn_ops, "_CHUNK_VALUES", chunk_values)
    arrays = random_arrays(8, [(5, 2, 5, 5), (3, 2, 3, 3), (3,)])
    for dtype in (np.float32, np.float64):
        check_against_reference(
            lambda *ts: F.conv2d(*ts, padding=(1, 0), stride=(1, 2)),
            lambda *ts: reference_conv2d(*ts, padding=(1, 0), stride=(1, 2)),
            arrays,
            dtype,
        )


@pytest.mark.parametrize(("kernel", "stride"), [(2, None), (3, None), (2, 1), ((2, 3), (1, 2))])
def test_pool_gradients_are_owned_by_their_leaf(kernel, stride):
    """The pools' gradients are fresh arrays, kept by a leaf without a copy: writing into
    one changes neither the upstream gradient nor another leaf's, and they accumulate."""
    x = np.random.default_rng(9).standard_normal((2, 2, 7, 7))
    for pool in (F.max_pool2d, F.avg_pool2d):
        t = Tensor(x, requires_grad=True)
        out = pool(t, kernel, stride)
        upstream = np.ones(out.shape)
        out.backward(upstream)
        first = t.grad.copy()
        assert t.grad.flags.writeable and not np.shares_memory(t.grad, upstream)
        pool(t, kernel, stride).backward(upstream)
        np.testing.assert_array_equal(t.grad, 2 * first)
        np.testing.assert_array_equal(upstream, np.ones(out.shape))


@pytest.mark.parametrize("chunk_values", [1, 2 * 180, 10**9])  # an image: 180 column values
@pytest.mark.parametrize("needs", [(False, False, False), (True, False, True), (True, False)])
def test_conv2d_forward_without_a_weight_gradient_in_chunks(monkeypatch, chunk_values, needs):
    """Inference or a frozen weight: the columns are built a few images at a time; the output
    is bit for bit the one-matrix output, and x and b still get torch's gradients."""
    arrays = random_arrays(10, [(5, 2, 5, 5), (3, 2, 3, 3), (3,)][: len(needs) + 1])
    arrays = arrays[: len(needs)]
    for dtype in (np.float32, np.float64):
        full = F.conv2d(
            *[Tensor(a.astype(dtype), requires_grad=True) for a in arrays],
            padding=(1, 0),
            stride=(1, 2),
        ).data
        monkeypatch.setattr(nn_ops, "_CHUNK_VALUES", chunk_values)
        ts = [Tensor(a.astype(dtype), requires_grad=r) for a, r in zip(arrays, needs, strict=True)]
        tt = [
            torch.tensor(a.astype(dtype), requires_grad=r)
            for a, r in zip(arrays, needs, strict=True)
        ]
        out = F.conv2d(*ts, padding=(1, 0), stride=(1, 2))
        ref = tF.conv2d(*tt, padding=(1, 0), stride=(1, 2))
        monkeypatch.undo()
        np.testing.assert_array_equal(out.data, full)
        assert out.data.dtype == dtype and out.data.flags.c_contiguous
        assert_close(out.data, ref.detach().numpy(), dtype)
        if any(needs):
            assert out.creator.saved[0] is None
            upstream = np.random.default_rng(3).standard_normal(out.shape).astype(dtype)
            out.backward(upstream)
            ref.backward(torch.from_numpy(upstream))
            for t, r in zip(ts, tt, strict=True):
                assert (t.grad is None) == (r.grad is None)
                if r.grad is not None:
                    assert_close(t.grad, r.grad.numpy(), dtype)


@pytest.mark.parametrize("n", [0, 1])
def test_conv2d_forward_without_a_weight_gradient_on_tiny_batches(n):
    x, w, b = random_arrays(11, [(n, 3, 4, 6), (2, 3, 5, 5), (2,)])
    out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), padding=2)
    ref = tF.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b), padding=2)
    assert out.shape == tuple(ref.shape)
    np.testing.assert_allclose(out.data, ref.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("keep_width", [0, 10**9])  # rebuild the columns, or keep them all
@pytest.mark.parametrize("chunk_values", [1, 2 * 180, 10**9])
@pytest.mark.parametrize(
    ("shapes", "stride", "padding"),
    [
        ([(5, 2, 5, 5), (3, 2, 3, 3), (3,)], (1, 2), (1, 0)),  # an image: 180 column values
        ([(3, 3, 9, 7), (2, 3, 2, 5)], (2, 3), (1, 2)),
        ([(1, 1, 6, 6), (4, 1, 1, 1), (4,)], 1, 0),
        ([(0, 2, 4, 4), (3, 2, 3, 3), (3,)], 1, 1),
    ],
)
def test_conv2d_weight_gradient_from_kept_or_rebuilt_columns(
    monkeypatch, keep_width, chunk_values, shapes, stride, padding
):
    """∂L/∂w from the kept column matrix (one product) or from columns rebuilt in chunks out
    of the saved image (a sum of per-image products): both match torch and the reference."""
    monkeypatch.setattr(nn_ops, "_KEEP_WIDTH", keep_width)
    monkeypatch.setattr(nn_ops, "_CHUNK_VALUES", chunk_values)
    arrays = random_arrays(12, shapes)
    ours = lambda *ts: F.conv2d(*ts, stride=stride, padding=padding)  # noqa: E731
    for dtype in (np.float32, np.float64):
        check_against_torch(
            ours, lambda *ts: tF.conv2d(*ts, stride=stride, padding=padding), arrays, dtype
        )
        check_against_reference(
            ours, lambda *ts: reference_conv2d(*ts, stride=stride, padding=padding), arrays, dtype
        )
    out = ours(*[Tensor(a, requires_grad=True) for a in arrays])
    assert out.creator.saved[0].ndim == (2 if keep_width else 4)


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "padding"),
    [
        ((3, 2, 7, 5), (4, 2, 3, 3), (1, 1)),  # the CNN's case, odd sizes
        ((2, 3, 6, 9), (2, 3, 1, 3), (0, 1)),  # one row, three columns
        ((2, 3, 6, 9), (2, 3, 3, 1), (1, 0)),  # three rows, one column
        ((2, 1, 5, 5), (3, 1, 5, 5), (0, 0)),  # one output position per image
        ((2, 2, 4, 4), (2, 2, 5, 5), (2, 2)),  # kernel larger than the image
        ((1, 2, 1, 1), (2, 2, 1, 1), (0, 0)),  # 1×1 image and kernel
    ],
    ids=str,
)
def test_conv2d_input_gradient_at_stride_1_on_the_padded_grid(x_shape, w_shape, padding):
    """Stride 1 adds each offset's product onto the flattened image at one shift; the rows
    past each output row must add nothing, and the last ones are left off."""
    arrays = random_arrays(9, [x_shape, w_shape, (w_shape[0],)])
    for dtype in (np.float32, np.float64):
        check_against_reference(
            lambda *ts: F.conv2d(*ts, padding=padding),
            lambda *ts: reference_conv2d(*ts, padding=padding),
            arrays,
            dtype,
        )
