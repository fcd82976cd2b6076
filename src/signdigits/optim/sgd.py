"""Stochastic gradient descent, with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from signdigits.errors import InvalidArgumentError
from signdigits.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_flag,
    check_nonnegative,
    check_real,
    effective_gradient,
)


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    With learning rate γ (``lr``), momentum μ, dampening τ and weight decay λ, each
    ``step()`` does, for every parameter θ with a gradient::

        g_t ← −∇f(θ_{t−1}) if maximize, else ∇f(θ_{t−1})
        if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}
        if μ ≠ 0:
            b_t ← g_t                       at the parameter's first step
            b_t ← μ b_{t−1} + (1 − τ) g_t   afterwards
            g_t ← g_t + μ b_t               if nesterov
            g_t ← b_t                       otherwise
        θ_t ← θ_{t−1} − γ g_t

    As in PyTorch (and unlike Sutskever et al.), the buffer starts at the first gradient
    itself, not at zero, so dampening applies from the second step on; and the learning
    rate multiplies the velocity rather than entering it. Nesterov momentum needs μ > 0 and
    τ = 0. The buffer is ``state[name]["momentum_buffer"]``, kept only when μ ≠ 0.

    ``SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``; see :class:`~signdigits.optim.optimizer.Optimizer` for ``params``.
    """

    state_arrays = ("momentum_buffer",)

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, values: dict[str, Any], context: str) -> dict[str, Any]:
        checked = {
            "lr": check_nonnegative(values["lr"], "lr", context),
            "momentum": check_nonnegative(values["momentum"], "momentum", context),
            "dampening": check_real(values["dampening"], "dampening", context),
            "weight_decay": check_nonnegative(values["weight_decay"], "weight_decay", context),
            "nesterov": check_flag(values["nesterov"], "nesterov", context),
            "maximize": check_flag(values["maximize"], "maximize", context),
        }
        if checked["nesterov"] and (checked["momentum"] <= 0 or checked["dampening"] != 0):
            raise InvalidArgumentError(
                f"{context}nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={values['momentum']!r} and dampening={values['dampening']!r}"
            )
        return checked

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        momentum = group["momentum"]
        step = effective_gradient(grad, param, group["weight_decay"], group["maximize"])
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(step, copy=True)
            else:
                buffer *= momentum
                dampening = group["dampening"]
                buffer += step if dampening == 0 else (1 - dampening) * step  # 1 · g is g
            step = step + momentum * buffer if group["nesterov"] else buffer
        param -= group["lr"] * step
