"""The tutorial's steps (signdigits.tutorial), one by one, and the whole tutorial on the real data.

Each step is checked against a reference that is not signdigits: scikit-learn for the
split, the prediction and the minimum that gradient descent approaches, SciPy's
``expit`` for the sigmoid, PyTorch (``tests.reference``) for the cost and its
gradients, and values worked out by hand. The whole tutorial must give the README's
numbers exactly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from signdigits.cli import main
from signdigits.data import SignDigits
from signdigits.data.sources import DataSource
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
    train_test_indices,
    update,
)
from tests.conftest import CliRun
from tests.reference import torch_cost_and_gradients, torch_losses

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@contextmanager
def floating_point_warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings(), np.errstate(over="warn", divide="warn", invalid="warn"):
        warnings.simplefilter("error")
        yield


# --- The data, as the tutorial prepares it ---------------------------------------------------


@pytest.fixture(scope="module")
def zeros_and_ones(dataset: SignDigits) -> tuple[np.ndarray, np.ndarray]:
    return load_zeros_and_ones(dataset)


@pytest.fixture(scope="module")
def split(zeros_and_ones: tuple[np.ndarray, np.ndarray]) -> Split:
    """x_train, y_train, x_test, y_test, features first, as the tutorial makes them."""
    return split_flatten_transpose(*zeros_and_ones)


@pytest.fixture(scope="module")
def split_indices() -> tuple[np.ndarray, np.ndarray]:
    """The rows of X that scikit-learn's split (test_size 0.15, random_state 42) puts in
    the training and the test set: the reference for the tutorial's split."""
    train, test = train_test_split(np.arange(410), test_size=0.15, random_state=42)
    return train, test


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


def test_flatten_and_transpose_on_paper() -> None:
    """Two 2×2 images become two columns, each image read row by row."""
    X = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    Y = np.array([[0.0], [1.0]])

    x, y = flatten_and_transpose(X, Y)

    np.testing.assert_array_equal(x, [[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]])
    np.testing.assert_array_equal(y, [[0.0, 1.0]])


def test_the_split_is_scikit_learns_with_one_image_per_column(
    zeros_and_ones: tuple[np.ndarray, np.ndarray],
    split: Split,
    split_indices: tuple[np.ndarray, np.ndarray],
) -> None:
    X, Y = zeros_and_ones
    x_train, y_train, x_test, y_test = split
    assert x_train.shape == (4096, 348)
    assert x_test.shape == (4096, 62)
    assert y_train.shape == (1, 348)
    assert y_test.shape == (1, 62)
    for x, y, rows in ((x_train, y_train, split_indices[0]), (x_test, y_test, split_indices[1])):
        # Column j is image rows[j], pixel (r, c) at row 64 r + c; y[0, j] is its label.
        np.testing.assert_array_equal(x.T.reshape(-1, 64, 64), X[rows])
        np.testing.assert_array_equal(y[0], Y[rows, 0])
    assert x_train[64 * 10 + 20, 7] == X[split_indices[0][7], 10, 20]


def test_initialize_weights_and_bias() -> None:
    w, b = initialize_weights_and_bias(4096)
    assert w.shape == (4096, 1)
    assert (w == 0.01).all()
    assert b == 0


# --- Sigmoid and cost --------------------------------------------------------------------------


def test_sigmoid_of_zero_is_one_half() -> None:
    assert sigmoid(np.array([0.0]))[0] == 0.5


def test_sigmoid_agrees_with_scipys_expit() -> None:
    z = np.linspace(-700, 700, 1401)
    np.testing.assert_allclose(sigmoid(z), expit(z), rtol=1e-12, atol=0)


def test_sigmoid_saturates_without_warnings() -> None:
    z = np.array([-1000.0, -745.0, -50.0, 50.0, 745.0, 1000.0])
    with floating_point_warnings_are_errors():
        y_head = sigmoid(z)
    assert np.isfinite(y_head).all()
    assert ((y_head >= 0) & (y_head <= 1)).all()
    assert y_head[0] == pytest.approx(0.0, abs=1e-300)
    assert y_head[-1] == 1.0


