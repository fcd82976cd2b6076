"""Batch normalisation as one graph node, its gradient in closed form.

For input x of shape (N, C), (N, C, L) or (N, C, H, W), every channel c is normalised over
its M = N·(L or H·W) values. In the notation of :mod:`signdigits.autograd.ops`
(``g = ∂L/∂y`` arrives at the output):

Training (batch statistics)::

    μ = Σ x / M,   σ² = Σ (x − μ)² / M   (biased),   s = 1/√(σ² + ε)
    x̂ = (x − μ)·s,   y = γ·x̂ + β
    ∂L/∂β = Σ g,   ∂L/∂γ = Σ g·x̂
    ∂L/∂x = γ·s·(g − (Σ g)/M − x̂·(Σ g·x̂)/M)

The last line is the whole chain rule through μ and σ² at once: ∂x̂ᵢ/∂xⱼ = s·(δᵢⱼ − 1/M −
x̂ᵢ·x̂ⱼ/M), contracted with γ·g. Evaluation (fixed running statistics r_μ, r_σ²)::

    s = 1/√(r_σ² + ε),   y = γ·(x − r_μ)·s + β
    ∂L/∂x = γ·s·g,   ∂L/∂γ = Σ g·(x − r_μ)·s,   ∂L/∂β = Σ g

The batch statistics come from one pass of shifted sums (see
``BatchNormOp._batch_statistics``): with K each channel's mean over the first sample, Σ (x − K)
and Σ (x − K)², each row of L (or H·W) values reduced in the input's dtype and the rows added
in float64. Their error is relative to the spread of the data, not to |x|: a plain float32 sum
over many values misplaces μ of a nearly constant channel by more than its spread, which flips
the sign of x − μ, and x − K is exact there. The subtraction x − μ is then done in the input's
dtype with μ rounded to it, which keeps the sign of the exact difference (no value of that
dtype lies strictly between μ and its rounding). The sums of backward (Σ g, Σ g·(x − μ))
decide no sign of x − μ: each row is reduced in the input's dtype by a vectorised dot product
(``np.vecdot``, several partial sums at once), and the rows are added in float64; their error
is about the dtype's precision times Σ |term|.

Speed (memory traffic is the cost): x − μ is never stored. Forward reads x twice (the
shifted sums; y) and writes only y; backward reads g and x twice (the two sums; ∂L/∂x)
and writes only ∂L/∂x. Each blocked pass works on a block of about ``_CHUNK`` values at a
time in one reused scratch array that stays in cache, so x − μ costs no trip to memory. The
node saves x itself (no copy, as the other nodes do), μ, 1/√(σ² + ε) and γ. Work that
``needs_input_grad`` says nobody wants is skipped, and nothing is saved when no input needs
a gradient. Against the composition of ~11 engine operations it replaces, forward and
backward together are about 2× faster and make two full-size arrays instead of a dozen.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from signdigits.autograd import threads
from signdigits.autograd.tensor import Function
from signdigits.errors import ShapeError

_CHUNK = 1 << 17  # values per block: 512 KB of float32 scratch stays in a 1 MiB L2 cache


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ_l a[n, c, l]·b[n, c, l] per (n, c), summed over n in float64: shape (C,)."""
    return _vecdot(a, b).sum(axis=0, dtype=np.float64)


def _einsum_vecdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ncl,ncl->nc", a, b)


_vecdot = getattr(np, "vecdot", _einsum_vecdot)  # NumPy < 2 has no vecdot


Block = tuple[slice, slice]


