"""Stateless operations on tensors for neural networks, named as ``torch.nn.functional``.

Images are NCHW: ``(batch, channels, height, width)``. The fused operations (linear, conv2d,
the pools, softmax, the losses, dropout) are single graph nodes whose backward is written out
next to the forward; the others are compositions of :mod:`signdigits.autograd` operations.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from signdigits.autograd.ops import as_tensor, relu, sigmoid, stable_sigmoid, tanh
from signdigits.autograd.tensor import ArrayLike, Function, Tensor, apply
from signdigits.errors import InvalidArgumentError, ShapeError

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "cross_entropy",
    "dropout",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
    "relu",
    "sigmoid",
    "softmax",
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


def _check_nchw(x: np.ndarray, op: str) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{op}: input must be 4-D (N, C, H, W), got shape {x.shape}")


def _windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """im2col as a view: every (kh, kw) window of an NCHW array, shape (N, C, H', W', kh, kw)."""
    view = sliding_window_view(x, kernel, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1]]


def _col2im(cols: np.ndarray, shape: tuple[int, ...], stride: tuple[int, int]) -> np.ndarray:
    """The adjoint of :func:`_windows`: add each window value (cols shaped
    (N, C, kh, kw, H', W')) back onto the image position it was read from."""
    n, c, kh, kw, ho, wo = cols.shape
    sh, sw = stride
    image = np.zeros(shape, dtype=cols.dtype)
    if (sh, sw) == (kh, kw):  # windows tile the image: one reshaped copy, no overlap
        tiles = cols.transpose(0, 1, 4, 2, 5, 3).reshape(n, c, ho * kh, wo * kw)
        image[:, :, : ho * kh, : wo * kw] = tiles
        return image
    for i in range(kh):  # one vectorised add per kernel offset
        for j in range(kw):
            image[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += cols[:, :, i, j]
    return image


# -- layers -----------------------------------------------------------------------------------
class Linear(Function):
    """y = x Wᵀ + b, with W of shape (out, in) and x of shape (*, in).

    ∂L/∂x = g W,  ∂L/∂W = gᵀ x (summed over the leading axes),  ∂L/∂b = Σ g.

    The products are computed as (W xᵀ)ᵀ and (xᵀ g)ᵀ: the same numbers, in the memory
    layout where OpenBLAS is fastest for a small batch (up to 1.5 × faster than x Wᵀ).
    """

    __slots__ = ()
    name = "linear"
    fresh_grads = True

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        self.saved = (x, w)
        x2 = x.reshape(-1, w.shape[1])
        y = (w @ x2.T).T
        if b is not None:
            y += b  # y is a fresh array: adding in place saves one allocation
        return y.reshape(*x.shape[:-1], w.shape[0])

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        x, w = self.saved
        g2 = g.reshape(-1, w.shape[0])
        grads = [
            g @ w if self.inputs[0].requires_grad else None,
            (x.reshape(-1, w.shape[1]).T @ g2).T,
        ]
        if len(self.inputs) == 3:
            grads.append(g2.sum(axis=0))
        return grads


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Affine map ``x @ weight.T + bias``; ``weight`` is (out_features, in_features)."""
    inputs = (as_tensor(x), weight) if bias is None else (as_tensor(x), weight, bias)
    return apply(Linear(), *inputs)


class Conv2d(Function):
    """Cross-correlation of an NCHW image x with kernels w (O, C, kh, kw), plus bias b (O,):

    y[n, o, i, j] = b[o] + Σ_{c,p,q} w[o, c, p, q] · x_pad[n, c, s·i + p, s·j + q].

    Forward reads all windows at once (im2col) and contracts them with w. Backward:
    ∂L/∂w[o,c,p,q] = Σ_{n,i,j} g[n,o,i,j] · x_pad[n,c,s·i+p,s·j+q],  ∂L/∂b[o] = Σ_{n,i,j} g,
    and ∂L/∂x = col2im(Σ_o g[n,o,i,j] · w[o,c,p,q]) with the padding cut away.
    """

    __slots__ = ("padding", "stride")
    name = "conv2d"
    fresh_grads = True

    def __init__(self, stride: tuple[int, int], padding: tuple[int, int]) -> None:
        self.stride, self.padding = stride, padding

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        _check_nchw(x, self.name)
        if w.ndim != 4 or w.shape[1] != x.shape[1]:
            raise ShapeError(
                f"conv2d: weight must be (out, {x.shape[1]}, kh, kw) for input of shape "
                f"{x.shape}, got {w.shape}"
            )
        ph, pw = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = _windows(padded, w.shape[2:], self.stride)
        y = np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3]))  # (N, H', W', O)
        if b is not None:
            y += b
        self.saved = (cols, w, padded.shape)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        cols, w, padded_shape = self.saved
        gx = None
        if self.inputs[0].requires_grad:
            gcols = np.tensordot(g, w, axes=(1, 0)).transpose(0, 3, 4, 5, 1, 2)
            gx = _col2im(gcols, padded_shape, self.stride)
            ph, pw = self.padding
            gx = gx[:, :, ph : padded_shape[2] - ph, pw : padded_shape[3] - pw]
        grads = [gx, np.tensordot(g, cols, axes=([0, 2, 3], [0, 2, 3]))]
        if len(self.inputs) == 3:
            grads.append(g.sum(axis=(0, 2, 3)))
        return grads


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    """2-D convolution (cross-correlation) of NCHW ``x`` with ``weight`` (out, in, kh, kw),
    zero ``padding`` on each side, as ``torch.nn.functional.conv2d``."""
    fn = Conv2d(_pair(stride, "stride", 1), _pair(padding, "padding", 0))
    inputs = (as_tensor(x), weight) if bias is None else (as_tensor(x), weight, bias)
    return apply(fn, *inputs)


