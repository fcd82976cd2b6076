"""The base of every optimizer: parameters, param groups, per-parameter state, state_dict.

An optimizer holds **param groups**, as in PyTorch: ``optimizer.param_groups`` is a list of
dicts, each with ``"params"`` (the Tensors), ``"param_names"`` (their names) and the
group's hyper-parameters (``"lr"`` always; schedulers change ``group["lr"]``).
``params`` may be given as

* an iterable of Tensors (``model.parameters()``): they are named ``"0"``, ``"1"``, … in
  order, across groups, as PyTorch numbers them in its ``state_dict``;
* an iterable of ``(name, Tensor)`` pairs (``model.named_parameters()``);
* a list of dicts, one per group: ``{"params": ..., "lr": 0.01}`` overrides the
  optimizer's defaults for that group only.

``step()`` updates every parameter whose ``.grad`` is not None, **in place**: the array
``p.data`` itself is changed, so every other reference to the parameter (or to its array)
sees the new values. A parameter whose ``.grad`` is None (frozen, or unused by the loss) is
skipped, and its state (Adam's step count, say) does not advance.

The per-parameter state (momentum buffers, Adam's moments) is ``optimizer.state[name]``:
keyed by the parameter's **name**, so that a checkpoint stores it beside the model's own
``state_dict``. ``state_dict()`` gives copies (ndarrays, numbers, names);
``load_state_dict()`` checks everything first and changes nothing when it refuses.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import numpy as np

from signdigits.autograd.tensor import Tensor, no_grad
from signdigits.errors import InvalidArgumentError, ShapeError

ParamsT = Iterable[Tensor] | Iterable[tuple[str, Tensor]] | Iterable[Mapping[str, Any]]


# -- checks of hyper-parameters, shared by the optimizers and the schedulers ------------------
def check_real(value: Any, name: str, context: str) -> float:
    """``value`` as a float: a finite real number (a bool is not one)."""
    if (
        isinstance(value, bool | np.bool_)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
    ):
        raise InvalidArgumentError(f"{context}{name} must be a finite number, got {value!r}")
    return float(value)


def check_nonnegative(value: Any, name: str, context: str) -> float:
    """``value`` as a float: a finite real number ≥ 0."""
    number = check_real(value, name, context)
    if number < 0:
        raise InvalidArgumentError(f"{context}{name} must be a finite number ≥ 0, got {value!r}")
    return number


def check_flag(value: Any, name: str, context: str) -> bool:
    """``value`` as a bool: True or False, nothing else that merely looks true."""
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(f"{context}{name} must be True or False, got {value!r}")
    return bool(value)


def check_count(value: Any, name: str, context: str, minimum: int = 0) -> int:
    """``value`` as an int: a whole number ≥ ``minimum`` (a bool is not one)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentError(f"{context}{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise InvalidArgumentError(f"{context}{name} must be ≥ {minimum}, got {value!r}")
    return int(value)


def effective_gradient(
    grad: np.ndarray, param: np.ndarray, weight_decay: float, maximize: bool
) -> np.ndarray:
    """``g = ±∇f(θ) + λθ``: the gradient, negated to maximize, with the L2 penalty's term.

    Returns ``grad`` itself when it is used unchanged (the caller must not modify it), else
    a new array. The arithmetic is PyTorch's: ``grad.add(param, alpha=λ)``.
    """
    if weight_decay == 0:
        return -grad if maximize else grad
    decayed = np.multiply(param, weight_decay)
    if maximize:
        decayed -= grad  # λθ − ∇ is −∇ + λθ to the bit: negation is exact
    else:
        decayed += grad
    return decayed


def _describe(value: Any) -> str:
    """A short description of an unexpected value, for error messages."""
    if isinstance(value, Tensor):
        return f"a Tensor of shape {value.shape}"
    return f"a {type(value).__name__}"


class Optimizer:
    """The base of every optimizer: param groups, ``zero_grad``, ``step``, ``state_dict``.

    ``Optimizer(params, defaults)``: ``defaults`` are the hyper-parameters of every group
    that does not override them. A subclass implements ``_update`` (one parameter's step)
    and ``_check_hyperparameters`` (validation of one group's hyper-parameters, used at
    construction, by ``add_param_group`` and by ``load_state_dict``), and lists the arrays
    and counts it keeps per parameter.

    Every parameter must be a floating leaf Tensor with ``requires_grad=True``, given once.
    """

    #: The arrays kept per parameter (each of the parameter's shape and dtype).
    state_arrays: ClassVar[tuple[str, ...]] = ()
    #: The whole numbers kept per parameter (such as Adam's ``"step"``).
    state_counts: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: ParamsT, defaults: Mapping[str, Any]) -> None:
        self._context = f"{type(self).__name__}: "
        self.defaults: dict[str, Any] = self._check_hyperparameters(dict(defaults), self._context)
        self.state: dict[str, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        self._named: bool | None = None  # whether the parameters came with names
        self._step_calls = 0  # step() calls so far: schedulers warn when stepped before it
        for group in self._as_groups(params):
            self.add_param_group(group)

    # -- what subclasses provide -------------------------------------------------------------
    def _check_hyperparameters(self, values: dict[str, Any], context: str) -> dict[str, Any]:
        """Check one group's hyper-parameters (every key of ``defaults``) and return them
        normalized (numbers as floats, flags as bools); ``context`` starts each message."""
        raise NotImplementedError

    def _update(
        self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]
    ) -> None:
        """Update ``param`` in place from ``grad``; ``state`` is this parameter's state (an
        empty dict at its first step), to be filled or changed in place."""
        raise NotImplementedError

    def _required_state(self, group: Mapping[str, Any]) -> tuple[str, ...]:
        """The state entries that a parameter with any state must have in a checkpoint."""
        return ()

    # -- parameters --------------------------------------------------------------------------
    def _as_groups(self, params: ParamsT) -> list[Mapping[str, Any]]:
        """``params`` as a list of group dicts (one group when Tensors or pairs are given)."""
        if isinstance(params, Tensor):
            raise InvalidArgumentError(
                f"{self._context}params must be an iterable of Tensors, of (name, Tensor) pairs "
                "or of param-group dicts, got a single Tensor; put it in a list: [tensor]"
            )
        if isinstance(params, Mapping):
            raise InvalidArgumentError(
                f"{self._context}params is one dict; give a list of param-group dicts: [{{...}}]"
            )
        items = self._as_list(params, "params")
        if not items:
            raise InvalidArgumentError(f"{self._context}got an empty parameter list")
        dicts = [isinstance(item, Mapping) for item in items]
        if all(dicts):
            return items
        if any(dicts):
            raise InvalidArgumentError(
                f"{self._context}params mixes param-group dicts with parameters; give either "
                "parameters only, or a list of dicts each with its 'params'"
            )
        return [{"params": items}]

    def _as_list(self, items: Any, what: str) -> list[Any]:
        if isinstance(items, set | frozenset):
            raise InvalidArgumentError(
                f"{self._context}{what} is a set, whose order changes between runs; "
                "give a list (the order names the parameters and their state)"
            )
        if isinstance(items, str | bytes) or not isinstance(items, Iterable):
            raise InvalidArgumentError(
                f"{self._context}{what} must be an iterable of parameters, got {_describe(items)}"
            )
        return list(items)

    def add_param_group(self, param_group: Mapping[str, Any]) -> None:
        """Add a group: a dict with ``"params"`` (Tensors, or ``(name, Tensor)`` pairs) and
        any hyper-parameters that override the defaults for it."""
        index = len(self.param_groups)
        where = f"{self._context}param_groups[{index}]: "
        if not isinstance(param_group, Mapping):
            raise InvalidArgumentError(f"{where}must be a dict, got {_describe(param_group)}")
        if "params" not in param_group:
            raise InvalidArgumentError(f"{where}has no 'params' entry")
        unknown = sorted(set(param_group) - {"params", "param_names"} - set(self.defaults))
        if unknown:
            raise InvalidArgumentError(
                f"{where}unknown hyper-parameter {unknown[0]!r}; "
                f"{type(self).__name__} takes {', '.join(self.defaults)}"
            )
        entries = param_group["params"]
        entries = [entries] if isinstance(entries, Tensor) else self._as_list(entries, "params")
        tensors, names, named = self._split_names(entries, param_group.get("param_names"), where)
        known_ids = {id(p) for group in self.param_groups for p in group["params"]}
        known_names = {name for group in self.param_groups for name in group["param_names"]}
        for name, tensor in zip(names, tensors, strict=True):
            self._check_parameter(name, tensor, where)
            if id(tensor) in known_ids:
                raise InvalidArgumentError(
                    f"{where}parameter {name!r} is given twice (the same Tensor); "
                    "give each parameter once"
                )
            if name in known_names:
                raise InvalidArgumentError(f"{where}two parameters are named {name!r}")
            known_ids.add(id(tensor))
            known_names.add(name)
        overrides = {k: v for k, v in param_group.items() if k not in ("params", "param_names")}
        values = self._check_hyperparameters({**self.defaults, **overrides}, where)
        if tensors:
            self._named = named
        self.param_groups.append({"params": tensors, **values, "param_names": names})

    def _split_names(
        self, entries: list[Any], given_names: Any, where: str
    ) -> tuple[list[Tensor], list[str], bool]:
        """The Tensors, their names (the given ones, or ``"0"``, ``"1"``, … in order) and
        whether they were given."""
        pairs = [isinstance(e, tuple) and len(e) == 2 and isinstance(e[0], str) for e in entries]
        if any(pairs) and not all(pairs):
            raise InvalidArgumentError(
                f"{where}some parameters have names and some do not; give all as "
                "(name, Tensor) pairs (as named_parameters() does) or all as Tensors"
            )
        if entries and all(pairs):
            if given_names is not None:
                raise InvalidArgumentError(
                    f"{where}names given twice: as (name, Tensor) pairs and as 'param_names'"
                )
            names, tensors, named = [e[0] for e in entries], [e[1] for e in entries], True
        elif given_names is not None:
            names, tensors, named = self._as_list(given_names, "param_names"), entries, True
            if len(names) != len(tensors) or not all(isinstance(n, str) for n in names):
                raise InvalidArgumentError(
                    f"{where}param_names must be {len(tensors)} strings, one per parameter"
                )
        else:
            start = sum(len(group["params"]) for group in self.param_groups)
            names = [str(start + i) for i in range(len(entries))]
            tensors, named = entries, False
        if entries and self._named is not None and named != self._named:
            have = "with" if self._named else "without"
            raise InvalidArgumentError(
                f"{where}the other groups' parameters are {have} names; give all groups' "
                "parameters with names, or all without"
            )
        return tensors, names, named

    def _check_parameter(self, name: str, tensor: Any, where: str) -> None:
        if not isinstance(tensor, Tensor):
            raise InvalidArgumentError(
                f"{where}parameter {name!r} must be a Tensor, got {_describe(tensor)}"
            )
        if tensor.dtype.kind != "f":
            raise InvalidArgumentError(
                f"{where}parameter {name!r} has dtype {tensor.dtype}; only floating "
                "tensors can be optimized"
            )
        if not tensor.requires_grad:
            raise InvalidArgumentError(
                f"{where}parameter {name!r} does not require grad, so it would never be "
                "updated; leave it out (frozen) or set requires_grad=True"
            )
        if not tensor.is_leaf:
            raise InvalidArgumentError(
                f"{where}parameter {name!r} is the result of an operation, not a leaf; "
                "optimize the leaf tensors it was computed from"
            )

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """Every parameter with its name, group after group."""
        return [
            (name, param)
            for group in self.param_groups
            for name, param in zip(group["param_names"], group["params"], strict=True)
        ]

    # -- the training loop's calls -----------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (PyTorch's default), or with
        ``set_to_none=False`` fill the existing ``.grad`` arrays with zeros in place."""
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()``'s value
        (the loss, recomputed by the closure before the update) when one is given."""
        loss = closure() if closure is not None else None
        work = [  # every gradient checked before any parameter changes
            (name, param, self._checked_grad(name, param), group)
            for group in self.param_groups
            for name, param in zip(group["param_names"], group["params"], strict=True)
            if param.grad is not None
        ]
        with no_grad():
            for name, param, grad, group in work:
                state = self.state.get(name, {})
                self._update(param.data, grad, state, group)
                if state:
                    self.state[name] = state
        self._step_calls += 1
        return loss

    def _checked_grad(self, name: str, param: Tensor) -> np.ndarray:
        grad = param.grad
        if not isinstance(grad, np.ndarray) or grad.dtype != param.dtype:
            grad = np.asarray(grad, dtype=param.dtype)
        if grad.shape != param.shape:
            raise ShapeError(
                f"{self._context}parameter {name!r} has shape {param.shape} but its .grad "
                f"has shape {grad.shape}"
            )
        if not param.data.flags.writeable:
            raise InvalidArgumentError(
                f"{self._context}parameter {name!r} has read-only data, which cannot be "
                "updated in place; give it a writable array (np.array(..., copy=True))"
            )
        return grad

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as copies: ``{"state": {name: {key: ndarray or number}},
        "param_groups": [{hyper-parameters..., "params": [names]}]}``.

        Only parameters that have state appear under ``"state"`` (as in PyTorch).
        """
        state = {
            name: {
                key: value.copy() if isinstance(value, np.ndarray) else value
                for key, value in entry.items()
            }
            for name, entry in self.state.items()
        }
        groups = []
        for group in self.param_groups:
            saved = {
                key: list(value) if isinstance(value, list) else value
                for key, value in group.items()
                if key not in ("params", "param_names")
            }
            saved["params"] = list(group["param_names"])
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what ``state_dict()`` gave: the groups' hyper-parameters and every
        parameter's state (copied, cast to the parameter's dtype).

        Everything is checked before anything changes: the same groups with the same
        parameter names, every hyper-parameter present and valid, every state entry known,
        with the parameter's shape. A refusal is one line naming what is wrong.
        """
        where = f"{type(self).__name__}.load_state_dict: "
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            keys = sorted(state_dict) if isinstance(state_dict, Mapping) else _describe(state_dict)
            raise InvalidArgumentError(
                f"{where}expected a dict with 'state' and 'param_groups', got {keys}"
            )
        groups = self._checked_groups(state_dict["param_groups"], where)
        state = self._checked_state(state_dict["state"], groups, where)
        for group, values in zip(self.param_groups, groups, strict=True):
            params, names = group["params"], group["param_names"]
            group.clear()
            group.update({"params": params, **values, "param_names": names})
        self.state = state

    def _checked_groups(self, saved_groups: Any, where: str) -> list[dict[str, Any]]:
        if not isinstance(saved_groups, list | tuple) or len(saved_groups) != len(
            self.param_groups
        ):
            count = len(saved_groups) if isinstance(saved_groups, list | tuple) else None
            raise InvalidArgumentError(
                f"{where}param_groups must be a list of {len(self.param_groups)} groups "
                f"(as this optimizer has), got {count if count is not None else saved_groups!r}"
            )
        checked = []
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            here = f"{where}param_groups[{index}]: "
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise InvalidArgumentError(f"{here}must be a dict with 'params'")
            names, expected = saved["params"], group["param_names"]
            if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
                raise InvalidArgumentError(
                    f"{here}params must be a list of parameter names, got {_describe(names)}"
                )
            if sorted(names) != sorted(expected):
                missing = [n for n in expected if n not in names]
                extra = [n for n in names if n not in expected]
                details = [f"missing {_few(missing)}"] if missing else []
                details += [f"unexpected {_few(extra)}"] if extra else []
                raise InvalidArgumentError(
                    f"{here}its parameters are not this optimizer's: "
                    f"{', '.join(details) or 'a name is repeated'}"
                )
            missing = [key for key in self.defaults if key not in saved]
            if missing:
                raise InvalidArgumentError(f"{here}hyper-parameter {missing[0]!r} is missing")
            values = self._check_hyperparameters({key: saved[key] for key in self.defaults}, here)
            for key, value in saved.items():  # schedulers' entries, such as "initial_lr"
                if key in values or key in ("params", "param_names"):
                    continue
                if not isinstance(key, str) or not _is_plain_value(value):
                    raise InvalidArgumentError(
                        f"{here}entry {key!r} must be a number or a tuple of numbers, "
                        f"got {_describe(value)}"
                    )
                values[key] = tuple(value) if isinstance(value, list | tuple) else value
            checked.append(values)
        return checked

    def _checked_state(
        self, saved_state: Any, groups: list[dict[str, Any]], where: str
    ) -> dict[str, dict[str, Any]]:
        if not isinstance(saved_state, Mapping):
            raise InvalidArgumentError(
                f"{where}state must be a dict from parameter name to its state, "
                f"got {_describe(saved_state)}"
            )
        params = {}
        for group, values in zip(self.param_groups, groups, strict=True):
            for name, param in zip(group["param_names"], group["params"], strict=True):
                params[name] = (param, values)
        state: dict[str, dict[str, Any]] = {}
        for name, entry in saved_state.items():
            if name not in params:
                raise InvalidArgumentError(
                    f"{where}state of unknown parameter {name!r}; this optimizer has "
                    f"{_few(list(params))}"
                )
            param, values = params[name]
            here = f"{where}state[{name!r}]: "
            if not isinstance(entry, Mapping):
                raise InvalidArgumentError(f"{here}must be a dict, got {_describe(entry)}")
            if not entry:
                continue
            unknown = [k for k in entry if k not in self.state_arrays + self.state_counts]
            if unknown:
                raise InvalidArgumentError(
                    f"{here}unknown entry {unknown[0]!r}; {type(self).__name__} keeps "
                    f"{', '.join(self.state_arrays + self.state_counts)}"
                )
            missing = [k for k in self._required_state(values) if k not in entry]
            if missing:
                raise InvalidArgumentError(f"{here}entry {missing[0]!r} is missing")
            checked: dict[str, Any] = {}
            for key, value in entry.items():
                if key in self.state_counts:
                    if isinstance(value, np.ndarray) and value.ndim == 0:
                        value = value.item()
                    if isinstance(value, float) and value.is_integer():
                        value = int(value)  # PyTorch keeps its step count as a float
                    checked[key] = check_count(value, key, here)
                    continue
                array = np.asarray(value)
                if array.dtype.kind not in "iuf":
                    raise InvalidArgumentError(
                        f"{here}{key} must be an array of numbers, got dtype {array.dtype}"
                    )
                if array.shape != param.shape:
                    raise InvalidArgumentError(
                        f"{here}{key} has shape {array.shape} but the parameter has shape "
                        f"{param.shape}"
                    )
                checked[key] = np.array(array, dtype=param.dtype, copy=True)
            state[name] = checked
        return state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for index, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {index}")
            for key, value in group.items():
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {value}")
        lines.append(")")
        return "\n".join(lines)


def _few(names: list[str], most: int = 5) -> str:
    """Up to ``most`` names, and how many there are when there are more."""
    shown = ", ".join(repr(n) for n in names[:most])
    return f"[{shown}]" if len(names) <= most else f"[{shown}, …] ({len(names)} in all)"


def _is_plain_value(value: Any) -> bool:
    """A number, a flag, a string or None, or a list or tuple of numbers."""
    if isinstance(value, list | tuple):
        return all(isinstance(v, numbers.Real) for v in value)
    return value is None or isinstance(value, numbers.Real | str | np.bool_)
