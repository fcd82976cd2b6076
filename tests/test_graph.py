"""Pictures of the computational graph: DOT text, rendered files and `signdigits graph`.

The command's contract is checked in this process (``invoke_cli``); one run in a
process of its own is the smoke test of the real command with Graphviz.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

from signdigits import tutorial
from signdigits.autograd import Tensor
from signdigits.errors import InvalidArgumentError
from signdigits.graph import (
    KINDS,
    OPERATION_FILL,
    GraphvizMissingError,
    hypot_example,
    logistic_example,
    render,
    to_dot,
    two_layer_example,
)
from tests.reference import torch_cost_and_gradients

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

TITLES = {
    "hypot": "c = √(a² + b²)",
    "logistic": "Logistic regression, first iteration (348 training images)",
    "two-layer": "Two-layer network: 3 tanh units, then a sigmoid unit",
}
"""The titles `signdigits graph` gives each example."""

NAMES = {
    "hypot": {"a", "b", "a²", "b²", "a² + b²", "c"},
    "logistic": {"w", "wᵀ", "x", "wᵀx", "b", "z", "ŷ = σ(z)", "y", "log(1 + eᶻ)", "y·z", "loss"}
    | {"cost"},
    "two-layer": {"W1", "x", "W1·x", "b1", "Z1", "A1", "W2", "W2·A1", "b2", "Z2", "ŷ = σ(Z2)"}
    | {"y", "cost"},
}
"""The name of every value each example draws: nothing is left to show only its shape."""

README_WIDTH = 1200
"""The widest picture a README shows at 100 % zoom without shrinking its text."""


def training_like_data(m: int = 348, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x (4096, m) in [0, 1] and y (1, m) of 0 and 1: the tutorial's shapes, made up."""
    rng = np.random.default_rng(seed)
    return rng.random((4096, m)), rng.integers(0, 2, (1, m)).astype(np.float64)


def examples() -> dict[str, tuple[Tensor, ...]]:
    """Each example's outputs, as `signdigits graph` draws them, on made-up data."""
    x, y = training_like_data()
    return {
        "hypot": (hypot_example(),),
        "logistic": logistic_example(x, y),
        "two-layer": two_layer_example(x, y, np.random.default_rng(42)),
    }


_STATEMENT = re.compile(r"^\t+(\w+) \[(.*?)\]$", re.M | re.S)
_ATTRIBUTE = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')


def dot_nodes(dot: str) -> dict[str, dict[str, str]]:
    """Every node statement of DOT text: its id and its attributes (``\\l`` as a newline)."""
    nodes = {}
    for node, attributes in _STATEMENT.findall(dot):
        if node in ("graph", "node", "edge"):
            continue
        nodes[node] = {
            key: (quoted or bare).replace("\\l", "\n").strip()
            for key, quoted, bare in _ATTRIBUTE.findall(attributes)
        }
    return nodes


def drawn_edges(dot: str) -> list[tuple[str, str]]:
    """The visible arrows of DOT text (the legend's invisible ones left out)."""
    return re.findall(r"^\t+(\w+) -> (\w+)$", dot, re.M)


def values(outputs: tuple[Tensor, ...]) -> list[Tensor]:
    """Every value of the graph of ``outputs``, once."""
    from signdigits.autograd.tensor import topological_order

    seen: dict[int, Tensor] = {}
    for output in outputs:
        for tensor in topological_order(output):
            seen.setdefault(id(tensor), tensor)
    return list(seen.values())


def operations(outputs: tuple[Tensor, ...]) -> Counter[str]:
    return Counter(t.creator.name for t in values(outputs) if t.creator is not None)


@pytest.fixture
def graphviz_dot() -> str:
    """Graphviz's `dot` program: CI installs it, so there it must be found."""
    path = shutil.which("dot")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Graphviz's dot must be installed under CI")
        pytest.skip("Graphviz's dot is not installed")
    return path


def test_hypot_graph_has_values_gradients_and_operations():
    c = hypot_example(3.0, 4.0)
    assert c.item() == pytest.approx(5.0)
    dot = to_dot(c, title="c = √(a² + b²)")
    for text in ("value 3", "grad 0.6", "value 4", "grad 0.8", "value 25", "value 5"):
        assert text in dot
    assert dot.count("label=pow") == 2
    assert "label=add" in dot and "label=sqrt" in dot
    # a → pow → a², b → pow → b², a² → add, b² → add → a² + b² → sqrt → c: 9 edges.
    assert len(drawn_edges(dot)) == 9