def _blocks(shape: tuple[int, int, int]) -> list[Block]:
    """(samples, channels) slices cutting a (N, C, L) array into blocks of about ``_CHUNK``
    values: several samples per block when one sample is small, else a few channels of one
    sample. The first block is the largest."""
    n, c, length = shape
    if c * length <= _CHUNK:
        rows = _CHUNK // max(1, c * length)
        return [(slice(i, i + rows), slice(None)) for i in range(0, n, rows)]
    channels = max(1, _CHUNK // length)
    return [
        (slice(i, i + 1), slice(j, j + channels)) for i in range(n) for j in range(0, c, channels)
    ]


def _summed(partials: list[np.ndarray]) -> np.ndarray:
    """The threads' partial sums added in their fixed order: the same total on every run."""
    total = partials[0].copy()
    for partial in partials[1:]:
        total += partial
    return total


def _each_group(blocks: list[Block], work: Callable[[list[Block]], Any]) -> list[Any]:
    """``work`` on contiguous groups of ``blocks``, one group per engine thread."""
    return threads.run(work, [blocks[part] for part in threads.split(len(blocks))])


def _scratch(buffer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A contiguous array of ``shape`` in the front of ``buffer`` (as large as any block)."""
    return buffer.reshape(-1)[: math.prod(shape)].reshape(shape)


def _per_channel(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A (C,) vector as a (1, C, 1) array of ``dtype``, to broadcast over (N, C, L)."""
    return np.asarray(values).astype(dtype, copy=False).reshape(1, -1, 1)


class BatchNormOp(Function):
    """One node ``batch_norm(x, [weight], [bias])``: see the module's docstring for the
    equations. ``weight`` (γ) and ``bias`` (β), when present, are (C,) inputs of the node.

    In training the batch statistics are left on the node as ``batch_mean`` and
    ``batch_var`` (float64, biased variance, shape (C,)) for the caller to update the
    running statistics with; ``count`` is M. In evaluation ``running_mean`` and
    ``running_var`` are given to the constructor (constants, not inputs).
    """

    __slots__ = (
        "batch_mean",
        "batch_var",
        "count",
        "eps",
        "has_bias",
        "has_weight",
        "running_mean",
        "running_var",
        "shape",
        "training",
    )
    name = "batch_norm"
    fresh_grads = True

    def __init__(
        self,
        training: bool,
        eps: float,
        has_weight: bool,
        has_bias: bool,
        running_mean: np.ndarray | None = None,
        running_var: np.ndarray | None = None,
    ) -> None:
        self.training, self.eps = training, float(eps)
        self.has_weight, self.has_bias = has_weight, has_bias
        self.running_mean, self.running_var = running_mean, running_var
        self.batch_mean = self.batch_var = None
        self.count = 0
        self.shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, *affine: np.ndarray) -> np.ndarray:
        if x.ndim not in (2, 3, 4):
            raise ShapeError(f"batch_norm: input must be 2-, 3- or 4-D, got shape {x.shape}")
        weight = affine[0] if self.has_weight else None
        bias = affine[-1] if self.has_bias else None
        dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
        dtype = np.result_type(dtype, *affine)
        n, c = x.shape[:2]
        x3 = x.reshape(n, c, math.prod(x.shape[2:])).astype(dtype, copy=False)
        self.shape, self.count = x.shape, n * x3.shape[2]
        if self.count == 0:  # an empty batch: an empty result, no statistics
            self.saved = (None, None, None, None)
            return np.empty(x.shape, dtype)
        blocks = _blocks(x3.shape)
        if self.training:
            mean, var = self._batch_statistics(x3, blocks)
            self.batch_mean, self.batch_var = mean, var
            mean_t = _per_channel(mean, dtype)
        else:
            mean = np.asarray(self.running_mean, dtype=np.float64)
            var = np.asarray(self.running_var, dtype=np.float64)
            mean_t = _per_channel(mean, dtype)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        scale = _per_channel(inv_std if weight is None else inv_std * weight, dtype)
        shift = None if bias is None else _per_channel(bias, dtype)
        y = np.empty(x3.shape, dtype)

        def normalise(group: list[Block]) -> None:  # y = (x − μ)·(s·γ) + β, block by block
            for block in group:
                channels = block[1]
                out = np.subtract(x3[block], mean_t[:, channels], out=y[block])
                out *= scale[:, channels]
                if shift is not None:
                    out += shift[:, channels]

        _each_group(blocks, normalise)
        if True in self.needs_input_grad:  # x and μ rebuild x − μ; s and γ scale
            self.saved = (x3, mean_t, inv_std, weight)
        return y.reshape(x.shape)

    @staticmethod
    def _batch_statistics(x3: np.ndarray, blocks: list[Block]) -> tuple[np.ndarray, np.ndarray]:
        """μ and σ² of each channel of a (N, C, L) array in one pass, both float64.

        Shifted sums: with K the mean of the first sample's values of the channel (rounded
        to x's dtype), d = x − K is summed as Σ d and Σ d² (each row of L values in x's
        dtype, the rows in float64), and μ = K + Σd/M, σ² = Σd²/M − (Σd/M)². The errors are
        relative to the spread of the data, not to |x|: a nearly constant channel keeps its
        exact mean (d is exact there). And since K is one sample's mean, (K − μ)² ≤ N·σ², so
        the subtraction in σ² loses at most a factor N of precision (of 2⁻²⁴ in float32)."""
        dtype, (n, c, length) = x3.dtype, x3.shape
        shift = np.einsum("cl->c", x3[0], dtype=np.float64) / length
        shift_t = _per_channel(shift, dtype)
        ones = np.ones(length, dtype)

        def sums_of(group: list[Block]) -> tuple[np.ndarray, np.ndarray]:
            buffer = np.empty(x3[blocks[0]].shape, dtype)
            sums, squares = np.zeros(c), np.zeros(c)
            for block in group:
                xb, channels = x3[block], block[1]
                d = np.subtract(xb, shift_t[:, channels], out=_scratch(buffer, xb.shape))
                sums[channels] += np.matmul(d, ones).sum(axis=0, dtype=np.float64)
                squares[channels] += _row_dots(d, d)
            return sums, squares

        partial = _each_group(blocks, sums_of)
        count = n * length
        mean_d = _summed([p[0] for p in partial]) / count
        var = np.maximum(_summed([p[1] for p in partial]) / count - mean_d * mean_d, 0.0)
        return shift_t.reshape(-1).astype(np.float64) + mean_d, var

    def backward(self, g: np.ndarray) -> list[np.ndarray | None]:
        x3, mean_t, inv_std, weight = self.saved
        needs = self.needs_input_grad
        need_x = needs[0]
        need_w = self.has_weight and needs[1]
        need_b = self.has_bias and needs[-1]
        grads: list[np.ndarray | None] = [None] * len(needs)
        if self.count == 0:  # an empty batch: zero gradients
            channels = self.shape[1]
            if need_x:
                grads[0] = np.zeros(self.shape, g.dtype)
            if need_w:
                grads[1] = np.zeros(channels, g.dtype)
            if need_b:
                grads[-1] = np.zeros(channels, g.dtype)
            return grads
        g3 = g.reshape(x3.shape)
        dtype = x3.dtype
        blocks = _blocks(x3.shape)
        x_through_stats = need_x and self.training
        want_g, want_gd = need_b or x_through_stats, need_w or x_through_stats
        sum_g = sum_gd = None

        def sums_of(group: list[Block]) -> tuple[np.ndarray, np.ndarray]:
            """Σ g and Σ g·(x − μ) over a group of blocks, one block of x − μ at a time."""
            buffer = np.empty(x3[blocks[0]].shape, dtype)
            part_g, part_gd = np.zeros(x3.shape[1]), np.zeros(x3.shape[1])
            for block in group:
                gb, channels = g3[block], block[1]
                if want_g:
                    part_g[channels] += gb.sum(axis=2).sum(axis=0, dtype=np.float64)
                if want_gd:
                    d = np.subtract(x3[block], mean_t[:, channels], out=_scratch(buffer, gb.shape))
                    part_gd[channels] += _row_dots(gb, d)
            return part_g, part_gd

        if want_g or want_gd:
            partial = _each_group(blocks, sums_of)
            sum_g = _summed([p[0] for p in partial]) if want_g else None
            sum_gd = _summed([p[1] for p in partial]) if want_gd else None
        sum_gx = None if sum_gd is None else sum_gd * inv_std  # Σ g·x̂
        if need_x:
            k = inv_std if weight is None else inv_std * weight  # γ·s
            k_t = _per_channel(k, dtype)
            dx = np.empty(x3.shape, dtype)
            if self.training:  # dx = k·g − k·Σg/M + (x − μ)·(−k·s·Σg·x̂/M)
                m = self.count
                offset = _per_channel(-k * sum_g / m, dtype)
                slope = _per_channel(-k * inv_std * sum_gx / m, dtype)

                def input_grad(group: list[Block]) -> None:
                    buffer = np.empty(x3[blocks[0]].shape, dtype)
                    for block in group:
                        channels = block[1]
                        out = np.multiply(g3[block], k_t[:, channels], out=dx[block])
                        out += offset[:, channels]
                        d = np.subtract(
                            x3[block], mean_t[:, channels], out=_scratch(buffer, out.shape)
                        )
                        d *= slope[:, channels]
                        out += d

                _each_group(blocks, input_grad)
            else:
                np.multiply(g3, k_t, out=dx)
            grads[0] = dx.reshape(self.shape)
        if need_w:
            grads[1] = sum_gx.astype(dtype)
        if need_b:
            grads[-1] = sum_g.astype(dtype)
        return grads
