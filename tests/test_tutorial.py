"""The tutorial's steps (signdigits.tutorial), one by one, and the whole tutorial on the real data.

The steps are checked against their definitions: shapes from the seed tutorial, the
sigmoid and the cost against their formulas, the gradients against central finite
differences of the cost, and gradient descent by the cost going down.
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image
from sklearn.model_selection import train_test_split

from signdigits.data import SignDigits
from signdigits.errors import InvalidArgumentError
from signdigits.tutorial import (
    cross_entropy_loss,
    flatten_and_transpose,
    forward_backward_propagation,
    initialize_weights_and_bias,
    load_zeros_and_ones,
    predict,
    sigmoid,
    split_flatten_transpose,
    update,
)

if TYPE_CHECKING:
    from tests.conftest import CliRun

SPLIT = {"test_size": 0.15, "random_state": 42}
"""The seed tutorial's train/test split."""


@contextmanager
def floating_point_warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings(), np.errstate(over="warn", divide="warn", invalid="warn"):
        warnings.simplefilter("error")
        yield


def textbook_sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def textbook_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    y_head = textbook_sigmoid(z)
    return -y * np.log(y_head) - (1 - y) * np.log(1 - y_head)


# --- The data, as the tutorial prepares it ---------------------------------------------------


@pytest.fixture(scope="module")
def zeros_and_ones(dataset: SignDigits) -> tuple[np.ndarray, np.ndarray]:
    return load_zeros_and_ones(dataset)


