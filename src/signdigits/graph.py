"""Pictures of the computational graph that produced a tensor.

Values are boxes (name and shape; value and gradient when the value is a scalar),
operations are ellipses, and arrows follow the forward pass from top to bottom. Leaves
that learn (``requires_grad=True``) are yellow, inputs and constants gray, the outputs
green; a legend in the picture says so.

    >>> a = Tensor(3.0, requires_grad=True, name="a")
    >>> b = Tensor(4.0, requires_grad=True, name="b")
    >>> c = (a**2 + b**2).sqrt()
    >>> c.backward(retain_graph=True)
    >>> print(to_dot(c))   # doctest: +SKIP

Several outputs can be drawn together, ``to_dot((cost, y_head))``: the cost that backward
went through, and the prediction beside it.

The examples drawn by ``signdigits graph`` are built here too: the tutorial's first
graph c = √(a² + b²), logistic regression, and the two-layer network of part 2.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import graphviz
import numpy as np

from signdigits import functional as F
from signdigits.atomic import atomic_write
from signdigits.autograd import Tensor
from signdigits.autograd.tensor import topological_order
from signdigits.errors import InvalidArgumentError, SignDigitsError

FORMATS = ("png", "svg", "pdf", "dot")

KINDS = {
    "parameter": ("#fff2b3", "parameter (learned)"),
    "constant": ("#e8e8e8", "input or constant"),
    "value": ("white", "computed value"),
    "output": ("#c8f0c8", "output"),
}
"""Each kind of value node: its fill colour and its entry in the legend."""

OPERATION_FILL = "#dbe8ff"

_OPERATION_NOTES = {
    # A fused operation would otherwise be a name to look up: say what it computes, in
    # the names of its inputs ({0}, {1}).
    "binary_cross_entropy_with_logits": "mean(log(1 + eᶻ) − {1}·z), z = {0}",
}

_FONT = {"fontname": "Helvetica", "fontsize": "11"}
_VALUE_STYLE = {"shape": "box", "style": "filled,rounded"}
_OPERATION_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": OPERATION_FILL}

Outputs = Tensor | Sequence[Tensor]


class GraphvizMissingError(SignDigitsError):
    """Graphviz's ``dot`` program is not installed; the DOT text was written instead."""


def _format_number(value: float) -> str:
    return f"{value:.4g}"


def _name(tensor: Tensor, depth: int = 0) -> str:
    """The tensor's name, or one made from how it was computed, such as ``sub(1, y)``."""
    if tensor.name:
        return tensor.name
    if tensor.creator is None:
        if tensor.requires_grad:
            return "parameter"
        return _format_number(float(tensor.data.reshape(()))) if tensor.size == 1 else "constant"
    if depth >= 2:
        return "…"
    inputs = ", ".join(_name(x, depth + 1) for x in tensor.creator.inputs)
    return f"{tensor.creator.name}({inputs})"


def _value_label(tensor: Tensor) -> str:
    lines = [_name(tensor)]
    if tensor.size == 1:
        value = _format_number(float(tensor.data.reshape(())))
        if value != lines[0]:
            lines.append(f"value {value}")
        if tensor.grad is not None:
            lines.append(f"grad {_format_number(float(np.asarray(tensor.grad).reshape(())))}")
    else:
        lines.append("×".join(map(str, tensor.shape)))
    return "\n".join(lines)


def _kind(tensor: Tensor, outputs: Sequence[Tensor]) -> str:
    if any(tensor is output for output in outputs):
        return "output"
    if tensor.creator is None:
        return "parameter" if tensor.requires_grad else "constant"
    return "value"


def _as_outputs(output: Outputs) -> tuple[Tensor, ...]:
    if isinstance(output, Tensor):
        return (output,)
    if isinstance(output, list | tuple) and output and all(isinstance(t, Tensor) for t in output):
        return tuple(output)
    got = type(output).__name__
    if isinstance(output, list | tuple):
        got = f"a {got} of " + (", ".join(type(t).__name__ for t in output) or "nothing")
    raise InvalidArgumentError(f"to_dot draws a Tensor or a list of Tensors, got {got}")


