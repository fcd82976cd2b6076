"""Gradient checking: compare backward's gradients with central finite differences.

For a function ``f`` of tensors, the output is projected on a fixed random direction ``v``
so that one scalar ``s = Σ f(x)·v`` is checked. Then for every element ``xᵢ`` of every input

    ∂s/∂xᵢ ≈ (s(xᵢ + ε) − s(xᵢ − ε)) / 2ε        (error O(ε²)),

computed in float64, is compared with the gradient backward gives for the same ``v``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from signdigits.autograd.tensor import ArrayLike, Tensor, no_grad
from signdigits.errors import InvalidArgumentError


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of :func:`gradcheck`; true when every gradient is within tolerance.

    ``max_error`` is the worst ``|analytical − numerical| / max(1, |numerical|)`` (relative
    where gradients are large, absolute where they are small; infinite where either is NaN, so
    that a NaN is always the worst); ``input_index`` and ``index`` say where it is,
    ``analytical`` and ``numerical`` are the two values there.
    """

    ok: bool
    max_error: float
    input_index: int | None
    index: tuple[int, ...] | None
    analytical: float
    numerical: float

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "passed" if self.ok else "FAILED"
        if math.isnan(self.analytical) or math.isnan(self.numerical):
            which = "analytical" if math.isnan(self.analytical) else "numerical"
            return (
                f"gradcheck {verdict}: the {which} gradient is NaN at input {self.input_index}, "
                f"index {self.index} (analytical {self.analytical:.10g}, numerical "
                f"{self.numerical:.10g})"
            )
        return (
            f"gradcheck {verdict}: worst error {self.max_error:.3g} at input "
            f"{self.input_index}, index {self.index} (analytical {self.analytical:.10g}, "
            f"numerical {self.numerical:.10g})"
        )


def _prepare(value: Tensor | ArrayLike) -> Tensor | ArrayLike:
    """Floating inputs as float64 copies (ndarrays become tensors that require grad)."""
    if isinstance(value, Tensor):
        if value.dtype.kind != "f":
            return value
        return Tensor(value.data.astype(np.float64), requires_grad=value.requires_grad)
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return Tensor(value.astype(np.float64), requires_grad=True)
    return value


def gradcheck(
    fn: Callable[..., Tensor],
    inputs: Sequence[Tensor | ArrayLike],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    seed: int = 0,
) -> GradcheckResult:
    """Check the gradients of ``fn(*inputs)`` against central finite differences.

    Floating inputs are copied to float64; the tensors among them that require grad (and
    every floating ndarray) are checked, other inputs are passed unchanged. An element passes
    when ``|analytical − numerical| ≤ atol + rtol·|numerical|``.
    """
    args = [_prepare(x) for x in inputs]
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise InvalidArgumentError("gradcheck needs at least one floating input requiring grad")
    out = fn(*args)
    direction = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(direction)

    def projected() -> float:
        with no_grad():
            return float(np.sum(fn(*args).data * direction))

    worst = (-1.0, None, None, np.nan, np.nan)
    ok = True
    for i in checked:
        x = args[i]
        analytical = np.zeros_like(x.data) if x.grad is None else x.grad
        numerical = np.empty_like(x.data)
        for index in np.ndindex(x.shape):
            original = x.data[index]
            x.data[index] = original + eps
            above = projected()
            x.data[index] = original - eps
            below = projected()
            x.data[index] = original
            numerical[index] = (above - below) / (2 * eps)
        difference = np.abs(analytical - numerical)
        ok = ok and bool(np.all(difference <= atol + rtol * np.abs(numerical)))
        if difference.size:
            error = difference / np.maximum(1.0, np.abs(numerical))
            error = np.where(np.isnan(error), np.inf, error)  # a NaN is the worst error there is
            at = np.unravel_index(np.argmax(error), error.shape)
            if error[at] > worst[0]:
                worst = (
                    float(error[at]),
                    i,
                    tuple(int(k) for k in at),
                    analytical[at],
                    numerical[at],
                )
    max_error, input_index, index, a, n = worst
    return GradcheckResult(ok, max(max_error, 0.0), input_index, index, float(a), float(n))
