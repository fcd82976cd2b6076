"""Parameter initialisation, named as ``torch.nn.init``: each function fills a tensor in place
and returns it.

Every function that draws random numbers takes ``rng``: a ``numpy.random.Generator`` or an
int seed (which makes a new Generator, ``np.random.default_rng(seed)``). Nothing reads NumPy's
global random state, and a missing ``rng`` is an error rather than a silent unseeded draw.
The distributions are PyTorch's; the numbers themselves come from NumPy's generator.

Fans, for a weight of shape (out, in, *kernel) with r = Π kernel (1 for a Linear weight):

    fan_in = in · r,   fan_out = out · r.

The bounds and standard deviations, with ``gain`` from :func:`calculate_gain`:

* Xavier (Glorot):  std = gain · √(2 / (fan_in + fan_out)),
  uniform on [−b, b] with b = √3 · std = gain · √(6 / (fan_in + fan_out));
* Kaiming (He):  std = gain / √fan  (fan = fan_in or fan_out, as ``mode`` says),
  uniform on [−b, b] with b = √3 · std = gain · √(3 / fan).

With ``nonlinearity="leaky_relu"`` and slope a, gain = √(2 / (1 + a²)); PyTorch's Linear and
Conv2d use a = √5, so gain = √(1/3) and b = 1/√fan_in.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from signdigits.autograd.tensor import Tensor, no_grad
from signdigits.errors import InvalidArgumentError

__all__ = [
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

Seed = np.random.Generator | int

_LINEAR_GAIN_ONE = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def as_generator(rng: Seed | None, who: str) -> np.random.Generator:
    """``rng`` as a ``numpy.random.Generator``: a Generator as it is (shared with the caller,
    so that its draws advance it), an int seed as ``np.random.default_rng(seed)``.

    ``who`` names the caller in the error that a missing or wrong ``rng`` raises: there is no
    fallback to NumPy's global random state nor to an unseeded generator.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        if rng < 0:
            raise InvalidArgumentError(f"{who}: a seed must be an int ≥ 0, got {rng}")
        return np.random.default_rng(int(rng))
    if rng is None:
        raise InvalidArgumentError(
            f"{who} draws random numbers and needs rng: pass rng=np.random.default_rng(seed) "
            "(or an int seed); nothing reads NumPy's global random state"
        )
    raise InvalidArgumentError(
        f"{who}: rng must be a numpy.random.Generator or an int seed, got "
        f"{type(rng).__name__}; make one with np.random.default_rng(seed)"
    )


def _array_of(tensor: Tensor | np.ndarray, who: str, floating: bool = True) -> np.ndarray:
    """The array that ``tensor`` holds (a Tensor's ``.data``, or an ndarray itself)."""
    array = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(array, np.ndarray):
        raise InvalidArgumentError(
            f"{who}: expected a Tensor (or an ndarray) to fill, got {type(tensor).__name__}"
        )
    if floating and array.dtype.kind != "f":
        raise InvalidArgumentError(
            f"{who}: can only fill a floating tensor with random values, got dtype {array.dtype}"
        )
    return array


@no_grad()
def _fill(tensor: Tensor | np.ndarray, values: np.ndarray | float, who: str) -> None:
    """Write ``values`` into ``tensor``'s own array (in place: references to it stay valid)."""
    _array_of(tensor, who, floating=False)[...] = values


# -- gains and fans ---------------------------------------------------------------------------
def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``:

    linear, conv*, sigmoid: 1;  tanh: 5/3;  relu: √2;  leaky_relu with slope a (``param``,
    default 0.01): √(2 / (1 + a²));  selu: 3/4.
    """
    if nonlinearity in _LINEAR_GAIN_ONE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise InvalidArgumentError(f"calculate_gain: negative_slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InvalidArgumentError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; use one of "
        f"{', '.join(repr(n) for n in (*_LINEAR_GAIN_ONE, 'tanh', 'relu', 'leaky_relu', 'selu'))}"
    )


def calculate_fan_in_and_fan_out(tensor: Tensor | np.ndarray) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape (out, in, *kernel): in·r and out·r with
    r = Π kernel, as ``torch.nn.init._calculate_fan_in_and_fan_out``. A weight needs at least
    2 dimensions."""
    shape = _array_of(tensor, "calculate_fan_in_and_fan_out", floating=False).shape
    if len(shape) < 2:
        raise InvalidArgumentError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions, got shape {shape}"
        )
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


