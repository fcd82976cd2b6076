"""Pictures of the computational graph: DOT text, rendered files and `signdigits graph`."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from signdigits.autograd import Tensor
from signdigits.errors import InvalidArgumentError
from signdigits.graph import GraphvizMissingError, hypot_example, render, to_dot

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


@pytest.mark.parametrize("example", ["hypot", "logistic", "two-layer"])
def test_cli_draws_each_example(example, tmp_path, graphviz_dot, dataset_source, run_cli):
    out = tmp_path / f"{example}.png"
    result = run_cli(
        "graph",
        "--example",
        example,
        "--out",
        out,
        env={"SIGNDIGITS_DATA": str(dataset_source.path)},
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_cli_without_graphviz_exits_2_with_one_line(tmp_path, run_cli):
    env = {"PATH": str(tmp_path / "empty")}
    result = run_cli("graph", "--example", "hypot", "--out", tmp_path / "g.png", env=env)
    assert "Graphviz" in result.error_line()
    assert (tmp_path / "g.dot").is_file()


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--example", "three-layer"], "three-layer"), (["--out", "{tmp}/graph.gif"], "graph.gif")],
)
def test_cli_bad_graph_arguments_exit_2(args, says, tmp_path, run_cli):
    result = run_cli("graph", *(arg.format(tmp=tmp_path) for arg in args))
    assert says in result.error_line()
    assert not (tmp_path / "graph.gif").exists()
