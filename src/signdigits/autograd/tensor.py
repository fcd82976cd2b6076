"""The Tensor, the graph it records, and reverse-mode differentiation (backward).

A :class:`Tensor` wraps a NumPy array (``.data``). When an operation is applied to tensors of
which at least one has ``requires_grad=True`` (and gradients are enabled, see :func:`no_grad`),
the result remembers how it was made:

* ``result.creator`` is the operation node, a :class:`Function`;
* ``result.creator.inputs`` is the tuple of the Tensors it was applied to;
* ``result.creator.name`` is a short human-readable name: ``"add"``, ``"matmul"``, ``"sqrt"``,
  ``"conv2d"``, ...

Leaves (tensors made by the user) and results computed without gradients have
``creator = None``. Following ``creator.inputs`` from a result walks the whole graph, which is
what a graph drawer needs; a Tensor's optional ``name`` gives it a label.

``loss.backward()`` visits the graph once, in one iterative topological order (no recursion,
so chains of any length work), calls each node's ``backward`` on raw ndarrays, sums the
gradients of values used several times, and adds the result into the ``.grad`` of every leaf
with ``requires_grad=True`` (as in PyTorch, ``.grad`` accumulates over calls; intermediate
results get a ``.grad`` only if asked with ``retain_grad()``).

Memory: nodes reference their inputs, never their outputs, so the graph holds no reference
cycle and is freed by reference counting as soon as the last result is dropped. After
``backward(retain_graph=False)`` each node's saved forward arrays (``creator.saved``) are
released (set to ``None``) while ``creator``, ``inputs``, ``name`` and every tensor's
``.data`` remain, so the graph can still be drawn; a second backward through it raises an
error. Draw before backward, or pass ``retain_graph=True``.
"""

from __future__ import annotations

import functools
import inspect
import operator
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
from numpy.typing import DTypeLike

from signdigits.errors import IndexingError, InvalidArgumentError, ShapeError, SignDigitsError

ArrayLike = Any  # what np.asarray accepts: an ndarray, a number, a (nested) list
Axis = int | tuple[int, ...] | None


class _GradMode(threading.local):
    """Whether operations record the graph, per thread (True by default), and the states
    that the :class:`no_grad` blocks now open in this thread will restore."""

    def __init__(self) -> None:
        self.enabled = True
        self.restore: list[bool] = []


_mode = _GradMode()


class no_grad:
    """Within this block operations record no graph: results have ``requires_grad=False``
    and ``creator=None`` (for evaluation and for parameter updates).

    As in PyTorch it is a context manager (``with no_grad():``) and a decorator (``@no_grad()``
    or ``@no_grad``), also of generator functions, whose body then runs without gradients at
    every resumption while the caller's code between them keeps its own mode. One object can
    be entered again, nested, and from several threads: the state to restore is kept per
    thread, not on the object.
    """

    def __new__(cls, function: Callable[..., Any] | None = None) -> Any:
        instance = super().__new__(cls)
        return instance if function is None else instance(function)

    def __enter__(self) -> None:
        _mode.restore.append(_mode.enabled)
        _mode.enabled = False

    def __exit__(self, *exc_info: object) -> None:
        _mode.enabled = _mode.restore.pop()

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(function):
            return self._wrap_generator(function)

        @functools.wraps(function)
        def without_grad(*args: Any, **kwargs: Any) -> Any:
            with self:
                return function(*args, **kwargs)

        return without_grad

    def _wrap_generator(self, function: Callable[..., Generator]) -> Callable[..., Generator]:
        """Run each step of the generator (start, send, throw, close) inside this block."""

        @functools.wraps(function)
        def without_grad(*args: Any, **kwargs: Any) -> Generator:
            with self:
                inner = function(*args, **kwargs)
            try:
                with self:
                    value = next(inner)
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        with self:
                            inner.close()
                        raise
                    except BaseException as error:
                        with self:
                            value = inner.throw(error)
                    else:
                        with self:
                            value = inner.send(sent)
            except StopIteration as stop:
                return stop.value

        return without_grad


def is_grad_enabled() -> bool:
    """True unless called inside :class:`no_grad` (in this thread)."""
    return _mode.enabled


