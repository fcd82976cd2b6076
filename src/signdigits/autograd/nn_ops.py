"""The neural-network operations: each forward next to its local derivative, on raw ndarrays.

These are single graph nodes whose backward is written out by hand (fused), where composing
elementwise operations would be slower or less stable. :mod:`signdigits.functional` holds
the functions that users call; the classes here are the nodes those functions record. They
are named with ``Op`` so that the layer names (``Linear``, ``Conv2d``, …) belong to
:mod:`signdigits.nn` alone.

Images are NCHW: ``(batch, channels, height, width)``. Notation as in
:mod:`signdigits.autograd.ops`: ``g = ∂L/∂y`` arrives at the output, ``backward`` returns
``∂L/∂x`` for each input (``None`` where ``needs_input_grad`` says nobody wants it).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from signdigits.autograd.ops import stable_sigmoid
from signdigits.autograd.tensor import Function, sum_to_shape
from signdigits.errors import ShapeError


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


def _broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:
        return False


def _add_bias(y: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """y + b for a fresh product y: in place (one allocation saved) unless NumPy's promotion
    makes the sum wider than y (a float64 bias on float32 products gives float64)."""
    if b is None:
        return y
    if np.result_type(y, b) == y.dtype:
        y += b
        return y
    return y + b


# -- layers -----------------------------------------------------------------------------------
class LinearOp(Function):
    """y = x Wᵀ + b, with W of shape (out, in), x of shape (*, in) and b broadcasting to y
    (usually (out,)).

    ∂L/∂x = g W,  ∂L/∂W = gᵀ x (summed over the leading axes),  ∂L/∂b = Σ g over the axes
    that b was broadcast along.

    The products are computed as (W xᵀ)ᵀ and (xᵀ g)ᵀ: the same numbers, in the memory
    layout where OpenBLAS is fastest for a small batch (up to 1.5 × faster than x Wᵀ).
    """

    __slots__ = ()
    name = "linear"
    fresh_grads = True

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if w.ndim != 2:
            raise ShapeError(f"linear: weight must be 2-D (out, in), got shape {w.shape}")
        if x.ndim == 0 or x.shape[-1] != w.shape[1]:
            raise ShapeError(
                f"linear: input of shape {x.shape} must end in in_features = {w.shape[1]} "
                f"for a weight of shape {w.shape}"
            )
        out_shape = (*x.shape[:-1], w.shape[0])
        if b is not None and not _broadcasts_to(b.shape, out_shape):
            raise ShapeError(
                f"linear: bias of shape {b.shape} does not broadcast to the output's shape "
                f"{out_shape}; a bias for {w.shape[0]} outputs has shape ({w.shape[0]},)"
            )
        needs_x, needs_w = self.needs_input_grad[:2]
        bias_shape = None if b is None else b.shape
        self.saved = (x if needs_w else None, w if needs_x else None, bias_shape)
        rows = math.prod(x.shape[:-1])  # not -1: a size-0 axis would make it ambiguous
        y = (w @ x.reshape(rows, w.shape[1]).T).T.reshape(out_shape)
        return _add_bias(y, b)

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        x, w, bias_shape = self.saved
        needs_x, needs_w = self.needs_input_grad[:2]
        rows = math.prod(g.shape[:-1])
        grads = [
            g @ w if needs_x else None,
            (x.reshape(rows, x.shape[-1]).T @ g.reshape(rows, g.shape[-1])).T if needs_w else None,
        ]
        if bias_shape is not None:
            gb = sum_to_shape(g, bias_shape, self.name) if self.needs_input_grad[2] else None
            grads.append(gb.copy() if gb is g else gb)
        return grads


class Conv2dOp(Function):
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
        if b is not None and b.shape != (w.shape[0],):
            raise ShapeError(
                f"conv2d: bias must have shape ({w.shape[0]},), one value per output channel, "
                f"got {b.shape}"
            )
        ph, pw = self.padding
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
        cols = _windows(padded, w.shape[2:], self.stride)
        y = _add_bias(np.tensordot(cols, w, axes=([1, 4, 5], [1, 2, 3])), b)  # (N, H', W', O)
        needs_x, needs_w = self.needs_input_grad[:2]
        self.saved = (cols if needs_w else None, w if needs_x else None, padded.shape)
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        cols, w, padded_shape = self.saved
        needs_x, needs_w = self.needs_input_grad[:2]
        gx = gw = None
        if needs_x:
            gcols = np.tensordot(g, w, axes=(1, 0)).transpose(0, 3, 4, 5, 1, 2)
            gx = _col2im(gcols, padded_shape, self.stride)
            ph, pw = self.padding
            gx = gx[:, :, ph : padded_shape[2] - ph, pw : padded_shape[3] - pw]
        if needs_w:
            gw = np.tensordot(g, cols, axes=([0, 2, 3], [0, 2, 3]))
        grads = [gx, gw]
        if len(self.needs_input_grad) == 3:
            grads.append(g.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None)
        return grads


class _Pool2dOp(Function):
    __slots__ = ("kernel", "shape", "stride")

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        self.kernel, self.stride = kernel, stride

    def _cols(self, x: np.ndarray) -> np.ndarray:
        _check_nchw(x, self.name)
        self.shape = x.shape
        return _windows(x, self.kernel, self.stride)


class MaxPool2dOp(_Pool2dOp):
    """y = the largest value of each window;  ∂L/∂x = g routed to that value's place (the
    first one on ties, as PyTorch), summed where windows overlap."""

    __slots__ = ()
    name = "max_pool2d"

    def forward(self, x: np.ndarray) -> np.ndarray:
        cols = self._cols(x)
        kh, kw = self.kernel
        flat = cols.reshape(*cols.shape[:4], kh * kw)
        winner = flat.argmax(axis=-1)
        self.saved = (winner,)
        return np.take_along_axis(flat, winner[..., None], axis=-1)[..., 0]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (winner,) = self.saved
        kh, kw = self.kernel
        onehot = winner[..., None] == np.arange(kh * kw)
        gcols = (g[..., None] * onehot).reshape(*g.shape, kh, kw).transpose(0, 1, 4, 5, 2, 3)
        return (_col2im(gcols, self.shape, self.stride),)


class AvgPool2dOp(_Pool2dOp):
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


class DropoutOp(Function):
    """y = x · m with a fixed mask m = [u ≥ p] / (1 − p), u uniform;  ∂L/∂x = g · m."""

    __slots__ = ("mask",)
    name = "dropout"

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x * self.mask

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.mask,)


# -- softmax and losses -----------------------------------------------------------------------
def log_softmax_array(x: np.ndarray, axis: int) -> np.ndarray:
    """log softmax(x) = x − m − log Σ e^{x − m}, with m = max x so that nothing overflows."""
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


class SoftmaxOp(Function):
    """yᵢ = e^{xᵢ} / Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = yᵢ (gᵢ − Σⱼ gⱼ yⱼ)."""

    __slots__ = ("dim",)
    name = "softmax"

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.exp(log_softmax_array(x, self.dim))
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (y * (g - (g * y).sum(axis=self.dim, keepdims=True)),)


class LogSoftmaxOp(SoftmaxOp):
    """yᵢ = xᵢ − log Σⱼ e^{xⱼ} along ``dim``;  ∂L/∂xᵢ = gᵢ − softmax(x)ᵢ Σⱼ gⱼ."""

    __slots__ = ()
    name = "log_softmax"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = log_softmax_array(x, self.dim)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (y,) = self.saved
        return (g - np.exp(y) * g.sum(axis=self.dim, keepdims=True),)


class CrossEntropyOp(Function):
    """L = −(1/N) Σₙ log softmax(zₙ)[tₙ] for logits z (N, C) and classes t;
    ∂L/∂z = (softmax(z) − onehot(t)) / N. An empty batch has a NaN loss, as in PyTorch."""

    __slots__ = ("target",)
    name = "cross_entropy"

    def __init__(self, target: np.ndarray) -> None:
        self.target = target

    def forward(self, z: np.ndarray) -> np.ndarray:
        log_p = log_softmax_array(z, 1)
        self.saved = (log_p,)
        picked = log_p[np.arange(len(z)), self.target]
        with np.errstate(invalid="ignore", divide="ignore"):  # only for N = 0
            return -np.true_divide(picked.sum(), len(z))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (log_p,) = self.saved
        n = len(log_p)
        grad = np.exp(log_p)
        if n == 0:
            return (grad,)
        grad[np.arange(n), self.target] -= 1
        return (grad * (g / n),)


class BCEWithLogitsOp(Function):
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
        gy = -z * scale if self.needs_input_grad[1] else None
        return (stable_sigmoid(z) - y) * scale, gy
