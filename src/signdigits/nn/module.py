"""``Parameter`` and ``Module``, with PyTorch's names and contracts.

A :class:`Module` registers what is assigned to its attributes (``__setattr__``), in the order
of assignment, as PyTorch does:

* a :class:`Parameter` becomes a parameter (``named_parameters()``, ``state_dict()``);
* a :class:`Module` becomes a submodule (``named_children()``), whose parameters are named
  with a dotted path, ``features.1.bias``;
* ``register_buffer(name, array)`` adds a buffer: a plain ndarray that is part of the state
  but not trained, such as batch norm's running statistics, updated in place.

Anything else is a plain attribute. In particular, as in PyTorch, **modules kept in a list or
a dict attribute are not registered**: ``self.layers = [Linear(...), Linear(...)]`` hides
their parameters from ``parameters()``, ``state_dict()``, ``train()`` and ``eval()``. Put
them in a :class:`~signdigits.nn.Sequential` (which can be indexed and iterated like a
list), or register each with ``add_module(name, module)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from signdigits.autograd.tensor import ArrayLike, Tensor
from signdigits.errors import InvalidArgumentError


class Parameter(Tensor):
    """A Tensor that is a module's trainable parameter: ``requires_grad=True`` by default, and
    registered by :class:`Module` when assigned to one of its attributes.

    ``Parameter(data)`` takes a Tensor (whose array it shares, as ``torch.nn.Parameter``
    shares storage), an ndarray (used without copying) or a list (float32). Only floating
    data can be a parameter.
    """

    __slots__ = ()

    def __init__(self, data: Tensor | ArrayLike | None = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=np.float32)
        super().__init__(data)
        if self.data.dtype.kind != "f":
            raise InvalidArgumentError(
                f"a Parameter must hold floating data, got dtype {self.data.dtype}; convert it "
                "first, e.g. with .astype(np.float32)"
            )
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` found: keys the model has but the state lacks, and
    keys of the state that the model does not have."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _is_valid_name(name: object) -> bool:
    return isinstance(name, str) and name != "" and "." not in name


def _add_indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (PyTorch's ``_addindent``)."""
    first, *rest = text.split("\n")
    return "\n".join([first] + [" " * spaces + line for line in rest])