def test_shared_value_is_drawn_once():
    x = Tensor(2.0, requires_grad=True, name="x")
    y = x * x + x
    dot = to_dot(y)
    drawn = [n for n, a in dot_nodes(dot).items() if not n.startswith("legend_")]
    assert sum(n.startswith("v") for n in drawn) == 3  # x, x·x and y: x is drawn once
    assert dot.count("label=mul") == 1 and dot.count("label=add") == 1
    # x feeds mul twice and add once: one arrow for each use.
    x_node = f"v{id(x)}"
    assert dot.count(f"{x_node} ->") == 3


def test_matrix_values_show_their_shape():
    w = Tensor(np.zeros((3, 2)), requires_grad=True, name="W")
    dot = to_dot((w @ Tensor(np.ones((2, 5)))).sum())
    assert "W\n3×2" in dot or "W\\n3×2" in dot
    assert "3×5" in dot


def test_render_png_with_graphviz(tmp_path, graphviz_dot):
    path = render(hypot_example(), tmp_path / "hypot.png")
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        assert image.width > 200 and image.height > 50


def test_render_svg_and_dot(tmp_path, graphviz_dot):
    svg = render(hypot_example(), tmp_path / "hypot.svg").read_text()
    assert "<svg" in svg and "sqrt" in svg
    dot = render(hypot_example(), tmp_path / "hypot.dot").read_text()
    assert dot.startswith("digraph")


def test_render_without_graphviz_writes_dot_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GraphvizMissingError, match="install Graphviz"):
        render(hypot_example(), tmp_path / "hypot.png")
    assert (tmp_path / "hypot.dot").read_text().startswith("digraph")
    assert not (tmp_path / "hypot.png").exists()


def test_render_rejects_unknown_format(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"\.png"):
        render(hypot_example(), tmp_path / "graph.jpeg")


def test_cli_draws_a_png_in_a_process_of_its_own(tmp_path, graphviz_dot, run_cli):
    out = tmp_path / "hypot.png"
    result = run_cli("graph", "--example", "hypot", "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    assert str(out) in result.stdout


def test_cli_draws_the_logistic_graph_with_the_reference_cost_and_gradient(
    tmp_path, graphviz_dot, dataset, dataset_source, invoke_cli
):
    """The first iteration on the tutorial's 348 training images, drawn as SVG (its text
    is searchable): the cost and ∂cost/∂b shown are PyTorch's on the same images."""
    out = tmp_path / "logistic.svg"
    data = {"SIGNDIGITS_DATA": str(dataset_source.path)}
    result = invoke_cli("graph", "--example", "logistic", "--out", out, "--quiet", env=data)
    assert result.returncode == 0, result.stderr
    svg = out.read_text()

    first = np.concatenate([np.flatnonzero(dataset.labels == d)[:205] for d in (0, 1)])
    images, labels = dataset.images[first].astype(np.float64), dataset.labels[first]
    train_images, _, train_labels, _ = train_test_split(
        images, labels, test_size=0.15, random_state=42
    )
    x = train_images.reshape(len(train_images), -1).T
    cost, _, bias_gradient = torch_cost_and_gradients(
        np.full((4096, 1), 0.01), 0.0, x, train_labels[None, :].astype(np.float64)
    )

    assert "<svg" in svg and "4096×348" in svg
    assert f"value {cost:.4g}</text>" in svg  # 6.233, the tutorial's first cost
    assert f"value {cost:.4g}" == "value 6.233"
    assert f"grad {bias_gradient:.4g}</text>" in svg
    # The stable form the tutorial computes, log(1 + eᶻ) − y·z, not log ŷ and log(1 − ŷ).
    assert ">softplus</text>" in svg and ">log</text>" not in svg


def test_cli_draws_the_two_layer_graph(tmp_path, graphviz_dot, dataset, dataset_source, invoke_cli):
    """3 tanh units over the 4,096 pixels of the 348 training images, then a sigmoid unit:
    the title says so, and the sigmoid node is drawn."""
    out = tmp_path / "two-layer.svg"
    data = {"SIGNDIGITS_DATA": str(dataset_source.path)}
    result = invoke_cli("graph", "--example", "two-layer", "--out", out, "--quiet", env=data)
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    assert "then a sigmoid unit" in svg
    for text in ("W1", "3×4096", "4096×348", "tanh", "W2", "1×3", "sigmoid", "ŷ = σ(Z2)", "cost"):
        assert f">{text}</text>" in svg


@pytest.mark.parametrize("example", ["hypot", "logistic", "two-layer"])
def test_cli_pictures_fit_a_readme_at_full_size(
    example, tmp_path, graphviz_dot, dataset_source, invoke_cli
):
    """Top to bottom, no wider than a README shows unshrunk, and neither a strip nor a
    tower (they were 2,684 × 240 and 1,929 × 240 pixels, unreadable once shrunk)."""
    out = tmp_path / f"{example}.png"
    data = {"SIGNDIGITS_DATA": str(dataset_source.path)}
    result = invoke_cli("graph", "--example", example, "--out", out, "--quiet", env=data)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        width, height = image.size
    assert 300 <= width <= README_WIDTH
    assert 0.5 <= width / height <= 2.0, (width, height)


def test_cli_without_graphviz_exits_2_with_one_line(tmp_path, invoke_cli):
    env = {"PATH": str(tmp_path / "empty")}
    result = invoke_cli("graph", "--example", "hypot", "--out", tmp_path / "g.png", env=env)
    assert "Graphviz" in result.error_line()
    assert (tmp_path / "g.dot").is_file()


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--example", "three-layer"], "three-layer"), (["--out", "{tmp}/graph.gif"], "graph.gif")],
)
def test_cli_bad_graph_arguments_exit_2(args, says, tmp_path, invoke_cli):
    result = invoke_cli("graph", *(arg.format(tmp=tmp_path) for arg in args))
    assert says in result.error_line()
    assert not (tmp_path / "graph.gif").exists()


