"""Logistic regression as the smallest neural network, from scratch in NumPy.

These are the functions of the tutorial "What is deep learning?", with its names
and its features-first layout: ``x`` is (4096, m), one column per image, ``y`` is
(1, m). They are correct where the original was not (``predict`` sets both
branches) and numerically stable: the cost is computed from ``z`` with a stable
log-sigmoid, so it stays finite when the sigmoid saturates.

The computational graph of one step, for m images::

    z = wᵀx + b                      (1, m)
    ŷ = sigmoid(z) = 1 / (1 + e⁻ᶻ)   (1, m)
    loss = −y log ŷ − (1 − y) log(1 − ŷ)
    cost = (1/m) Σ loss

and, going backwards through it with the chain rule (∂loss/∂z = ŷ − y)::

    dw = x (ŷ − y)ᵀ / m              (4096, 1)
    db = (1/m) Σ (ŷ − y)

Everything is in float64 and vectorised: no Python loop over samples.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

from signdigits.comparison import fit_and_score, fit_logistic_regression
from signdigits.data import SignDigits, load_dataset
from signdigits.data.cache import cache_dir
from signdigits.errors import InvalidArgumentError, TrainingError
from signdigits.runs import ResultsFolder, write_json

if TYPE_CHECKING:  # signdigits.sklearn imports this module: its estimator is imported late
    from signdigits.sklearn import MLPClassifier

SIGNS = (0, 1)
"""The tutorial's two classes: the signs for 0 and 1."""

IMAGES_PER_SIGN = 205


def load_zeros_and_ones(dataset: SignDigits) -> tuple[np.ndarray, np.ndarray]:
    """X (410, 64, 64) and Y (410, 1): the first 205 images of the signs 0 and 1.

    Y is 0 for the sign 0 and 1 for the sign 1, as in the tutorial.

    The dataset has 205 images of the sign 0 but 206 of the sign 1. The tutorial's arrays
    have 205 of each, so the first 205 of each sign are taken, in file-name order: the one
    left out is the 206th of the sign 1, ``Dataset/1/IMG_5992.JPG`` (from the Kaggle
    arrays, the last image of the sign 1 in their order).
    """
    subset = dataset.first_of_each(SIGNS, IMAGES_PER_SIGN)
    X = subset.images.astype(np.float64)
    Y = subset.labels.astype(np.float64).reshape(-1, 1)
    return X, Y


