"""The scikit-learn estimators pass scikit-learn's own estimator checks, and work in its
tools (Pipeline, cross_val_score, GridSearchCV) on the real data."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from signdigits import tutorial
from signdigits.sklearn import LogisticRegressionGD, MLPClassifier, expected_failed_checks

ESTIMATORS = [
    LogisticRegressionGD(max_iter=20),
    # Few epochs keep the checks fast; a larger step than Keras's 0.001 learns the checks'
    # small problems (300 samples of 2 to 10 features) in them.
    MLPClassifier(epochs=10, learning_rate=0.01, random_state=0),
]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def signs_0_and_1(dataset):
    """The tutorial's 410 images, samples first (410, 4096), and their labels."""
    X, Y = tutorial.load_zeros_and_ones(dataset)
    return X.reshape(len(X), -1), Y.ravel()


def test_logistic_regression_gd_is_part_1_exactly(signs_0_and_1):
    X, y = signs_0_and_1
    x_train, y_train, x_test, y_test = tutorial.split_flatten_transpose(
        X.reshape(-1, 64, 64), y.reshape(-1, 1)
    )
    reference = tutorial.logistic_regression(x_train, y_train, x_test, y_test)
    model = LogisticRegressionGD().fit(x_train.T, y_train.ravel())
    np.testing.assert_array_equal(model.coef_.ravel(), reference.parameters["weight"].ravel())
    assert model.score(x_test.T, y_test.ravel()) == reference.test_accuracy == 60 / 62
    assert model.score(x_train.T, y_train.ravel()) == reference.train_accuracy == 327 / 348


def test_any_labels_work(signs_0_and_1):
    X, y = signs_0_and_1
    words = np.where(y == 1, "sign one", "sign zero")  # sorted: "sign one" is classes_[0]
    model = LogisticRegressionGD(max_iter=30).fit(X, words)
    assert list(model.classes_) == ["sign one", "sign zero"]
    flipped = LogisticRegressionGD(max_iter=30).fit(X, 1 - y)  # the same problem in numbers
    np.testing.assert_array_equal(model.predict(X) == "sign zero", flipped.predict(X) == 1)
    np.testing.assert_array_equal(model.predict_proba(X), flipped.predict_proba(X))


def test_in_a_pipeline_cross_validation_and_grid_search(signs_0_and_1):
    X, y = signs_0_and_1
    pipeline = make_pipeline(FunctionTransformer(lambda a: a * 1.0), LogisticRegressionGD())
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    search = GridSearchCV(
        LogisticRegressionGD(), {"learning_rate": [0.001, 0.01], "max_iter": [50, 150]}, cv=3
    ).fit(X, y)
    assert search.best_params_["learning_rate"] in (0.001, 0.01)
    assert search.best_score_ > 0.85


# --- MLPClassifier: the tutorial's L-layer network as a scikit-learn estimator ---------------