class Function:
    """One operation node: ``forward`` and its local derivative ``backward``, both on ndarrays.

    ``forward(*arrays)`` computes the result and keeps in ``self.saved`` whatever
    ``backward`` needs. ``backward(g)`` receives ``g = ∂L/∂output`` and returns one gradient
    ``∂L/∂input_i`` per input (or ``None`` for an input that needs none). A gradient may have
    the broadcast shape of the output: the engine sums it back to the input's shape (only
    over axes that broadcasting added or stretched from size 1; any other shape is an error)
    and casts it to the input's dtype. ``backward`` must not modify ``g`` in place.

    ``needs_input_grad[i]`` (set before ``forward`` runs, as in PyTorch) says whether input
    ``i`` needs a gradient: an operation skips the work, and the saved arrays, of gradients
    nobody wants (a frozen weight, the input images).

    A Function whose ``backward`` always returns new arrays, never ``g`` itself, a view
    of it or one array twice, sets ``fresh_grads = True``: a leaf can then keep such a
    gradient as its ``.grad`` without the copy that an alias would need.
    """

    __slots__ = ("inputs", "needs_input_grad", "saved")
    name: ClassVar[str] = "function"
    fresh_grads: ClassVar[bool] = False

    inputs: tuple[Tensor, ...]
    needs_input_grad: tuple[bool, ...]
    saved: tuple[Any, ...] | None

    def forward(self, *arrays: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, g: np.ndarray) -> Sequence[np.ndarray | None]:
        raise NotImplementedError

    @property
    def freed(self) -> bool:
        """True once a backward without ``retain_graph`` has released the saved arrays."""
        return self.saved is None

    def __repr__(self) -> str:
        return f"<{self.name}>"


_requires_grad = operator.attrgetter("requires_grad")
_data = operator.attrgetter("data")


def apply(fn: Function, *inputs: Tensor) -> Tensor:
    """Run ``fn`` on the inputs' arrays and, when gradients are wanted, record the node.

    NumPy's ValueError and IndexError (shapes that do not fit, an index out of range) become
    the library's errors, naming the operation and the shapes.
    """
    needs = tuple(map(_requires_grad, inputs)) if _mode.enabled else (False,) * len(inputs)
    fn.needs_input_grad = needs
    fn.saved = ()
    try:
        data = fn.forward(*map(_data, inputs))
    except (ValueError, IndexError) as exc:
        if isinstance(exc, SignDigitsError):
            raise
        shapes = " and ".join(str(t.data.shape) for t in inputs)
        error = IndexingError if isinstance(exc, IndexError) else ShapeError
        raise error(f"{fn.name}: cannot apply to shapes {shapes}: {exc}") from None
    if type(data) is not np.ndarray:  # NumPy returns scalars for 0-d results
        data = np.asarray(data)
    if True in needs:
        fn.inputs = inputs
        return _new(data, True, fn)
    return _new(data, False, None)


_object_new = object.__new__


