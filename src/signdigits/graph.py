"""Pictures of the computational graph that produced a tensor.

Values are boxes (name and shape; value and gradient when the value is a scalar),
operations are ellipses, and arrows follow the forward pass. Leaves that learn
(``requires_grad=True``) are yellow, constants gray, the output green.

    >>> a = Tensor(3.0, requires_grad=True, name="a")
    >>> b = Tensor(4.0, requires_grad=True, name="b")
    >>> c = (a**2 + b**2).sqrt()
    >>> c.backward(retain_graph=True)
    >>> print(to_dot(c))   # doctest: +SKIP

The examples drawn by ``signdigits graph`` are built here too: the tutorial's first
graph c = √(a² + b²), logistic regression, and the two-layer network of part 2.
"""

from __future__ import annotations

import os
from pathlib import Path

import graphviz
import numpy as np

from signdigits import functional as F
from signdigits.atomic import atomic_write
from signdigits.autograd import Tensor
from signdigits.autograd.tensor import topological_order
from signdigits.errors import InvalidArgumentError, SignDigitsError

FORMATS = ("png", "svg", "pdf", "dot")

_FILL = {"parameter": "#fff2b3", "constant": "#e8e8e8", "output": "#c8f0c8", "value": "white"}


class GraphvizMissingError(SignDigitsError):
    """Graphviz's ``dot`` program is not installed; the DOT text was written instead."""


def _format_number(value: float) -> str:
    return f"{value:.4g}"


def _value_label(tensor: Tensor) -> str:
    lines = [tensor.name] if tensor.name else []
    if tensor.size == 1:
        lines.append(f"value {_format_number(float(tensor.data.reshape(())))}")
        if tensor.grad is not None:
            lines.append(f"grad {_format_number(float(np.asarray(tensor.grad).reshape(())))}")
    else:
        lines.append("×".join(map(str, tensor.shape)))
    return "\n".join(lines)


def _kind(tensor: Tensor, output: Tensor) -> str:
    if tensor is output:
        return "output"
    if tensor.creator is None:
        return "parameter" if tensor.requires_grad else "constant"
    return "value"


def to_dot(output: Tensor, title: str | None = None) -> str:
    """The Graphviz DOT text of the graph that produced ``output``."""
    if not isinstance(output, Tensor):
        raise InvalidArgumentError(f"to_dot draws a Tensor, got {type(output).__name__}")
    dot = graphviz.Digraph("computational_graph", graph_attr={"rankdir": "LR"})
    if title:
        dot.attr(label=title, labelloc="t", fontsize="16", fontname="Helvetica")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    for tensor in topological_order(output):
        node = f"v{id(tensor)}"
        dot.node(
            node,
            _value_label(tensor),
            shape="box",
            style="filled,rounded",
            fillcolor=_FILL[_kind(tensor, output)],
        )
        if tensor.creator is not None:
            operation = f"f{id(tensor.creator)}"
            dot.node(
                operation, tensor.creator.name, shape="ellipse", style="filled", fillcolor="#dbe8ff"
            )
            for x in tensor.creator.inputs:
                dot.edge(f"v{id(x)}", operation)
            dot.edge(operation, node)
    return dot.source


def render(output: Tensor, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw the graph of ``output`` to ``path``; the format follows its suffix.

    PNG, SVG and PDF need Graphviz's ``dot`` program. Without it the DOT text is
    written beside ``path`` (suffix ``.dot``) and ``GraphvizMissingError`` says how
    to install Graphviz.
    """
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise InvalidArgumentError(
            f"cannot draw a graph as {path.name!r}: the file must end in "
            + ", ".join(f".{f}" for f in FORMATS)
        )
    source = to_dot(output, title)
    if fmt == "dot":
        return _write_atomic(path, source.encode())
    try:
        image = graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        dot_path = _write_atomic(path.with_suffix(".dot"), source.encode())
        raise GraphvizMissingError(
            f"Graphviz's `dot` program is not installed, so the graph was written as DOT text "
            f"to {dot_path} instead of {path}; install Graphviz (Debian/Ubuntu: "
            "`apt-get install graphviz`, macOS: `brew install graphviz`) and run again"
        ) from None
    return _write_atomic(path, image)


def _write_atomic(path: Path, content: bytes) -> Path:
    try:
        with atomic_write(path) as file:
            file.write(content)
    except OSError as error:
        raise InvalidArgumentError(
            f"cannot write the graph to {path} ({error.strerror or error}); choose another --out"
        ) from None
    return path


# The examples -------------------------------------------------------------------------------


def hypot_example(a: float = 3.0, b: float = 4.0) -> Tensor:
    """The tutorial's first graph, c = √(a² + b²), after backward: ∂c/∂a = a/c, ∂c/∂b = b/c."""
    a_ = Tensor(np.float64(a), requires_grad=True, name="a")
    b_ = Tensor(np.float64(b), requires_grad=True, name="b")
    a_squared = a_**2
    a_squared.name = "a²"
    b_squared = b_**2
    b_squared.name = "b²"
    total = a_squared + b_squared
    total.name = "a² + b²"
    c = total.sqrt()
    c.name = "c"
    c.backward(retain_graph=True)
    return c


def logistic_example(x: np.ndarray, y: np.ndarray) -> Tensor:
    """The tutorial's logistic regression at its first iteration, features first.

    x (4096, m), y (1, m); w (4096, 1) full of 0.01, b = 0::

        z = wᵀx + b,  ŷ = σ(z),  loss = −y log ŷ − (1 − y) log(1 − ŷ),  cost = mean(loss)
    """
    w = Tensor(np.full((x.shape[0], 1), 0.01), requires_grad=True, name="w")
    b = Tensor(np.zeros(()), requires_grad=True, name="b")
    x_, y_ = Tensor(x, name="x"), Tensor(y, name="y")
    z = w.T @ x_ + b
    z.name = "z"
    y_head = z.sigmoid()
    y_head.name = "ŷ"
    loss = -(y_ * y_head.log() + (1 - y_) * (1 - y_head).log())
    loss.name = "loss"
    cost = loss.mean()
    cost.name = "cost"
    cost.backward(retain_graph=True)
    return cost


def two_layer_example(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Tensor:
    """The two-layer network of the tutorial's part 2: 3 tanh units, then a sigmoid unit.

    x (4096, m), y (1, m); W1 (3, 4096) and W2 (1, 3) drawn from N(0, 0.1²), biases 0::

        A1 = tanh(W1 x + b1),  z2 = W2 A1 + b2,  cost = mean(BCE(σ(z2), y))
    """
    w1 = Tensor(rng.normal(0.0, 0.1, (3, x.shape[0])), requires_grad=True, name="W1")
    b1 = Tensor(np.zeros((3, 1)), requires_grad=True, name="b1")
    w2 = Tensor(rng.normal(0.0, 0.1, (1, 3)), requires_grad=True, name="W2")
    b2 = Tensor(np.zeros((1, 1)), requires_grad=True, name="b2")
    x_, y_ = Tensor(x, name="x"), Tensor(y, name="y")
    z1 = w1 @ x_ + b1
    z1.name = "Z1"
    a1 = z1.tanh()
    a1.name = "A1"
    z2 = w2 @ a1 + b2
    z2.name = "Z2"
    cost = F.binary_cross_entropy_with_logits(z2, y_)
    cost.name = "cost"
    cost.backward(retain_graph=True)
    return cost