KERAS = {
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
"""The notebook's Keras network: Dense(8, relu), Dense(4, relu), Dense(1, sigmoid), all
``kernel_initializer="uniform"``; ``optimizer="adam"`` (Keras's defaults), ``epochs=100``,
the default batch size of ``fit`` (32)."""


@pytest.fixture(scope="module")
def small_sample(signs_0_and_1):
    """64 of the 410 images (32 of each sign), float32, and their 0/1 labels."""
    X, y = signs_0_and_1
    rows = np.concatenate([np.arange(0, 32), np.arange(205, 237)])
    return X[rows].astype(np.float32), y[rows]


def test_mlp_defaults_are_the_keras_network():
    assert {k: v for k, v in MLPClassifier().get_params().items() if k in KERAS} == KERAS
    assert tutorial.build_classifier(7).get_params() == {**KERAS, "random_state": 7}


def test_mlp_is_4096_8_4_1_relu_with_keras_uniform_initial_weights(small_sample):
    """With a step too small to change a weight's float32 value, the trained weights are
    the initial ones: uniform in ±0.05, and biases that were 0 (now at most 1e-30 · their
    gradient)."""
    X, y = small_sample
    model = MLPClassifier(optimizer="sgd", learning_rate=1e-30, epochs=1, random_state=3)
    model.fit(X, y)
    assert [type(layer).__name__ for layer in model.model_] == [
        "Linear",
        "ReLU",
        "Linear",
        "ReLU",
        "Linear",
    ]
    assert [w.shape for w in model.coefs_] == [(4096, 8), (8, 4), (4, 1)]
    first = model.coefs_[0]
    assert np.abs(first).max() <= 0.05 and np.abs(first).max() > 0.049
    assert abs(first.mean()) < 0.002 and first.std() == pytest.approx(0.05 / np.sqrt(3), rel=0.05)
    assert all(np.abs(b).max() < 1e-25 for b in model.intercepts_)  # 0 − 1e-30 · gradient
    default = MLPClassifier(init="default", optimizer="sgd", learning_rate=1e-30, epochs=1)
    bound = 1 / np.sqrt(4096)  # PyTorch's Linear: U(±1/√fan_in), biases too
    assert np.abs(default.fit(X, y).coefs_[0]).max() <= bound


def test_mlp_trains_step_for_step_as_pytorch(small_sample):
    """The same initial weights and batches, trained by PyTorch (Linear, ReLU,
    BCEWithLogitsLoss, torch.optim.Adam with ε = 1e-7): the same weights after 3 epochs."""
    import torch

    X, y = small_sample
    ours = MLPClassifier(epochs=3, random_state=11).fit(X, y)

    rng = np.random.default_rng(11)  # what fit draws: the initial weights, then each order
    initial = MLPClassifier()._build([4096, 8, 4, 1], rng)
    orders = [rng.permutation(len(X)) for _ in range(3)]
    layers = [torch.nn.Linear(4096, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)]
    reference = torch.nn.Sequential(*layers, torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with torch.no_grad():
        for theirs, mine in zip(reference.parameters(), initial.parameters(), strict=True):
            theirs.copy_(torch.from_numpy(mine.data))
    adam = torch.optim.Adam(reference.parameters(), lr=0.001, betas=(0.9, 0.999), eps=1e-7)
    losses = []
    for order in orders:
        total = 0.0
        for start in range(0, len(X), 32):
            rows = order[start : start + 32]
            adam.zero_grad()
            logits = reference(torch.from_numpy(X[rows]))[:, 0]
            target = torch.from_numpy(y[rows].astype(np.float32))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
            loss.backward()
            adam.step()
            total += loss.item() * len(rows)
        losses.append(total / len(X))

    weights = [p.detach().numpy() for p in reference.parameters()]
    for mine, theirs in zip(ours.model_.parameters(), weights, strict=True):
        np.testing.assert_allclose(mine.data, theirs, rtol=0, atol=2e-6)
    np.testing.assert_allclose(ours.loss_curve_, losses, rtol=1e-5)
    assert (ours.n_iter_, ours.t_) == (3, 6)


def test_mlp_same_random_state_same_network_and_no_global_random_state(small_sample):
    """NumPy's legacy global state (np.random.seed) is set here on purpose: to show that fit
    neither reads it nor advances it."""
    X, y = small_sample
    np.random.seed(0)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = MLPClassifier(epochs=5, random_state=5).fit(X, y)
    # Another global state changes nothing.
    np.random.seed(1)  # noqa: NPY002
    second = MLPClassifier(epochs=5, random_state=5).fit(X, y)
    for ours, again in zip(
        first.coefs_ + first.intercepts_, second.coefs_ + second.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(ours, again)
    assert first.loss_curve_ == second.loss_curve_
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))

    np.random.seed(0)  # noqa: NPY002
    unseeded = [MLPClassifier(epochs=1).fit(X, y).coefs_[0] for _ in range(2)]
    assert not np.array_equal(*unseeded)  # None: fresh entropy, not the global state
    # Nor is the global state advanced.
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002
    generator = MLPClassifier(epochs=5, random_state=np.random.default_rng(5)).fit(X, y)
    np.testing.assert_array_equal(generator.coefs_[0], first.coefs_[0])


def test_mlp_outputs_agree_with_each_other(small_sample):
    X, y = small_sample
    model = MLPClassifier(epochs=10, random_state=0).fit(X, y)
    z = model.decision_function(X)
    proba = model.predict_proba(X)
    assert z.shape == (64,) and proba.shape == (64, 2)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(model.predict(X), (z > 0).astype(int))
    assert model.score(X, y) == np.mean(model.predict(X) == y)
    assert model.n_features_in_ == 4096 and list(model.classes_) == [0, 1]


def test_mlp_any_labels_and_more_than_two_classes(dataset):
    """Words as labels, and three digits at once (softmax and the cross-entropy)."""
    rows = np.concatenate([np.nonzero(dataset.labels == d)[0][:60] for d in (0, 1, 2)])
    X = dataset.images[rows].reshape(len(rows), -1)
    names = np.array(["zero", "one", "two"])[dataset.labels[rows]]
    model = MLPClassifier(hidden_layer_sizes=(16,), epochs=40, random_state=0).fit(X, names)
    assert list(model.classes_) == ["one", "two", "zero"]
    assert model.decision_function(X).shape == (180, 3)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X))
    assert model.score(X, names) > 0.9


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("hidden_layer_sizes", (8, 0), "hidden_layer_sizes must be a tuple of ints ≥ 1"),
        ("hidden_layer_sizes", "8, 4", "hidden_layer_sizes must be a tuple of ints ≥ 1"),
        ("activation", "softmax", "activation must be one of 'relu', 'tanh'"),
        ("optimizer", "rmsprop", "optimizer must be one of 'adam', 'sgd'"),
        ("init", "glorot", "init must be one of 'uniform', 'default'"),
        ("learning_rate", 0.0, "learning_rate must be a finite number > 0"),
        ("learning_rate", float("nan"), "learning_rate must be a finite number > 0"),
        ("epochs", 0, "epochs must be an int ≥ 1"),
        ("batch_size", 2.5, "batch_size must be an int ≥ 1"),
        ("betas", (0.9, 1.0), "betas must be a pair of numbers in [0, 1)"),
        ("eps", -1e-7, "eps must be a finite number ≥ 0"),
        ("random_state", -1, "random_state must be None, an int ≥ 0"),
    ],
)
def test_mlp_checks_its_hyper_parameters_in_fit(small_sample, name, value, says):
    X, y = small_sample
    model = MLPClassifier(**{name: value})  # __init__ only stores
    assert getattr(model, name) is value
    with pytest.raises(ValueError, match=re.escape(says)):
        model.fit(X, y)


def test_mlp_one_class_is_refused(small_sample):
    X, _ = small_sample
    with pytest.raises(ValueError, match="y has 1 class"):
        MLPClassifier().fit(X, np.ones(len(X)))


def test_mlp_in_a_pipeline_cross_validation_and_grid_search(signs_0_and_1):
    X, y = signs_0_and_1
    fast = {"epochs": 20, "random_state": 0}
    pipeline = make_pipeline(FunctionTransformer(lambda a: a * 1.0), MLPClassifier(**fast))
    scores = cross_val_score(pipeline, X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.85
    search = GridSearchCV(
        MLPClassifier(**fast), {"hidden_layer_sizes": [(8, 4), (8,)], "init": ["uniform"]}, cv=3
    ).fit(X, y)
    assert search.best_params_["hidden_layer_sizes"] in ((8, 4), (8,))
    assert search.best_score_ > 0.85
    assert search.best_estimator_.model_[0].out_features == 8