def test_cross_entropy_loss_agrees_with_torch() -> None:
    """Against ``binary_cross_entropy_with_logits``. A right and confident answer costs
    about e^-|z|, which log(1 + e^z) − y z computes as a difference of two numbers near
    |z|: hence the absolute tolerance of a few ulps of |z|."""
    z = np.linspace(-40, 40, 161)
    for label in (0.0, 1.0):
        y = np.full_like(z, label)
        np.testing.assert_allclose(
            cross_entropy_loss(z, y), torch_losses(z, y), rtol=1e-12, atol=1e-13
        )


def test_cross_entropy_loss_stays_finite_when_the_sigmoid_saturates() -> None:
    z = np.array([1000.0, 1000.0, -1000.0, -1000.0])
    y = np.array([1.0, 0.0, 1.0, 0.0])
    with floating_point_warnings_are_errors():
        loss = cross_entropy_loss(z, y)
    # Right with certainty costs nothing; wrong costs |z| (the limit of log(1 + e^|z|)).
    np.testing.assert_allclose(loss, [0.0, 1000.0, 1000.0, 0.0], atol=1e-12)


def test_forward_backward_propagation_for_huge_z_on_paper() -> None:
    """z = 10·(±100) + 10·(±50) = ±1500, so σ(z) is exactly 0 or 1.

    z = (1500, −1500, 1500, −1500) against y = (1, 1, 0, 0): the second and the third
    are wrong and cost |z| each, so the cost is 2 · 1500 / 4 = 750. ŷ − y = (0, −1, 1, 0),
    so dw = x (ŷ − y)ᵀ / 4 = (200/4, 100/4) = (50, 25) and db = 0.
    """
    x = np.array([[100.0, -100.0, 100.0, -100.0], [50.0, -50.0, 50.0, -50.0]])
    y = np.array([[1.0, 1.0, 0.0, 0.0]])
    w = np.full((2, 1), 10.0)
    with floating_point_warnings_are_errors():
        cost, gradients = forward_backward_propagation(w, 0.0, x, y)
    assert cost == 750.0
    np.testing.assert_array_equal(gradients["derivative_weight"], [[50.0], [25.0]])
    assert gradients["derivative_bias"] == 0.0


# --- Cost and gradients against PyTorch's autograd ------------------------------------------


def assert_agrees_with_torch(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> None:
    cost, gradients = forward_backward_propagation(w, b, x, y)
    torch_cost, torch_dw, torch_db = torch_cost_and_gradients(w, b, x, y)
    assert gradients["derivative_weight"].shape == w.shape
    assert cost == pytest.approx(torch_cost, rel=1e-12)
    scale = np.abs(torch_dw).max()
    np.testing.assert_allclose(gradients["derivative_weight"], torch_dw, rtol=0, atol=1e-12 * scale)
    assert gradients["derivative_bias"] == pytest.approx(torch_db, rel=1e-12, abs=1e-15)


def test_cost_and_gradients_agree_with_torch_on_small_random_data() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 9))
    y = rng.integers(0, 2, size=(1, 9)).astype(np.float64)
    assert 0 < y.mean() < 1
    assert_agrees_with_torch(rng.normal(size=(6, 1)), 0.3, x, y)


@pytest.mark.parametrize("start", ["tutorial", "random"])
def test_cost_and_gradients_agree_with_torch_on_the_training_images(
    split: Split, start: str
) -> None:
    x_train, y_train, _, _ = split
    if start == "tutorial":  # every weight equal, as the tutorial starts
        w, b = initialize_weights_and_bias(4096)
    else:  # weights that differ, so that a gradient with its columns mixed up would show
        w, b = np.random.default_rng(3).normal(scale=0.05, size=(4096, 1)), -0.1
    assert_agrees_with_torch(w, b, x_train, y_train)


# --- Predict and gradient descent -------------------------------------------------------------


