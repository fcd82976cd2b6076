"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""

from __future__ import annotations

from typing import Any

import numpy as np

from signdigits.autograd import threads
from signdigits.errors import InvalidArgumentError
from signdigits.optim.optimizer import (
    Optimizer,
    ParamsT,
    check_flag,
    check_nonnegative,
    effective_gradient,
)


def _check_betas(value: Any, context: str) -> tuple[float, float]:
    """``betas`` as a pair of floats, each in [0, 1)."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InvalidArgumentError(
            f"{context}betas must be a pair (beta1, beta2), got {value!r}; try (0.9, 0.999)"
        )
    pair = []
    for index, beta in enumerate(value):
        number = check_nonnegative(beta, f"betas[{index}]", context)
        if number >= 1:
            raise InvalidArgumentError(f"{context}betas[{index}] must be in [0, 1), got {beta!r}")
        pair.append(number)
    return pair[0], pair[1]


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam`` (PyTorch's single-tensor algorithm, step for step).

    With learning rate γ (``lr``), betas (β₁, β₂), ε (``eps``) and weight decay λ, each
    ``step()`` does, for every parameter θ with a gradient (t counts that parameter's own
    steps, from 1)::

        g_t ← −∇f(θ_{t−1}) if maximize, else ∇f(θ_{t−1})
        if λ ≠ 0:  g_t ← g_t + λ θ_{t−1}            (L2 penalty; see AdamW for decoupled)
        m_t ← β₁ m_{t−1} + (1 − β₁) g_t              (first moment, m_0 = 0)
        v_t ← β₂ v_{t−1} + (1 − β₂) g_t²             (second moment, v_0 = 0)
        m̂_t ← m_t / (1 − β₁ᵗ)
        if amsgrad:  v_t^max ← max(v_{t−1}^max, v_t);  v̂_t ← v_t^max / (1 − β₂ᵗ)
        else:        v̂_t ← v_t / (1 − β₂ᵗ)
        θ_t ← θ_{t−1} − γ m̂_t / (√v̂_t + ε)

    ε is added to the square root of the bias-corrected second moment, as PyTorch does.
    Keras adds ε to √v_t and folds both bias corrections into the step size, which is this
    formula with ε √(1 − β₂ᵗ) in place of ε: the same ``eps`` gives slightly different
    steps early on. The arithmetic is PyTorch's: ``denom = √v_t / √(1 − β₂ᵗ) + ε`` and
    ``θ ← θ + (−γ / (1 − β₁ᵗ)) m_t / denom``.

    State per parameter: ``"step"`` (its count t), ``"exp_avg"`` (m), ``"exp_avg_sq"`` (v)
    and, with amsgrad, ``"max_exp_avg_sq"`` (v^max).

    ``Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
    *, maximize=False, decoupled_weight_decay=False)``; with ``decoupled_weight_decay`` it
    is AdamW.
    """

    state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    state_counts = ("step",)

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_hyperparameters(self, values: dict[str, Any], context: str) -> dict[str, Any]:
        return {
            "lr": check_nonnegative(values["lr"], "lr", context),
            "betas": _check_betas(values["betas"], context),
            "eps": check_nonnegative(values["eps"], "eps", context),
            "weight_decay": check_nonnegative(values["weight_decay"], "weight_decay", context),
            "amsgrad": check_flag(values["amsgrad"], "amsgrad", context),
            "maximize": check_flag(values["maximize"], "maximize", context),
            "decoupled_weight_decay": check_flag(
                values["decoupled_weight_decay"], "decoupled_weight_decay", context
            ),
        }

    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        required = ("step", "exp_avg", "exp_avg_sq")
        return (*required, "max_exp_avg_sq") if group["amsgrad"] else required

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(param)
            state["exp_avg_sq"] = np.zeros_like(param)
        state["step"] += 1
        step = state["step"]
        if group["amsgrad"] and state.get("max_exp_avg_sq") is None:  # switched on late
            state["max_exp_avg_sq"] = np.zeros_like(param)
        grad = np.ascontiguousarray(grad)  # a linear layer's weight gradient is transposed
        arrays = [param, grad, state["exp_avg"], state["exp_avg_sq"]]
        if group["amsgrad"]:
            arrays.append(state["max_exp_avg_sq"])
        if all(array.flags.c_contiguous for array in arrays):
            # Elementwise: each thread updates a slice of the flattened arrays, the same
            # numbers as one pass over the whole.
            flat = [array.reshape(-1) for array in arrays]
            threads.for_slices(
                lambda part: self._update_values(*(a[part] for a in flat), step, group),
                param.size,
            )
        else:
            self._update_values(*arrays, step, group)

    @staticmethod
    def _update_values(
        param: np.ndarray,
        grad: np.ndarray,
        exp_avg: np.ndarray,
        exp_avg_sq: np.ndarray,
        *rest: Any,
    ) -> None:
        """One Adam step on these values (views of the parameter and its state)."""
        max_exp_avg_sq = rest[0] if len(rest) == 3 else None
        step, group = rest[-2], rest[-1]
        lr, weight_decay = group["lr"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        if group["decoupled_weight_decay"]:
            if weight_decay != 0:
                param *= 1 - lr * weight_decay
            g = -grad if group["maximize"] else grad
        else:
            g = effective_gradient(grad, param, weight_decay, group["maximize"])

        _lerp_(exp_avg, g, 1 - beta1)
        exp_avg_sq *= beta2
        exp_avg_sq += (1 - beta2) * g * g  # PyTorch's addcmul: v + ((1 − β₂) g) g
        second_moment = exp_avg_sq
        if max_exp_avg_sq is not None:
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            second_moment = max_exp_avg_sq

        step_size = lr / (1 - beta1**step)
        denom = np.sqrt(second_moment)
        denom /= (1 - beta2**step) ** 0.5
        denom += group["eps"]
        update = np.multiply(exp_avg, -step_size)  # PyTorch's addcdiv: θ + (value m) / denom
        update /= denom
        param += update


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """``start ← start + weight (end − start)`` in place, as ``torch.lerp_`` computes it
    (from the nearer end, so that weight 1 gives ``end`` exactly)."""
    difference = end - start
    if abs(weight) < 0.5:
        difference *= weight
        start += difference
    else:
        difference *= 1 - weight
        np.subtract(end, difference, out=start)


class AdamW(Adam):
    r"""AdamW, as ``torch.optim.AdamW``: Adam with weight decay decoupled from the gradient.

    The same steps as :class:`Adam`, except that the weight decay shrinks the parameter
    directly instead of adding λθ to the gradient, so it enters neither moment::

        g_t ← −∇f(θ_{t−1}) if maximize, else ∇f(θ_{t−1})
        θ_t ← θ_{t−1} − γ λ θ_{t−1}
        m_t ← β₁ m_{t−1} + (1 − β₁) g_t
        v_t ← β₂ v_{t−1} + (1 − β₂) g_t²
        m̂_t ← m_t / (1 − β₁ᵗ)
        if amsgrad:  v_t^max ← max(v_{t−1}^max, v_t);  v̂_t ← v_t^max / (1 − β₂ᵗ)
        else:        v̂_t ← v_t / (1 − β₂ᵗ)
        θ_t ← θ_t − γ m̂_t / (√v̂_t + ε)

    ``AdamW(params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01,
    amsgrad=False, *, maximize=False)``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )

    def _check_hyperparameters(self, values: dict[str, Any], context: str) -> dict[str, Any]:
        checked = super()._check_hyperparameters(values, context)
        if not checked["decoupled_weight_decay"]:
            raise InvalidArgumentError(
                f"{context}AdamW always decouples its weight decay: decoupled_weight_decay "
                "must be True (for the L2 penalty use Adam)"
            )
        return checked