def _values_in_order(outputs: Sequence[Tensor]) -> list[Tensor]:
    """Every value of the graphs that produced ``outputs``, once, each after its inputs."""
    seen: set[int] = set()
    order = []
    for output in outputs:
        for tensor in topological_order(output):
            if id(tensor) not in seen:
                seen.add(id(tensor))
                order.append(tensor)
    return order


def _legend(
    dot: graphviz.Digraph, kinds: set[str], operations: bool, gradient_of: Tensor | None
) -> None:
    """A box beside the graph: each colour used, the operations, and what grad means (when
    ``gradient_of``, the output backward ran from, is given)."""
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label="Legend", style="rounded", color="gray60", **_FONT)
        names = []
        for kind in ("parameter", "constant", "value", "operation", "output"):
            if kind == "operation":
                if operations:
                    legend.node("legend_operation", "operation", **_OPERATION_STYLE)
                    names.append("legend_operation")
            elif kind in kinds:
                fill, label = KINDS[kind]
                legend.node(f"legend_{kind}", label, fillcolor=fill, **_VALUE_STYLE)
                names.append(f"legend_{kind}")
        notes = "arrows: the forward pass\\l"
        if gradient_of is not None:
            notes += f"grad: ∂{_name(gradient_of)}/∂(that value)\\l"
        legend.node("legend_notes", notes, shape="plaintext")
        names.append("legend_notes")
        for upper, lower in pairwise(names):
            legend.edge(upper, lower, style="invis")


def to_dot(output: Outputs, title: str | None = None) -> str:
    """The Graphviz DOT text of the graph that produced ``output``.

    ``output`` is one Tensor or several (a cost and a prediction); the gradients shown are
    those the last backward left, of the first output when backward ran from it.
    """
    outputs = _as_outputs(output)
    dot = graphviz.Digraph(
        "computational_graph",
        graph_attr={"rankdir": "TB", "nodesep": "0.25", "ranksep": "0.25"},
    )
    if title:
        dot.attr(label=title, labelloc="t", fontsize="16", fontname="Helvetica")
    dot.attr("node", **_FONT)
    dot.attr("edge", arrowsize="0.7")
    kinds, operations = set(), False
    values = _values_in_order(outputs)
    for tensor in values:
        node = f"v{id(tensor)}"
        kind = _kind(tensor, outputs)
        kinds.add(kind)
        dot.node(node, _value_label(tensor), fillcolor=KINDS[kind][0], **_VALUE_STYLE)
        if tensor.creator is not None:
            operations = True
            operation = f"f{id(tensor.creator)}"
            name = tensor.creator.name
            note = _OPERATION_NOTES.get(name, "").format(*map(_name, tensor.creator.inputs))
            dot.node(operation, f"{name}\n{note}" if note else name, **_OPERATION_STYLE)
            for x in tensor.creator.inputs:
                dot.edge(f"v{id(x)}", operation)
            dot.edge(operation, node)
    gradients = any(tensor.grad is not None for tensor in values)
    _legend(dot, kinds, operations, outputs[0] if gradients else None)
    return dot.source


