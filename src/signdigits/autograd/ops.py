"""The operations: each forward next to its local derivative, on raw ndarrays.

Notation: ``g = ∂L/∂y`` is the gradient arriving at the output ``y``; each ``backward``
returns ``∂L/∂x = g · ∂y/∂x`` for every input ``x``. Gradients may keep the broadcast shape of
the output: the engine (:meth:`Tensor.backward`) sums them back to each input's shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from signdigits.autograd.tensor import ArrayLike, Function, Tensor, apply, lift
from signdigits.errors import InvalidArgumentError

Axis = int | tuple[int, ...] | None


# -- elementwise, two inputs ------------------------------------------------------------------
class Add(Function):
    """y = a + b;  ∂y/∂a = 1,  ∂y/∂b = 1."""

    __slots__ = ()
    name = "add"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g, g


class Sub(Function):
    """y = a − b;  ∂y/∂a = 1,  ∂y/∂b = −1."""

    __slots__ = ()
    name = "sub"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a - b

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g, -g


class Mul(Function):
    """y = a · b;  ∂y/∂a = b,  ∂y/∂b = a."""

    __slots__ = ()
    name = "mul"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.saved = (a, b)
        return a * b

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.saved
        return g * b, g * a


class Div(Function):
    """y = a / b;  ∂y/∂a = 1/b,  ∂y/∂b = −a/b²."""

    __slots__ = ()
    name = "div"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.saved = (a, b)
        return a / b

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.saved
        gb = g / b
        return gb, -gb * (a / b)


class MatMul(Function):
    """y = a @ b, the matrix product over the last two axes (leading axes broadcast).

    ∂L/∂a = g @ bᵀ,  ∂L/∂b = aᵀ @ g. As in NumPy and PyTorch a 1-D ``a`` is a row vector and
    a 1-D ``b`` a column vector, whose added axis is dropped from the result.
    """

    __slots__ = ()
    name = "matmul"
    fresh_grads = True

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.saved = (a, b)
        return np.matmul(a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        a, b = self.saved
        a_vector, b_vector = a.ndim == 1, b.ndim == 1
        if b_vector:  # restore the dropped axes: g becomes (..., n, m)
            g, b = np.expand_dims(g, -1), b[:, None]
        if a_vector:
            g, a = np.expand_dims(g, -2), a[None, :]
        ga = gb = None
        if self.inputs[0].requires_grad:
            ga = np.matmul(g, np.swapaxes(b, -1, -2))
            ga = ga[..., 0, :] if a_vector else ga
        if self.inputs[1].requires_grad:
            gb = np.matmul(np.swapaxes(a, -1, -2), g)
            gb = gb[..., 0] if b_vector else gb
        return ga, gb


class Where(Function):
    """y = a where cond else b;  ∂y/∂a = [cond],  ∂y/∂b = [not cond]."""

    __slots__ = ("cond",)
    name = "where"

    def __init__(self, cond: np.ndarray) -> None:
        self.cond = cond

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(self.cond, a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.where(self.cond, g, 0), np.where(self.cond, 0, g)


# -- elementwise, one input -------------------------------------------------------------------
class Neg(Function):
    """y = −x;  ∂y/∂x = −1."""

    __slots__ = ()
    name = "neg"

    def forward(self, x: np.ndarray) -> np.ndarray:
        return -x

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (-g,)


class Pow(Function):
    """y = xᵖ for a constant exponent p;  ∂y/∂x = p·xᵖ⁻¹."""

    __slots__ = ("exponent",)
    name = "pow"

    def __init__(self, exponent: float) -> None:
        if isinstance(exponent, Tensor):
            raise InvalidArgumentError(
                "the exponent of ** must be a number; for a tensor exponent use exp(b * log(a))"
            )
        self.exponent = exponent.item() if isinstance(exponent, np.generic) else exponent

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return x**self.exponent

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (x,) = self.saved
        p = self.exponent
        return (g * (p * x ** (p - 1)),)


class Exp(Function):
    """y = eˣ;  ∂y/∂x = eˣ = y."""

    __slots__ = ()
    name = "exp"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.exp(x)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.saved[0],)


class Log(Function):
    """y = ln x;  ∂y/∂x = 1/x."""

    __slots__ = ()
    name = "log"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.log(x)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g / self.saved[0],)


class Sqrt(Function):
    """y = √x;  ∂y/∂x = 1 / (2√x) = 1 / (2y)."""

    __slots__ = ()
    name = "sqrt"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.sqrt(x)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g / (2 * self.saved[0]),)


class Tanh(Function):
    """y = tanh x;  ∂y/∂x = 1 − y²."""

    __slots__ = ()
    name = "tanh"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = np.tanh(x)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        y = self.saved[0]
        return (g * (1 - y * y),)


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """σ(x) = 1 / (1 + e⁻ˣ), computed from e^{−|x|} so that nothing overflows."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