@pytest.fixture(scope="module")
def split(
    zeros_and_ones: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, y_train, x_test, y_test, features first."""
    X_train, X_test, Y_train, Y_test = train_test_split(*zeros_and_ones, **SPLIT)
    return (*flatten_and_transpose(X_train, Y_train), *flatten_and_transpose(X_test, Y_test))


def test_load_zeros_and_ones_takes_the_first_205_of_each_sign(
    dataset: SignDigits, zeros_and_ones: tuple[np.ndarray, np.ndarray]
) -> None:
    X, Y = zeros_and_ones
    assert X.shape == (410, 64, 64)
    assert Y.shape == (410, 1)
    assert X.dtype == Y.dtype == np.float64
    np.testing.assert_array_equal(Y.ravel(), np.repeat([0.0, 1.0], 205))
    np.testing.assert_array_equal(X[:205], dataset.images[dataset.labels == 0][:205])
    np.testing.assert_array_equal(X[205:], dataset.images[dataset.labels == 1][:205])


def test_split_and_flatten_give_the_tutorials_shapes(
    zeros_and_ones: tuple[np.ndarray, np.ndarray],
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (4096, 348)
    assert x_test.shape == (4096, 62)
    assert y_train.shape == (1, 348)
    assert y_test.shape == (1, 62)
    X_train, _, Y_train, _ = train_test_split(*zeros_and_ones, **SPLIT)
    np.testing.assert_array_equal(x_train[:, 7], X_train[7].ravel())  # one image per column
    assert y_train[0, 7] == Y_train[7, 0]


def test_split_flatten_transpose_is_the_split_then_the_flatten(
    zeros_and_ones: tuple[np.ndarray, np.ndarray],
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    for ours, expected in zip(split_flatten_transpose(*zeros_and_ones), split, strict=True):
        np.testing.assert_array_equal(ours, expected)


def test_initialize_weights_and_bias() -> None:
    w, b = initialize_weights_and_bias(4096)
    assert w.shape == (4096, 1)
    assert (w == 0.01).all()
    assert b == 0


# --- Sigmoid and cost --------------------------------------------------------------------------


def test_sigmoid_of_zero_is_one_half() -> None:
    assert sigmoid(np.array([0.0]))[0] == 0.5


def test_sigmoid_matches_its_formula() -> None:
    z = np.linspace(-30, 30, 121)
    np.testing.assert_allclose(sigmoid(z), textbook_sigmoid(z), rtol=1e-12)


def test_sigmoid_saturates_without_warnings() -> None:
    z = np.array([-1000.0, -745.0, -50.0, 50.0, 745.0, 1000.0])
    with floating_point_warnings_are_errors():
        y_head = sigmoid(z)
    assert np.isfinite(y_head).all()
    assert ((y_head >= 0) & (y_head <= 1)).all()
    assert y_head[0] == pytest.approx(0.0, abs=1e-300)
    assert y_head[-1] == 1.0


def test_cross_entropy_loss_matches_the_textbook_formula_where_finite() -> None:
    z = np.linspace(-15, 15, 61)
    for label in (0.0, 1.0):
        y = np.full_like(z, label)
        np.testing.assert_allclose(cross_entropy_loss(z, y), textbook_loss(z, y), rtol=1e-7)


def test_cross_entropy_loss_stays_finite_when_the_sigmoid_saturates() -> None:
    z = np.array([1000.0, 1000.0, -1000.0, -1000.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    with floating_point_warnings_are_errors():
        loss = cross_entropy_loss(z, y)
    # Right with certainty costs nothing; wrong costs |z| (the limit of log(1 + e^|z|)).
    np.testing.assert_allclose(loss, [0.0, 1000.0, 1000.0, 0.0], atol=1e-12)


def test_forward_backward_propagation_cost_is_finite_for_huge_z() -> None:
    x = np.array([[100.0, -100.0, 100.0, -100.0], [50.0, -50.0, 50.0, -50.0]])
    y = np.array([[1.0, 1.0, 0.0, 0.0]])
    w = np.full((2, 1), 10.0)  # z = ±1500: σ(z) rounds to exactly 0 or 1
    with floating_point_warnings_are_errors():
        cost, gradients = forward_backward_propagation(w, 0.0, x, y)
    z = (w.T @ x).ravel()
    wrong = np.sign(z) != np.where(y.ravel() == 1, 1, -1)
    assert cost == pytest.approx(np.abs(z)[wrong].sum() / 4)  # two wrong of four
    assert np.isfinite(gradients["derivative_weight"]).all()
    assert np.isfinite(gradients["derivative_bias"])


# --- Gradients against finite differences ------------------------------------------------------


def finite_difference_gradients(
    w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray, step: float = 1e-6
) -> tuple[np.ndarray, float]:
    """Central differences (cost(θ + h) − cost(θ − h)) / 2h, each parameter in turn."""

    def cost(w: np.ndarray, b: float) -> float:
        return forward_backward_propagation(w, b, x, y)[0]

    dw = np.empty_like(w)
    for i in range(w.shape[0]):
        shift = np.zeros_like(w)
        shift[i] = step
        dw[i] = (cost(w + shift, b) - cost(w - shift, b)) / (2 * step)
    db = (cost(w, b + step) - cost(w, b - step)) / (2 * step)
    return dw, db


def assert_gradients_match_finite_differences(
    w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray
) -> None:
    _, gradients = forward_backward_propagation(w, b, x, y)
    dw, db = finite_difference_gradients(w, b, x, y)
    assert gradients["derivative_weight"].shape == w.shape
    np.testing.assert_allclose(gradients["derivative_weight"], dw, rtol=1e-5, atol=1e-9)
    assert gradients["derivative_bias"] == pytest.approx(db, rel=1e-5, abs=1e-9)


def test_gradients_match_finite_differences_on_small_random_data() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 9))
    y = rng.integers(0, 2, size=(1, 9)).astype(np.float64)
    w = rng.normal(size=(6, 1))
    assert_gradients_match_finite_differences(w, 0.3, x, y)


def test_gradients_match_finite_differences_on_real_images(
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, y_train, _, _ = split
    x, y = x_train[1000:1300, :60], y_train[:, :60]  # 300 pixels of 60 images
    assert 0 < y.mean() < 1  # both signs
    w = np.random.default_rng(3).normal(scale=0.05, size=(300, 1))
    assert_gradients_match_finite_differences(w, -0.1, x, y)


# --- Predict and gradient descent -------------------------------------------------------------


def test_predict_is_one_exactly_where_y_head_exceeds_one_half() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 200))
    w = rng.normal(size=(4, 1))
    b = 0.2
    y_head = textbook_sigmoid(w.T @ x + b)

    prediction = predict(w, b, x)

    assert prediction.shape == (1, 200)
    np.testing.assert_array_equal(prediction, np.where(y_head > 0.5, 1.0, 0.0))
    assert set(np.unique(prediction)) == {0.0, 1.0}  # both branches taken


def test_predict_gives_zero_at_exactly_one_half() -> None:
    x = np.zeros((3, 2))
    assert (predict(np.ones((3, 1)), 0.0, x) == 0).all()


def test_update_decreases_the_cost() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(size=(5, 40))
    y = (rng.normal(size=(1, 5)) @ x > 0).astype(np.float64)
    w, b = initialize_weights_and_bias(5)

    parameters, _, cost_list = update(w, b, x, y, learning_rate=0.1, number_of_iterations=30)

    assert len(cost_list) == 30
    assert (np.diff(cost_list) < 0).all()
    assert cost_list[0] == forward_backward_propagation(w, b, x, y)[0]
    final_cost = forward_backward_propagation(parameters["weight"], parameters["bias"], x, y)[0]
    assert final_cost < cost_list[-1]


@pytest.mark.parametrize(
    ("learning_rate", "iterations", "named"),
    [
        (0.0, 10, "learning rate"),
        (-0.01, 10, "learning rate"),
        (float("nan"), 10, "learning rate"),
        (float("inf"), 10, "learning rate"),
        (0.01, 0, "iterations"),
        (0.01, -5, "iterations"),
    ],
)
def test_update_refuses_bad_hyperparameters(
    learning_rate: float, iterations: int, named: str
) -> None:
    w, b = initialize_weights_and_bias(3)
    x, y = np.ones((3, 4)), np.ones((1, 4))
    with pytest.raises(InvalidArgumentError, match=named):
        update(w, b, x, y, learning_rate, iterations)


# --- The whole tutorial, through the command line --------------------------------------------


@pytest.fixture(scope="module")
def tutorial_run(
    dataset: SignDigits,  # decoded once, so the run below finds the decoded cache
    dataset_source: Any,
    tmp_path_factory: pytest.TempPathFactory,
    run_cli: Callable[..., CliRun],
) -> tuple[CliRun, Path]:
    out = tmp_path_factory.mktemp("tutorial") / "results"
    run = run_cli(
        "tutorial", "--data", dataset_source.path, "--out", out, "--quiet", env={"COLUMNS": "200"}
    )
    assert run.returncode == 0, run.stderr
    return run, out


def printed_costs(stdout: str) -> dict[int, float]:
    found = re.findall(r"Cost after iteration (\d+): ([0-9.]+)", stdout)
    return {int(i): float(cost) for i, cost in found}


def test_tutorial_prints_its_steps(tutorial_run: tuple[CliRun, Path]) -> None:
    stdout = tutorial_run[0].stdout
    for line in ("X shape: (410, 64, 64)", "Y shape: (410, 1)", "x train: (4096, 348)"):
        assert line in stdout
    assert "x test: (4096, 62)" in stdout
    assert list(printed_costs(stdout)) == list(range(0, 150, 10))


def test_tutorial_cost_goes_down(
    tutorial_run: tuple[CliRun, Path],
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    run, out = tutorial_run
    costs = printed_costs(run.stdout)
    x_train, y_train, _, _ = split
    w, b = initialize_weights_and_bias(4096)
    initial_cost = forward_backward_propagation(w, b, x_train, y_train)[0]
    metrics = json.loads((out / "metrics.json").read_text())

    assert costs[0] == pytest.approx(initial_cost, abs=1e-6)
    assert (np.diff(list(costs.values())) < 0).all()
    assert metrics["final_cost"] < costs[140] < initial_cost


def test_gradient_descent_on_the_real_split_lowers_every_cost(
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> None:
    x_train, y_train, _, _ = split
    w, b = initialize_weights_and_bias(4096)
    _, _, cost_list = update(w, b, x_train, y_train, 0.01, 150)
    assert cost_list[-1] < cost_list[0]
    assert (np.diff(cost_list) < 0).all()


def test_tutorial_metrics(tutorial_run: tuple[CliRun, Path]) -> None:
    metrics = json.loads((tutorial_run[1] / "metrics.json").read_text())

    assert metrics["model"] == "logistic_regression"
    assert metrics["classes"] == [0, 1]
    assert (metrics["n_train"], metrics["n_test"]) == (348, 62)
    assert metrics["seed"] == 42
    assert metrics["seconds"] > 0
    for result in (metrics, metrics["sklearn"]):
        assert 0 <= result["train_accuracy"] <= 1
        assert 0 <= result["test_accuracy"] <= 1
        assert result["seconds"] > 0
    assert metrics["test_accuracy"] >= 0.90


@pytest.mark.parametrize("figure", ["cost_curve.png", "weights.png", "samples.png"])
def test_tutorial_figures_are_readable_pngs(figure: str, tutorial_run: tuple[CliRun, Path]) -> None:
    path = tutorial_run[1] / figure
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert min(image.size) > 100
    assert path.name in tutorial_run[0].stdout
