"""Pictures of the computational graph: DOT text, rendered files and `signdigits graph`.

The command's contract is checked in this process (``invoke_cli``); one run in a
process of its own is the smoke test of the real command with Graphviz.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

from signdigits.autograd import Tensor
from signdigits.errors import InvalidArgumentError
from signdigits.graph import GraphvizMissingError, hypot_example, render, to_dot
from tests.reference import torch_cost_and_gradients

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
    assert dot.count("->") == 9


def test_shared_value_is_drawn_once():
    x = Tensor(2.0, requires_grad=True, name="x")
    y = x * x + x
    dot = to_dot(y)
    assert dot.count("shape=box") == 3  # x, x·x and y: x is drawn once though used thrice
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
    assert f"grad {bias_gradient:.4g}</text>" in svg


def test_cli_draws_the_two_layer_graph(tmp_path, graphviz_dot, dataset, dataset_source, invoke_cli):
    """3 tanh units over the 4,096 pixels of the 348 training images, then a sigmoid unit."""
    out = tmp_path / "two-layer.svg"
    data = {"SIGNDIGITS_DATA": str(dataset_source.path)}
    result = invoke_cli("graph", "--example", "two-layer", "--out", out, "--quiet", env=data)
    assert result.returncode == 0, result.stderr
    svg = out.read_text()
    for text in ("W1", "3×4096", "4096×348", "tanh", "W2", "1×3", "cost"):
        assert f">{text}</text>" in svg


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