def _new(data: np.ndarray, requires_grad: bool, creator: Function | None) -> Tensor:
    """Make a Tensor without the checks of ``__init__`` (the engine's fast path)."""
    t = _object_new(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t.creator = creator
    t.name = None
    t.retains_grad = False
    return t


def lift(value: Tensor | ArrayLike, like: Tensor) -> Tensor:
    """A constant operand (number or array) as a Tensor; it takes ``like``'s floating dtype,
    so that ``x * 2.0`` or ``x * mask`` keeps a float32 ``x`` float32."""
    if isinstance(value, Tensor):
        return value
    dtype = like.data.dtype
    array = np.asarray(value, dtype=dtype) if dtype.kind == "f" else np.asarray(value)
    return _new(array, False, None)


def sum_to_shape(g: np.ndarray, shape: tuple[int, ...], op: str) -> np.ndarray:
    """Reduce a broadcast gradient back to an input's ``shape``, undoing broadcasting only.

    Broadcasting can add leading axes and stretch axes of size 1; their gradient is the sum
    over them. Any other difference of shape means an operation returned a wrong gradient:
    that is an error, never a reshape (which would move values to the wrong places).
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra < 0 or any(n != m and n != 1 for n, m in zip(shape, g.shape[extra:], strict=True)):
        raise ShapeError(
            f"{op}: backward gave a gradient of shape {g.shape} for an input of shape "
            f"{shape}; it must have that shape or one that the input broadcasts to"
        )
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1)
    g = g.sum(axis=tuple(range(extra)) + stretched, keepdims=True)
    return g.reshape(shape)  # drops the leading size-1 axes that keepdims left


# Backward from several threads may reach one leaf at once (parameters shared by threads):
# reading ``.grad``, then creating or adding to it, must be one step.
_grad_lock = threading.Lock()


def topological_order(root: Tensor, needs_grad_only: bool = False) -> list[Tensor]:
    """The tensors of the graph that produced ``root``, each after all of its inputs
    (one iterative depth-first search, so graphs of any depth work).

    With ``needs_grad_only`` it keeps only the tensors that need a gradient (backward's
    walk); without, every value (a drawing's walk).
    """
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, inputs_done = stack.pop()
        if inputs_done:
            order.append(t)
            continue
        if id(t) in visited:
            continue
        visited.add(id(t))
        stack.append((t, True))
        if t.creator is not None:
            for x in reversed(t.creator.inputs):
                if id(x) not in visited and (x.requires_grad or not needs_grad_only):
                    stack.append((x, False))
    return order


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    ``Tensor(data, requires_grad=False, dtype=None)``: Python numbers and lists become float32,
    integers included (so ``Tensor(3, requires_grad=True)`` just works; booleans stay
    boolean); an ndarray keeps its dtype (float64 stays float64, int64 stays int64) and is
    used without copying. ``dtype`` forces a dtype. Only floating tensors can require
    gradients.
    """

    __slots__ = ("__weakref__", "creator", "data", "grad", "name", "requires_grad", "retains_grad")
    __array_ufunc__ = None  # NumPy defers to Tensor: ndarray + Tensor calls Tensor.__radd__

    data: np.ndarray
    grad: np.ndarray | None
    requires_grad: bool
    creator: Function | None
    name: str | None
    retains_grad: bool

    def __init__(
        self,
        data: ArrayLike,
        requires_grad: bool = False,
        dtype: DTypeLike = None,
        name: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            array = np.asarray(data, dtype=dtype)
        elif isinstance(data, np.ndarray | np.generic):
            array = np.asarray(data)
        else:
            array = np.asarray(data)
            if array.dtype.kind in "iuf":
                array = array.astype(np.float32)
        if array.dtype.kind not in "biuf":
            raise InvalidArgumentError(
                f"Tensor data must be boolean, integer or floating, got dtype {array.dtype}"
            )
        self.data = array
        self.grad = None
        self.creator = None
        self.name = name
        self.retains_grad = False
        self.requires_grad = False
        self.requires_grad_(requires_grad)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (only floating tensors can have gradients)."""
        if requires_grad and self.data.dtype.kind != "f":
            raise InvalidArgumentError(
                f"only floating tensors can require gradients, got dtype {self.data.dtype}; "
                "make it with dtype=np.float32 or np.float64"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> Tensor:
        """Ask backward to fill ``.grad`` of this non-leaf tensor too (e.g. to draw it)."""
        if not self.requires_grad:
            raise InvalidArgumentError("retain_grad() on a tensor that does not require grad")
        self.retains_grad = True
        return self

    # -- array-like attributes ---------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded operation."""
        return self.creator is None

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along the first axis, ``t[0], t[1], …`` (in the graph, as PyTorch)."""
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __bool__(self) -> bool:
        """The truth of a one-element tensor (``if loss > 5:``); more elements are ambiguous."""
        if self.data.size != 1:
            raise InvalidArgumentError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous: "
                "reduce it first, with .any() or .all()"
            )
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.data, prefix="Tensor(", separator=", ")
        extra = f", dtype={self.data.dtype}"
        if self.creator is not None:
            extra += f", creator={self.creator.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        if self.name is not None:
            extra += f", name={self.name!r}"
        return f"Tensor({body}{extra})"

    def __array__(self, dtype: DTypeLike = None, copy: bool | None = None) -> np.ndarray:
        """The data for NumPy, with NumPy 2's ``copy`` contract: ``np.array(t)`` copies (a
        snapshot that later updates of ``t`` do not change), ``np.asarray(t)`` shares when it
        can, and ``copy=False`` shares or raises."""
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        if copy is False and dtype is not None and np.dtype(dtype) != self.data.dtype:
            raise ValueError(
                f"cannot give the tensor's {self.data.dtype} data as {np.dtype(dtype)} without "
                "a copy (copy=False)"
            )
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise InvalidArgumentError(
                f"item() needs a one-element tensor, got shape {self.data.shape}"
            )
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, outside the graph."""
        return _new(self.data, False, None)

    # -- backward ----------------------------------------------------------------------------
    def backward(self, grad: ArrayLike | Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate ``∂self/∂leaf`` (times ``grad``) into the ``.grad`` of every leaf.

        ``grad`` is ``∂L/∂self``; it may be omitted only for one-element tensors (then 1).
        Chain rule in reverse topological order: for each node ``y = f(x_1, …, x_k)``,
        ``∂L/∂x_i += backward_i(∂L/∂y)``.
        """
        if not self.requires_grad:
            raise InvalidArgumentError(
                "backward() on a tensor that does not require grad: no input of it has "
                "requires_grad=True, or it was computed under no_grad()"
            )
        if grad is None:
            if self.data.size != 1:
                raise InvalidArgumentError(
                    f"backward() without grad needs a one-element tensor, got shape "
                    f"{self.data.shape}; reduce it (e.g. .sum()) or pass grad of that shape"
                )
            g = np.ones_like(self.data)
        else:
            g = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
            if g.shape != self.data.shape:
                raise ShapeError(
                    f"backward: grad has shape {g.shape} but the tensor has shape {self.data.shape}"
                )
        order = topological_order(self, needs_grad_only=True)
        for t in order:  # check first, so that a refused backward changes no .grad
            if t.creator is not None and t.creator.saved is None:
                raise InvalidArgumentError(
                    f"backward through the graph a second time: the saved arrays of "
                    f"{t.creator.name!r} were freed by the first backward; pass "
                    "retain_graph=True to the first call"
                )
        grads: dict[int, np.ndarray] = {id(self): g}
        # Pending gradients that may alias another array (g itself, a view of it, the
        # caller's array): a leaf copies those before keeping them as its .grad.
        aliased: set[int] = {id(self)}
        for t in reversed(order):
            key = id(t)
            g = grads.pop(key, None)
            if g is None:
                continue
            fn = t.creator
            if fn is None:  # a leaf: accumulate into .grad, an array the leaf owns
                own = key not in aliased and g.dtype == t.data.dtype and type(g) is np.ndarray
                with _grad_lock:
                    if t.grad is None:
                        t.grad = g if own else np.array(g, dtype=t.data.dtype)
                    else:
                        t.grad += g
                continue
            if t.retains_grad:
                t.grad = np.array(g, dtype=t.data.dtype) if t.grad is None else t.grad + g
            input_grads = fn.backward(g)
            if not retain_graph:
                fn.saved = None
            if len(input_grads) != len(fn.inputs):
                raise InvalidArgumentError(
                    f"{fn.name}: backward returned {len(input_grads)} gradients for "
                    f"{len(fn.inputs)} inputs; it must return one per input (None for none)"
                )
            for x, gx in zip(fn.inputs, input_grads, strict=True):
                if gx is None or not x.requires_grad:
                    continue
                fresh = fn.fresh_grads
                target = x.data
                if gx.shape != target.shape:
                    gx, fresh = sum_to_shape(gx, target.shape, fn.name), False
                if gx.dtype != target.dtype:
                    gx, fresh = gx.astype(target.dtype), True
                key = id(x)
                previous = grads.get(key)
                if previous is not None:
                    gx, fresh = previous + gx, True
                grads[key] = gx
                if fresh:
                    aliased.discard(key)
                else:
                    aliased.add(key)

    # -- arithmetic --------------------------------------------------------------------------
    def __add__(self, other: Tensor | ArrayLike) -> Tensor:
        return apply(_ops.Add(), self, lift(other, self))

    def __radd__(self, other: ArrayLike) -> Tensor:
        return apply(_ops.Add(), lift(other, self), self)

    def __sub__(self, other: Tensor | ArrayLike) -> Tensor:
        return apply(_ops.Sub(), self, lift(other, self))

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return apply(_ops.Sub(), lift(other, self), self)

    def __mul__(self, other: Tensor | ArrayLike) -> Tensor:
        return apply(_ops.Mul(), self, lift(other, self))

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return apply(_ops.Mul(), lift(other, self), self)

    def __truediv__(self, other: Tensor | ArrayLike) -> Tensor:
        return apply(_ops.Div(), self, lift(other, self))

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return apply(_ops.Div(), lift(other, self), self)

    def __matmul__(self, other: Tensor | ArrayLike) -> Tensor:
        return apply(_ops.MatMul(), self, lift(other, self))

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return apply(_ops.MatMul(), lift(other, self), self)

    def __pow__(self, exponent: float) -> Tensor:
        return apply(_ops.Pow(exponent), self)

    def __rpow__(self, base: float) -> Tensor:
        return _ops.rpow(base, self)

    def __neg__(self) -> Tensor:
        return apply(_ops.Neg(), self)

    def __abs__(self) -> Tensor:
        return apply(_ops.Abs(), self)

    # Comparisons give boolean tensors outside the graph (== and != keep identity semantics).
    def __lt__(self, other: Tensor | ArrayLike) -> Tensor:
        return _new(np.asarray(self.data < lift(other, self).data), False, None)

    def __le__(self, other: Tensor | ArrayLike) -> Tensor:
        return _new(np.asarray(self.data <= lift(other, self).data), False, None)

    def __gt__(self, other: Tensor | ArrayLike) -> Tensor:
        return _new(np.asarray(self.data > lift(other, self).data), False, None)

    def __ge__(self, other: Tensor | ArrayLike) -> Tensor:
        return _new(np.asarray(self.data >= lift(other, self).data), False, None)

    __hash__ = object.__hash__

    # -- elementwise functions ---------------------------------------------------------------
    def exp(self) -> Tensor:
        return apply(_ops.Exp(), self)

    def log(self) -> Tensor:
        return apply(_ops.Log(), self)

    def sqrt(self) -> Tensor:
        return apply(_ops.Sqrt(), self)

    def tanh(self) -> Tensor:
        return apply(_ops.Tanh(), self)

    def sigmoid(self) -> Tensor:
        return apply(_ops.Sigmoid(), self)

    def relu(self) -> Tensor:
        return apply(_ops.ReLU(), self)

    def abs(self) -> Tensor:
        return apply(_ops.Abs(), self)

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        return apply(_ops.Clip(min, max), self)

    clamp = clip

    # -- reductions --------------------------------------------------------------------------
    # Each takes NumPy's ``axis``/``keepdims`` or PyTorch's ``dim``/``keepdim``.
    def sum(self, axis: Axis = None, keepdims: bool = False, **torch_names: Any) -> Tensor:
        """Sum over ``axis`` (an int, a tuple, or None for all axes)."""
        return apply(_ops.Sum(axis, keepdims, **torch_names), self)

    def mean(self, axis: Axis = None, keepdims: bool = False, **torch_names: Any) -> Tensor:
        """Mean over ``axis`` (an int, a tuple, or None for all axes)."""
        return apply(_ops.Mean(axis, keepdims, **torch_names), self)

    def max(self, axis: Axis = None, keepdims: bool = False, **torch_names: Any) -> Tensor:
        """Largest values over ``axis`` (values only, like ``torch.amax``)."""
        return apply(_ops.Max(axis, keepdims, **torch_names), self)

    def min(self, axis: Axis = None, keepdims: bool = False, **torch_names: Any) -> Tensor:
        """Smallest values over ``axis`` (values only, like ``torch.amin``)."""
        return apply(_ops.Min(axis, keepdims, **torch_names), self)

    def any(self) -> Tensor:
        """Whether any value is non-zero, as a 0-d boolean tensor outside the graph."""
        return _new(np.asarray(self.data.any()), False, None)

    def all(self) -> Tensor:
        """Whether every value is non-zero, as a 0-d boolean tensor outside the graph."""
        return _new(np.asarray(self.data.all()), False, None)

    # -- shape -------------------------------------------------------------------------------
    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``; one size may be -1."""
        target = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple | list) else shape
        return apply(_ops.Reshape(tuple(target)), self)

    def transpose(self, *axes: int | tuple[int, ...]) -> Tensor:
        """Permute axes as ``numpy.transpose``: ``t.transpose(2, 0, 1)`` or
        ``t.transpose((2, 0, 1))``, negative axes allowed; no argument reverses them.

        Unlike ``torch.transpose(dim0, dim1)``, which swaps two axes, the arguments are the
        whole permutation, as :meth:`permute` (its PyTorch name) takes it.
        """
        perm = axes[0] if len(axes) == 1 and isinstance(axes[0], tuple | list) else axes
        return apply(_ops.Transpose(tuple(perm) if perm else None), self)

    permute = transpose

    @property
    def T(self) -> Tensor:
        """The tensor with its axes reversed."""
        return apply(_ops.Transpose(None), self)

    def __getitem__(self, index: Any) -> Tensor:
        return apply(_ops.GetItem(index), self)


from signdigits.autograd import ops as _ops  # noqa: E402  (ops builds on the names above)