class Sigmoid(Function):
    """y = σ(x) = 1 / (1 + e⁻ˣ);  ∂y/∂x = y (1 − y)."""

    __slots__ = ()
    name = "sigmoid"

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = stable_sigmoid(x)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        y = self.saved[0]
        return (g * (y * (1 - y)),)


class ReLU(Function):
    """y = max(x, 0);  ∂y/∂x = [x > 0] (0 at x = 0, as PyTorch)."""

    __slots__ = ()
    name = "relu"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x > 0,)
        return np.maximum(x, 0)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * self.saved[0],)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x;  ∂y/∂x = 1 if x > 0 else s."""

    __slots__ = ("slope",)
    name = "leaky_relu"

    def __init__(self, negative_slope: float) -> None:
        self.slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        positive = x > 0
        self.saved = (positive,)
        return np.where(positive, x, x * self.slope)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (np.where(self.saved[0], g, g * self.slope),)


class Abs(Function):
    """y = |x|;  ∂y/∂x = sign(x) (0 at x = 0)."""

    __slots__ = ()
    name = "abs"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.abs(x)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * np.sign(self.saved[0]),)


class Clip(Function):
    """y = min(max(x, lo), hi);  ∂y/∂x = [lo ≤ x ≤ hi]."""

    __slots__ = ("high", "low")
    name = "clip"

    def __init__(self, low: float | None, high: float | None) -> None:
        if low is None and high is None:
            raise InvalidArgumentError("clip needs min or max (or both), got neither")
        self.low, self.high = low, high

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.clip(x, self.low, self.high)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (x,) = self.saved
        inside = np.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        return (g * inside,)


# -- reductions -------------------------------------------------------------------------------
def _axis(axis: Axis | list[int]) -> Axis:
    return tuple(axis) if isinstance(axis, list) else axis


class _Reduction(Function):
    """Base of reductions over ``axis`` (int, tuple or None for all) with ``keepdims``."""

    __slots__ = ("axis", "keepdims", "shape")

    def __init__(self, axis: Axis, keepdims: bool) -> None:
        self.axis = _axis(axis)
        self.keepdims = keepdims

    def _with_kept_axes(self, g: np.ndarray) -> np.ndarray:
        """``g`` with the reduced axes back as size-1 axes, ready to broadcast to the input."""
        if self.axis is None or self.keepdims:
            return g
        return np.expand_dims(g, self.axis)


class Sum(_Reduction):
    """y = Σ x over the axes;  ∂y/∂xᵢ = 1: g is copied back along the reduced axes."""

    __slots__ = ()
    name = "sum"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (np.broadcast_to(self._with_kept_axes(g), self.shape),)


class Mean(_Reduction):
    """y = (1/n) Σ x over the axes (n values each);  ∂y/∂xᵢ = 1/n."""

    __slots__ = ()
    name = "mean"

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        y = x.mean(axis=self.axis, keepdims=self.keepdims)
        self.saved = (x.size // max(np.size(y), 1),)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (np.broadcast_to(self._with_kept_axes(g) / self.saved[0], self.shape),)


class Max(_Reduction):
    """y = max x over the axes;  ∂y/∂xᵢ = [xᵢ = y] / (number of ties), like ``torch.amax``."""

    __slots__ = ()
    name = "max"
    _reduce = staticmethod(np.max)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self._reduce(x, axis=self.axis, keepdims=True)
        self.saved = (x, y)
        return y if self.keepdims else np.squeeze(y, axis=self.axis)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        x, y = self.saved
        hit = x == y
        ties = hit.sum(axis=self.axis, keepdims=True, dtype=g.dtype)
        return (self._with_kept_axes(g) * hit / ties,)


class Min(Max):
    """y = min x over the axes;  ∂y/∂xᵢ = [xᵢ = y] / (number of ties), like ``torch.amin``."""

    __slots__ = ()
    name = "min"
    _reduce = staticmethod(np.min)


# -- shape ------------------------------------------------------------------------------------
class Reshape(Function):
    """y = x with another shape;  ∂L/∂x = g reshaped back."""

    __slots__ = ("shape", "target")
    name = "reshape"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.target = shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x.reshape(self.target)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g.reshape(self.shape),)


class Transpose(Function):
    """y = x with its axes permuted by ``axes`` (None: reversed);  ∂L/∂x = g permuted back."""

    __slots__ = ("axes",)
    name = "transpose"

    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.transpose(x, self.axes)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        inverse = None if self.axes is None else tuple(np.argsort(self.axes))
        return (np.transpose(g, inverse),)


def _plain_index(index: Any) -> Any:
    """A NumPy index from one that may hold Tensors."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _has_integer_array(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, np.ndarray | list) and np.asarray(p).dtype.kind in "iu" for p in parts)