def test_predict_agrees_with_scikit_learns_logistic_regression() -> None:
    """The same w and b given to scikit-learn's LogisticRegression predict the same classes."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 200))
    w = rng.normal(size=(4, 1))
    b = 0.2
    model = LogisticRegression()
    model.coef_, model.intercept_, model.classes_ = w.T, np.array([b]), np.array([0.0, 1.0])

    prediction = predict(w, b, x)

    assert prediction.shape == (1, 200)
    np.testing.assert_array_equal(prediction[0], model.predict(x.T))
    assert set(np.unique(prediction)) == {0.0, 1.0}  # both branches taken


def test_predict_gives_zero_at_exactly_one_half() -> None:
    x = np.zeros((3, 2))
    assert (predict(np.ones((3, 1)), 0.0, x) == 0).all()


def test_update_steps_along_torchs_gradient_to_scikit_learns_minimum() -> None:
    """Labels drawn at random from a logistic model, so no plane separates them and the
    unpenalised cost has one minimum: scikit-learn's LogisticRegression(C=∞) finds it,
    and gradient descent must reach it, every step lowering the cost."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 300))
    probability = expit(np.array([[1.5, -2.0, 0.5]]) @ x + 0.3)
    y = (rng.random((1, 300)) < probability).astype(np.float64)
    w, b = initialize_weights_and_bias(3)

    one_step, _, first_costs = update(w, b, x, y, learning_rate=1.0, number_of_iterations=1)
    parameters, _, cost_list = update(w, b, x, y, learning_rate=1.0, number_of_iterations=500)

    initial_cost, dw, db = torch_cost_and_gradients(w, b, x, y)
    assert first_costs == [pytest.approx(initial_cost, rel=1e-12)]
    np.testing.assert_allclose(one_step["weight"], w - dw, rtol=1e-12)
    assert one_step["bias"] == pytest.approx(b - db, rel=1e-12)

    assert len(cost_list) == 500
    assert (np.diff(cost_list) < 0).all()
    best = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x.T, y.ravel())
    np.testing.assert_allclose(parameters["weight"].ravel(), best.coef_.ravel(), atol=1e-5)
    assert parameters["bias"] == pytest.approx(best.intercept_[0], abs=1e-5)
    best_cost = log_loss(y.ravel(), best.predict_proba(x.T)[:, 1])
    assert cost_list[-1] == pytest.approx(best_cost, abs=1e-9)


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
    dataset_source: DataSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[CliRun, Path]:
    """``signdigits tutorial`` with the defaults, once for the module, in this process.

    (``invoke_cli`` is per test; this is ``cli.main`` with its output captured the same
    way, without ``--quiet``, which would hide the steps. ``run_cli``'s smoke tests of a
    real process are in test_cli.)
    """
    out = tmp_path_factory.mktemp("tutorial") / "results"
    args = ("tutorial", "--data", str(dataset_source.path), "--out", str(out))
    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        patch.setenv("COLUMNS", "200")
        returncode = main(list(args))
    run = CliRun(args, returncode, stdout.getvalue(), stderr.getvalue())
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


def test_tutorial_gives_the_readmes_numbers(tutorial_run: tuple[CliRun, Path]) -> None:
    """Learning rate 0.01, 150 iterations, seed 42: the README's numbers, exactly.

    93.97 % of 348 training images is 327 right; 96.77 % of 62 test images is 60 right.
    """
    run, out = tutorial_run
    metrics = json.loads((out / "metrics.json").read_text())
    costs = printed_costs(run.stdout)

    assert f"{costs[0]:.4g}" == "6.233"
    assert f"{costs[140]:.4g}" == "0.2516"
    assert metrics["train_accuracy"] == 327 / 348
    assert metrics["test_accuracy"] == 60 / 62
    assert "train accuracy: 93.97 %" in run.stdout
    assert "test accuracy: 96.77 %" in run.stdout
    assert (metrics["learning_rate"], metrics["iterations"], metrics["seed"]) == (0.01, 150, 42)


def test_tutorial_first_cost_is_scikit_learns_log_loss(
    tutorial_run: tuple[CliRun, Path],
    zeros_and_ones: tuple[np.ndarray, np.ndarray],
    split_indices: tuple[np.ndarray, np.ndarray],
) -> None:
    """At the start every weight is 0.01 and b = 0: z is 0.01 × the sum of an image's pixels."""
    X, Y = zeros_and_ones
    train = split_indices[0]
    z = 0.01 * X[train].sum(axis=(1, 2))
    expected = log_loss(Y[train, 0], expit(z))

    assert printed_costs(tutorial_run[0].stdout)[0] == pytest.approx(expected, abs=1e-6)


