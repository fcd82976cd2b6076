"""Reverse-mode automatic differentiation on NumPy.

``Tensor`` records the operations applied to it; ``loss.backward()`` fills ``.grad``. The
graph is open to inspection: a result's ``creator`` is its operation node, with ``.name`` and
``.inputs`` (see :mod:`signdigits.autograd.tensor`). Each operation, with its derivative, is in
:mod:`signdigits.autograd.ops`.
"""

from __future__ import annotations

from signdigits.autograd.gradcheck import GradcheckResult, gradcheck
from signdigits.autograd.memory import keep_freed_memory
from signdigits.autograd.ops import (
    as_tensor,
    clip,
    concatenate,
    exp,
    leaky_relu,
    log,
    matmul,
    pad,
    relu,
    reshape,
    sigmoid,
    softplus,
    sqrt,
    stack,
    tanh,
    transpose,
    where,
)
from signdigits.autograd.tensor import Function, Tensor, apply, is_grad_enabled, no_grad

keep_freed_memory()  # see signdigits.autograd.memory: a fifth of a CNN step was page faults

__all__ = [
    "Function",
    "GradcheckResult",
    "Tensor",
    "apply",
    "as_tensor",
    "clip",
    "concatenate",
    "exp",
    "gradcheck",
    "is_grad_enabled",
    "leaky_relu",
    "log",
    "matmul",
    "no_grad",
    "pad",
    "relu",
    "reshape",
    "sigmoid",
    "softplus",
    "sqrt",
    "stack",
    "tanh",
    "transpose",
    "where",
]