# Layout, legend and names, on made-up data of the tutorial's shapes ----------------------


@pytest.mark.parametrize("example", ["hypot", "logistic", "two-layer"])
def test_graphs_are_drawn_top_to_bottom_at_a_readable_size(example, tmp_path, graphviz_dot):
    outputs = examples()[example]
    assert "rankdir=TB" in to_dot(outputs, TITLES[example])
    with Image.open(render(outputs, tmp_path / "graph.png", TITLES[example])) as image:
        width, height = image.size
    assert width <= README_WIDTH
    assert 0.5 <= width / height <= 2.0, (width, height)


@pytest.mark.parametrize("example", ["hypot", "logistic", "two-layer"])
def test_a_legend_names_every_colour_drawn(example):
    outputs = examples()[example]
    dot = to_dot(outputs, TITLES[example])
    assert "subgraph cluster_legend {" in dot
    nodes = dot_nodes(dot)
    legend = {node: a for node, a in nodes.items() if node.startswith("legend_")}
    drawn = {node: a for node, a in nodes.items() if not node.startswith("legend_")}
    legend_colours = {a["fillcolor"]: a["label"] for a in legend.values() if "fillcolor" in a}
    for attributes in drawn.values():
        assert attributes["fillcolor"] in legend_colours, attributes
    assert legend_colours[OPERATION_FILL] == "operation"
    assert legend_colours[KINDS["parameter"][0]] == "parameter (learned)"
    assert legend_colours[KINDS["output"][0]] == "output"
    if example != "hypot":  # the images and labels
        assert legend_colours[KINDS["constant"][0]] == "input or constant"
    output_name = outputs[0].name
    assert f"grad: ∂{output_name}/∂(that value)" in legend["legend_notes"]["label"]
    # The legend's entries are stacked by invisible arrows only: none is drawn.
    assert all(not node.startswith("legend_") for edge in drawn_edges(dot) for node in edge)


@pytest.mark.parametrize("example", ["hypot", "logistic", "two-layer"])
def test_every_value_drawn_has_a_name(example):
    outputs = examples()[example]
    assert {t.name for t in values(outputs)} == NAMES[example]
    nodes = dot_nodes(to_dot(outputs))
    for tensor in values(outputs):
        assert nodes[f"v{id(tensor)}"]["label"].split("\n")[0] == tensor.name


def test_an_unnamed_value_is_named_by_how_it_was_computed():
    """The old logistic graph had a box that said only "1×348": an unnamed value is now
    named after its operation and inputs, and an unnamed constant by its value."""
    y_head = Tensor(np.full((1, 348), 0.5), requires_grad=True, name="ŷ")
    labels = {
        a["label"]
        for node, a in dot_nodes(to_dot((1 - y_head).log().mean())).items()
        if node.startswith("v")
    }
    assert {"1", "ŷ\n1×348", "sub(1, ŷ)\n1×348", "log(sub(1, ŷ))\n1×348"} <= labels
    assert "mean(log(…))\nvalue -0.6931" in labels  # two levels deep, then …
    w = Tensor(np.ones(3), requires_grad=True)
    assert {a["label"] for a in dot_nodes(to_dot(w * np.ones(3))).values()} >= {
        "parameter\n3",
        "constant\n3",
        "mul(parameter, constant)\n3",
    }


