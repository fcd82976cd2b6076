"""The fused batch-norm node (signdigits.autograd.normalization.BatchNormOp) against PyTorch,
against the plain composition of engine operations it replaces, and against finite
differences; its running statistics, its signs near zero, and its checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as tF

from signdigits import InvalidArgumentError, Tensor, no_grad
from signdigits import functional as F
from signdigits.autograd.normalization import BatchNormOp
from signdigits.autograd.ops import as_tensor
from signdigits.autograd.tensor import apply
from signdigits.errors import ShapeError
from tests.autograd.helpers import assert_close, check_against_torch, check_gradient

# 2-, 3- and 4-D; odd sizes, a batch of 2 (and of 1 with several pixels), one channel,
# size-1 spatial axes.
SHAPES = [
    (2, 3),
    (7, 1),
    (5, 4),
    (2, 3, 5),
    (3, 1, 1),
    (4, 2, 7),
    (2, 4, 3, 5),
    (3, 2, 1, 1),
    (5, 3, 7, 2),
    (2, 1, 3, 3),
    (1, 3, 2, 2),
]
AFFINE = ["none", "weight", "bias", "both"]
DTYPES = [np.float64, np.float32]


def composed_batch_norm(
    x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """Batch norm as it was before the fused node: ~11 engine operations (the reference)."""
    x = as_tensor(x)
    axes = (0, *range(2, x.ndim))
    channel_shape = (1, -1) + (1,) * (x.ndim - 2)
    if training:
        count = math.prod(x.shape[a] for a in axes)
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        for running, batch in ((running_mean, mean.data), (running_var, var.data)):
            if running is not None and count > 0:
                stat = running.data if isinstance(running, Tensor) else running
                scale = count / (count - 1) if running is running_var else 1.0
                stat *= 1 - momentum
                stat += momentum * scale * batch.reshape(stat.shape)
        y = centred / (var + eps).sqrt()
    else:
        mean = np.asarray(running_mean).reshape(channel_shape)
        inv_std = 1 / np.sqrt(np.asarray(running_var).reshape(channel_shape) + eps)
        y = (x - mean) * inv_std
    if weight is not None:
        y = y * weight.reshape(channel_shape)
    if bias is not None:
        y = y + bias.reshape(channel_shape)
    return y


def _arrays(seed, shape, affine):
    """x (scaled and shifted per channel, as real activations are), then weight and bias."""
    rng = np.random.default_rng(seed)
    channels = shape[1]
    x = rng.standard_normal(shape) * 3 + rng.standard_normal(
        (1, channels) + (1,) * (len(shape) - 2)
    )
    weight = rng.standard_normal(channels) if affine in ("weight", "both") else None
    bias = rng.standard_normal(channels) if affine in ("bias", "both") else None
    return x, weight, bias


def _stats(seed, channels, dtype):
    rng = np.random.default_rng(seed + 100)
    return rng.standard_normal(channels).astype(dtype), (rng.random(channels) + 0.5).astype(dtype)


def _call(fn, x, stats, weight, bias, training, **kwargs):
    return fn(x, *stats, weight, bias, training=training, momentum=0.3, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_values_gradients_and_running_statistics_match_torch(shape, training, affine, dtype):
    x, weight, bias = _arrays(0, shape, affine)
    present = [a for a in (weight, bias) if a is not None]
    ours_stats = _stats(0, shape[1], dtype)
    torch_stats = tuple(torch.tensor(s) for s in ours_stats)

    def unpack(rest):
        it = iter(rest)
        return (next(it) if weight is not None else None), (next(it) if bias is not None else None)

    check_against_torch(
        lambda x, *rest: _call(F.batch_norm, x, ours_stats, *unpack(rest), training),
        lambda x, *rest: _call(tF.batch_norm, x, torch_stats, *unpack(rest), training),
        [x, *present],
        dtype,
    )
    for ours, theirs in zip(ours_stats, torch_stats, strict=True):
        assert_close(ours, theirs.numpy(), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_the_composition_of_engine_operations_it_replaces(shape, training, affine, dtype):
    x, weight, bias = _arrays(1, shape, affine)
    results = {}
    for name, fn in (("fused", F.batch_norm), ("composed", composed_batch_norm)):
        xt = Tensor(x.astype(dtype), requires_grad=True)
        wt = None if weight is None else Tensor(weight.astype(dtype), requires_grad=True)
        bt = None if bias is None else Tensor(bias.astype(dtype), requires_grad=True)
        stats = _stats(1, shape[1], dtype)
        y = _call(fn, xt, stats, wt, bt, training)
        y.backward(np.random.default_rng(2).standard_normal(shape).astype(dtype))
        grads = [t.grad for t in (xt, wt, bt) if t is not None]
        results[name] = (y.data, *grads, *stats)
    for fused, composed in zip(results["fused"], results["composed"], strict=True):
        assert fused.dtype == composed.dtype == dtype
        assert_close(fused, composed, dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(3, 2), (2, 3, 4), (2, 2, 3, 2), (4, 1, 1, 1)], ids=str)
def test_gradients_match_finite_differences(shape, training):
    x, weight, bias = _arrays(3, shape, "both")
    stats = _stats(3, shape[1], np.float64)
    check_gradient(
        lambda x, w, b: F.batch_norm(x, *stats, w, b, training=training), [x, weight, bias]
    )
    check_gradient(lambda x: F.batch_norm(x, *stats, training=training), [x])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 2, 4, 4)], ids=str)
def test_running_statistics_after_several_steps_equal_torchs(shape, momentum, dtype):
    channels = shape[1]
    ours = (np.zeros(channels, dtype), np.ones(channels, dtype))
    composed = (np.zeros(channels, dtype), np.ones(channels, dtype))
    theirs = (
        torch.zeros(channels, dtype=torch.float64 if dtype is np.float64 else torch.float32),
        torch.ones(channels, dtype=torch.float64 if dtype is np.float64 else torch.float32),
    )
    for step in range(5):
        x = _arrays(10 + step, shape, "none")[0]
        x = (2 * x + step).astype(dtype)
        F.batch_norm(Tensor(x), *ours, training=True, momentum=momentum)
        composed_batch_norm(Tensor(x), *composed, training=True, momentum=momentum)
        tF.batch_norm(torch.tensor(x), *theirs, training=True, momentum=momentum)
        for a, b, c in zip(ours, composed, theirs, strict=True):
            assert a.dtype == dtype
            assert_close(a, c.numpy(), dtype)
            assert_close(a, b, dtype)
    # evaluation then uses them, as torch's does
    x = _arrays(20, shape, "none")[0].astype(dtype)
    assert_close(
        F.batch_norm(Tensor(x), *ours).data, tF.batch_norm(torch.tensor(x), *theirs).numpy(), dtype
    )


def _nearly_constant(shape, level, seed=0):
    """float32 input whose channel 0 is ``level`` ± one unit in the last place (half each, so
    that its mean is exactly ``level`` and x − μ is ±1 ulp), the other channel normal."""
    rng = np.random.default_rng(seed)
    level = np.float32(level)
    ulp = np.spacing(level)
    count = shape[0] * math.prod(shape[2:])
    signs = rng.permutation(np.repeat([-1.0, 1.0], count // 2)).reshape(shape[0], *shape[2:])
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, 0] = level + np.float32(ulp) * signs.astype(np.float32)
    assert np.all(x[:, 0].astype(np.float64) - float(level) == signs * float(ulp))
    return x, signs


@pytest.mark.parametrize("level", [1234.5678, 77.7, 5.1, 0.3])
@pytest.mark.parametrize("shape", [(64, 2, 32, 32), (256, 2, 4, 4), (512, 2, 9), (64, 2, 3, 3)])
def test_values_near_zero_keep_torchs_sign(shape, level):
    """A float32 running sum misplaces the mean of a nearly constant channel by more than its
    spread, flipping the sign of x − μ (the composition does, for half the values here); the
    float64 sums keep the exact sign, which is PyTorch's."""
    x, signs = _nearly_constant(shape, level)
    weight, bias = np.full(2, 1.5, np.float32), np.zeros(2, np.float32)
    xt = Tensor(x, requires_grad=True)
    y = F.batch_norm(xt, None, None, Tensor(weight), Tensor(bias), training=True)
    reference = tF.batch_norm(
        torch.tensor(x), None, None, torch.tensor(weight), torch.tensor(bias), training=True
    ).numpy()
    np.testing.assert_array_equal(np.sign(y.data[:, 0]), signs)
    np.testing.assert_array_equal(np.sign(y.data[:, 0]), np.sign(reference[:, 0]))
    assert_close(y.data[:, 1], reference[:, 1], np.float32)
    # the gradient of Σ y·x̂-direction: ∂/∂x of Σ y² points along x − μ
    (y * y).sum().backward()
    np.testing.assert_array_equal(np.sign(xt.grad[:, 0]), signs)


