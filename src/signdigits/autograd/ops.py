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

from signdigits.autograd import threads
from signdigits.autograd.tensor import ArrayLike, Function, Tensor, apply, lift
from signdigits.errors import InvalidArgumentError, ShapeError

Axis = int | tuple[int, ...] | None


# -- elementwise, two inputs ------------------------------------------------------------------
class Add(Function):
    """y = a + b;  ∂y/∂a = 1,  ∂y/∂b = 1."""

    __slots__ = ()
    name = "add"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return threads.elementwise(np.add, a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g, g


class Sub(Function):
    """y = a − b;  ∂y/∂a = 1,  ∂y/∂b = −1."""

    __slots__ = ()
    name = "sub"

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return threads.elementwise(np.subtract, a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return g, -g


class Mul(Function):
    """y = a · b;  ∂y/∂a = b,  ∂y/∂b = a."""

    __slots__ = ()
    name = "mul"
    fresh_grads = True

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.saved = (a, b)
        return threads.elementwise(np.multiply, a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        a, b = self.saved
        needs_a, needs_b = self.needs_input_grad
        ga = threads.elementwise(np.multiply, g, b) if needs_a else None
        gb = threads.elementwise(np.multiply, g, a) if needs_b else None
        return ga, gb


class Div(Function):
    """y = a / b;  ∂y/∂a = 1/b,  ∂y/∂b = −a/b²."""

    __slots__ = ()
    name = "div"
    fresh_grads = True

    def forward(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self.saved = (a, b)
        return a / b

    def backward(self, g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        a, b = self.saved
        gb = g / b
        return gb, (-gb * (a / b) if self.needs_input_grad[1] else None)


def matrix_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``np.matmul``; a product of two float matrices on the engine's threads."""
    if a.ndim == b.ndim == 2 and a.dtype.kind == b.dtype.kind == "f":
        return threads.matmul(a, b)
    return np.matmul(a, b)


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
        return matrix_product(a, b)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        a, b = self.saved
        a_vector, b_vector = a.ndim == 1, b.ndim == 1
        if b_vector:  # restore the dropped axes: g becomes (..., n, m)
            g, b = np.expand_dims(g, -1), b[:, None]
        if a_vector:
            g, a = np.expand_dims(g, -2), a[None, :]
        ga = gb = None
        needs_a, needs_b = self.needs_input_grad
        if needs_a:
            ga = matrix_product(g, np.swapaxes(b, -1, -2))
            ga = ga[..., 0, :] if a_vector else ga
        if needs_b:
            gb = matrix_product(np.swapaxes(a, -1, -2), g)
            gb = gb[..., 0] if b_vector else gb
        return ga, gb


class Where(Function):
    """y = a where cond else b;  ∂y/∂a = [cond],  ∂y/∂b = [not cond]."""

    __slots__ = ("cond",)
    name = "where"
    fresh_grads = True

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
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        return -x

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (-g,)


class Pow(Function):
    """y = xᵖ for a constant exponent p;  ∂y/∂x = p·xᵖ⁻¹ (and 0 for p = 0, where 0·0⁻¹ would
    be NaN at x = 0: x⁰ = 1 is constant)."""

    __slots__ = ("exponent",)
    name = "pow"
    fresh_grads = True

    def __init__(self, exponent: float) -> None:
        if isinstance(exponent, Tensor):
            raise InvalidArgumentError(
                "the exponent of ** must be a number; for a tensor exponent use exp(b * log(a))"
            )
        if isinstance(exponent, np.ndarray) and exponent.ndim == 0:
            exponent = exponent.item()
        if isinstance(exponent, np.generic):
            exponent = exponent.item()
        if not isinstance(exponent, int | float) or isinstance(exponent, bool):
            raise InvalidArgumentError(
                f"the exponent of ** must be an int or a float, got {type(exponent).__name__}"
            )
        self.exponent = exponent

    def forward(self, x: np.ndarray) -> np.ndarray:
        p = self.exponent
        if x.dtype.kind in "biu" and p < 0:
            raise InvalidArgumentError(
                f"pow: an integer tensor to the negative power {p} is not defined; make the "
                "tensor floating first (dtype=np.float32)"
            )
        self.saved = (x,)
        return x**p

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (x,) = self.saved
        p = self.exponent
        if p == 0:
            return (np.zeros_like(g),)
        return (g * (p * x ** (p - 1)),)


class Exp(Function):
    """y = eˣ;  ∂y/∂x = eˣ = y."""

    __slots__ = ()
    name = "exp"
    fresh_grads = True

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
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.log(x)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g / self.saved[0],)


class Sqrt(Function):
    """y = √x;  ∂y/∂x = 1 / (2√x) = 1 / (2y)."""

    __slots__ = ()
    name = "sqrt"
    fresh_grads = True

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
    fresh_grads = True

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
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = stable_sigmoid(x)
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        y = self.saved[0]
        return (g * (y * (1 - y)),)


class Softplus(Function):
    """y = log(1 + eˣ), computed as ``logaddexp(0, x)`` so that no eˣ overflows;
    ∂y/∂x = σ(x). It is the tutorial's stable loss: log(1 + eᶻ) − y·z."""

    __slots__ = ()
    name = "softplus"
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.logaddexp(0, x)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * stable_sigmoid(self.saved[0]),)


class ReLU(Function):
    """y = max(x, 0);  ∂y/∂x = [x > 0] (0 at x = 0, as PyTorch).

    For a float x, [x > 0] = [y > 0] (also for NaN and −0), so y is saved rather than a
    mask: the next layer keeps y anyway. Large float arrays are worked on in parts on the
    engine's threads (``threads.elementwise``).
    """

    __slots__ = ()
    name = "relu"
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.dtype.kind != "f":
            self.saved = (x > 0,)
            return np.maximum(x, 0)
        y = threads.elementwise(np.maximum, x, x.dtype.type(0))
        self.saved = (y,)
        return y

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (saved,) = self.saved
        if saved.dtype == np.bool_ or not g.flags.c_contiguous or g.shape != saved.shape:
            return (g * (saved if saved.dtype == np.bool_ else saved > 0),)
        gx = np.empty(g.shape, np.result_type(g, np.bool_))
        flat_g, flat_y, flat_gx = g.reshape(-1), saved.reshape(-1), gx.reshape(-1)
        positive = np.empty(g.size, np.bool_)

        def part(rows: slice) -> None:
            np.greater(flat_y[rows], 0, out=positive[rows])
            np.multiply(flat_g[rows], positive[rows], out=flat_gx[rows])

        threads.for_slices(part, g.size)
        return (gx,)


class LeakyReLU(Function):
    """y = x if x > 0 else s·x;  ∂y/∂x = 1 if x > 0 else s."""

    __slots__ = ("slope",)
    name = "leaky_relu"
    fresh_grads = True

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
    fresh_grads = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.saved = (x,)
        return np.abs(x)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (g * np.sign(self.saved[0]),)


class Clip(Function):
    """y = min(max(x, lo), hi);  ∂y/∂x = [lo ≤ x ≤ hi]."""

    __slots__ = ("high", "low")
    name = "clip"
    fresh_grads = True

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
def normalise_axes(axis: Axis | list[int], ndim: int, op: str) -> tuple[int, ...] | None:
    """``axis`` (an int, a sequence, or None for all) as a tuple of non-negative axes of a
    tensor with ``ndim`` dimensions. As in PyTorch, a 0-d tensor accepts axis 0 and -1, which
    reduce nothing (None is returned: the whole tensor)."""
    if axis is None:
        return None
    if type(axis) is int and 0 <= axis < ndim:  # the common case, without the loop below
        return (axis,)
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    bound = max(ndim, 1)
    normal = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, int | np.integer) or not -bound <= a < bound:
            raise ShapeError(f"{op}: axis {a!r} is out of range for a tensor of {ndim} dimensions")
        normal.append(int(a) % bound)
    if len(set(normal)) != len(normal):
        raise ShapeError(f"{op}: axis {axis!r} repeats an axis")
    return None if ndim == 0 else tuple(normal)


class _Reduction(Function):
    """Base of reductions over ``axis`` (int, tuple or None for all) with ``keepdims``; PyTorch's
    names ``dim`` and ``keepdim`` are accepted too."""

    __slots__ = ("axis", "keepdims", "shape")

    def __init__(
        self,
        axis: Axis = None,
        keepdims: bool = False,
        *,
        dim: Axis = None,
        keepdim: bool | None = None,
    ) -> None:
        if dim is not None:
            if axis is not None:
                raise InvalidArgumentError(f"{self.name}: give axis or dim, not both")
            axis = dim
        self.axis = axis
        self.keepdims = bool(keepdims if keepdim is None else keepdim)

    def _reduce_axes(self, x: np.ndarray) -> tuple[int, ...] | None:
        """Normalise ``axis`` for ``x`` and remember ``x``'s shape; the reduced axes."""
        self.axis = normalise_axes(self.axis, x.ndim, self.name)
        self.shape = x.shape
        return self.axis

    def _sum(self, x: np.ndarray, axis: tuple[int, ...] | None) -> np.ndarray:
        """Σ x over ``axis``; over all axes on the engine's threads (``threads.total``)."""
        if axis is None:
            return threads.total(x, self.keepdims)
        return x.sum(axis=axis, keepdims=self.keepdims)

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
        return self._sum(x, self._reduce_axes(x))

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        return (np.broadcast_to(self._with_kept_axes(g), self.shape),)


class Mean(_Reduction):
    """y = (1/n) Σ x over the axes (n values each);  ∂y/∂xᵢ = 1/n.

    Over n = 0 values the mean is NaN, as in NumPy and PyTorch (and the input, being empty,
    gets an empty gradient).
    """

    __slots__ = ()
    name = "mean"

    def forward(self, x: np.ndarray) -> np.ndarray:
        axis = self._reduce_axes(x)
        count = x.size if axis is None else math.prod(x.shape[a] for a in axis)
        self.saved = (count,)
        total = self._sum(x, axis)
        if count == 0:
            with np.errstate(invalid="ignore"):
                return np.true_divide(total, count)
        return np.true_divide(total, count)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        (count,) = self.saved
        if count == 0:
            return (np.zeros(self.shape, dtype=g.dtype),)
        return (np.broadcast_to(self._with_kept_axes(g) / count, self.shape),)


class Max(_Reduction):
    """y = max x over the axes;  ∂y/∂xᵢ = [xᵢ = y] / (number of ties), like ``torch.amax``."""

    __slots__ = ()
    name = "max"
    _reduce = staticmethod(np.max)

    def forward(self, x: np.ndarray) -> np.ndarray:
        axis = self._reduce_axes(x)
        y = self._reduce(x, axis=axis, keepdims=True)
        self.saved = (x, y)
        return y if self.keepdims else np.squeeze(y, axis=axis)

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
    """y = x with its axes permuted by ``axes`` (None: reversed);  ∂L/∂x = g permuted back by
    the inverse permutation."""

    __slots__ = ("axes",)
    name = "transpose"

    def __init__(self, axes: tuple[int, ...] | None) -> None:
        self.axes = axes

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.axes is not None and x.ndim > 0:
            axes = normalise_axes(self.axes, x.ndim, self.name)
            if axes is None or sorted(axes) != list(range(x.ndim)):
                raise ShapeError(
                    f"transpose: axes {self.axes} are not a permutation of the {x.ndim} axes "
                    f"of shape {x.shape}"
                )
            self.axes = axes
        return np.transpose(x, self.axes)

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        inverse = None if self.axes is None else tuple(np.argsort(self.axes))
        return (np.transpose(g, inverse),)


_BASIC_INDEX = (int, np.integer, slice, type(None), type(Ellipsis))


def normalise_index(index: Any) -> tuple[Any, ...]:
    """An index as a tuple of NumPy index parts: basic parts (ints, slices, None, ...) as they
    are, every other part (a list, a tuple used as a list, a Tensor, a mask) as an ndarray.

    After this, one test finds every integer-array part, whatever form the user wrote it in
    (``x[[0, 0]]``, ``x[:, (2, 2)]``, ``x[((0, 0),)]``, ``x[np.array(...)]``, ``x[t]``).
    """
    parts = index if isinstance(index, tuple) else (index,)
    normal = []
    for part in parts:
        if isinstance(part, Tensor):
            part = part.data
        if isinstance(part, bool) or not isinstance(part, _BASIC_INDEX):
            part = np.asarray(part)
            if part.size == 0 and part.dtype.kind == "f":  # x[[]]: an empty integer list
                part = part.astype(np.intp)
        normal.append(part)
    return tuple(normal)


class GetItem(Function):
    """y = x[index] (ints, slices, None, ..., integer arrays in any form, boolean masks).

    ∂L/∂x is zero except at the selected places, where the g of every selection is added:
    with an integer array an element can be selected several times, so the contributions
    are accumulated (``np.add.at``), never overwritten.
    """

    __slots__ = ("index", "shape")
    name = "getitem"

    def __init__(self, index: Any) -> None:
        self.index = normalise_index(index)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.shape = x.shape
        return x[self.index]

    def backward(self, g: np.ndarray) -> tuple[np.ndarray]:
        gx = np.zeros(self.shape, dtype=g.dtype)
        if any(isinstance(p, np.ndarray) and p.dtype.kind in "iu" for p in self.index):
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


def exp(x: Tensor | ArrayLike) -> Tensor:
    """eˣ elementwise."""
    return as_tensor(x).exp()


def log(x: Tensor | ArrayLike) -> Tensor:
    """Natural logarithm elementwise."""
    return as_tensor(x).log()


def sqrt(x: Tensor | ArrayLike) -> Tensor:
    """Square root elementwise."""
    return as_tensor(x).sqrt()


def tanh(x: Tensor | ArrayLike) -> Tensor:
    """Hyperbolic tangent elementwise."""
    return as_tensor(x).tanh()


def sigmoid(x: Tensor | ArrayLike) -> Tensor:
    """Logistic sigmoid σ(x) = 1 / (1 + e⁻ˣ) elementwise (stable for large |x|)."""
    return as_tensor(x).sigmoid()


def softplus(x: Tensor | ArrayLike) -> Tensor:
    """log(1 + eˣ) elementwise, stable for large |x| (``torch.nn.functional.softplus``)."""
    return apply(Softplus(), as_tensor(x))


def relu(x: Tensor | ArrayLike) -> Tensor:
    """max(x, 0) elementwise."""
    return as_tensor(x).relu()


def leaky_relu(x: Tensor | ArrayLike, negative_slope: float = 0.01) -> Tensor:
    """x for x > 0, ``negative_slope``·x otherwise."""
    return apply(LeakyReLU(negative_slope), as_tensor(x))


def clip(x: Tensor | ArrayLike, min: float | None = None, max: float | None = None) -> Tensor:
    """x limited to [min, max] (either bound may be None)."""
    return as_tensor(x).clip(min, max)


def rpow(base: float | ArrayLike, x: Tensor) -> Tensor:
    """baseˣ = e^{x·ln base} for a positive base (a number, or an array that broadcasts)."""
    base_array = np.asarray(base)
    if base_array.dtype.kind not in "biuf" or not np.all(base_array > 0):
        raise InvalidArgumentError(
            "base ** tensor needs a positive base (a number or an array of positive numbers), "
            f"got {base!r}"
        )
    return (x * lift(np.log(base_array.astype(np.float64)), x)).exp()


def reshape(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``x`` with another shape (one size may be -1)."""
    return as_tensor(x).reshape(shape)


def transpose(x: Tensor | ArrayLike, axes: tuple[int, ...] | None = None) -> Tensor:
    """``x`` with its axes permuted as ``numpy.transpose`` (None: reversed)."""
    return as_tensor(x).transpose() if axes is None else as_tensor(x).transpose(tuple(axes))


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
