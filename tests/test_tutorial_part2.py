"""Part 2 of the tutorial (signdigits.tutorial): the two-layer network, step by step and whole.

Each step is checked against a reference that is not signdigits: PyTorch's autograd
and ``torch.optim.SGD`` (``tests.reference``) for the cost, its gradients and the
update, scikit-learn's ``MLPClassifier`` (tanh hidden layer, logistic output) for the
forward pass and the prediction, scikit-learn's ``log_loss`` for the cost, and values
worked out by hand. The whole network, trained on the real data with the seed 42, must
reach the numbers pinned below exactly (the run is deterministic).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.neural_network import MLPClassifier

from signdigits.data import SignDigits
from signdigits.errors import InvalidArgumentError, TrainingError
from signdigits.tutorial import (
    TwoLayerNeuralNetworkResult,
    backward_propagation_NN,
    compute_cost_NN,
    forward_propagation_NN,
    initialize_parameters_and_layer_sizes_NN,
    load_zeros_and_ones,
    predict_NN,
    sigmoid,
    split_flatten_transpose,
    two_layer_neural_network,
    update_parameters_NN,
)
from tests.reference import torch_sgd_step, torch_two_layer
from tests.test_tutorial import floating_point_warnings_are_errors

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Parameters = dict[str, np.ndarray]

NAMES = ("weight1", "bias1", "weight2", "bias2")


def relative_difference(ours: np.ndarray | float, reference: np.ndarray | float) -> float:
    """max |ours − reference| / max |reference|: one number per array, as in part 1's tests."""
    ours, reference = np.asarray(ours), np.asarray(reference)
    return float(np.max(np.abs(ours - reference)) / max(np.max(np.abs(reference)), 1e-300))


@pytest.fixture(scope="module")
def split(dataset: SignDigits) -> Split:
    """x_train, y_train, x_test, y_test, features first, as part 1 makes them."""
    return split_flatten_transpose(*load_zeros_and_ones(dataset))


@pytest.fixture(scope="module")
def trained(split: Split) -> tuple[TwoLayerNeuralNetworkResult, list[tuple[int, float]]]:
    """``two_layer_neural_network`` with its defaults (2,500 iterations, learning rate 0.01)
    and the seed 42 generator, once for the module, with every ``report`` call."""
    calls: list[tuple[int, float]] = []
    result = two_layer_neural_network(
        *split, rng=np.random.default_rng(42), report=lambda i, cost: calls.append((i, cost))
    )
    return result, calls


# --- Shapes and initialisation -----------------------------------------------------------------


def test_shapes_on_the_real_split(split: Split) -> None:
    x_train, y_train, x_test, y_test = split
    assert (x_train.shape, y_train.shape) == ((4096, 348), (1, 348))
    assert (x_test.shape, y_test.shape) == ((4096, 62), (1, 62))

    parameters = initialize_parameters_and_layer_sizes_NN(
        x_train, y_train, np.random.default_rng(42)
    )
    assert list(parameters) == list(NAMES)
    assert {name: value.shape for name, value in parameters.items()} == {
        "weight1": (3, 4096),
        "bias1": (3, 1),
        "weight2": (1, 3),
        "bias2": (1, 1),
    }
    A2, cache = forward_propagation_NN(x_train, parameters)
    assert list(cache) == ["Z1", "A1", "Z2", "A2"]
    assert cache["Z1"].shape == cache["A1"].shape == (3, 348)
    assert cache["Z2"].shape == A2.shape == (1, 348)
    assert cache["A2"] is A2
    grads = backward_propagation_NN(parameters, cache, x_train, y_train)
    assert {name: grad.shape for name, grad in grads.items()} == {
        "d" + name: value.shape for name, value in parameters.items()
    }
    assert predict_NN(parameters, x_test).shape == (1, 62)
    for array in (*parameters.values(), *cache.values(), *grads.values()):
        assert array.dtype == np.float64


def test_initialisation_draws_from_the_generator_passed_in() -> None:
    """weight1 then weight2 from the generator, 0.1 × standard normal; biases zero; the
    global random state untouched."""
    x, y = np.zeros((4096, 5)), np.zeros((1, 5))
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy state is the point)

    parameters = initialize_parameters_and_layer_sizes_NN(x, y, np.random.default_rng(42))
    again = initialize_parameters_and_layer_sizes_NN(x, y, np.random.default_rng(42))
    other = initialize_parameters_and_layer_sizes_NN(x, y, np.random.default_rng(43))

    draws = np.random.default_rng(42).standard_normal(3 * 4096 + 3)
    np.testing.assert_array_equal(parameters["weight1"], 0.1 * draws[:-3].reshape(3, 4096))
    np.testing.assert_array_equal(parameters["weight2"], 0.1 * draws[-3:].reshape(1, 3))
    assert (parameters["bias1"] == 0).all() and (parameters["bias2"] == 0).all()
    for name in NAMES:
        np.testing.assert_array_equal(parameters[name], again[name])
    assert not np.array_equal(parameters["weight1"], other["weight1"])
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002