def test_tutorial_cost_goes_down(tutorial_run: tuple[CliRun, Path]) -> None:
    run, out = tutorial_run
    costs = printed_costs(run.stdout)
    metrics = json.loads((out / "metrics.json").read_text())

    assert (np.diff(list(costs.values())) < 0).all()
    assert metrics["final_cost"] < costs[140]


def test_tutorial_metrics(tutorial_run: tuple[CliRun, Path]) -> None:
    metrics = json.loads((tutorial_run[1] / "metrics.json").read_text())

    assert metrics["model"] == "logistic_regression"
    assert metrics["classes"] == [0, 1]
    assert (metrics["n_train"], metrics["n_test"]) == (348, 62)
    assert metrics["seed"] == 42
    assert metrics["seconds"] > 0
    sklearn = metrics["sklearn"]
    assert 0 <= sklearn["train_accuracy"] <= 1
    assert 0 <= sklearn["test_accuracy"] <= 1
    assert sklearn["seconds"] > 0


def test_a_second_run_prints_the_same_without_importing_scikit_learn(
    tutorial_run: tuple[CliRun, Path], dataset_source: DataSource, tmp_path: Path
) -> None:
    """The warm run is fast because scikit-learn's fit is kept in the cache: a fresh
    process prints the same steps and numbers, and never imports scikit-learn (~1.5 s)."""
    first_run, first_out = tutorial_run
    out = tmp_path / "again"
    args = ["tutorial", "--data", str(dataset_source.path), "--out", str(out)]
    program = (
        "import sys\n"
        "from signdigits.cli import main\n"
        f"code = main({args!r})\n"
        "print('scikit-learn imported:', 'sklearn' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    second = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120
    )
    assert second.returncode == 0, second.stderr

    def without_times(stdout: str) -> str:  # ours is timed afresh each run
        return re.sub(r"│ [0-9.]+ +│", "│ … │", stdout.replace(str(first_out), str(out)))

    assert second.stdout.splitlines()[-1] == "scikit-learn imported: False"
    assert (
        without_times(second.stdout).splitlines()[:-1]
        == without_times(first_run.stdout).splitlines()
    )
    first = json.loads((first_out / "metrics.json").read_text())["sklearn"]
    again = json.loads((out / "metrics.json").read_text())["sklearn"]
    assert again == {**first, "cached": True}


@pytest.mark.parametrize("figure", ["cost_curve.png", "weights.png", "samples.png"])
def test_tutorial_figures_are_readable_pngs(figure: str, tutorial_run: tuple[CliRun, Path]) -> None:
    path = tutorial_run[1] / figure
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG"
        assert min(image.size) > 100
    assert path.name in tutorial_run[0].stdout


@pytest.mark.parametrize("m", [2, 3, 7, 10, 100, 410, 2062])
@pytest.mark.parametrize("test_size", [0.01, 0.15, 0.2, 0.5, 0.85, 0.999])
@pytest.mark.parametrize("seed", [42, 2**32 - 1])
def test_the_split_indices_are_scikit_learns(m: int, test_size: float, seed: int) -> None:
    """The split is computed without importing scikit-learn; it must be its split exactly,
    rows in the same order, and refuse the same sizes."""
    try:
        expected = train_test_split(np.arange(m), test_size=test_size, random_state=seed)
    except ValueError:
        with pytest.raises(ValueError, match="would be empty"):
            train_test_indices(m, test_size, seed)
        return
    train, test = train_test_indices(m, test_size, seed)
    np.testing.assert_array_equal(train, expected[0])
    np.testing.assert_array_equal(test, expected[1])


def test_the_figures_module_imported_meanwhile_is_the_module() -> None:
    from signdigits import plots
    from signdigits.tutorial import _import_plots_meanwhile

    assert _import_plots_meanwhile().cost_curve is plots.cost_curve


def test_a_failed_import_of_the_figures_module_is_raised_where_it_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib

    import signdigits.tutorial as tutorial_module

    def broken(name: str) -> None:
        raise ImportError(f"no {name} here")

    monkeypatch.setattr(importlib, "import_module", broken)
    plots = tutorial_module._import_plots_meanwhile()

    with pytest.raises(ImportError, match=r"no signdigits\.plots here"):
        plots.cost_curve  # noqa: B018