class Module:
    """Base class of layers and models: subclasses set their parameters and submodules as
    attributes in ``__init__`` (after ``super().__init__()``) and define ``forward``; calling
    the module runs ``forward``.

    Parameters, buffers and submodules are kept in insertion order, so ``state_dict()`` lists
    them in a stable order, the same as PyTorch's for the same structure: a module's own
    parameters, then its own buffers, then each submodule's, depth first. Reassigning an
    attribute keeps its place; deleting it and assigning again moves it to the end.

    ``training`` (True after construction) says whether the module is in training mode;
    ``train(mode)`` and ``eval()`` set it on the module and on every submodule.
    """

    training: bool
    _parameters: dict[str, Parameter | None]
    _buffers: dict[str, np.ndarray | None]
    _non_persistent_buffers: set[str]
    _modules: dict[str, Module | None]

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # -- registration ------------------------------------------------------------------------
    def _require_init(self, kind: str) -> None:
        if "_modules" not in self.__dict__:
            raise InvalidArgumentError(
                f"cannot assign {kind} before Module.__init__() is called: call "
                f"super().__init__() first in {type(self).__name__}.__init__"
            )

    def _forget_other_kinds(self, name: str, keep: dict) -> None:
        """Before ``name`` is assigned a value of another kind, drop what it was (as PyTorch:
        assigning a Parameter where a buffer or plain attribute was replaces it)."""
        for registry in (self._parameters, self._buffers, self._modules, self.__dict__):
            if registry is not keep:
                registry.pop(name, None)
        if keep is not self._buffers:
            self._non_persistent_buffers.discard(name)

    def _check_new_name(self, name: object, kind: str, registry: dict) -> None:
        """A name to register must be a non-empty string without dots, and must not already
        name something else (an attribute, a method, or another kind of entry)."""
        if not _is_valid_name(name):
            raise InvalidArgumentError(
                f"a {kind} name must be a non-empty string without '.', got {name!r}"
            )
        if name not in registry and hasattr(self, name):
            raise InvalidArgumentError(
                f"cannot register {kind} {name!r} on {type(self).__name__}: an attribute of "
                "that name already exists"
            )

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._require_init("parameters")
            self._forget_other_kinds(name, self._parameters)
            self.register_parameter(name, value)
            return
        if isinstance(value, Module):
            self._require_init("submodules")
            self._forget_other_kinds(name, self._modules)
            self.add_module(name, value)
            return
        if name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise InvalidArgumentError(
                    f"cannot assign a {type(value).__name__} as parameter {name!r} of "
                    f"{type(self).__name__}: assign an nn.Parameter or None (to change its "
                    f"values in place, write into {name}.data[...])"
                )
            self._parameters[name] = None
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise InvalidArgumentError(
                    f"cannot assign a {type(value).__name__} as submodule {name!r} of "
                    f"{type(self).__name__}: assign an nn.Module or None"
                )
            self._modules[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            self.register_buffer(name, value, persistent=name not in self._non_persistent_buffers)
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Called only when normal lookup fails: parameters, buffers and submodules.
        for registry in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(registry)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        return sorted(names.union(self._parameters, self._buffers, self._modules))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or None: a declared but absent one, such as a disabled bias).
        Assigning a Parameter to an attribute does the same."""
        self._require_init("parameters")
        if param is not None and not isinstance(param, Parameter):
            raise InvalidArgumentError(
                f"cannot register a {type(param).__name__} as parameter {name!r}: wrap it as "
                "nn.Parameter(...)"
            )
        self._check_new_name(name, "parameter", self._parameters)
        self._parameters[name] = param  # a name already there keeps its place

    def register_buffer(self, name: str, array: np.ndarray | None, persistent: bool = True) -> None:
        """Add a buffer: an ndarray that belongs to the module's state without being trained
        (batch norm's running statistics), updated in place by the module. A persistent
        buffer is part of ``state_dict()``; None declares an absent one."""
        self._require_init("buffers")
        if array is not None and not isinstance(array, np.ndarray):
            raise InvalidArgumentError(
                f"cannot register a {type(array).__name__} as buffer {name!r}: a buffer is an "
                "ndarray (or None)"
            )
        self._check_new_name(name, "buffer", self._buffers)
        self._buffers[name] = array
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule (or None); ``register_module`` is the same. Assigning a Module to
        an attribute does the same."""
        self._require_init("submodules")
        if module is not None and not isinstance(module, Module):
            what = "a function" if callable(module) else f"a {type(module).__name__}"
            raise InvalidArgumentError(
                f"cannot add {what} as submodule {name!r}: it is not an nn.Module (write the "
                "layer, e.g. nn.ReLU(), not the function F.relu)"
            )
        self._check_new_name(name, "submodule", self._modules)
        self._modules[name] = module

    register_module = add_module

    # -- traversal ---------------------------------------------------------------------------
    def named_modules(
        self, memo: set[int] | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, with dotted names (this one is
        ``prefix``, by default ""); a module reached twice is given once."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                dotted = f"{prefix}.{name}" if prefix else name
                yield from module.named_modules(memo, dotted, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every submodule, depth first, each once."""
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The direct submodules with their names, each once."""
        seen: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct submodules, each once."""
        for _, module in self.named_children():
            yield module

    def _named_members(
        self, registry: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        owners = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for owner_name, owner in owners:
            for name, value in getattr(owner, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{owner_name}.{name}" if owner_name else name), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs, e.g. ``("features.1.bias", p)``; a parameter
        shared by two modules is given once, under its first name."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, each once, in registration order (what an optimizer takes)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, np.ndarray]]:
        """``(dotted name, array)`` pairs of the buffers (the arrays themselves, not copies)."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        """Every buffer array, each once."""
        for _, array in self.named_buffers(recurse=recurse):
            yield array

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule, then on this module (e.g. to initialise weights);
        returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (``mode=True``) or evaluation mode on this module and every
        submodule; returns self."""
        if not isinstance(mode, bool):
            raise InvalidArgumentError(f"training mode must be True or False, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``): dropout is the identity and batch norm uses its
        running statistics; returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` of every parameter (False freezes them); returns self."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``.grad = None`` (or, with ``set_to_none=False``, zeros in
        the existing arrays)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad[...] = 0

    # -- state -------------------------------------------------------------------------------
    def _state_arrays(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """The live arrays of the state, in ``state_dict`` order: own parameters, own
        persistent buffers, then each submodule's (a shared one under each of its names)."""
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param.data
        for name, array in self._buffers.items():
            if array is not None and name not in self._non_persistent_buffers:
                yield prefix + name, array
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_arrays(f"{prefix}{name}.")

    def state_dict(self, *, prefix: str = "") -> OrderedDict[str, np.ndarray]:
        """The parameters and persistent buffers as an ordered dict from dotted name to a copy
        of the array: ``0.weight, 0.bias, 1.running_mean, …``, the keys and order of PyTorch's
        ``state_dict`` for the same structure (``{k: v.numpy() for k, v in
        torch_model.state_dict().items()}`` loads into this model)."""
        return OrderedDict((name, array.copy()) for name, array in self._state_arrays(prefix))

    def load_state_dict(
        self, state_dict: Mapping[str, ArrayLike], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values from ``state_dict`` (dotted name → array) into this module's parameters
        and buffers, in place: the arrays stay the same objects, so an optimizer holding the
        parameters keeps working.

        Everything is checked first, and nothing changes unless all of it fits: a value whose
        shape or dtype differs from the model's (no silent cast; convert with
        ``.astype(...)``), and with ``strict`` (the default) keys the model has and the state
        lacks or the other way round, are reported together in one ``InvalidArgumentError``.
        Returns the missing and unexpected keys (empty lists when strict).
        """
        if not isinstance(state_dict, Mapping):
            raise InvalidArgumentError(
                f"load_state_dict needs a mapping from names to arrays, got "
                f"{type(state_dict).__name__}"
            )
        targets = dict(self._state_arrays())
        missing = [name for name in targets if name not in state_dict]
        unexpected = [name for name in state_dict if name not in targets]
        problems = []
        if strict and missing:
            problems.append("missing keys " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected keys " + ", ".join(repr(k) for k in unexpected))
        sources = {}
        for name, target in targets.items():
            if name not in state_dict:
                continue
            try:
                source = np.asarray(state_dict[name])
            except Exception as error:  # a foreign object that will not become an array
                problems.append(f"{name!r} cannot be read as an array ({error})")
                continue
            if source.shape != target.shape:
                problems.append(
                    f"{name!r} has shape {source.shape} in the state but {target.shape} in "
                    "the model"
                )
            elif source.dtype != target.dtype:
                problems.append(
                    f"{name!r} has dtype {source.dtype} in the state but {target.dtype} in "
                    f"the model (convert it with .astype(np.{target.dtype}))"
                )
            elif not target.flags.writeable:
                problems.append(f"{name!r} is a read-only array in the model")
            else:
                sources[name] = source
        if problems:
            raise InvalidArgumentError(
                f"load_state_dict for {type(self).__name__}: the state does not fit, nothing "
                f"was changed: {'; '.join(problems)}"
            )
        for name, source in sources.items():
            targets[name][...] = source
        return IncompatibleKeys(missing, unexpected)

    # -- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown between the parentheses of this module's repr."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({name}): {_add_indent(repr(module), 2)}" for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        body = ""
        if len(extra_lines) == 1 and not child_lines:
            body = extra_lines[0]
        elif lines:
            body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{type(self).__name__}({body})"
