"""Learning-rate schedules, as ``torch.optim.lr_scheduler``: StepLR, CosineAnnealingLR,
OneCycleLR.

A scheduler changes ``group["lr"]`` of its optimizer's param groups. As in PyTorch,
constructing it performs the first step (``last_epoch`` becomes 0 and the groups get the
schedule's first learning rate; each group also gets ``"initial_lr"``), and each
``scheduler.step()``, called after ``optimizer.step()``, moves to the next value::

    optimizer = SGD(params, lr=0.1, momentum=0.9)
    scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(...)   # optimizer.step() for every batch
        scheduler.step()

StepLR and CosineAnnealingLR are "chainable" as PyTorch's are: each computes the next
learning rate from the group's current one, with PyTorch's own recursive formulas, so their
sequences agree with PyTorch's to the last bit. ``state_dict()`` holds the schedule's
settings and progress (numbers and strings); the learning rates themselves live in the
optimizer's ``state_dict``. To resume, construct the optimizer and the scheduler, then load
both.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple

from signdigits.errors import InvalidArgumentError
from signdigits.optim.optimizer import (
    Optimizer,
    check_count,
    check_flag,
    check_nonnegative,
    check_real,
)


def _check_optimizer(optimizer: Any, context: str) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise InvalidArgumentError(
            f"{context}optimizer must be a signdigits.optim optimizer (SGD, Adam, …), "
            f"got a {type(optimizer).__name__}"
        )
    return optimizer


def _check_lrs(values: Any, name: str, groups: int, context: str) -> list[float]:
    """A list of ``groups`` learning rates, each a finite number ≥ 0."""
    if not isinstance(values, list | tuple) or len(values) != groups:
        raise InvalidArgumentError(
            f"{context}{name} must be a list of {groups} learning rates (one per param "
            f"group), got {values!r}"
        )
    return [check_nonnegative(v, f"{name}[{i}]", context) for i, v in enumerate(values)]


class LRScheduler:
    """The base of the schedules: ``step()``, ``get_last_lr()``, ``last_epoch``,
    ``base_lrs``, ``state_dict()``/``load_state_dict()``.

    A subclass gives ``_lrs_at(epoch)``, the learning rates at ``epoch`` (computed from the
    groups' current ones for a chainable schedule; it must change nothing), and its
    settings through ``_settings()``/``_check_settings()``.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _check_optimizer(optimizer, f"{type(self).__name__}: ")
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._step_count = 0
        self._last_lr: list[float] = []
        self._advance()  # PyTorch's initial step: last_epoch 0, the schedule's first rates

    # -- what subclasses provide -------------------------------------------------------------
    def _lrs_at(self, epoch: int) -> list[float]:
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        """The schedule's settings, by attribute name (numbers, flags, strings)."""
        return {}

    def _check_settings(self, settings: dict[str, Any], context: str) -> dict[str, Any]:
        """``settings`` checked and normalized (used by the constructor and on loading)."""
        return settings

    def _check_progress(self, last_epoch: int, settings: dict[str, Any], context: str) -> None:
        """Refuse a ``last_epoch`` that these settings do not allow (on loading)."""

    # -- the public calls --------------------------------------------------------------------
    def step(self) -> None:
        """Move to the next learning rates (call it after ``optimizer.step()``)."""
        if self._step_count == 1 and self.optimizer._step_calls == 0:
            warnings.warn(
                "lr_scheduler.step() was called before optimizer.step(); call them in the "
                "opposite order, or the schedule's first learning rate is skipped",
                UserWarning,
                stacklevel=2,
            )
        self._advance()

    def _advance(self) -> None:
        epoch = self.last_epoch + 1
        lrs = self._lrs_at(epoch)  # may refuse; nothing has changed yet
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.last_epoch = epoch
        self._step_count += 1
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates that the last step set, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's settings and progress: numbers, flags, strings and lists."""
        return {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
            **self._settings(),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` gave, after checking all of it (a refusal changes
        nothing and is one line naming what is wrong)."""
        where = f"{type(self).__name__}.load_state_dict: "
        expected = ["last_epoch", "base_lrs", "last_lr", *self._settings()]
        if not isinstance(state_dict, Mapping):
            raise InvalidArgumentError(f"{where}expected a dict, got a {type(state_dict).__name__}")
        missing = [key for key in expected if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        if missing or unexpected:
            problem = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
            raise InvalidArgumentError(f"{where}{problem}; expected the keys {expected}")
        groups = len(self.optimizer.param_groups)
        settings = self._check_settings({key: state_dict[key] for key in expected[3:]}, where)
        base_lrs = _check_lrs(state_dict["base_lrs"], "base_lrs", groups, where)
        last_lr = _check_lrs(state_dict["last_lr"], "last_lr", groups, where)
        last_epoch = check_count(state_dict["last_epoch"], "last_epoch", where)
        self._check_progress(last_epoch, settings, where)
        for key, value in settings.items():
            setattr(self, key, value)
        self.base_lrs, self._last_lr, self.last_epoch = base_lrs, last_lr, last_epoch
        self._step_count = last_epoch + 1

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self._settings().items())
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


class StepLR(LRScheduler):
    """Multiply each group's learning rate by ``gamma`` every ``step_size`` steps.

    ``lr_t = lr_{t−1} · γ`` when ``t`` is a non-zero multiple of ``step_size``, else
    ``lr_{t−1}``; from the initial rate η₀ alone this is ``η₀ · γ^⌊t / step_size⌋``.
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        context = "StepLR: "
        _check_optimizer(optimizer, context)
        for key, value in self._check_settings(
            {"step_size": step_size, "gamma": gamma}, context
        ).items():
            setattr(self, key, value)
        super().__init__(optimizer)

    def _settings(self) -> dict[str, Any]:
        return {"step_size": self.step_size, "gamma": self.gamma}

    def _check_settings(self, settings: dict[str, Any], context: str) -> dict[str, Any]:
        return {
            "step_size": check_count(settings["step_size"], "step_size", context, minimum=1),
            "gamma": check_nonnegative(settings["gamma"], "gamma", context),
        }

    def _lrs_at(self, epoch: int) -> list[float]:
        groups = self.optimizer.param_groups
        if epoch == 0 or epoch % self.step_size != 0:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma for group in groups]


class CosineAnnealingLR(LRScheduler):
    r"""Anneal each group's learning rate from its initial value η_max to ``eta_min``
    along half a cosine over ``T_max`` steps::

        η_t = η_min + (η_max − η_min) (1 + cos(π t / T_max)) / 2

    computed, as PyTorch does, by its recursive form from the current rate::

        η_t = η_min + (η_{t−1} − η_min) (1 + cos(π t / T_max)) / (1 + cos(π (t − 1) / T_max))

    (with its own formula at the steps where the denominator vanishes). Past ``T_max`` the
    rate rises again along the cosine: there are no restarts, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        context = "CosineAnnealingLR: "
        _check_optimizer(optimizer, context)
        for key, value in self._check_settings(
            {"T_max": T_max, "eta_min": eta_min}, context
        ).items():
            setattr(self, key, value)
        super().__init__(optimizer)

    def _settings(self) -> dict[str, Any]:
        return {"T_max": self.T_max, "eta_min": self.eta_min}

    def _check_settings(self, settings: dict[str, Any], context: str) -> dict[str, Any]:
        return {
            "T_max": check_count(settings["T_max"], "T_max", context, minimum=1),
            "eta_min": check_nonnegative(settings["eta_min"], "eta_min", context),
        }

    def _lrs_at(self, epoch: int) -> list[float]:
        groups = self.optimizer.param_groups
        t_max, eta_min = self.T_max, self.eta_min
        if epoch == 0:
            return [group["lr"] for group in groups]
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            return [
                group["lr"] + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
                for base_lr, group in zip(self.base_lrs, groups, strict=True)
            ]
        return [
            (1 + math.cos(math.pi * epoch / t_max))
            / (1 + math.cos(math.pi * (epoch - 1) / t_max))
            * (group["lr"] - eta_min)
            + eta_min
            for group in groups
        ]


class _Phase(NamedTuple):
    """One phase of the 1cycle schedule: it ends at step ``end_step`` and anneals between
    the param-group entries named here."""

    end_step: float
    start_lr: str
    end_lr: str
    start_momentum: str
    end_momentum: str


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topor, "Super-Convergence"), as PyTorch's ``OneCycleLR``.

    The learning rate rises from ``initial_lr = max_lr / div_factor`` to ``max_lr`` over
    the first ``pct_start`` of the ``total_steps`` steps, then falls to ``min_lr =
    initial_lr / final_div_factor``; momentum (SGD's ``momentum``, or Adam's β₁) moves the
    other way, from ``max_momentum`` down to ``base_momentum`` and back. Within a phase that
    goes from step s₀ to s₁, at step t with ``pct = (t − s₀) / (s₁ − s₀)``::

        cos:     value = end + (start − end) (1 + cos(π pct)) / 2
        linear:  value = start + (end − start) pct

    The phases, with PyTorch's ends (``p = pct_start``, ``T = total_steps``):

    * two phases (default): initial → max until step ``pT − 1``, then max → min until
      ``T − 1``;
    * ``three_phase=True``: initial → max until ``pT − 1``, max → initial until
      ``2pT − 2``, then initial → min until ``T − 1`` (momentum stays at its maximum).

    ``step()`` may be called ``total_steps`` times after construction (the last call goes
    one step past the end of the cycle, as in PyTorch); one more raises, without changing
    anything. Each group gets ``"initial_lr"``, ``"max_lr"``, ``"min_lr"`` and, with
    ``cycle_momentum``, ``"max_momentum"`` and ``"base_momentum"`` entries, which the
    optimizer's ``state_dict`` keeps. ``max_lr``, ``base_momentum`` and ``max_momentum``
    may be lists, one value per param group. ``total_steps`` may be given as ``epochs``
    and ``steps_per_epoch`` instead.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
    ) -> None:
        context = "OneCycleLR: "
        _check_optimizer(optimizer, context)
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise InvalidArgumentError(
                    f"{context}give total_steps, or both epochs and steps_per_epoch"
                )
            epochs = check_count(epochs, "epochs", context, minimum=1)
            total_steps = epochs * check_count(steps_per_epoch, "steps_per_epoch", context, 1)
        settings = self._check_settings(
            {
                "total_steps": total_steps,
                "pct_start": pct_start,
                "anneal_strategy": anneal_strategy,
                "three_phase": three_phase,
                "cycle_momentum": cycle_momentum,
            },
            context,
        )
        groups = optimizer.param_groups
        max_lrs = _per_group(max_lr, "max_lr", len(groups), context)
        div_factor = _check_positive(div_factor, "div_factor", context)
        final_div_factor = _check_positive(final_div_factor, "final_div_factor", context)
        uses_beta1 = self._cycles_beta1(optimizer, settings["cycle_momentum"], context)
        momenta: dict[str, list[float]] = {}
        if settings["cycle_momentum"]:
            momenta = {
                "max_momentum": _per_group(max_momentum, "max_momentum", len(groups), context),
                "base_momentum": _per_group(base_momentum, "base_momentum", len(groups), context),
            }
            for name, values in momenta.items():
                for index, value in enumerate(values):
                    if uses_beta1 and value >= 1:
                        raise InvalidArgumentError(
                            f"{context}{name}[{index}] is Adam's beta1, which must be in "
                            f"[0, 1), got {value!r}"
                        )
        for key, value in settings.items():
            setattr(self, key, value)
        self._phase_at(0)  # refuses a phase of no steps before anything changes

        for index, group in enumerate(groups):
            group["initial_lr"] = max_lrs[index] / div_factor
            group["max_lr"] = max_lrs[index]
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if settings["cycle_momentum"]:
                top = momenta["max_momentum"][index]
                if uses_beta1:
                    group["betas"] = (top, *group["betas"][1:])
                else:
                    group["momentum"] = top
                group["max_momentum"] = top
                group["base_momentum"] = momenta["base_momentum"][index]
        super().__init__(optimizer)

    @staticmethod
    def _cycles_beta1(optimizer: Optimizer, cycle_momentum: bool, context: str) -> bool:
        """Whether the momentum to cycle is Adam's beta1 (else SGD's momentum)."""
        defaults = optimizer.defaults
        if cycle_momentum and "momentum" not in defaults and "betas" not in defaults:
            raise InvalidArgumentError(
                f"{context}cycle_momentum=True needs an optimizer with momentum or betas "
                f"(SGD, Adam, AdamW), got {type(optimizer).__name__}; or pass "
                "cycle_momentum=False"
            )
        return "betas" in optimizer.defaults

    def _settings(self) -> dict[str, Any]:
        return {
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "three_phase": self.three_phase,
            "cycle_momentum": self.cycle_momentum,
        }

    def _check_settings(self, settings: dict[str, Any], context: str) -> dict[str, Any]:
        pct_start = check_real(settings["pct_start"], "pct_start", context)
        if not 0 <= pct_start <= 1:
            raise InvalidArgumentError(
                f"{context}pct_start must be in [0, 1], got {settings['pct_start']!r}"
            )
        strategy = settings["anneal_strategy"]
        if strategy not in ("cos", "linear"):
            raise InvalidArgumentError(
                f"{context}anneal_strategy must be 'cos' or 'linear', got {strategy!r}"
            )
        cycle_momentum = check_flag(settings["cycle_momentum"], "cycle_momentum", context)
        return {
            "total_steps": check_count(settings["total_steps"], "total_steps", context, 1),
            "pct_start": pct_start,
            "anneal_strategy": strategy,
            "three_phase": check_flag(settings["three_phase"], "three_phase", context),
            "cycle_momentum": cycle_momentum,
        }

    def _check_progress(self, last_epoch: int, settings: dict[str, Any], context: str) -> None:
        if last_epoch > settings["total_steps"]:
            raise InvalidArgumentError(
                f"{context}last_epoch {last_epoch} is past total_steps {settings['total_steps']}"
            )
        if settings["cycle_momentum"]:
            self._cycles_beta1(self.optimizer, True, context)

    @property
    def _phases(self) -> list[_Phase]:
        """The schedule's phases, with PyTorch's end steps."""
        rise = _Phase(
            float(self.pct_start * self.total_steps) - 1,
            "initial_lr",
            "max_lr",
            "max_momentum",
            "base_momentum",
        )
        if self.three_phase:
            return [
                rise,
                _Phase(
                    float(2 * self.pct_start * self.total_steps) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ),
                _Phase(
                    self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"
                ),
            ]
        return [
            rise,
            _Phase(self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]

    def _phase_at(self, step: int) -> tuple[_Phase, float]:
        """The phase that ``step`` falls in, and how far into it (0 at its start, 1 at its
        end, beyond 1 past the end of the last one)."""
        phases = self._phases
        start_step = 0.0
        for index, phase in enumerate(phases):
            if step <= phase.end_step or index == len(phases) - 1:
                if phase.end_step == start_step:
                    raise InvalidArgumentError(
                        f"OneCycleLR: pct_start={self.pct_start!r} with "
                        f"total_steps={self.total_steps} leaves a phase of no steps (met at "
                        f"step {step}); choose another pct_start"
                    )
                return phase, (step - start_step) / (phase.end_step - start_step)
            start_step = phase.end_step
        raise AssertionError("unreachable: the last phase takes every later step")

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _lrs_at(self, epoch: int) -> list[float]:
        phase, pct = self._phase_at(epoch)
        return [
            self._anneal(group[phase.start_lr], group[phase.end_lr], pct)
            for group in self.optimizer.param_groups
        ]

    def _advance(self) -> None:
        epoch = self.last_epoch + 1
        if epoch > self.total_steps:
            raise InvalidArgumentError(
                f"OneCycleLR: tried to step {epoch} times; the schedule has "
                f"total_steps={self.total_steps}"
            )
        momenta = []
        if self.cycle_momentum:
            phase, pct = self._phase_at(epoch)
            momenta = [
                self._anneal(group[phase.start_momentum], group[phase.end_momentum], pct)
                for group in self.optimizer.param_groups
            ]
        super()._advance()
        uses_beta1 = "betas" in self.optimizer.defaults
        for group, momentum in zip(self.optimizer.param_groups, momenta, strict=False):
            if uses_beta1:
                group["betas"] = (momentum, *group["betas"][1:])
            else:
                group["momentum"] = momentum


def _per_group(value: Any, name: str, groups: int, context: str) -> list[float]:
    """One finite number ≥ 0 per param group, from one value or from a list of them."""
    if isinstance(value, list | tuple):
        if len(value) != groups:
            raise InvalidArgumentError(
                f"{context}{name} must have one value per param group ({groups}), got {len(value)}"
            )
        return [check_nonnegative(v, f"{name}[{i}]", context) for i, v in enumerate(value)]
    return [check_nonnegative(value, name, context)] * groups


def _check_positive(value: Any, name: str, context: str) -> float:
    number = check_real(value, name, context)
    if number <= 0:
        raise InvalidArgumentError(f"{context}{name} must be > 0, got {value!r}")
    return number