def test_values_near_zero_of_two_dimensional_input_keep_the_exact_sign():
    """(N, C) input: the exact sign (PyTorch's CPU kernel for 2-D input loses it here)."""
    x, signs = _nearly_constant((4096, 2), 77.7)
    y = F.batch_norm(Tensor(x), None, None, training=True)
    np.testing.assert_array_equal(np.sign(y.data[:, 0]), signs)


@pytest.mark.parametrize(
    "shape", [(32, 3, 8, 8), (4096, 3), (2, 3, 50), (1, 3, 7, 7), (64, 3, 1, 1)]
)
def test_batch_statistics_of_hard_data_match_float64(shape):
    """The one-pass shifted sums against the float64 two-pass statistics: a channel far from
    zero (1e4 ± 1), one whose first sample is an outlier far out (the shift K is that
    sample's mean), and one of huge and tiny values together."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    x[:, 0] += 1e4
    x[0, 1] += 300.0 * math.sqrt(shape[0])  # the first sample, the shift, very far out
    x[:, 2] *= np.where(rng.random(x[:, 2].shape) < 0.5, 1e-6, 1e6)
    axes = (0, *range(2, x.ndim))
    for dtype, tolerance in ((np.float64, 1e-9), (np.float32, 2e-6 * max(1, shape[0] / 64))):
        data = x.astype(dtype)
        exact = data.astype(np.float64)
        mean = exact.mean(axis=axes)
        var = ((exact - np.expand_dims(mean, axes)) ** 2).mean(axis=axes)
        node = BatchNormOp(training=True, eps=1e-5, has_weight=False, has_bias=False)
        node.needs_input_grad = (False,)
        node.forward(data)
        spread = np.sqrt(var)
        assert np.all(np.abs(node.batch_mean - mean) <= tolerance * spread + 1e-300)
        np.testing.assert_allclose(node.batch_var, var, rtol=tolerance)


@pytest.mark.parametrize("stat_type", ["ndarray", "Tensor"])
def test_invalid_arguments_leave_the_running_statistics_unchanged(stat_type):
    def fresh():
        mean, var = np.arange(3.0), np.arange(3.0) + 1
        return (mean, var) if stat_type == "ndarray" else (Tensor(mean), Tensor(var))

    x = Tensor(np.random.default_rng(4).standard_normal((8, 3, 2)))
    good = {"weight": Tensor(np.ones(3)), "bias": Tensor(np.zeros(3))}
    bad_calls = [
        (
            ShapeError,
            lambda s: F.batch_norm(x, *s, **{**good, "weight": Tensor(np.ones(2))}, training=True),
        ),
        (
            ShapeError,
            lambda s: F.batch_norm(
                x, *s, **{**good, "bias": Tensor(np.ones((3, 1)))}, training=True
            ),
        ),
        (ShapeError, lambda s: F.batch_norm(x, s[0], np.ones(4), training=True)),
        (ShapeError, lambda s: F.batch_norm(x, np.ones(2), s[1], training=True)),
        (ShapeError, lambda s: F.batch_norm(Tensor(np.ones(3)), *s, training=True)),
        (ShapeError, lambda s: F.batch_norm(Tensor(np.ones((2, 3, 1, 1, 2))), *s, training=True)),
        (
            InvalidArgumentError,
            lambda s: F.batch_norm(Tensor(np.ones((1, 3, 1))), *s, training=True),
        ),
        (InvalidArgumentError, lambda s: F.batch_norm(x, s[0], None, training=False)),
    ]
    for error, call in bad_calls:
        stats = fresh()
        with pytest.raises(error, match="batch_norm"):
            call(stats)
        for stat, expected in zip(stats, fresh(), strict=True):
            np.testing.assert_array_equal(np.asarray(stat), np.asarray(expected))


def test_is_one_graph_node_with_x_weight_and_bias_as_inputs():
    x = Tensor(np.ones((4, 3, 2)), requires_grad=True)
    w, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.zeros(3), requires_grad=True)
    y = F.batch_norm(x, None, None, w, b, training=True)
    assert isinstance(y.creator, BatchNormOp) and y.creator.name == "batch_norm"
    assert y.creator.inputs[0] is x and y.creator.inputs[1] is w and y.creator.inputs[2] is b
    only_bias = F.batch_norm(x, None, None, None, b, training=True)
    assert only_bias.creator.inputs[0] is x and only_bias.creator.inputs[1] is b


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("wanted", list(itertools.product([False, True], repeat=3)), ids=str)
def test_computes_only_the_gradients_that_are_wanted(wanted, training):
    shape = (3, 2, 4)
    x, weight, bias = _arrays(6, shape, "both")
    stats = _stats(6, 2, np.float64)
    ours = [Tensor(a, requires_grad=r) for a, r in zip((x, weight, bias), wanted, strict=True)]
    theirs = [
        torch.tensor(a, requires_grad=r) for a, r in zip((x, weight, bias), wanted, strict=True)
    ]
    y = F.batch_norm(ours[0], *stats, *ours[1:], training=training)
    ref = tF.batch_norm(theirs[0], *map(torch.tensor, stats), *theirs[1:], training=training)
    assert_close(y.data, ref.detach().numpy(), np.float64)
    if not any(wanted):
        assert y.creator is None
        return
    g = np.random.default_rng(7).standard_normal(shape)
    y.backward(g)
    ref.backward(torch.tensor(g))
    for t, r in zip(ours, theirs, strict=True):
        if r.requires_grad:
            assert_close(t.grad, r.grad.numpy(), np.float64)
        else:
            assert t.grad is None


def test_saves_nothing_when_no_gradient_is_wanted():
    x = Tensor(np.random.default_rng(8).standard_normal((5, 3, 2)), requires_grad=True)
    op = BatchNormOp(True, 1e-5, False, False)
    with no_grad():
        y = apply(op, x)
    assert y.creator is None and op.saved == ()


def test_numpy_without_vecdot_gives_the_same_result(monkeypatch):
    import signdigits.autograd.normalization as normalization

    x, weight, bias = _arrays(9, (4, 3, 5, 2), "both")
    results = []
    for dots in (normalization._vecdot, normalization._einsum_vecdot):
        monkeypatch.setattr(normalization, "_vecdot", dots)
        ts = [Tensor(a.astype(np.float32), requires_grad=True) for a in (x, weight, bias)]
        y = F.batch_norm(ts[0], None, None, *ts[1:], training=True)
        y.backward(np.random.default_rng(9).standard_normal(y.shape).astype(np.float32))
        results.append([y.data, *(t.grad for t in ts)])
    for a, b in zip(*results, strict=True):
        assert_close(a, b, np.float32)


def test_large_blocks_and_many_blocks_agree(monkeypatch):
    """The blocked passes give the same result whatever the block size (one row per block,
    several rows per block, one block for everything)."""
    import signdigits.autograd.normalization as normalization

    x, weight, bias = _arrays(11, (6, 3, 4, 4), "both")
    results = []
    for chunk in (1, 100, 1 << 20):
        monkeypatch.setattr(normalization, "_CHUNK", chunk)
        ts = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
        y = F.batch_norm(ts[0], None, None, *ts[1:], training=True)
        y.backward(np.random.default_rng(11).standard_normal(y.shape))
        results.append([y.data, *(t.grad for t in ts)])
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert_close(a, b, np.float64)