_calculate_fan_in_and_fan_out = calculate_fan_in_and_fan_out  # PyTorch's (private) name


def _fan(tensor: Tensor | np.ndarray, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise InvalidArgumentError(f"mode {mode!r} is not supported; use 'fan_in' or 'fan_out'")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# -- constants --------------------------------------------------------------------------------
def constant_(tensor: Tensor | np.ndarray, val: float) -> Tensor | np.ndarray:
    """Fill with ``val``."""
    _fill(tensor, val, "constant_")
    return tensor


def zeros_(tensor: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Fill with 0."""
    _fill(tensor, 0, "zeros_")
    return tensor


def ones_(tensor: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """Fill with 1."""
    _fill(tensor, 1, "ones_")
    return tensor


# -- random -----------------------------------------------------------------------------------
def uniform_(
    tensor: Tensor | np.ndarray, a: float = 0.0, b: float = 1.0, rng: Seed | None = None
) -> Tensor | np.ndarray:
    """Fill with values drawn from the uniform distribution U(a, b), ``a ≤ b``."""
    array = _array_of(tensor, "uniform_")
    if not (math.isfinite(a) and math.isfinite(b) and a <= b):
        raise InvalidArgumentError(f"uniform_: needs finite bounds a ≤ b, got a={a!r}, b={b!r}")
    generator = as_generator(rng, "uniform_")
    if array.size:
        _fill(tensor, generator.uniform(a, b, size=array.shape), "uniform_")
    return tensor


def normal_(
    tensor: Tensor | np.ndarray, mean: float = 0.0, std: float = 1.0, rng: Seed | None = None
) -> Tensor | np.ndarray:
    """Fill with values drawn from the normal distribution N(mean, std²), ``std ≥ 0``."""
    array = _array_of(tensor, "normal_")
    if not (math.isfinite(mean) and math.isfinite(std) and std >= 0):
        raise InvalidArgumentError(
            f"normal_: needs a finite mean and std ≥ 0, got mean={mean!r}, std={std!r}"
        )
    generator = as_generator(rng, "normal_")
    if array.size:
        _fill(tensor, generator.normal(mean, std, size=array.shape), "normal_")
    return tensor


def xavier_uniform_(
    tensor: Tensor | np.ndarray, gain: float = 1.0, rng: Seed | None = None
) -> Tensor | np.ndarray:
    """Glorot uniform: U(−b, b) with b = gain · √(6 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    generator = as_generator(rng, "xavier_uniform_")
    if fan_in + fan_out == 0:  # an empty tensor: nothing to fill
        return tensor
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, rng=generator)


def xavier_normal_(
    tensor: Tensor | np.ndarray, gain: float = 1.0, rng: Seed | None = None
) -> Tensor | np.ndarray:
    """Glorot normal: N(0, std²) with std = gain · √(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    generator = as_generator(rng, "xavier_normal_")
    if fan_in + fan_out == 0:
        return tensor
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng=generator)


def _kaiming_std(tensor: Tensor | np.ndarray, a: float, mode: str, nonlinearity: str) -> float:
    """std = gain / √fan (0 for an empty tensor, which has nothing to fill)."""
    fan = _fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(
    tensor: Tensor | np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Seed | None = None,
) -> Tensor | np.ndarray:
    """He uniform: U(−b, b) with b = gain · √(3 / fan); ``a`` is the negative slope of the
    leaky ReLU that follows (0 for ReLU), ``mode`` chooses fan_in or fan_out."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng=as_generator(rng, "kaiming_uniform_"))


def kaiming_normal_(
    tensor: Tensor | np.ndarray,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    rng: Seed | None = None,
) -> Tensor | np.ndarray:
    """He normal: N(0, std²) with std = gain / √fan; arguments as :func:`kaiming_uniform_`."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    return normal_(tensor, 0.0, std, rng=as_generator(rng, "kaiming_normal_"))
