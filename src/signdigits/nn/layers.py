"""The layers, named as ``torch.nn``'s, each a thin call into :mod:`signdigits.functional`.

Parameters are float32 unless ``dtype=np.float64`` is given. A layer that draws random
numbers (the initial weights of Linear and Conv2d, the masks of Dropout) takes ``rng``, a
``numpy.random.Generator`` or an int seed, at construction; it is required, never a global
or unseeded generator. The initial values follow PyTorch's distributions (see
:mod:`signdigits.nn.init`); the numbers themselves come from NumPy's generator.
"""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from signdigits import functional as F
from signdigits.autograd.tensor import Tensor
from signdigits.errors import IndexingError, InvalidArgumentError, ShapeError
from signdigits.nn import init
from signdigits.nn.module import Module, Parameter

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "LeakyReLU",
    "Linear",
    "MaxPool2d",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
]

IntPair = int | tuple[int, int]


def _count(value: Any, name: str, who: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidArgumentError(f"{who}: {name} must be an int ≥ {minimum}, got {value!r}")
    return int(value)


def _pair(value: Any, name: str, who: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints (each ≥ ``minimum``) as a pair."""
    values = value if isinstance(value, tuple | list) else (value, value)
    if len(values) != 2:
        raise InvalidArgumentError(f"{who}: {name} must be an int or a pair, got {value!r}")
    return _count(values[0], name, who, minimum), _count(values[1], name, who, minimum)


def _float_dtype(dtype: DTypeLike, who: str) -> np.dtype:
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is None or resolved.kind != "f":
        raise InvalidArgumentError(
            f"{who}: dtype must be a floating type such as np.float32 or np.float64, got {dtype!r}"
        )
    return resolved


# -- containers -------------------------------------------------------------------------------
class Sequential(Module):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) = c(b(a(x)))``.

    Submodules are named ``"0"``, ``"1"``, … (or by the keys of one OrderedDict argument), so
    parameters are ``0.weight``, ``0.bias``, ``2.weight``… as in PyTorch. It can be indexed
    (``seq[-1]``), sliced (``seq[1:]``, a new Sequential of the same modules, which keep
    their names as PyTorch's slice does), measured (``len``) and iterated.
    """

    def __init__(self, *modules: Module | Mapping[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def _key(self, index: int) -> str:
        size = len(self._modules)
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise InvalidArgumentError(
                f"Sequential indices must be ints or slices, got {type(index).__name__}"
            )
        if not -size <= index < size:
            raise IndexingError(f"index {index} is out of range for a Sequential of {size} modules")
        return list(self._modules)[index % size]

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return type(self)(OrderedDict(list(self._modules.items())[index]))
        return self._modules[self._key(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        setattr(self, self._key(index), module)

    def __delitem__(self, index: int | slice) -> None:
        keys = list(self._modules)[index] if isinstance(index, slice) else [self._key(index)]
        for key in keys:
            delattr(self, key)
        modules = list(self._modules.values())  # renumber 0, 1, … as PyTorch does
        self._modules.clear()
        self._modules.update((str(i), module) for i, module in enumerate(modules))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, x: Any) -> Any:
        for module in self:
            x = module(x)
        return x


# -- affine layers ----------------------------------------------------------------------------
class _WeightedLayer(Module):
    """Linear and Conv2d: a weight of shape (out, in, *kernel) and an optional bias (out,),
    initialised as PyTorch's ``reset_parameters`` does."""

    weight: Parameter
    bias: Parameter | None

    def _add_parameters(
        self, weight_shape: tuple[int, ...], bias: bool, rng: Any, dtype: DTypeLike
    ) -> None:
        who = type(self).__name__
        generator = init.as_generator(rng, who)  # checked before anything is allocated
        dtype = _float_dtype(dtype, who)
        self.weight = Parameter(np.empty(weight_shape, dtype))
        if bias:
            self.bias = Parameter(np.empty(weight_shape[0], dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters(generator)

    def reset_parameters(self, rng: np.random.Generator | int) -> None:
        """Draw the initial values again from ``rng``, in place, as PyTorch: the weight from
        kaiming_uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), then the bias from
        U(−1/√fan_in, 1/√fan_in) (0 when fan_in = 0), in that order."""
        generator = init.as_generator(rng, f"{type(self).__name__}.reset_parameters")
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), rng=generator)
        if self.bias is not None:
            fan_in, _ = init.calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, rng=generator)


class Linear(_WeightedLayer):
    """y = x Wᵀ + b, with W of shape (out_features, in_features), b of shape (out_features,);
    x is (*, in_features).

    Initial values as PyTorch's: W and b uniform on [−1/√in_features, 1/√in_features], drawn
    from ``rng`` (a Generator or an int seed; required).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.in_features = _count(in_features, "in_features", "Linear", 0)
        self.out_features = _count(out_features, "out_features", "Linear", 0)
        self._add_parameters((self.out_features, self.in_features), bias, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Conv2d(_WeightedLayer):
    """2-D convolution (cross-correlation) of NCHW images:

    y[n, o, i, j] = b[o] + Σ_{c,p,q} W[o, c, p, q] · x_pad[n, c, s·i + p, s·j + q],

    W of shape (out_channels, in_channels, kh, kw), b of shape (out_channels,), s the stride,
    x_pad the input with ``padding`` zeros on each side. The output is
    (N, out_channels, ⌊(H + 2·ph − kh)/sh⌋ + 1, ⌊(W + 2·pw − kw)/sw⌋ + 1).

    Initial values as PyTorch's: W and b uniform on [−1/√fan_in, 1/√fan_in] with
    fan_in = in_channels·kh·kw, drawn from ``rng`` (a Generator or an int seed; required).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator | int | None = None,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.in_channels = _count(in_channels, "in_channels", "Conv2d", 1)
        self.out_channels = _count(out_channels, "out_channels", "Conv2d", 1)
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = _pair(padding, "padding", "Conv2d", 0)
        shape = (self.out_channels, self.in_channels, *self.kernel_size)
        self._add_parameters(shape, bias, rng, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text


# -- pooling and reshaping --------------------------------------------------------------------
class _Pool2d(Module):
    def __init__(self, kernel_size: IntPair, stride: IntPair | None = None) -> None:
        super().__init__()
        who = type(self).__name__
        _pair(kernel_size, "kernel_size", who, 1)
        if stride is not None:
            _pair(stride, "stride", who, 1)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class MaxPool2d(_Pool2d):
    """The largest value of each kh×kw window of NCHW images, windows ``stride`` apart
    (``stride`` defaults to ``kernel_size``: windows that tile the image)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(x, self.kernel_size, self.stride)


class AvgPool2d(_Pool2d):
    """The mean of each kh×kw window of NCHW images, windows ``stride`` apart (``stride``
    defaults to ``kernel_size``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel_size, self.stride)


class Flatten(Module):
    """Merge the axes ``start_dim`` … ``end_dim`` (both included; negative counts from the
    end) into one: (N, C, H, W) → (N, C·H·W) with the defaults 1 and −1, as
    ``torch.nn.Flatten``. A 0-d input counts as 1-d."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, value in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise InvalidArgumentError(f"Flatten: {name} must be an int, got {value!r}")
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        rank = max(len(shape), 1)
        start, end = (self._axis(d, rank, shape) for d in (self.start_dim, self.end_dim))
        if start > end:
            raise ShapeError(
                f"Flatten: start_dim {self.start_dim} comes after end_dim {self.end_dim} for "
                f"an input of shape {shape}"
            )
        if not shape:
            return x.reshape(1)
        merged = math.prod(shape[start : end + 1])  # not -1: a size-0 axis makes it ambiguous
        return x.reshape(*shape[:start], merged, *shape[end + 1 :])

    @staticmethod
    def _axis(dim: int, rank: int, shape: tuple[int, ...]) -> int:
        if not -rank <= dim < rank:
            raise ShapeError(
                f"Flatten: dimension {dim} is out of range for an input of shape {shape} "
                f"(expected in [{-rank}, {rank - 1}])"
            )
        return dim % rank

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


# -- regularisation ---------------------------------------------------------------------------
class Dropout(Module):
    """In training, zero each value with probability p and scale the others by 1/(1 − p)
    (so that the expectation is unchanged): y = x · m / (1 − p), m ~ Bernoulli(1 − p). In
    evaluation, the identity (the input itself is returned).

    The masks are drawn from ``rng`` (a Generator, shared with the caller, or an int seed for
    a Generator of its own); it is required, so that one seed gives one run.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
            raise InvalidArgumentError(f"Dropout: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)
        self.rng = init.as_generator(rng, "Dropout")

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    """Batch normalisation per channel (axis 1):

    y = (x − μ) / √(σ² + ε) · γ + β,

    γ = ``weight`` (initially 1) and β = ``bias`` (initially 0) when ``affine``. In training
    μ and σ² are the batch's mean and biased variance over every axis but the channel's
    (n values per channel), and the running statistics are updated in place:

        running_mean ← (1 − m)·running_mean + m·μ,
        running_var  ← (1 − m)·running_var + m·σ²·n/(n − 1)   (the unbiased variance),

    with m = ``momentum``, or m = 1/num_batches_tracked when ``momentum`` is None (a
    cumulative average); ``num_batches_tracked`` counts the training batches. In evaluation
    μ and σ² are the running statistics. Without ``track_running_stats`` there are none and
    batch statistics are used in both modes. These are PyTorch's definitions, buffers and
    ``state_dict`` keys; unlike PyTorch, a batch that is refused (one value per channel)
    leaves ``num_batches_tracked`` as it was.
    """

    _expected_dims: tuple[int, ...] = ()
    _layout: str = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        who = type(self).__name__
        self.num_features = _count(num_features, "num_features", who, 1)
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise InvalidArgumentError(f"{who}: eps must be a number > 0, got {eps!r}")
        if momentum is not None and (
            isinstance(momentum, bool)
            or not isinstance(momentum, numbers.Real)
            or not 0 <= momentum <= 1
        ):
            raise InvalidArgumentError(
                f"{who}: momentum must be in [0, 1] or None (a cumulative average), got "
                f"{momentum!r}"
            )
        self.eps = eps
        self.momentum = momentum
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = _float_dtype(dtype, who)
        if self.affine:
            self.weight = Parameter(np.ones(self.num_features, dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.num_features, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, dtype))
            self.register_buffer("running_var", np.ones(self.num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch tracked (in place)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x: Tensor) -> Tensor:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        who = type(self).__name__
        if len(shape) not in self._expected_dims:
            raise ShapeError(
                f"{who}: expected {self._layout} input, got shape {shape} ({len(shape)}-D)"
            )
        if shape[1] != self.num_features:
            raise ShapeError(
                f"{who}({self.num_features}) expects {self.num_features} channels on axis 1, "
                f"got an input of shape {shape}"
            )
        update = self.training and self.track_running_stats
        factor = self.momentum or 0.0
        if update and self.momentum is None:  # the cumulative average, over this batch too
            factor = 1.0 / (int(self.num_batches_tracked) + 1)
        use_batch_stats = self.training or self.running_mean is None
        y = F.batch_norm(
            x,
            self.running_mean if update or not self.training else None,
            self.running_var if update or not self.training else None,
            self.weight,
            self.bias,
            training=use_batch_stats,
            momentum=factor,
            eps=self.eps,
        )
        if update:  # after F.batch_norm accepted the batch
            self.num_batches_tracked += 1
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


def _batch_norm_doc(layout: str) -> str:
    return f"Batch normalisation of {layout}.\n\n    " + (_BatchNorm.__doc__ or "")


class BatchNorm1d(_BatchNorm):
    __doc__ = _batch_norm_doc("(N, C) or (N, C, L) input, statistics over N (and L)")
    _expected_dims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    __doc__ = _batch_norm_doc("(N, C, H, W) images, statistics over N, H and W")
    _expected_dims = (4,)
    _layout = "(N, C, H, W)"


# -- activations ------------------------------------------------------------------------------
class ReLU(Module):
    """y = max(x, 0)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class LeakyReLU(Module):
    """y = x for x > 0, ``negative_slope``·x otherwise."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real):
            raise InvalidArgumentError(
                f"LeakyReLU: negative_slope must be a number, got {negative_slope!r}"
            )
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Tanh(Module):
    """y = tanh(x) = (eˣ − e⁻ˣ) / (eˣ + e⁻ˣ)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    """y = σ(x) = 1 / (1 + e⁻ˣ)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Identity(Module):
    """y = x (the input itself); arguments are accepted and ignored, as in PyTorch, so that
    it can stand in for any layer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
