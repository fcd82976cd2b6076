"""signdigits.functional against torch.nn.functional (values and gradients) and against
finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as tF
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from signdigits import InvalidArgumentError, Tensor
from signdigits import functional as F
from signdigits.autograd import ops
from signdigits.errors import ShapeError
from tests.autograd.helpers import (
    FLOAT_DTYPES,
    SEEDS,
    SETTINGS,
    SHAPES,
    check_against_torch,
    check_gradient,
    check_op,
    random_arrays,
)


@SETTINGS
@given(
    batch=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
    sizes=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    with_bias=st.booleans(),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_linear(batch, sizes, with_bias, seed, dtype):
    n_in, n_out = sizes
    shapes = [(*batch, n_in), (n_out, n_in)] + ([(n_out,)] if with_bias else [])
    check_op(F.linear, tF.linear, random_arrays(seed, shapes), dtype)


@st.composite
def conv_cases(draw):
    n, c, o = draw(st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3)))
    kh, kw = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    stride = draw(st.sampled_from([1, 2, (2, 1)]))
    padding = draw(st.sampled_from([0, 1, (2, 0)]))
    h, w = draw(st.tuples(st.integers(3, 6), st.integers(3, 6)))
    shapes = [(n, c, h, w), (o, c, kh, kw)] + ([(o,)] if draw(st.booleans()) else [])
    return shapes, stride, padding


@SETTINGS
@given(case=conv_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_conv2d(case, seed, dtype):
    shapes, stride, padding = case
    check_op(
        lambda *ts: F.conv2d(*ts, stride=stride, padding=padding),
        lambda *ts: tF.conv2d(*ts, stride=stride, padding=padding),
        random_arrays(seed, shapes),
        dtype,
    )


def test_conv2d_wrong_channels_is_a_shape_error():
    x, w = Tensor(np.ones((1, 2, 5, 5))), Tensor(np.ones((4, 3, 3, 3)))
    with pytest.raises(ShapeError, match=r"conv2d.*\(1, 2, 5, 5\).*\(4, 3, 3, 3\)"):
        F.conv2d(x, w)
    with pytest.raises(ShapeError, match="4-D"):
        F.conv2d(Tensor(np.ones((2, 5, 5))), w)
    with pytest.raises(InvalidArgumentError, match="stride"):
        F.conv2d(x, Tensor(np.ones((4, 2, 3, 3))), stride=0)


POOLS = {"max": (F.max_pool2d, tF.max_pool2d), "avg": (F.avg_pool2d, tF.avg_pool2d)}


@pytest.mark.parametrize("kind", POOLS)
@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(3, 7), st.integers(3, 7)),
    kernel=st.sampled_from([1, 2, 3, (2, 3)]),
    stride=st.sampled_from([None, 1, 2, (1, 2)]),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_pools(kind, shape, kernel, stride, seed, dtype):
    ours, theirs = POOLS[kind]
    check_op(
        lambda x: ours(x, kernel, stride),
        lambda x: theirs(x, kernel, stride),
        random_arrays(seed, [shape]),
        dtype,
    )


def test_max_pool_routes_gradient_to_the_maximum():
    x = Tensor(np.array([[[[1.0, 5.0], [2.0, 3.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [[[[0.0, 1.0], [0.0, 0.0]]]])


@st.composite
def dim_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=4))
    return shape, draw(st.integers(-len(shape), len(shape) - 1))


@pytest.mark.parametrize(
    ("ours", "theirs"), [(F.softmax, tF.softmax), (F.log_softmax, tF.log_softmax)]
)
@SETTINGS
@given(case=dim_cases(), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_softmax_and_log_softmax(ours, theirs, case, seed, dtype):
    shape, dim = case
    check_op(lambda x: ours(x, dim), lambda x: theirs(x, dim), random_arrays(seed, [shape]), dtype)


def test_softmax_is_stable_for_large_logits():
    x = Tensor(np.array([[1000.0, 0.0, -1000.0]]))
    np.testing.assert_allclose(F.softmax(x, 1).data, [[1.0, 0.0, 0.0]])
    assert np.isfinite(F.log_softmax(x, 1).data[0, :2]).all()


@SETTINGS
@given(size=st.tuples(st.integers(1, 5), st.integers(2, 5)), seed=SEEDS, dtype=FLOAT_DTYPES)
def test_cross_entropy(size, seed, dtype):
    target = np.random.default_rng(seed).integers(0, size[1], size[0])
    check_op(
        lambda z: F.cross_entropy(z, target),
        lambda z: tF.cross_entropy(z, torch.tensor(target)),
        random_arrays(seed, [size]),
        dtype,
    )


def test_cross_entropy_is_stable_and_validates_its_target():
    logits = Tensor(np.array([[1000.0, -1000.0], [-1000.0, 1000.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 1]))
    np.testing.assert_allclose(loss.item(), 1000.0)
    loss.backward()
    np.testing.assert_allclose(logits.grad, [[0.5, -0.5], [0.0, 0.0]])
    with pytest.raises(InvalidArgumentError, match="integer"):
        F.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(InvalidArgumentError, match=r"\[0, 2\)"):
        F.cross_entropy(logits, np.array([0, 2]))
    with pytest.raises(ShapeError, match=r"\(2, 2\).*\(3,\)"):
        F.cross_entropy(logits, np.array([0, 1, 1]))


@SETTINGS
@given(shape=SHAPES, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_binary_cross_entropy_with_logits(shape, seed, dtype):
    logits, noise = random_arrays(seed, [shape, shape])
    target = 1 / (1 + np.exp(-noise))  # in (0, 1); gradients also checked for the target
    check_op(
        F.binary_cross_entropy_with_logits,
        tF.binary_cross_entropy_with_logits,
        [3 * logits, target],
        dtype,
    )


def test_binary_cross_entropy_with_logits_is_stable():
    z = Tensor(np.array([1000.0, -1000.0]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, np.array([0.0, 1.0]))
    np.testing.assert_allclose(loss.item(), 1000.0)
    loss.backward()
    np.testing.assert_allclose(z.grad, [0.5, -0.5])


@SETTINGS
@given(shape=SHAPES, seed=SEEDS, dtype=FLOAT_DTYPES)
def test_mse_loss(shape, seed, dtype):
    check_op(F.mse_loss, tF.mse_loss, random_arrays(seed, [shape, shape]), dtype)


@pytest.mark.parametrize("training", [True, False])
@SETTINGS
@given(
    shape=st.sampled_from([(4, 3), (2, 3, 2, 2), (3, 1, 3, 1)]),
    affine=st.booleans(),
    seed=SEEDS,
    dtype=FLOAT_DTYPES,
)
def test_batch_norm(training, shape, affine, seed, dtype):
    rng = np.random.default_rng(seed)
    channels = shape[1]
    mean, var = rng.standard_normal(channels), rng.random(channels) + 0.5
    stats = {"ours": (mean.astype(dtype), var.astype(dtype))}
    stats["torch"] = tuple(torch.tensor(s) for s in stats["ours"])
    arrays = random_arrays(seed, [shape] + [(channels,)] * (2 * affine))
    check_against_torch(
        lambda x, *wb: F.batch_norm(x, *stats["ours"], *wb, training=training, momentum=0.3),
        lambda x, *wb: tF.batch_norm(x, *stats["torch"], *wb, training=training, momentum=0.3),
        arrays,
        dtype,
    )
    for ours, theirs in zip(stats["ours"], stats["torch"], strict=True):  # updated in place
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-5, atol=1e-6)
    check_gradient(lambda x, *wb: F.batch_norm(x, None, None, *wb, training=True), arrays)


def test_batch_norm_validates():
    with pytest.raises(ShapeError, match="batch_norm"):
        F.batch_norm(Tensor(np.ones(3)), None, None, training=True)
    with pytest.raises(InvalidArgumentError, match="running_mean"):
        F.batch_norm(Tensor(np.ones((2, 3))), None, None)


def test_dropout_scales_survivors_and_routes_gradient_through_the_mask():
    x = Tensor(np.full((200, 50), 2.0), requires_grad=True)
    y = F.dropout(x, 0.25, rng=np.random.default_rng(0))
    kept = y.data != 0
    assert abs(1 - kept.mean() - 0.25) < 0.02
    np.testing.assert_allclose(y.data[kept], 2.0 / 0.75)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / 0.75)
    again = F.dropout(x, 0.25, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again.data, y.data)


def test_dropout_in_evaluation_and_edge_probabilities():
    x = Tensor(np.ones(10), requires_grad=True)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0).data.any()
    assert F.dropout(Tensor(np.ones(10, dtype=np.float32)), 0.5).dtype == np.float32
    with pytest.raises(InvalidArgumentError, match=r"1\.5"):
        F.dropout(x, 1.5)


def test_dropout_gradient():
    check_gradient(
        lambda x: F.dropout(x, 0.4, rng=np.random.default_rng(3)).tanh(),
        [np.random.default_rng(0).standard_normal((3, 4))],
    )


def test_aliases():
    assert (F.relu, F.tanh, F.sigmoid) == (ops.relu, ops.tanh, ops.sigmoid)


def test_fused_operations_are_single_named_nodes():
    x = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    w = Tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    y = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
    assert y.creator.name == "max_pool2d"
    assert y.creator.inputs[0].creator.name == "conv2d"
    logits = F.linear(y.reshape(1, -1), Tensor(np.ones((3, 8))))
    assert logits.creator.name == "linear"
    assert F.cross_entropy(logits, [0]).creator.name == "cross_entropy"