def flatten_and_transpose(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Images (m, 64, 64) and labels (m, 1) to the features-first x (4096, m) and y (1, m)."""
    return X.reshape(X.shape[0], -1).T, Y.T


def train_test_indices(
    m: int, test_size: float, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows that scikit-learn's ``train_test_split(..., test_size, random_state)`` puts
    in the training and the test set, computed as it does, without importing it (~1 s).

    A permutation of the m rows from ``np.random.RandomState(random_state)``; its first
    ⌈test_size · m⌉ rows are the test set and the rest, in that order, the training set.
    (A test pins this against scikit-learn for many sizes and seeds.)
    """
    n_test = math.ceil(test_size * m)
    n_train = m - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(
            f"{n_test} test and {n_train} training images: one of the two sets would be empty"
        )
    permutation = np.random.RandomState(random_state).permutation(m)
    return permutation[n_test:], permutation[:n_test]


def split_flatten_transpose(
    X: np.ndarray, Y: np.ndarray, test_size: float = 0.15, random_state: int = 42
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The tutorial's ``train_test_split``, then ``flatten_and_transpose`` of each part.

    Returns x_train (4096, 348), y_train (1, 348), x_test (4096, 62), y_test (1, 62)
    with the tutorial's defaults: the same arrays as scikit-learn's split gives.
    """
    train, test = train_test_indices(len(X), test_size, random_state)
    return (*flatten_and_transpose(X[train], Y[train]), *flatten_and_transpose(X[test], Y[test]))


def initialize_weights_and_bias(dimension: int) -> tuple[np.ndarray, float]:
    """w: (dimension, 1) full of 0.01; b = 0."""
    w = np.full((dimension, 1), 0.01)
    b = 0.0
    return w, b


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e⁻ᶻ), computed as exp(−log(1 + e⁻ᶻ)) so that no e⁻ᶻ overflows."""
    return np.exp(-np.logaddexp(0.0, -z))


def forward_propagation(w: np.ndarray, b: float, x: np.ndarray) -> np.ndarray:
    """z = wᵀx + b: the logit of each image, shape (1, m)."""
    return w.T @ x + b


def cross_entropy_loss(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """loss = −y log σ(z) − (1 − y) log(1 − σ(z)), one value per image.

    With log σ(z) = −log(1 + e⁻ᶻ) and log(1 − σ(z)) = −log(1 + eᶻ) this is
    ``log(1 + eᶻ) − y z``, which ``np.logaddexp`` computes without overflow: it
    stays finite at z = ±1000, where σ(z) rounds to exactly 0 or 1 and the
    textbook formula takes log(0).
    """
    return np.logaddexp(0.0, z) - y * z


def forward_backward_propagation(
    w: np.ndarray, b: float, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[float, dict[str, np.ndarray | float]]:
    """One forward and one backward pass: the cost and its gradients.

    cost = (1/m) Σ loss; dw = x (ŷ − y)ᵀ / m; db = (1/m) Σ (ŷ − y).
    """
    m = x_train.shape[1]
    z = forward_propagation(w, b, x_train)
    y_head = sigmoid(z)
    cost = float(np.sum(cross_entropy_loss(z, y_train)) / m)
    derivative_weight = x_train @ (y_head - y_train).T / m
    derivative_bias = float(np.sum(y_head - y_train) / m)
    gradients = {"derivative_weight": derivative_weight, "derivative_bias": derivative_bias}
    return cost, gradients


def _check_hyperparameters(learning_rate: float, number_of_iterations: int) -> None:
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)):
        raise InvalidArgumentError(
            f"learning rate must be a finite number, got {learning_rate!r}; try 0.01"
        )
    if learning_rate <= 0:
        raise InvalidArgumentError(f"learning rate must be > 0, got {learning_rate}; try 0.01")
    if isinstance(number_of_iterations, bool) or not isinstance(number_of_iterations, int):
        raise InvalidArgumentError(
            f"number of iterations must be a whole number, got {number_of_iterations!r}"
        )
    if number_of_iterations < 1:
        raise InvalidArgumentError(
            f"number of iterations must be at least 1, got {number_of_iterations}; try 150"
        )


def _stop_if_diverged(
    iteration: int, learning_rate: float, cost: float, *parameters: np.ndarray | float
) -> None:
    """Raise ``TrainingError`` once gradient descent has left the finite numbers (a learning
    rate far too large): better one clear line than NaN costs and NumPy's warnings."""
    if not (math.isfinite(cost) and all(np.isfinite(p).all() for p in parameters)):
        raise TrainingError(
            f"gradient descent diverged at iteration {iteration}: the cost or the weights are "
            f"no longer finite numbers (learning rate {learning_rate} is too large); try a "
            "smaller --lr such as 0.01"
        )


def update(
    w: np.ndarray,
    b: float,
    x_train: np.ndarray,
    y_train: np.ndarray,
    learning_rate: float,
    number_of_iterations: int,
    report: Callable[[int, float], None] | None = None,
) -> tuple[dict[str, np.ndarray | float], dict[str, np.ndarray | float], list[float]]:
    """Gradient descent: ``w ← w − α dw`` and ``b ← b − α db``, ``number_of_iterations`` times.

    Returns the learned parameters ``{"weight", "bias"}``, the last gradients and the
    cost of every iteration. ``report(i, cost)`` is called every 10 iterations.
    """
    _check_hyperparameters(learning_rate, number_of_iterations)
    cost_list = []
    for i in range(number_of_iterations):
        # Overflow is not an error of NumPy's to print: it is caught just below, as a cost
        # or parameters that are no longer finite numbers.
        with np.errstate(over="ignore", invalid="ignore"):
            cost, gradients = forward_backward_propagation(w, b, x_train, y_train)
            w = w - learning_rate * gradients["derivative_weight"]
            b = b - learning_rate * gradients["derivative_bias"]
        _stop_if_diverged(i, learning_rate, cost, w, b)
        cost_list.append(cost)
        if report is not None and i % 10 == 0:
            report(i, cost)
    parameters = {"weight": w, "bias": b}
    return parameters, gradients, cost_list


def predict(w: np.ndarray, b: float, x_test: np.ndarray) -> np.ndarray:
    """1 where ŷ = σ(wᵀx + b) > 0.5, else 0; shape (1, m)."""
    y_head = sigmoid(forward_propagation(w, b, x_test))
    return np.where(y_head > 0.5, 1.0, 0.0)


def accuracy(y_prediction: np.ndarray, y: np.ndarray) -> float:
    """The fraction of predictions equal to the labels: 1 − mean |ŷ − y| for 0/1 values."""
    return float(np.mean(y_prediction == y))


@dataclass
class LogisticRegressionResult:
    """What ``logistic_regression`` learned and how well it does."""

    parameters: dict[str, np.ndarray | float]
    cost_list: list[float]
    train_accuracy: float
    test_accuracy: float
    y_prediction_train: np.ndarray = field(repr=False)
    y_prediction_test: np.ndarray = field(repr=False)


def logistic_regression(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    learning_rate: float = 0.01,
    num_iterations: int = 150,
    report: Callable[[int, float], None] | None = None,
) -> LogisticRegressionResult:
    """Initialise, train by gradient descent, and measure train and test accuracy."""
    dimension = x_train.shape[0]
    w, b = initialize_weights_and_bias(dimension)
    parameters, _, cost_list = update(
        w, b, x_train, y_train, learning_rate, num_iterations, report=report
    )
    y_prediction_train = predict(parameters["weight"], parameters["bias"], x_train)
    y_prediction_test = predict(parameters["weight"], parameters["bias"], x_test)
    return LogisticRegressionResult(
        parameters=parameters,
        cost_list=cost_list,
        train_accuracy=accuracy(y_prediction_train, y_train),
        test_accuracy=accuracy(y_prediction_test, y_test),
        y_prediction_train=y_prediction_train,
        y_prediction_test=y_prediction_test,
    )


RESULT_FILES = ("cost_curve.png", "weights.png", "samples.png", "metrics.json")
"""What ``run_tutorial`` writes into its results folder."""


def _check_run_arguments(
    learning_rate: float, iterations: int, seed: int, test_size: float
) -> None:
    """Every argument of ``run_tutorial``, checked before any data is read."""
    _check_hyperparameters(learning_rate, iterations)
    if not (isinstance(test_size, float) and 0.0 < test_size < 1.0):
        raise InvalidArgumentError(f"test size must be a fraction in (0, 1), got {test_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidArgumentError(
            f"seed must be a whole number from 0 to 2³² − 1 = {2**32 - 1}, got {seed!r}"
        )


def _split(
    X: np.ndarray, Y: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``split_flatten_transpose``, refusing a split that leaves nothing to learn or test."""
    try:
        parts = split_flatten_transpose(X, Y, test_size, seed)
    except ValueError as error:  # a test size that leaves a part empty
        raise InvalidArgumentError(
            f"test size {test_size} cannot split {len(X)} images: {error}"
        ) from None
    x_train, y_train = parts[:2]
    if len(np.unique(y_train)) < 2:
        raise InvalidArgumentError(
            f"test size {test_size} leaves {x_train.shape[1]} training image(s), not both signs; "
            "choose a smaller --test-size such as 0.15"
        )
    return parts


def run_tutorial(
    data: str | os.PathLike[str] | None = None,
    learning_rate: float = 0.01,
    iterations: int = 150,
    seed: int = 42,
    test_size: float = 0.15,
    out: str | os.PathLike[str] = "runs/tutorial",
    console: Console | None = None,
    show_progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """The whole tutorial, step by step as it prints it, beside scikit-learn.

    Writes ``cost_curve.png``, ``weights.png``, ``samples.png`` and ``metrics.json``
    to ``out`` (as one set: see :class:`signdigits.runs.ResultsFolder`) and returns the
    metrics. With ``verbose=False`` only the table of results is printed.
    """
    _check_run_arguments(learning_rate, iterations, seed, test_size)
    plots = _import_plots_meanwhile()

    console = console or Console(highlight=False)
    say = console if verbose else Console(quiet=True)
    results = ResultsFolder(out, RESULT_FILES)
    with results as folder:
        X, Y, (x_train, y_train, x_test, y_test) = _data_and_split(
            say, data, test_size, seed, show_progress
        )

        say.rule("3. Initialize weights and bias")
        w, b = initialize_weights_and_bias(x_train.shape[0])
        say.print(f"w: {w.shape} full of {w[0, 0]}, b = {b}")

        say.rule(f"4. Gradient descent (learning rate {learning_rate}, {iterations} iterations)")
        started = time.perf_counter()
        result = logistic_regression(
            x_train,
            y_train,
            x_test,
            y_test,
            learning_rate=learning_rate,
            num_iterations=iterations,
            report=lambda i, cost: say.print(f"Cost after iteration {i}: {cost:f}"),
        )
        seconds = time.perf_counter() - started

        say.rule("5. Predict (1 where ŷ > 0.5) and accuracy")
        say.print(f"train accuracy: {100 * result.train_accuracy:.2f} %")
        say.print(f"test accuracy: {100 * result.test_accuracy:.2f} %")

        say.rule(f"6. scikit-learn LogisticRegression(random_state={seed}, max_iter=150)")
        sklearn_metrics = fit_logistic_regression(
            x_train.T, y_train.ravel(), x_test.T, y_test.ravel(), seed, cache_folder=cache_dir()
        )
        table = Table("model", "train accuracy", "test accuracy", "seconds")
        table.add_row(
            "ours (NumPy, from scratch)",
            f"{100 * result.train_accuracy:.2f} %",
            f"{100 * result.test_accuracy:.2f} %",
            f"{seconds:.3f}",
        )
        table.add_row(
            "scikit-learn",
            f"{100 * sklearn_metrics['train_accuracy']:.2f} %",
            f"{100 * sklearn_metrics['test_accuracy']:.2f} %",
            f"{sklearn_metrics['seconds']:.3f}",
        )
        console.print(table)
        if not sklearn_metrics["converged"]:
            say.print("(scikit-learn stopped at max_iter=150 before its solver converged)")

        metrics = {
            "model": "logistic_regression",
            "classes": list(SIGNS),
            "train_accuracy": result.train_accuracy,
            "test_accuracy": result.test_accuracy,
            "n_train": int(x_train.shape[1]),
            "n_test": int(x_test.shape[1]),
            "seconds": seconds,
            "seed": seed,
            "learning_rate": learning_rate,
            "iterations": iterations,
            "final_cost": result.cost_list[-1],
            "sklearn": sklearn_metrics,
        }
        with results.writing():
            plots.cost_curve(
                result.cost_list,
                folder / "cost_curve.png",
                learning_rate=learning_rate,
                iterations=iterations,
            )
            plots.weight_map(result.parameters["weight"], folder / "weights.png")
            plots.sample_grid(
                *_samples(X, Y),
                folder / "samples.png",
                title="The signs 0 and 1: six images of each, as the model sees them",
            )
            write_json(folder / "metrics.json", metrics)
    _say_written(say, results.path, RESULT_FILES)
    return metrics


class _import_plots_meanwhile:
    """``signdigits.plots`` imported in a thread while the data loads and the model trains.

    Importing matplotlib takes 0.4 s of the warm run's 2; loading the data and gradient
    descent spend most of their time in hashing, zlib and BLAS, which release the GIL, so
    the import runs beside them. The attribute access that first needs the module waits
    for the import to finish (and raises its error, if it failed).
    """

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._load, name="import matplotlib", daemon=True)
        self._module: Any = None
        self._error: BaseException | None = None
        self._thread.start()

    def _load(self) -> None:
        try:
            self._module = importlib.import_module("signdigits.plots")
        except BaseException as error:  # handed to the main thread
            self._error = error

    def __getattr__(self, name: str) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return getattr(self._module, name)


def _say_written(say: Console, folder: Path, names: Sequence[str]) -> None:
    """The closing step of a run: the files it wrote, each path as plain text."""
    say.rule("Files")
    for name in names:
        say.print(f"wrote {folder / name}", markup=False, soft_wrap=True)


def _data_and_split(
    say: Console,
    data: str | os.PathLike[str] | None,
    test_size: float,
    seed: int,
    show_progress: bool,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Steps 1 and 2 of both parts, printed: the signs 0 and 1, then the split.

    Returns X (410, 64, 64), Y (410, 1) and (x_train, y_train, x_test, y_test).
    """
    say.rule("1. The data: the signs 0 and 1")
    dataset = load_dataset(data, show_progress=show_progress)
    say.print(f"source: {dataset.source.kind} {dataset.source.path}", markup=False, soft_wrap=True)
    X, Y = load_zeros_and_ones(dataset)
    kaggle = dataset.source.kind == "kaggle"
    left_out = "its last in X.npy" if kaggle else "Dataset/1/IMG_5992.JPG"
    say.print(
        f"the tutorial's arrays have {IMAGES_PER_SIGN} images of each sign, so the first "
        f"{IMAGES_PER_SIGN} of each are taken: the 206th of the sign 1, {left_out}, is "
        "left out",
        markup=False,
        soft_wrap=True,
    )
    say.print(f"X shape: {X.shape}")
    say.print(f"Y shape: {Y.shape}")

    say.rule(f"2. Train/test split (test_size={test_size}, random_state={seed})")
    x_train, y_train, x_test, y_test = _split(X, Y, test_size, seed)
    say.print(f"X train flatten {x_train.T.shape}")
    say.print(f"X test flatten {x_test.T.shape}")
    for name, array in (("x train", x_train), ("x test", x_test)):
        say.print(f"{name}: {array.shape}")
    for name, array in (("y train", y_train), ("y test", y_test)):
        say.print(f"{name}: {array.shape}")
    return X, Y, (x_train, y_train, x_test, y_test)


def _samples(X: np.ndarray, Y: np.ndarray, per_class: int = 6) -> tuple[np.ndarray, list[int]]:
    """Evenly spaced images of each sign and their labels, to show what the data looks like."""
    indices = []
    for sign in SIGNS:
        (members,) = np.nonzero(Y.ravel() == sign)
        indices.append(members[np.linspace(0, len(members) - 1, per_class).astype(int)])
    chosen = np.concatenate(indices)
    return X[chosen], [int(label) for label in Y.ravel()[chosen]]


# =============================================================================================
# Part 2: a two-layer neural network (one hidden layer of 3 tanh units)
# =============================================================================================
#
# The series' second network, with its names ("weight1", "dweight1", "Z1", "A1", …) and the
# same features-first layout as part 1. Its computational graph, for m images::
#
#     Z1 = W1 x + b1        (3, m)     W1 (3, 4096), b1 (3, 1)
#     A1 = tanh(Z1)         (3, m)
#     Z2 = W2 A1 + b2       (1, m)     W2 (1, 3), b2 (1, 1)
#     A2 = sigmoid(Z2)      (1, m)     the probability of the sign 1, as ŷ in part 1
#     cost = (1/m) Σ [−Y log A2 − (1 − Y) log(1 − A2)]
#
# and backwards through it, the chain rule once per layer (tanh′(z) = 1 − tanh²(z))::
#
#     dZ2 = A2 − Y                         dW2 = dZ2 A1ᵀ / m     db2 = (1/m) Σ dZ2
#     dZ1 = (W2ᵀ dZ2) ⊙ (1 − A1²)          dW1 = dZ1 xᵀ / m      db1 = (1/m) Σ dZ1


HIDDEN_LAYER_SIZE = 3
"""The number of tanh units in part 2's hidden layer, as in the tutorial."""

TUTORIAL_SEED = 42
"""The seed of the generator ``two_layer_neural_network`` makes when none is passed in."""


def initialize_parameters_and_layer_sizes_NN(
    x_train: np.ndarray, y_train: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random small weights and zero biases, sized by the data and 3 hidden units.

    The layer sizes are fixed here: n_x = x_train.shape[0] inputs (4096 pixels),
    n_h = ``HIDDEN_LAYER_SIZE`` = 3 hidden units, n_y = y_train.shape[0] = 1 output::

        weight1 = 0.1 × N(0, 1)   (n_h, n_x)      bias1 = 0   (n_h, 1)
        weight2 = 0.1 × N(0, 1)   (n_y, n_h)      bias2 = 0   (n_y, 1)

    As in the tutorial, only the parameters are returned (the sizes are their shapes).
    The weights are drawn from ``rng``, weight1 first, so one seed gives one network; the
    tutorial's ``np.random.randn`` used NumPy's global state instead. They must differ: with
    equal weights every hidden unit would compute, and learn, the same thing.
    """
    n_x, n_h, n_y = x_train.shape[0], HIDDEN_LAYER_SIZE, y_train.shape[0]
    return {
        "weight1": rng.standard_normal((n_h, n_x)) * 0.1,
        "bias1": np.zeros((n_h, 1)),
        "weight2": rng.standard_normal((n_y, n_h)) * 0.1,
        "bias2": np.zeros((n_y, 1)),
    }


def forward_propagation_NN(
    x: np.ndarray, parameters: dict[str, np.ndarray]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Z1 = W1 x + b1, A1 = tanh(Z1), Z2 = W2 A1 + b2, A2 = σ(Z2): A2 (1, m) and the cache.

    The cache ``{"Z1", "A1", "Z2", "A2"}`` keeps what the cost and the backward pass need.
    """
    Z1 = parameters["weight1"] @ x + parameters["bias1"]
    A1 = np.tanh(Z1)
    Z2 = parameters["weight2"] @ A1 + parameters["bias2"]
    A2 = sigmoid(Z2)
    cache = {"Z1": Z1, "A1": A1, "Z2": Z2, "A2": A2}
    return A2, cache


def compute_cost_NN(cache: dict[str, np.ndarray], Y: np.ndarray) -> float:
    """cost = (1/m) Σ [−Y log A2 − (1 − Y) log(1 − A2)], computed from Z2 in the cache.

    Two changes from the tutorial's ``compute_cost_NN(A2, Y, parameters)``:

    - Its cost kept only −Y log A2 and dropped −(1 − Y) log(1 − A2), so an image of the
      sign 0 cost nothing whatever the network said. The backward pass (dZ2 = A2 − Y) has
      always been the derivative of the full cross-entropy, so training was unchanged,
      but the printed cost was not the one being minimised. This is the full cost.
    - It is computed from the logit Z2 with part 1's ``cross_entropy_loss``,
      log(1 + e^Z2) − Y Z2, not from A2: when σ saturates A2 rounds to exactly 0 or 1 and
      log(A2) or log(1 − A2) is −∞, while this stays finite (at Z2 = ±1000 a wrong answer
      costs 1000). That is why it takes the cache, which holds Z2, rather than A2 (the
      tutorial's ``parameters`` argument was unused).
    """
    Z2 = cache["Z2"]
    return float(np.sum(cross_entropy_loss(Z2, Y)) / Y.shape[1])


def backward_propagation_NN(
    parameters: dict[str, np.ndarray],
    cache: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
) -> dict[str, np.ndarray]:
    """The gradients of the cost, layer by layer from the output back, each averaged over m.

    dZ2 = A2 − Y (as dz in part 1); dW2 = dZ2 A1ᵀ / m; db2 = (1/m) Σ dZ2;
    dZ1 = (W2ᵀ dZ2) ⊙ (1 − A1²), since tanh′(Z1) = 1 − tanh²(Z1) = 1 − A1²;
    dW1 = dZ1 Xᵀ / m; db1 = (1/m) Σ dZ1 (sums over the images, one per column).

    Returns ``{"dweight1", "dbias1", "dweight2", "dbias2"}``, each shaped as its parameter.
    """
    m = X.shape[1]
    dZ2 = cache["A2"] - Y
    dW2 = dZ2 @ cache["A1"].T / m
    db2 = np.sum(dZ2, axis=1, keepdims=True) / m
    dZ1 = (parameters["weight2"].T @ dZ2) * (1 - cache["A1"] ** 2)
    dW1 = dZ1 @ X.T / m
    db1 = np.sum(dZ1, axis=1, keepdims=True) / m
    return {"dweight1": dW1, "dbias1": db1, "dweight2": dW2, "dbias2": db2}


def update_parameters_NN(
    parameters: dict[str, np.ndarray], grads: dict[str, np.ndarray], learning_rate: float = 0.01
) -> dict[str, np.ndarray]:
    """One step of gradient descent: each parameter p ← p − α dp. Returns new arrays."""
    return {
        name: parameters[name] - learning_rate * grads["d" + name]
        for name in ("weight1", "bias1", "weight2", "bias2")
    }


def predict_NN(parameters: dict[str, np.ndarray], x_test: np.ndarray) -> np.ndarray:
    """1 where A2 = σ(W2 tanh(W1 x + b1) + b2) > 0.5, else 0; shape (1, m)."""
    A2, _ = forward_propagation_NN(x_test, parameters)
    return np.where(A2 > 0.5, 1.0, 0.0)


class TwoLayerNeuralNetworkResult(LogisticRegressionResult):
    """What ``two_layer_neural_network`` learned and how well it does: the same fields as
    part 1's result (the parameters are ``weight1``, ``bias1``, ``weight2``, ``bias2``;
    ``cost_list`` holds the cost of every iteration, before that iteration's step)."""


def two_layer_neural_network(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    num_iterations: int = 2500,
    learning_rate: float = 0.01,
    rng: np.random.Generator | None = None,
    report: Callable[[int, float], None] | None = None,
) -> TwoLayerNeuralNetworkResult:
    """Initialise, train by gradient descent, and measure train and test accuracy.

    Each iteration: forward propagation, the cost, backward propagation, one update.
    ``report(i, cost)`` is called every 100 iterations. ``rng`` draws the initial
    weights; without one, a generator seeded with ``TUTORIAL_SEED`` (42) is made, so a
    call without it always gives the same network.

    Raises ``InvalidArgumentError`` for a learning rate or a number of iterations out of
    range, and ``TrainingError`` as soon as the cost or the parameters are no longer
    finite numbers.
    """
    _check_hyperparameters(learning_rate, num_iterations)
    if rng is None:
        rng = np.random.default_rng(TUTORIAL_SEED)
    elif not isinstance(rng, np.random.Generator):
        raise InvalidArgumentError(
            f"rng must be a numpy.random.Generator, got {rng!r}; "
            f"try np.random.default_rng({TUTORIAL_SEED})"
        )
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    parameters = initialize_parameters_and_layer_sizes_NN(x_train, y_train, rng)
    cost_list = []
    # Each product here has 3 rows (W1 x, dZ1 xᵀ): too thin for several BLAS threads to
    # share, and on a machine with few cores OpenBLAS's spinning threads made it ~3×
    # slower than one thread. One thread, chosen here rather than left to chance.
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(num_iterations):
            # Overflow is caught just below as a cost or parameters that are not finite.
            with np.errstate(over="ignore", invalid="ignore"):
                _, cache = forward_propagation_NN(x_train, parameters)
                cost = compute_cost_NN(cache, y_train)
                grads = backward_propagation_NN(parameters, cache, x_train, y_train)
                parameters = update_parameters_NN(parameters, grads, learning_rate)
            _stop_if_diverged(i, learning_rate, cost, *parameters.values())
            cost_list.append(cost)
            if report is not None and i % 100 == 0:
                report(i, cost)
        y_prediction_train = predict_NN(parameters, x_train)
        y_prediction_test = predict_NN(parameters, x_test)
    return TwoLayerNeuralNetworkResult(
        parameters=parameters,
        cost_list=cost_list,
        train_accuracy=accuracy(y_prediction_train, y_train),
        test_accuracy=accuracy(y_prediction_test, y_test),
        y_prediction_train=y_prediction_train,
        y_prediction_test=y_prediction_test,
    )


# =============================================================================================
# Part 2, continued: the L-layer network (Keras in the tutorial, signdigits.nn here)
# =============================================================================================
#
# The tutorial's deep network, built by its ``build_classifier`` with Keras:
#
#     4096 → Dense(8, relu) → Dense(4, relu) → Dense(1, sigmoid)
#     weights "uniform" (U(−0.05, 0.05)), biases 0; Adam; binary cross-entropy;
#     100 epochs of mini-batches of 32; scored by cross_val_score(cv=3)
#
# Here it is ``signdigits.sklearn.MLPClassifier`` with those settings (its defaults): a
# scikit-learn estimator on signdigits.nn and signdigits.optim, so that cross_val_score is
# scikit-learn's own. Samples first, as scikit-learn wants: ``x_train.T``.

L_LAYER_SETTINGS: dict[str, Any] = {
    "hidden_layer_sizes": (8, 4),
    "activation": "relu",
    "init": "uniform",
    "optimizer": "adam",
    "learning_rate": 0.001,
    "betas": (0.9, 0.999),
    "eps": 1e-7,
    "epochs": 100,
    "batch_size": 32,
}
"""The Keras network's settings, as ``MLPClassifier``'s hyper-parameters: Adam's defaults in
Keras (learning rate 0.001, β = (0.9, 0.999), ε = 1e-7), the batch size of Keras's ``fit``."""

CV_FOLDS = 3
"""``cross_val_score(..., cv=3)``: a classifier's folds are scikit-learn's StratifiedKFold."""


def build_classifier(random_state: int | np.random.Generator | None = None) -> MLPClassifier:
    """The tutorial's L-layer network, as its Keras ``build_classifier`` builds it.

    4096 → 8 → 4 → 1, ReLU, ReLU and a sigmoid output; weights uniform in ±0.05 (Keras's
    ``"uniform"``) and biases 0; Adam (learning rate 0.001, β = 0.9, 0.999, ε = 1e-7);
    100 epochs of mini-batches of 32, shuffled each epoch. The loss is the binary
    cross-entropy computed from the logit (``binary_cross_entropy_with_logits``), where
    Keras computes the sigmoid and then its log. ``random_state`` seeds the one generator
    that draws the initial weights and each epoch's order.
    """
    from signdigits.sklearn import MLPClassifier

    return MLPClassifier(**L_LAYER_SETTINGS, random_state=random_state)


PART2_RESULT_FILES = ("cost_curve.png", "hidden_units.png", "metrics.json")
"""What ``run_tutorial_part2`` writes into its results folder."""

TWO_LAYER_ITERATIONS = 2500
"""Part 2's number of gradient-descent iterations for the two-layer network."""


def run_tutorial_part2(
    data: str | os.PathLike[str] | None = None,
    learning_rate: float = 0.01,
    iterations: int = TWO_LAYER_ITERATIONS,
    seed: int = 42,
    test_size: float = 0.15,
    out: str | os.PathLike[str] = "runs/tutorial-part2",
    console: Console | None = None,
    show_progress: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Part 2, step by step as it prints it: the two-layer network by hand, the L-layer
    network on signdigits.nn (scored by 3-fold cross-validation, then on the test images),
    then a table of every model of both parts on the same split, with their times.

    ``learning_rate`` and ``iterations`` are the two-layer network's gradient descent;
    part 1's logistic regression keeps part 1's defaults (0.01, 150 iterations) and the
    L-layer network the Keras settings (``L_LAYER_SETTINGS``). ``seed`` is the split's
    random_state and seeds every model's generator. Writes ``cost_curve.png``,
    ``hidden_units.png`` and ``metrics.json`` to ``out`` as one set and returns the
    metrics; with ``verbose=False`` only the table is printed.
    """
    _check_run_arguments(learning_rate, iterations, seed, test_size)
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    from signdigits import plots

    console = console or Console(highlight=False)
    say = console if verbose else Console(quiet=True)
    results = ResultsFolder(out, PART2_RESULT_FILES)
    # Every product of this part is thin (3 or 8 hidden units) or small (batches of 32):
    # too little work for several BLAS threads, whose spinning between calls made
    # scikit-learn's MLPClassifier 5× slower on 2 cores. One thread, chosen here.
    with results as folder, threadpool_limits(limits=1, user_api="blas"):
        _, _, split = _data_and_split(say, data, test_size, seed, show_progress)
        x_train, y_train, x_test, y_test = split

        two_layer = _two_layer_steps(say, split, learning_rate, iterations, seed)
        l_layer = _l_layer_steps(say, split, seed)

        say.rule("9. Every model of both parts, on the same split")
        logistic = _timed_logistic_regression(split)
        sklearn_logistic = fit_logistic_regression(
            x_train.T, y_train.ravel(), x_test.T, y_test.ravel(), seed
        )
        sklearn_mlp = _fit_sklearn_mlp(split, seed)
        models = {
            "logistic_regression": logistic,
            "sklearn_logistic_regression": sklearn_logistic,
            "two_layer_neural_network": two_layer["metrics"],
            "l_layer_neural_network": l_layer,
            "sklearn_mlp": sklearn_mlp,
        }
        console.print(_models_table(models, seed))
        say.print(
            f"(seconds: training only; the L-layer network's {CV_FOLDS}-fold cross-validation "
            f"took {l_layer['cv_seconds']:.1f} s more)"
        )
        if not sklearn_mlp["converged"]:
            say.print(
                f"(scikit-learn's MLPClassifier stopped at max_iter={sklearn_mlp['n_iter']} "
                "before its loss settled)"
            )
        metrics = {
            "model": "l_layer_neural_network",
            "classes": list(SIGNS),
            "train_accuracy": l_layer["train_accuracy"],
            "test_accuracy": l_layer["test_accuracy"],
            "n_train": int(x_train.shape[1]),
            "n_test": int(x_test.shape[1]),
            "seconds": l_layer["seconds"],
            "seed": seed,
            "models": models,
        }
        with results.writing():
            plots.cost_curve(
                two_layer["cost_list"],
                folder / "cost_curve.png",
                learning_rate=learning_rate,
                iterations=iterations,
                every=100,
                model=f"The two-layer network ({HIDDEN_LAYER_SIZE} tanh units)",
            )
            parameters = two_layer["parameters"]
            plots.hidden_units(
                parameters["weight1"],
                folder / "hidden_units.png",
                output_weights=parameters["weight2"][0],
                initial_weights=two_layer["initial_weight1"],
            )
            write_json(folder / "metrics.json", metrics)
    _say_written(say, results.path, PART2_RESULT_FILES)
    return metrics


def _two_layer_steps(
    say: Console,
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    learning_rate: float,
    iterations: int,
    seed: int,
) -> dict[str, Any]:
    """Steps 3 to 5: the two-layer network by hand, printed as part 1 prints its own."""
    x_train, y_train, x_test, y_test = split
    say.rule(f"3. A two-layer network: {HIDDEN_LAYER_SIZE} tanh units, then a sigmoid unit")
    # The network's first draws from this generator, as two_layer_neural_network makes them.
    initial = initialize_parameters_and_layer_sizes_NN(
        x_train, y_train, np.random.default_rng(seed)
    )
    for name, array in initial.items():
        say.print(f"{name}: {array.shape}")
    say.print(
        f"weights 0.1 × N(0, 1) drawn from np.random.default_rng({seed}), biases 0; the cost "
        "is the full cross-entropy, computed stably from Z2",
        markup=False,
        soft_wrap=True,
    )

    say.rule(f"4. Gradient descent (learning rate {learning_rate}, {iterations} iterations)")
    started = time.perf_counter()
    result = two_layer_neural_network(
        x_train,
        y_train,
        x_test,
        y_test,
        num_iterations=iterations,
        learning_rate=learning_rate,
        rng=np.random.default_rng(seed),
        report=lambda i, cost: say.print(f"Cost after iteration {i}: {cost:f}"),
    )
    seconds = time.perf_counter() - started

    say.rule("5. Predict (1 where A2 > 0.5) and accuracy")
    say.print(f"train accuracy: {100 * result.train_accuracy:.2f} %")
    say.print(f"test accuracy: {100 * result.test_accuracy:.2f} %")
    metrics = {
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "seconds": seconds,
        "hidden_units": HIDDEN_LAYER_SIZE,
        "learning_rate": learning_rate,
        "iterations": iterations,
        "final_cost": result.cost_list[-1],
    }
    return {
        "metrics": metrics,
        "cost_list": result.cost_list,
        "parameters": result.parameters,
        "initial_weight1": initial["weight1"],
    }


def _l_layer_steps(
    say: Console, split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], seed: int
) -> dict[str, Any]:
    """Steps 6 to 8: the L-layer network, cross-validated on the training images, then
    trained on all of them and scored on the test images."""
    from sklearn.model_selection import check_cv, cross_val_score

    x_train, y_train, x_test, y_test = split
    X_train, labels_train = x_train.T, y_train.ravel()  # samples first, for scikit-learn
    X_test, labels_test = x_test.T, y_test.ravel()
    settings = L_LAYER_SETTINGS
    sizes = [x_train.shape[0], *settings["hidden_layer_sizes"], 1]
    count = sum(a * b + b for a, b in itertools.pairwise(sizes))

    say.rule("6. The L-layer network, on signdigits.nn: " + " → ".join(map(str, sizes)))
    say.print(
        f"ReLU, ReLU, sigmoid; {count:,} parameters; weights uniform in ±0.05 (Keras's "
        f'"uniform"), biases 0; Adam (learning rate {settings["learning_rate"]}, β = '
        f"{settings['betas'][0]}, {settings['betas'][1]}, ε = {settings['eps']:g}); binary "
        "cross-entropy computed from the logit (binary_cross_entropy_with_logits: no "
        f"separate sigmoid, so no log 0); {settings['epochs']} epochs of mini-batches of "
        f"{settings['batch_size']}, shuffled each epoch by the generator of random_state={seed}",
        markup=False,
        soft_wrap=True,
    )

    # cv=3 gives a classifier scikit-learn's StratifiedKFold(3), unshuffled: each fold tests
    # on one third of the images, in order, with both signs in the same proportion.
    folds = list(check_cv(CV_FOLDS, labels_train, classifier=True).split(X_train, labels_train))
    say.rule(
        f"7. {CV_FOLDS}-fold cross-validation on the {x_train.shape[1]} training images "
        f"(scikit-learn's cross_val_score, cv={CV_FOLDS})"
    )
    started = time.perf_counter()
    scores = cross_val_score(build_classifier(seed), X_train, labels_train, cv=CV_FOLDS)
    cv_seconds = time.perf_counter() - started
    for fold, (score, (trained, tested)) in enumerate(zip(scores, folds, strict=True), start=1):
        say.print(
            f"fold {fold}: accuracy {100 * score:.2f} % ({round(score * len(tested))} of "
            f"{len(tested)} right; trained on the other {len(trained)})"
        )
    mean, std = float(scores.mean()), float(scores.std())
    say.print(f"mean accuracy: {100 * mean:.2f} %")
    say.print(
        f"standard deviation: {100 * std:.2f} % (of the {CV_FOLDS} folds' accuracies; the "
        'original printed it labelled "variance")',
        markup=False,
        soft_wrap=True,
    )

    say.rule(
        f"8. The L-layer network on all {x_train.shape[1]} training images, then the "
        f"{x_test.shape[1]} test images"
    )
    started = time.perf_counter()
    model = build_classifier(seed).fit(X_train, labels_train)
    seconds = time.perf_counter() - started
    train_accuracy = float(model.score(X_train, labels_train))
    test_accuracy = float(model.score(X_test, labels_test))
    say.print(f"loss after epoch {model.n_iter_}: {model.loss_curve_[-1]:f}")
    say.print(f"train accuracy: {100 * train_accuracy:.2f} %")
    say.print(f"test accuracy: {100 * test_accuracy:.2f} %")
    return {
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": seconds,
        "layer_sizes": sizes,
        **{key: list(v) if isinstance(v, tuple) else v for key, v in settings.items()},
        "final_loss": model.loss_curve_[-1],
        "cv_accuracies": [float(score) for score in scores],
        "cv_test_sizes": [len(tested) for _, tested in folds],
        "cv_mean": mean,
        "cv_std": std,
        "cv_seconds": cv_seconds,
    }


def _timed_logistic_regression(
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """Part 1's logistic regression with part 1's defaults, timed, for the table."""
    learning_rate, iterations = 0.01, 150
    started = time.perf_counter()
    result = logistic_regression(*split, learning_rate=learning_rate, num_iterations=iterations)
    return {
        "train_accuracy": result.train_accuracy,
        "test_accuracy": result.test_accuracy,
        "seconds": time.perf_counter() - started,
        "learning_rate": learning_rate,
        "iterations": iterations,
        "final_cost": result.cost_list[-1],
    }


def _fit_sklearn_mlp(
    split: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], seed: int
) -> dict[str, Any]:
    """scikit-learn's own MLPClassifier(hidden_layer_sizes=(8, 4)) with its other defaults
    (Adam, learning rate 0.001, batches of 200, at most 200 epochs), samples first, timed."""
    from sklearn.neural_network import MLPClassifier

    x_train, y_train, x_test, y_test = split
    model = MLPClassifier(hidden_layer_sizes=(8, 4), random_state=seed)
    fitted = fit_and_score(model, x_train.T, y_train.ravel(), x_test.T, y_test.ravel())
    return {**fitted, "hidden_layer_sizes": [8, 4], "n_iter": int(model.n_iter_)}


MODEL_NAMES = {
    "logistic_regression": "logistic regression, part 1",
    "sklearn_logistic_regression": "sklearn LogisticRegression",
    "two_layer_neural_network": "two-layer, 3 tanh (by hand)",
    "l_layer_neural_network": "L-layer 8-4-1 (nn, Adam)",
    "sklearn_mlp": "sklearn MLPClassifier(8, 4)",
}
"""How part 2's table names each model of ``metrics["models"]``."""


def _models_table(models: dict[str, dict[str, Any]], seed: int) -> Table:
    table = Table(
        title=f"Every model on the same split (seed {seed}): accuracies, CV mean ± std",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("model", no_wrap=True)
    for column in ("train", "test", f"{CV_FOLDS}-fold CV", "seconds"):
        table.add_column(column, justify="right", no_wrap=True)
    for key, label in MODEL_NAMES.items():
        model = models[key]
        cv, seconds = "—", f"{model['seconds']:.3f}"
        if "cv_mean" in model:
            cv = f"{100 * model['cv_mean']:.2f} ± {100 * model['cv_std']:.2f} %"
        table.add_row(
            label,
            f"{100 * model['train_accuracy']:.2f} %",
            f"{100 * model['test_accuracy']:.2f} %",
            cv,
            seconds,
        )
    return table