def render(output: Outputs, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Draw the graph of ``output`` (one Tensor or several) to ``path``; the format follows
    its suffix.

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


def _named(tensor: Tensor, name: str) -> Tensor:
    tensor.name = name
    return tensor


def hypot_example(a: float = 3.0, b: float = 4.0) -> Tensor:
    """The tutorial's first graph, c = √(a² + b²), after backward: ∂c/∂a = a/c, ∂c/∂b = b/c."""
    a_ = Tensor(np.float64(a), requires_grad=True, name="a")
    b_ = Tensor(np.float64(b), requires_grad=True, name="b")
    total = _named(_named(a_**2, "a²") + _named(b_**2, "b²"), "a² + b²")
    c = _named(total.sqrt(), "c")
    c.backward(retain_graph=True)
    return c


def logistic_example(x: np.ndarray, y: np.ndarray) -> tuple[Tensor, Tensor]:
    """The tutorial's logistic regression at its first iteration, features first: the cost,
    after backward, and the prediction ŷ; draw both with ``render((cost, y_head), path)``.

    x (4096, m), y (1, m); w (4096, 1) full of 0.01, b = 0. The cost is computed from z as
    the tutorial computes it (``cross_entropy_loss``), stably::

        z = wᵀx + b,  loss = log(1 + eᶻ) − y·z,  cost = mean(loss)

    which is −y log ŷ − (1 − y) log(1 − ŷ) with ŷ = σ(z), without the log 0 that form takes
    once ŷ rounds to 0 or 1. ŷ = σ(z) is drawn beside it: it is what ``predict`` thresholds
    at 0.5, and it is in the gradient, ∂loss/∂z = σ(z) − y = ŷ − y.
    """
    w = Tensor(np.full((x.shape[0], 1), 0.01), requires_grad=True, name="w")
    b = Tensor(np.zeros(()), requires_grad=True, name="b")
    x_, y_ = Tensor(x, name="x"), Tensor(y, name="y")
    z = _named(_named(_named(w.T, "wᵀ") @ x_, "wᵀx") + b, "z")
    y_head = _named(z.sigmoid(), "ŷ = σ(z)")
    softplus = _named(F.softplus(z), "log(1 + eᶻ)")
    loss = _named(softplus - _named(y_ * z, "y·z"), "loss")
    cost = _named(loss.mean(), "cost")
    cost.backward(retain_graph=True)
    return cost, y_head


def two_layer_example(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """The two-layer network of the tutorial's part 2: 3 tanh units, then a sigmoid unit.
    Returns the cost, after backward, and the prediction ŷ, to be drawn together.

    x (4096, m), y (1, m); W1 (3, 4096) and W2 (1, 3) drawn from N(0, 0.1²), biases 0::

        A1 = tanh(W1 x + b1),  Z2 = W2 A1 + b2,  ŷ = σ(Z2),
        cost = binary_cross_entropy_with_logits(Z2, y) = mean(log(1 + e^Z2) − y·Z2)
    """
    # The sigmoid unit is drawn, as ŷ = σ(Z2) (the tutorial's A2): it is the network's
    # output, the probability of the sign 1 that a prediction thresholds at 0.5, and the
    # title promises it. The cost does not go through it: it is computed from Z2 by
    # binary_cross_entropy_with_logits, the cross-entropy of σ(Z2) in the stable form of
    # part 1 (log(1 + e^Z2) − y·Z2, no log 0 once ŷ rounds to 0 or 1), which is also how
    # PyTorch is used (BCEWithLogitsLoss on the logits, torch.sigmoid to predict). Drawing
    # both shows what the network outputs and what training lowers; hiding the sigmoid
    # inside the loss would leave the learner without the unit that predicts.
    w1 = Tensor(rng.normal(0.0, 0.1, (3, x.shape[0])), requires_grad=True, name="W1")
    b1 = Tensor(np.zeros((3, 1)), requires_grad=True, name="b1")
    w2 = Tensor(rng.normal(0.0, 0.1, (1, 3)), requires_grad=True, name="W2")
    b2 = Tensor(np.zeros((1, 1)), requires_grad=True, name="b2")
    x_, y_ = Tensor(x, name="x"), Tensor(y, name="y")
    z1 = _named(_named(w1 @ x_, "W1·x") + b1, "Z1")
    a1 = _named(z1.tanh(), "A1")
    z2 = _named(_named(w2 @ a1, "W2·A1") + b2, "Z2")
    y_head = _named(z2.sigmoid(), "ŷ = σ(Z2)")
    cost = _named(F.binary_cross_entropy_with_logits(z2, y_), "cost")
    cost.backward(retain_graph=True)
    return cost, y_head