# --- Forward propagation and prediction --------------------------------------------------------


def sklearn_network(parameters: Parameters) -> MLPClassifier:
    """scikit-learn's MLPClassifier (tanh hidden layer, logistic output) holding our weights,
    samples first: its coefs_ are W1ᵀ and W2ᵀ."""
    n_x = parameters["weight1"].shape[1]
    rng = np.random.default_rng(0)
    model = MLPClassifier(hidden_layer_sizes=(3,), activation="tanh", max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(rng.normal(size=(4, n_x)), [0.0, 1.0, 0.0, 1.0])  # sets up the classes
    model.coefs_ = [parameters["weight1"].T, parameters["weight2"].T]
    model.intercepts_ = [parameters["bias1"].ravel(), parameters["bias2"].ravel()]
    return model


def test_forward_propagation_and_predict_agree_with_scikit_learns_mlp() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 300))
    parameters = {
        "weight1": rng.normal(size=(3, 6)),
        "bias1": rng.normal(size=(3, 1)),
        "weight2": 3 * rng.normal(size=(1, 3)),
        "bias2": np.array([[0.2]]),
    }
    model = sklearn_network(parameters)

    A2, cache = forward_propagation_NN(x, parameters)
    prediction = predict_NN(parameters, x)

    np.testing.assert_allclose(A2[0], model.predict_proba(x.T)[:, 1], rtol=1e-12, atol=0)
    np.testing.assert_allclose(cache["A1"], np.tanh(cache["Z1"]), rtol=1e-15)
    np.testing.assert_array_equal(prediction[0], model.predict(x.T))
    assert set(np.unique(prediction)) == {0.0, 1.0}  # both branches taken


def test_predict_gives_zero_at_exactly_one_half() -> None:
    parameters = {
        name: np.zeros(shape)
        for name, shape in zip(NAMES, [(3, 4), (3, 1), (1, 3), (1, 1)], strict=True)
    }
    assert (predict_NN(parameters, np.ones((4, 5))) == 0).all()


# --- Cost --------------------------------------------------------------------------------------


@pytest.mark.slow  # the 2,500 iterations of `trained` (~10 s)
def test_cost_is_scikit_learns_log_loss_on_the_real_data(
    split: Split, trained: tuple[TwoLayerNeuralNetworkResult, list]
) -> None:
    """At the start (A2 near 1/2) and after training (A2 near 0 and 1, still finite)."""
    x_train, y_train, _, _ = split
    start = initialize_parameters_and_layer_sizes_NN(x_train, y_train, np.random.default_rng(42))
    for parameters in (start, trained[0].parameters):
        A2, cache = forward_propagation_NN(x_train, parameters)
        expected = log_loss(y_train.ravel(), A2.ravel())
        assert compute_cost_NN(cache, y_train) == pytest.approx(expected, rel=1e-12)


def test_cost_counts_both_terms_of_the_cross_entropy() -> None:
    """The tutorial's cost dropped −(1 − y) log(1 − a): an image of the sign 0 cost nothing.
    Here σ(ln 3) = 3/4 against y = 0 costs log 4, and against y = 1 costs log(4/3)."""
    cache = {"Z2": np.array([[math.log(3.0), math.log(3.0)]])}
    assert compute_cost_NN(cache, np.array([[0.0, 0.0]])) == pytest.approx(math.log(4), rel=1e-15)
    assert compute_cost_NN(cache, np.array([[1.0, 1.0]])) == pytest.approx(
        math.log(4 / 3), rel=1e-14
    )


def test_cost_and_gradients_stay_finite_when_the_sigmoid_saturates() -> None:
    """Z2 = ±1000, where σ rounds to exactly 1 or 0 and log(A2) or log(1 − A2) is −∞.

    The second and the third answers are wrong with certainty and cost 1000 each:
    cost = 2000 / 4 = 500. The right ones cost nothing.
    """
    Z2 = np.array([[1000.0, -1000.0, 1000.0, -1000.0]])
    Y = np.array([[1.0, 1.0, 0.0, 0.0]])
    with floating_point_warnings_are_errors():
        A2 = sigmoid(Z2)
        cost = compute_cost_NN({"Z2": Z2, "A2": A2}, Y)
    np.testing.assert_array_equal(A2, [[1.0, 0.0, 1.0, 0.0]])
    assert cost == 500.0
    with np.errstate(divide="ignore", invalid="ignore"):  # the textbook formula, for contrast
        assert not math.isfinite(-np.sum(np.log(A2) * Y + np.log(1 - A2) * (1 - Y)) / 4)