class _Pool2d(Function):
    __slots__ = ("kernel", "shape", "stride")

    def __init__(self, kernel_size: IntPair, stride: IntPair | None) -> None:
        self.kernel = _pair(kernel_size, "kernel_size", 1)
        self.stride = self.kernel if stride is None else _pair(stride, "stride", 1)

    def _cols(self, x: np.ndarray) -> np.ndarray:
        _check_nchw(x, self.name)
        self.shape = x.shape
        return _windows(x, self.kernel, self.stride)


class MaxPool2d(_Pool2d):
    """y = the largest value of each window;  ∂L/∂x = g routed to that value's place (the
    first one on ties, as PyTorch), summed where windows overlap."""

    __slots__ = ()
    name = "max_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        cols = self._cols(x)
        flat = cols.reshape(*cols.shape[:4], -1)
        winner = flat.argmax(axis=-1)
        self.saved = (winner,)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (winner,) = self.saved
        kh, kw = self.kernel
        onehot = winner[..., None] == np.arange(kh * kw)
        gcols = (g[..., None] * onehot).reshape(*g.shape, kh, kw).transpose(0, 1, 4, 5, 2, 3)
        return (_col2im(gcols, self.shape, self.stride),)


class AvgPool2d(_Pool2d):
    """y = the mean of each window of k = kh·kw values;  ∂L/∂x = g / k on each window."""

    __slots__ = ()
    name = "avg_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._cols(x).mean(axis=(4, 5))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        kh, kw = self.kernel
        share = (g / (kh * kw))[:, :, None, None]
        gcols = np.broadcast_to(share, (*g.shape[:2], kh, kw, *g.shape[2:]))
        return (_col2im(gcols, self.shape, self.stride),)


def max_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None) -> Tensor:
    """Maximum over windows of NCHW ``x`` (``stride`` defaults to ``kernel_size``)."""
    return apply(MaxPool2d(kernel_size, stride), as_tensor(x))


def avg_pool2d(x: Tensor, kernel_size: IntPair, stride: IntPair | None = None) -> Tensor:
    """Mean over windows of NCHW ``x`` (``stride`` defaults to ``kernel_size``)."""
    return apply(AvgPool2d(kernel_size, stride), as_tensor(x))


class Dropout(Function):
    """y = x · m with m = [u ≥ p] / (1 − p), u uniform;  ∂L/∂x = g · m."""

    __slots__ = ("mask",)
    name = "dropout"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.mask

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.mask,)


def dropout(
    x: Tensor, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None
) -> Tensor:
    """Zero each value with probability ``p`` and scale the others by 1/(1 − p) (in training;
    otherwise ``x`` itself). ``rng`` draws the mask (a fresh ``default_rng()`` if None)."""
    if not 0 <= p <= 1:
        raise InvalidArgumentError(f"dropout probability p must be in [0, 1], got {p!r}")
    x = as_tensor(x)
    if not training or p == 0:
        return x
    rng = np.random.default_rng() if rng is None else rng
    if p == 1:
        mask = np.zeros(x.shape, dtype=x.dtype)
    else:
        mask = (rng.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1 - p)
    return apply(Dropout(mask), x)


