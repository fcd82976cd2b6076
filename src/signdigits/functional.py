"""Stateless operations on tensors for neural networks, named as ``torch.nn.functional``.

Images are NCHW: ``(batch, channels, height, width)``. Only functions live here: the fused
operations (linear, conv2d, the pools, softmax, the losses, dropout) each record one graph
node of :mod:`signdigits.autograd.nn_ops`, and batch norm one of
:mod:`signdigits.autograd.normalization`, whose backward is written out next to its forward;
mse is a composition of :mod:`signdigits.autograd` operations.
"""

from __future__ import annotations

import math

import numpy as np

from signdigits.autograd.nn_ops import (
    AvgPool2dOp,
    BCEWithLogitsOp,
    Conv2dOp,
    CrossEntropyOp,
    DropoutOp,
    LinearOp,
    LogSoftmaxOp,
    MaxPool2dOp,
    SoftmaxOp,
)
from signdigits.autograd.normalization import BatchNormOp
from signdigits.autograd.ops import as_tensor, leaky_relu, relu, sigmoid, softplus, tanh
from signdigits.autograd.tensor import ArrayLike, Tensor, apply, lift
from signdigits.errors import InvalidArgumentError, ShapeError

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "relu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
]

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < minimum for v in pair):
        raise InvalidArgumentError(
            f"{name} must be an int ≥ {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _inputs(x: Tensor | ArrayLike, weight: Tensor | ArrayLike, bias: Tensor | ArrayLike | None):
    """The operands of a layer as tensors (a plain array weight is a constant)."""
    x = as_tensor(x)
    inputs = (x, lift(weight, x))
    return inputs if bias is None else (*inputs, lift(bias, x))


# -- layers -----------------------------------------------------------------------------------
def linear(
    x: Tensor | ArrayLike, weight: Tensor | ArrayLike, bias: Tensor | ArrayLike | None = None
) -> Tensor:
    """Affine map ``x @ weight.T + bias``; ``weight`` is (out_features, in_features), ``bias``
    (out_features,) or any shape that broadcasts to the output."""
    return apply(LinearOp(), *_inputs(x, weight, bias))


def conv2d(
    x: Tensor | ArrayLike,
    weight: Tensor | ArrayLike,
    bias: Tensor | ArrayLike | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    """2-D convolution (cross-correlation) of NCHW ``x`` with ``weight`` (out, in, kh, kw),
    ``bias`` (out,), zero ``padding`` on each side, as ``torch.nn.functional.conv2d``."""
    op = Conv2dOp(_pair(stride, "stride", 1), _pair(padding, "padding", 0))
    return apply(op, *_inputs(x, weight, bias))


def _pool(
    op: type[MaxPool2dOp | AvgPool2dOp],
    x: Tensor | ArrayLike,
    kernel_size: IntPair,
    stride: IntPair | None,
) -> Tensor:
    kernel = _pair(kernel_size, "kernel_size", 1)
    return apply(op(kernel, kernel if stride is None else _pair(stride, "stride", 1)), as_tensor(x))


def max_pool2d(
    x: Tensor | ArrayLike, kernel_size: IntPair, stride: IntPair | None = None
) -> Tensor:
    """Maximum over windows of NCHW ``x`` (``stride`` defaults to ``kernel_size``)."""
    return _pool(MaxPool2dOp, x, kernel_size, stride)


def avg_pool2d(
    x: Tensor | ArrayLike, kernel_size: IntPair, stride: IntPair | None = None
) -> Tensor:
    """Mean over windows of NCHW ``x`` (``stride`` defaults to ``kernel_size``)."""
    return _pool(AvgPool2dOp, x, kernel_size, stride)


def dropout(
    x: Tensor | ArrayLike,
    p: float = 0.5,
    training: bool = True,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """Zero each value with probability ``p`` and scale the others by 1/(1 − p), in training;
    otherwise return ``x`` itself.

    ``rng`` draws the mask. It is required in training for 0 < p < 1: randomness comes from a
    Generator made from the run's seed and passed down, so that two runs with one seed agree.
    """
    if not 0 <= p <= 1:
        raise InvalidArgumentError(f"dropout probability p must be in [0, 1], got {p!r}")
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise InvalidArgumentError(
            f"dropout needs a floating tensor, got dtype {x.dtype}; convert it with "
            "dtype=np.float32"
        )
    if not training or p == 0:
        return x
    if p == 1:
        mask = np.zeros(x.shape, dtype=x.dtype)
    elif not isinstance(rng, np.random.Generator):
        raise InvalidArgumentError(
            "dropout in training needs rng, a numpy.random.Generator made from the run's seed "
            "(np.random.default_rng(seed)), so that runs can be repeated"
        )
    else:
        mask = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return apply(DropoutOp(mask), x)


# -- softmax and losses -----------------------------------------------------------------------
def softmax(x: Tensor | ArrayLike, dim: int) -> Tensor:
    """Softmax along ``dim``: non-negative values summing to 1."""
    return apply(SoftmaxOp(dim), as_tensor(x))


def log_softmax(x: Tensor | ArrayLike, dim: int) -> Tensor:
    """Logarithm of the softmax along ``dim``, computed stably."""
    return apply(LogSoftmaxOp(dim), as_tensor(x))


def cross_entropy(logits: Tensor | ArrayLike, target: Tensor | ArrayLike) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against class indices ``target`` (N,)."""
    logits = as_tensor(logits)
    classes = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim != 2 or classes.shape != logits.shape[:1]:
        raise ShapeError(
            f"cross_entropy: logits must be (N, C) and target (N,), got shapes {logits.shape} "
            f"and {classes.shape}"
        )
    if classes.size == 0:
        classes = classes.astype(np.intp)
    if classes.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"cross_entropy: target must hold integer class indices, got dtype {classes.dtype}"
        )
    if classes.size and (classes.min() < 0 or classes.max() >= logits.shape[1]):
        raise InvalidArgumentError(
            f"cross_entropy: target classes must be in [0, {logits.shape[1]}), got values "
            f"from {classes.min()} to {classes.max()}"
        )
    return apply(CrossEntropyOp(classes), logits)


def binary_cross_entropy_with_logits(
    logits: Tensor | ArrayLike, target: Tensor | ArrayLike
) -> Tensor:
    """Mean binary cross-entropy of targets in [0, 1] given logits (fused with the sigmoid)."""
    logits = as_tensor(logits)
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=logits.dtype)
    return apply(BCEWithLogitsOp(), logits, target)


def mse_loss(input: Tensor | ArrayLike, target: Tensor | ArrayLike) -> Tensor:
    """Mean squared error mean((input − target)²)."""
    difference = as_tensor(input) - target
    return (difference * difference).mean()


# -- normalisation ----------------------------------------------------------------------------
def _stat_array(value: Tensor | np.ndarray) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else value


def _check_channel_vector(value: Tensor | np.ndarray | None, name: str, channels: int) -> None:
    if value is not None and tuple(np.shape(_stat_array(value))) != (channels,):
        raise ShapeError(
            f"batch_norm: {name} must have shape ({channels},), one value per channel, got "
            f"{np.shape(_stat_array(value))}"
        )


def batch_norm(
    x: Tensor | ArrayLike,
    running_mean: Tensor | np.ndarray | None,
    running_var: Tensor | np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation per channel, over N for (N, C) input, N, L for (N, C, L) and N, H, W
    for (N, C, H, W):

    y = (x − μ) / √(σ² + ε) · weight + bias.

    In training μ and σ² are the batch's mean and (biased) variance, and the running
    statistics (if given) are updated in place: r ← (1 − momentum)·r + momentum·s, with the
    unbiased variance n/(n − 1)·σ² for ``running_var``, as PyTorch. Otherwise the running
    statistics are used. Every argument is checked before any running statistic changes.
    An empty batch gives an empty result and leaves the running statistics as they are, as
    in PyTorch; one value per channel in training is an error (its variance is undefined).

    It records one graph node, :class:`~signdigits.autograd.normalization.BatchNormOp`, whose
    closed-form gradient and float64 statistics are explained there.
    """
    x = as_tensor(x)
    if x.ndim not in (2, 3, 4):
        raise ShapeError(
            f"batch_norm: input must be (N, C), (N, C, L) or (N, C, H, W), got {x.shape}"
        )
    channels = x.shape[1]
    for value, name in (
        (running_mean, "running_mean"),
        (running_var, "running_var"),
        (weight, "weight"),
        (bias, "bias"),
    ):
        _check_channel_vector(value, name, channels)
    training = bool(training)
    if training:
        count = math.prod(x.shape[a] for a in (0, *range(2, x.ndim)))
        if count == 1:
            raise InvalidArgumentError(
                f"batch_norm: training needs more than one value per channel, got input of "
                f"shape {x.shape}; use a batch of more than one sample, or eval() for inference"
            )
        op = BatchNormOp(True, eps, weight is not None, bias is not None)
    else:
        if running_mean is None or running_var is None:
            raise InvalidArgumentError("batch_norm: evaluation needs running_mean and running_var")
        op = BatchNormOp(
            False,
            eps,
            weight is not None,
            bias is not None,
            _stat_array(running_mean),
            _stat_array(running_var),
        )
    affine = [lift(value, x) for value in (weight, bias) if value is not None]
    y = apply(op, x, *affine)
    if training and op.count > 0:  # every check passed: now update the running statistics
        for running, batch, scale in (
            (running_mean, op.batch_mean, 1.0),
            (running_var, op.batch_var, op.count / (op.count - 1)),
        ):
            if running is not None:
                stat = _stat_array(running)
                stat *= 1 - momentum
                stat += momentum * scale * batch
    return y