# --- Backward propagation ----------------------------------------------------------------------


def test_backward_propagation_on_paper() -> None:
    """One input, two images, three hidden units, with numbers that come out round.

    tanh(ln 2) = 0.6 and σ(ln 3) = 3/4. With x = (1, −1), y = (1, 0),
    W1 = (ln 2, 0, −ln 2)ᵀ, b1 = 0, W2 = (a, 2, 0) with a = ln 3 / 0.6, b2 = 0:

        A1 = [[0.6, −0.6], [0, 0], [−0.6, 0.6]]     Z2 = (ln 3, −ln 3)   A2 = (3/4, 1/4)
        cost = −(log 3/4 + log 3/4) / 2 = log(4/3)
        dZ2 = A2 − y = (−1/4, 1/4)
        dW2 = dZ2 A1ᵀ / 2 = (−0.15, 0, 0.15)        db2 = 0
        dZ1 = W2ᵀ dZ2 ⊙ (1 − A1²) = [[−0.16 a, 0.16 a], [−0.5, 0.5], [0, 0]]
        dW1 = dZ1 xᵀ / 2 = (−0.16 a, −0.5, 0)ᵀ = (−(4/15) ln 3, −0.5, 0)ᵀ    db1 = 0
    """
    ln2, ln3 = math.log(2.0), math.log(3.0)
    x = np.array([[1.0, -1.0]])
    y = np.array([[1.0, 0.0]])
    parameters = {
        "weight1": np.array([[ln2], [0.0], [-ln2]]),
        "bias1": np.zeros((3, 1)),
        "weight2": np.array([[ln3 / 0.6, 2.0, 0.0]]),
        "bias2": np.zeros((1, 1)),
    }
    with floating_point_warnings_are_errors():
        A2, cache = forward_propagation_NN(x, parameters)
        cost = compute_cost_NN(cache, y)
        grads = backward_propagation_NN(parameters, cache, x, y)

    tight = {"rtol": 1e-14, "atol": 1e-15}
    np.testing.assert_allclose(cache["A1"], [[0.6, -0.6], [0.0, 0.0], [-0.6, 0.6]], **tight)
    np.testing.assert_allclose(A2, [[0.75, 0.25]], **tight)
    assert cost == pytest.approx(math.log(4 / 3), rel=1e-14)
    np.testing.assert_allclose(grads["dweight2"], [[-0.15, 0.0, 0.15]], **tight)
    np.testing.assert_allclose(grads["dbias2"], [[0.0]], **tight)
    np.testing.assert_allclose(grads["dweight1"], [[-4 / 15 * ln3], [-0.5], [0.0]], **tight)
    np.testing.assert_allclose(grads["dbias1"], np.zeros((3, 1)), **tight)


@pytest.fixture(scope="module", params=[0, 50], ids=["start", "after-50-steps"])
def real_data_point(request: pytest.FixtureRequest, split: Split) -> Parameters:
    """The seed 42 network at its start, or after 50 steps of gradient descent."""
    x_train, y_train, x_test, y_test = split
    if request.param == 0:
        return initialize_parameters_and_layer_sizes_NN(x_train, y_train, np.random.default_rng(42))
    result = two_layer_neural_network(
        x_train,
        y_train,
        x_test,
        y_test,
        num_iterations=request.param,
        rng=np.random.default_rng(42),
    )
    return result.parameters


def test_cost_and_gradients_agree_with_torch_on_the_real_data(
    split: Split, real_data_point: Parameters
) -> None:
    x_train, y_train, _, _ = split
    parameters = real_data_point
    reference = torch_two_layer(parameters, x_train, y_train)

    A2, cache = forward_propagation_NN(x_train, parameters)
    cost = compute_cost_NN(cache, y_train)
    grads = backward_propagation_NN(parameters, cache, x_train, y_train)

    assert relative_difference(A2, reference.A2) <= 1e-12
    assert relative_difference(cost, reference.cost) <= 1e-10
    assert list(grads) == ["dweight1", "dbias1", "dweight2", "dbias2"]
    for name, grad in grads.items():
        assert grad.shape == reference.grads[name].shape
        assert relative_difference(grad, reference.grads[name]) <= 1e-10, name


def test_update_parameters_is_torchs_sgd_step() -> None:
    rng = np.random.default_rng(9)
    shapes = [(3, 5), (3, 1), (1, 3), (1, 1)]
    parameters = {name: rng.normal(size=shape) for name, shape in zip(NAMES, shapes, strict=True)}
    grads = {"d" + name: rng.normal(size=shape) for name, shape in zip(NAMES, shapes, strict=True)}
    before = {name: value.copy() for name, value in parameters.items()}

    for learning_rate in (0.01, 0.5):
        updated = update_parameters_NN(parameters, grads, learning_rate)
        expected = torch_sgd_step(parameters, grads, learning_rate)
        for name in NAMES:
            np.testing.assert_allclose(updated[name], expected[name], rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        update_parameters_NN(parameters, grads)["weight1"],
        torch_sgd_step(parameters, grads, 0.01)["weight1"],
        rtol=1e-15,
    )  # the default learning rate is 0.01
    for name in NAMES:  # the parameters passed in are left as they were
        np.testing.assert_array_equal(parameters[name], before[name])