# -- softmax and losses -----------------------------------------------------------------------
def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(x) = x − m − log Σ e^{x − m}, with m = max x so that nothing overflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """yᵢ = e^{xᵢ} / Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = yᵢ (gᵢ − Σⱼ gⱼ yⱼ)."""

    __slots__ = ("dim",)
    name = "softmax"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.exp(_log_softmax(x, self.dim))
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (y * (g - (g * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmax(Softmax):
    """yᵢ = xᵢ − log Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = gᵢ − softmax(x)ᵢ Σⱼ gⱼ."""

    __slots__ = ()
    name = "log_softmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = _log_softmax(x, self.dim)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (g - np.exp(y) * g.sum(axis=self.dim, keepdims=True),)


def softmax(x: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim``: non-negative values summing to 1."""
    return apply(Softmax(dim), as_tensor(x))


def log_softmax(x: Tensor, dim: int) -> Tensor:
    """Logarithm of the softmax along ``dim``, computed stably."""
    return apply(LogSoftmax(dim), as_tensor(x))


class CrossEntropy(Function):
    """L = −(1/N) Σₙ log softmax(zₙ)[tₙ] for logits z (N, C) and classes t;
    ∂L/∂z = (softmax(z) − onehot(t)) / N."""

    __slots__ = ("target",)
    name = "cross_entropy"

    def __init__(self, target: np.ndarray) -> None:
        self.target = target

    def forward(self, z: np.ndarray) -> np.ndarray:
        log_p = _log_softmax(z, 1)
        self.saved = (log_p,)
        return -log_p[np.arange(len(z)), self.target].mean()

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (log_p,) = self.saved
        n = len(log_p)
        grad = np.exp(log_p)
        grad[np.arange(n), self.target] -= 1
        return (grad * (g / n),)


def cross_entropy(logits: Tensor, target: Tensor | ArrayLike) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C) against class indices ``target`` (N,)."""
    logits = as_tensor(logits)
    classes = np.asarray(target.data if isinstance(target, Tensor) else target)
    if logits.ndim != 2 or classes.shape != logits.shape[:1]:
        raise ShapeError(
            f"cross_entropy: logits must be (N, C) and target (N,), got shapes {logits.shape} "
            f"and {classes.shape}"
        )
    if classes.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"cross_entropy: target must hold integer class indices, got dtype {classes.dtype}"
        )
    if classes.size and (classes.min() < 0 or classes.max() >= logits.shape[1]):
        raise InvalidArgumentError(
            f"cross_entropy: target classes must be in [0, {logits.shape[1]}), got values "
            f"from {classes.min()} to {classes.max()}"
        )
    return apply(CrossEntropy(classes), logits)


class BCEWithLogits(Function):
    """L = mean(max(z, 0) − z·y + log(1 + e^{−|z|})) = mean(−y log σ(z) − (1−y) log(1−σ(z)));
    ∂L/∂z = (σ(z) − y) / n,  ∂L/∂y = −z / n."""

    __slots__ = ()
    name = "binary_cross_entropy_with_logits"

    def forward(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        if z.shape != y.shape:
            raise ShapeError(
                f"{self.name}: logits and target must have one shape, got {z.shape} and {y.shape}"
            )
        self.saved = (z, y)
        return (np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))).mean()

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        z, y = self.saved
        scale = g / z.size
        gy = -z * scale if self.inputs[1].requires_grad else None
        return (stable_sigmoid(z) - y) * scale, gy


def binary_cross_entropy_with_logits(logits: Tensor, target: Tensor | ArrayLike) -> Tensor:
    """Mean binary cross-entropy of targets in [0, 1] given logits (fused with the sigmoid)."""
    logits = as_tensor(logits)
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=logits.dtype)
    return apply(BCEWithLogits(), logits, target)


def mse_loss(input: Tensor, target: Tensor | ArrayLike) -> Tensor:
    """Mean squared error mean((input − target)²)."""
    difference = as_tensor(input) - target
    return (difference * difference).mean()


# -- normalisation ----------------------------------------------------------------------------
def _stat_array(value: Tensor | np.ndarray) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else value


def batch_norm(
    x: Tensor,
    running_mean: Tensor | np.ndarray | None,
    running_var: Tensor | np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation per channel, over N for (N, C) input and N, H, W for (N, C, H, W):

    y = (x − μ) / √(σ² + ε) · weight + bias.

    In training μ and σ² are the batch's mean and (biased) variance, and the running
    statistics (if given) are updated in place: r ← (1 − momentum)·r + momentum·s, with the
    unbiased variance n/(n − 1)·σ² for ``running_var``, as PyTorch. Otherwise the running
    statistics are used.
    """
    x = as_tensor(x)
    if x.ndim not in (2, 4):
        raise ShapeError(f"batch_norm: input must be (N, C) or (N, C, H, W), got {x.shape}")
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    channel_shape = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if training:
        count = x.size // x.shape[1]
        if count < 2:
            raise InvalidArgumentError(
                f"batch_norm: training needs more than one value per channel, got {x.shape}"
            )
        mean = x.mean(axis=axes, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=axes, keepdims=True)
        for running, batch in ((running_mean, mean.data), (running_var, var.data)):
            if running is not None:
                stat = _stat_array(running)
                scale = count / (count - 1) if running is running_var else 1.0
                stat *= 1 - momentum
                stat += momentum * scale * batch.reshape(stat.shape)
        y = centred / (var + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise InvalidArgumentError("batch_norm: evaluation needs running_mean and running_var")
        mean = _stat_array(running_mean).reshape(channel_shape)
        inv_std = 1 / np.sqrt(_stat_array(running_var).reshape(channel_shape) + eps)
        y = (x - mean) * inv_std
    if weight is not None:
        y = y * weight.reshape(channel_shape)
    if bias is not None:
        y = y + bias.reshape(channel_shape)
    return y