class GetItem(Function):
    """y = x[index] (slices, integers, integer arrays, boolean masks).

    ∂L/∂x is zero except at the selected places, where the g of every selection is added
    (``np.add.at``, so that an index repeated k times receives k contributions).
    """

    __slots__ = ("index", "shape")
    name = "getitem"

    def __init__(self, index: Any) -> None:
        self.index = _plain_index(index)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x[self.index]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        gx = np.zeros(self.shape, dtype=g.dtype)
        if _has_integer_array(self.index):
            np.add.at(gx, self.index, g)
        else:  # each place is selected at most once
            gx[self.index] = g
        return (gx,)


class Concatenate(Function):
    """y = [x₁, x₂, …] joined along ``axis``;  ∂L/∂xᵢ = the matching slice of g."""

    __slots__ = ("axis",)
    name = "concatenate"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        y = np.concatenate(xs, axis=self.axis)
        self.saved = (np.cumsum([x.shape[self.axis] for x in xs[:-1]]),)
        return y

    def backward(self, g: np.ndarray) -> list[np.ndarray]:
        return np.split(g, self.saved[0], axis=self.axis)


class Stack(Function):
    """y = the xᵢ stacked along a new ``axis``;  ∂L/∂xᵢ = g taken at position i of that axis."""

    __slots__ = ("axis",)
    name = "stack"

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: np.ndarray) -> np.ndarray:
        return np.stack(xs, axis=self.axis)

    def backward(self, g: np.ndarray) -> list[np.ndarray]:
        return list(np.moveaxis(g, self.axis, 0))


class Pad(Function):
    """y = x surrounded by a constant (``pad_width`` as ``numpy.pad``);  ∂L/∂x = g's centre."""

    __slots__ = ("value", "widths")
    name = "pad"

    def __init__(self, pad_width: Any, value: float) -> None:
        self.widths = pad_width
        self.value = value

    def forward(self, x: np.ndarray) -> np.ndarray:
        widths = np.broadcast_to(np.asarray(self.widths, dtype=np.intp), (x.ndim, 2))
        if (widths < 0).any():
            raise InvalidArgumentError(f"pad widths must be ≥ 0, got {self.widths!r}")
        self.saved = (tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape, strict=True)),)
        return np.pad(x, widths, constant_values=self.value)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g[self.saved[0]],)


# -- module-level functions -------------------------------------------------------------------
def as_tensor(x: Tensor | ArrayLike) -> Tensor:
    """``x`` itself if it is a Tensor, else a new constant Tensor of it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def matmul(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Matrix product ``a @ b`` (batched; 1-D operands as in ``torch.matmul``)."""
    return as_tensor(a) @ b


def exp(x: Tensor) -> Tensor:
    """eˣ elementwise."""
    return apply(Exp(), as_tensor(x))


def log(x: Tensor) -> Tensor:
    """Natural logarithm elementwise."""
    return apply(Log(), as_tensor(x))


def sqrt(x: Tensor) -> Tensor:
    """Square root elementwise."""
    return apply(Sqrt(), as_tensor(x))


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return apply(Tanh(), as_tensor(x))


def sigmoid(x: Tensor) -> Tensor:
    """Logistic sigmoid σ(x) = 1 / (1 + e⁻ˣ) elementwise (stable for large |x|)."""
    return apply(Sigmoid(), as_tensor(x))


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise."""
    return apply(ReLU(), as_tensor(x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, ``negative_slope``·x otherwise."""
    return apply(LeakyReLU(negative_slope), as_tensor(x))


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """x limited to [min, max] (either bound may be None)."""
    return apply(Clip(min, max), as_tensor(x))


def rpow(base: float, x: Tensor) -> Tensor:
    """baseˣ = e^{x·ln base} for a positive number ``base``."""
    if not base > 0:
        raise InvalidArgumentError(f"base ** tensor needs a positive base, got {base!r}")
    return (x * math.log(base)).exp()


def reshape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``x`` with another shape (one size may be -1)."""
    return as_tensor(x).reshape(shape)


def transpose(x: Tensor, axes: tuple[int, ...] | None = None) -> Tensor:
    """``x`` with its axes permuted as ``numpy.transpose``."""
    return apply(Transpose(None if axes is None else tuple(axes)), as_tensor(x))


def concatenate(tensors: Sequence[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis (``torch.cat``)."""
    return apply(Concatenate(axis), *[as_tensor(t) for t in tensors])


def stack(tensors: Sequence[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    return apply(Stack(axis), *[as_tensor(t) for t in tensors])


def pad(x: Tensor, pad_width: Any, value: float = 0.0) -> Tensor:
    """Pad with a constant; ``pad_width`` as ``numpy.pad``: n, (before, after) or one pair per
    axis."""
    return apply(Pad(pad_width, value), as_tensor(x))


def where(cond: Tensor | ArrayLike, a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Elementwise ``a`` where ``cond`` is true, else ``b`` (the three broadcast together)."""
    mask = np.asarray(cond.data if isinstance(cond, Tensor) else cond, dtype=bool)
    like = a if isinstance(a, Tensor) else as_tensor(b)
    return apply(Where(mask), lift(a, like), lift(b, like))