# --- The whole network on the real data --------------------------------------------------------


@pytest.mark.slow  # the 2,500 iterations of `trained` (~10 s)
def test_two_layer_network_reports_every_100_iterations(
    trained: tuple[TwoLayerNeuralNetworkResult, list[tuple[int, float]]],
) -> None:
    result, calls = trained
    assert [i for i, _ in calls] == list(range(0, 2500, 100))
    assert [cost for _, cost in calls] == result.cost_list[::100]
    assert len(result.cost_list) == 2500


@pytest.mark.slow  # the 2,500 iterations of `trained` (~10 s)
def test_two_layer_network_cost_goes_down(
    split: Split, trained: tuple[TwoLayerNeuralNetworkResult, list[tuple[int, float]]]
) -> None:
    """Every step lowers the cost, from the initial network's log loss (by PyTorch)."""
    x_train, y_train, _, _ = split
    result, calls = trained
    start = initialize_parameters_and_layer_sizes_NN(x_train, y_train, np.random.default_rng(42))
    initial_A2 = torch_two_layer(start, x_train, y_train).A2

    assert result.cost_list[0] == pytest.approx(log_loss(y_train.ravel(), initial_A2.ravel()))
    assert (np.diff(result.cost_list) < 0).all()
    assert f"{calls[0][1]:f}" == "0.700736"
    assert f"{calls[-1][1]:f}" == "0.041683"


@pytest.mark.slow  # the 2,500 iterations of `trained` (~10 s)
def test_two_layer_network_accuracies_on_the_real_data(
    split: Split, trained: tuple[TwoLayerNeuralNetworkResult, list[tuple[int, float]]]
) -> None:
    """Seed 42, learning rate 0.01, 2,500 iterations: 347 of the 348 training images and
    all 62 test images right."""
    x_train, y_train, x_test, y_test = split
    result, _ = trained
    model = sklearn_network(result.parameters)

    assert result.train_accuracy == 347 / 348
    assert result.test_accuracy == 62 / 62
    np.testing.assert_array_equal(result.y_prediction_train[0], model.predict(x_train.T))
    np.testing.assert_array_equal(result.y_prediction_test[0], model.predict(x_test.T))
    assert result.train_accuracy == np.mean(result.y_prediction_train == y_train)
    assert result.test_accuracy == np.mean(result.y_prediction_test == y_test)


def test_two_layer_network_without_a_generator_uses_the_seed_42() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(4, 20)), np.tile([[0.0, 1.0]], 10)
    without = two_layer_neural_network(x, y, x, y, num_iterations=3)
    seeded = two_layer_neural_network(x, y, x, y, num_iterations=3, rng=np.random.default_rng(42))
    for name in NAMES:
        np.testing.assert_array_equal(without.parameters[name], seeded.parameters[name])


# --- Arguments and divergence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("learning_rate", "iterations", "named"),
    [
        (0.0, 10, "learning rate"),
        (-0.01, 10, "learning rate"),
        (float("nan"), 10, "learning rate"),
        (float("inf"), 10, "learning rate"),
        (0.01, 0, "iterations"),
        (0.01, -5, "iterations"),
        (0.01, 2.5, "iterations"),
    ],
)
def test_two_layer_network_refuses_bad_hyperparameters(
    learning_rate: float, iterations: int, named: str
) -> None:
    x, y = np.ones((3, 4)), np.ones((1, 4))
    with pytest.raises(InvalidArgumentError, match=named):
        two_layer_neural_network(x, y, x, y, iterations, learning_rate)


@pytest.mark.parametrize("rng", [42, np.random.RandomState(42)], ids=["int", "RandomState"])
def test_two_layer_network_refuses_what_is_not_a_generator(rng: object) -> None:
    x, y = np.ones((3, 4)), np.ones((1, 4))
    with pytest.raises(InvalidArgumentError, match=r"rng must be a numpy\.random\.Generator"):
        two_layer_neural_network(x, y, x, y, rng=rng)  # type: ignore[arg-type]


def test_two_layer_network_stops_when_the_cost_is_no_longer_finite() -> None:
    """A learning rate of 1e308 sends the weights past the largest float in a few steps."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(4, 20)), np.tile([[0.0, 1.0]], 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from NumPy on the way
        with pytest.raises(TrainingError, match="diverged at iteration"):
            two_layer_neural_network(x, y, x, y, num_iterations=50, learning_rate=1e308)