def test_several_outputs_are_drawn_in_one_picture_in_the_output_colour():
    a = Tensor(2.0, requires_grad=True, name="a")
    square, double = a * a, a * 2.0
    square.name, double.name = "a²", "2a"
    nodes = dot_nodes(to_dot([square, double]))
    fills = {a["label"].split("\n")[0]: a["fillcolor"] for n, a in nodes.items() if n[0] == "v"}
    assert fills["a²"] == fills["2a"] == KINDS["output"][0]
    assert fills["a"] == KINDS["parameter"][0]


@pytest.mark.parametrize("bad", [[], [1.0], "cost", np.zeros(3)])
def test_to_dot_refuses_what_is_not_tensors(bad):
    with pytest.raises(InvalidArgumentError, match="Tensor"):
        to_dot(bad)


# What the examples compute ---------------------------------------------------------------


def test_logistic_graph_computes_the_cost_as_the_tutorial_does():
    """cost = mean(log(1 + eᶻ) − y·z), the tutorial's stable form: the same cost and
    gradients as ``forward_backward_propagation``, and no log of ŷ anywhere."""
    x, y = training_like_data()
    cost, y_head = logistic_example(x, y)
    w = np.full((4096, 1), 0.01)
    expected_cost, gradients = tutorial.forward_backward_propagation(w, 0.0, x, y)
    assert cost.item() == pytest.approx(expected_cost, rel=1e-12)
    parameters = {t.name: t for t in values((cost,)) if t.creator is None}
    np.testing.assert_allclose(parameters["w"].grad, gradients["derivative_weight"], rtol=1e-10)
    assert float(parameters["b"].grad) == pytest.approx(gradients["derivative_bias"], rel=1e-10)
    np.testing.assert_allclose(y_head.data, tutorial.sigmoid(w.T @ x), rtol=1e-12)
    assert operations((cost, y_head)) == Counter(
        ["transpose", "matmul", "add", "sigmoid", "softplus", "mul", "sub", "mean"]
    )
    # ŷ is the prediction beside the cost: the cost does not go through it.
    assert all(t is not y_head for t in values((cost,)))


def test_logistic_graph_cost_stays_finite_where_the_sigmoid_saturates():
    """z = ±1024: σ(z) rounds to 1 or 0 and log(1 − ŷ) would be −inf; the drawn cost is
    the tutorial's, finite."""
    x = np.full((4096, 2), 25.0) * np.array([1.0, -1.0])  # z = 0.01 · 4096 · (±25)
    y = np.array([[0.0, 1.0]])
    cost, y_head = logistic_example(x, y)
    assert set(y_head.data.ravel()) == {0.0, 1.0}
    expected, _ = tutorial.forward_backward_propagation(np.full((4096, 1), 0.01), 0.0, x, y)
    assert np.isfinite(cost.item()) and cost.item() == pytest.approx(expected)
    assert cost.item() == pytest.approx(1024.0)  # each image's loss is |z| = 1024


def test_two_layer_graph_draws_its_sigmoid_unit_beside_a_stable_cost():
    x, y = training_like_data()
    cost, y_head = two_layer_example(x, y, np.random.default_rng(42))
    named = {t.name: t for t in values((cost, y_head))}
    z2 = named["Z2"]
    assert y_head.creator.name == "sigmoid" and y_head.creator.inputs == (z2,)
    assert cost.creator.name == "binary_cross_entropy_with_logits"
    assert cost.creator.inputs == (z2, named["y"])
    # The cross-entropy of ŷ = σ(Z2), computed from Z2 without a log of ŷ.
    p = y_head.data
    textbook = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert cost.item() == pytest.approx(textbook, rel=1e-12)
    assert operations((cost, y_head)) == Counter(
        {"matmul": 2, "add": 2, "tanh": 1, "sigmoid": 1, "binary_cross_entropy_with_logits": 1}
    )
    dot = to_dot((cost, y_head), TITLES["two-layer"])
    sigmoid = f"f{id(y_head.creator)}"
    assert (f"v{id(z2)}", sigmoid) in drawn_edges(dot)
    assert (sigmoid, f"v{id(y_head)}") in drawn_edges(dot)
    nodes = dot_nodes(dot)
    assert nodes[f"v{id(y_head)}"]["fillcolor"] == KINDS["output"][0]
    assert nodes[f"f{id(cost.creator)}"]["label"] == (
        "binary_cross_entropy_with_logits\nmean(log(1 + eᶻ) − y·z), z = Z2"
    )
