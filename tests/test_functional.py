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
    rng = np.random.default_rng(0)
    assert F.dropout(Tensor(np.ones(10, dtype=np.float32)), 0.5, rng=rng).dtype == np.float32
    with pytest.raises(InvalidArgumentError, match=r"1\.5"):
        F.dropout(x, 1.5, rng=rng)


def test_dropout_draws_only_from_the_given_generator():
    """No hidden unseeded generator: training without rng is refused, and one seed gives one
    mask."""
    x = Tensor(np.ones((4, 5)))
    with pytest.raises(InvalidArgumentError, match="Generator"):
        F.dropout(x, 0.5)
    first = F.dropout(x, 0.5, rng=np.random.default_rng(7)).data
    np.testing.assert_array_equal(F.dropout(x, 0.5, rng=np.random.default_rng(7)).data, first)


def test_dropout_on_an_integer_tensor_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"dropout.*floating"):
        F.dropout(Tensor(np.arange(6)), 0.5, rng=np.random.default_rng(0))


def test_dropout_gradient():
    check_gradient(
        lambda x: F.dropout(x, 0.4, rng=np.random.default_rng(3)).tanh(),
        [np.random.default_rng(0).standard_normal((3, 4))],
    )


def test_fused_operations_are_single_named_nodes():
    x = Tensor(np.ones((1, 1, 4, 4)), requires_grad=True)
    w = Tensor(np.ones((2, 1, 3, 3)), requires_grad=True)
    y = F.max_pool2d(F.conv2d(x, w, padding=1), 2)
    assert y.creator.name == "max_pool2d"
    assert y.creator.inputs[0].creator.name == "conv2d"
    logits = F.linear(y.reshape(1, -1), Tensor(np.ones((3, 8))))
    assert logits.creator.name == "linear"
    assert F.cross_entropy(logits, [0]).creator.name == "cross_entropy"


# -- regressions found against PyTorch --------------------------------------------------------
def test_linear_with_a_bias_of_shape_1_by_out_works_as_in_torch():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal((1, 4))]
    check_op(F.linear, tF.linear, arrays, np.float64)


def test_linear_and_conv2d_accept_plain_array_weights_as_constants():
    rng = np.random.default_rng(1)
    x, w = Tensor(rng.standard_normal((2, 3)), requires_grad=True), rng.standard_normal((4, 3))
    y = F.linear(x, w, np.zeros(4))
    np.testing.assert_allclose(y.data, x.data @ w.T)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.ones((2, 4)) @ w)
    image = Tensor(rng.standard_normal((1, 2, 4, 4)))
    expected = tF.conv2d(torch.tensor(image.data), torch.ones(3, 2, 2, 2, dtype=torch.float64))
    np.testing.assert_allclose(F.conv2d(image, np.ones((3, 2, 2, 2))).data, expected.numpy())


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "says"),
    [
        ((2, 3), (3,), r"weight must be 2-D.*\(3,\)"),
        ((2, 5), (4, 3), r"\(2, 5\) must end in in_features = 3"),
        ((), (4, 3), r"in_features = 3"),
    ],
)
def test_linear_shape_mistakes_are_named(x_shape, w_shape, says):
    with pytest.raises(ShapeError, match=says):
        F.linear(Tensor(np.ones(x_shape)), Tensor(np.ones(w_shape)))


def test_linear_bias_that_does_not_fit_is_named():
    with pytest.raises(ShapeError, match=r"bias of shape \(3,\).*\(4,\)"):
        F.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))), Tensor(np.ones(3)))


@pytest.mark.parametrize("bias_shape", [(3, 1, 1), (1,), (1, 3), ()])
def test_conv2d_takes_only_one_bias_per_output_channel(bias_shape):
    x, w = Tensor(np.ones((1, 2, 4, 4))), Tensor(np.ones((3, 2, 2, 2)))
    with pytest.raises(ShapeError, match=r"bias must have shape \(3,\)"):
        F.conv2d(x, w, Tensor(np.ones(bias_shape)))


def test_empty_batches_give_empty_results_as_in_torch():
    rng = np.random.default_rng(2)
    cases = [
        (lambda x, w, b: F.linear(x, w, b), tF.linear, [(0, 3), (4, 3), (4,)]),
        (lambda x, w, b: F.conv2d(x, w, b), tF.conv2d, [(0, 2, 5, 5), (3, 2, 3, 3), (3,)]),
    ]
    for ours, theirs, shapes in cases:
        check_against_torch(ours, theirs, [rng.standard_normal(s) for s in shapes])
    for ours, theirs in POOLS.values():
        check_against_torch(
            lambda x, o=ours: o(x, 2), lambda x, t=theirs: t(x, 2), [np.ones((0, 2, 4, 4))]
        )


@pytest.mark.parametrize("op", ["linear", "conv2d"])
def test_inputs_that_need_no_gradient_get_none_and_are_not_computed(op):
    """A frozen weight, or input images, get no gradient; the others still match torch."""
    rng = np.random.default_rng(3)
    shapes = {"linear": [(5, 3), (4, 3), (4,)], "conv2d": [(2, 2, 5, 5), (3, 2, 3, 3), (3,)]}[op]
    arrays = [rng.standard_normal(s) for s in shapes]
    ours, theirs = getattr(F, op), getattr(tF, op)
    for frozen in range(3):
        ts = [Tensor(a, requires_grad=i != frozen) for i, a in enumerate(arrays)]
        tt = [torch.tensor(a, requires_grad=i != frozen) for i, a in enumerate(arrays)]
        out = ours(*ts)
        assert out.creator.needs_input_grad == tuple(i != frozen for i in range(3))
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        theirs(*tt).backward(torch.tensor(upstream))
        for i, (t, r) in enumerate(zip(ts, tt, strict=True)):
            if i == frozen:
                assert t.grad is None and r.grad is None
            else:
                np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-10, atol=1e-10)
    images = Tensor(arrays[0])  # no gradient wanted for the images: nothing of x is needed
    out = ours(images, Tensor(arrays[1], requires_grad=True))
    assert out.creator.saved[1] is None  # the weight is not kept for an input gradient


def test_max_pool_ties_go_to_the_first_maximum_as_in_torch():
    x = np.array([[[[1.0, 1.0, 0.0], [1.0, 1.0, 2.0], [2.0, 0.0, 2.0]]]])
    for kernel, stride in [(2, 1), (2, 2), (3, 1)]:
        check_against_torch(
            lambda t, k=kernel, s=stride: F.max_pool2d(t, k, s),
            lambda t, k=kernel, s=stride: tF.max_pool2d(t, k, s),
            [x],
        )


def test_batch_norm_checks_everything_before_changing_running_statistics():
    running_mean, running_var = np.zeros(3), np.ones(3)
    x = Tensor(np.random.default_rng(4).standard_normal((8, 3)))
    for bad in [
        {"weight": Tensor(np.ones(2))},
        {"bias": Tensor(np.ones((3, 1)))},
    ]:
        with pytest.raises(ShapeError, match="batch_norm"):
            F.batch_norm(x, running_mean, running_var, training=True, **bad)
        np.testing.assert_array_equal(running_mean, np.zeros(3))
        np.testing.assert_array_equal(running_var, np.ones(3))
    with pytest.raises(ShapeError, match=r"running_var must have shape \(3,\)"):
        F.batch_norm(x, running_mean, np.ones(4), training=True)
    np.testing.assert_array_equal(running_mean, np.zeros(3))
