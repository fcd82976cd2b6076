"""ConvNetClassifier: the library's CNN as a scikit-learn estimator of 64×64 images. It
passes scikit-learn's estimator checks, but for those that feed it tabular data of a few
features (declared, each with its reason); those pass on the same data made into images.
It works in Pipeline, cross_val_score and GridSearchCV on the real data."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from signdigits.models import default_spec
from signdigits.sklearn import NOT_IMAGES, ConvNetClassifier, expected_failed_checks
from signdigits.training import MODEL_DEFAULTS, predict_logits

PIXELS = 64 * 64

TINY = {"channels": (2,), "epochs": 1, "batch_size": 16, "augment": False}
"""One block of two channels, one epoch: a network that fits in a fraction of a second."""

LEARNS = {**TINY, "epochs": 2, "batch_size": 4, "schedule": "none", "dropout": 0.0}
"""Still tiny, but learns three signs from 68 images: more steps (two epochs of batches of
4, enough for batch norm's running statistics to settle), a constant learning rate, no
dropout. (Over the random states 0 to 4, the grid search's best score was 0.69 to 0.86.)"""


SHAPE_ERROR = "X must be images of 64×64 pixels"
"""The start of ConvNetClassifier's message for data of any other shape."""


def check_name(check: Callable[..., Any]) -> str:
    while isinstance(check, functools.partial):
        check = check.func
    return check.__name__


@parametrize_with_checks([ConvNetClassifier(**TINY, random_state=0)])
def test_scikit_learns_estimator_checks(estimator, check):
    """Every check passes, but those that ``expected_failed_checks`` declares: each of them
    fails, and on ConvNetClassifier's error for data that are not images.

    (Asserted here rather than marked as expected failures, which pytest would report by
    formatting each traceback through scikit-learn's 5,000-line module: some 10 s.)"""
    if check_name(check) not in expected_failed_checks(estimator):
        check(estimator)
        return
    with pytest.raises((ValueError, AssertionError)) as failure:
        check(estimator)
    error = failure.value
    assert SHAPE_ERROR in str(error) or SHAPE_ERROR in str(error.__cause__)


# --- The declared failures: the data's shape, and nothing else -------------------------------


def as_images(X: np.ndarray) -> np.ndarray:
    """Each row of d features repeated over the 4,096 pixels of an image: the same data,
    in the only shape ConvNetClassifier takes."""
    return np.tile(X, (1, -(-PIXELS // X.shape[1])))[:, :PIXELS]


ON_IMAGES = make_pipeline(
    FunctionTransformer(as_images, validate=True),  # validate: 1-D, sparse, n_features_in_
    # Two channels keep each check quick; two epochs of batches of 8 (enough steps for batch
    # norm's running statistics to settle) learn the checks' blobs, 85 to 93 % of them over
    # the random states 0 to 5 (check_classifiers_train asks for 83 %).
    ConvNetClassifier(
        channels=(2,),
        epochs=2,
        batch_size=8,
        learning_rate=0.003,
        optimizer="adam",
        schedule="none",
        dropout=0.0,
        augment=False,
        random_state=0,
    ),
)

PIPELINE_OWN = ("check_estimators_overwrite_params", "check_dont_overwrite_parameters")
"""Checks that fail on any Pipeline (fit changes its ``steps``' estimators in place): on
ConvNetClassifier, ``test_fit_changes_no_parameter_and_sets_only_attributes_ending_in_`` is
what they check."""

FLOAT32_SUBSETS = "check_methods_subset_invariance"


@pytest.mark.parametrize(
    "name", sorted(set(expected_failed_checks(ConvNetClassifier())) - set(PIPELINE_OWN))
)
def test_each_declared_failure_is_the_data_alone(name):
    """Each check ConvNetClassifier is declared to fail, on the same data made into images
    (``as_images``): it passes, so the data's shape was the whole reason. The one check
    with a second reason may fail on images, but only for that reason."""
    reason = expected_failed_checks(ConvNetClassifier())[name]
    assert NOT_IMAGES in reason
    check = getattr(estimator_checks, name)
    if name != FLOAT32_SUBSETS:
        check("ConvNetClassifier on images", clone(ON_IMAGES))
        return
    assert "float32" in reason
    try:
        check("ConvNetClassifier on images", clone(ON_IMAGES))
    except AssertionError as error:
        assert "is not invariant when applied to a subset" in str(error)


def test_only_the_convnet_has_declared_failures():
    from signdigits.sklearn import LogisticRegressionGD, MLPClassifier

    assert expected_failed_checks(LogisticRegressionGD()) == {}
    assert expected_failed_checks(MLPClassifier()) == {}
    reasons = expected_failed_checks(ConvNetClassifier())
    assert all(reason.strip() for reason in reasons.values())


# --- On the real images ------------------------------------------------------------------------

NAMES = np.array(["zero", "one", "two"])


@pytest.fixture(scope="module")
def signs(dataset):
    """34 images of each of the signs 0, 1 and 2 (102, 64, 64), float32, labelled by name."""
    rows = np.concatenate([np.nonzero(dataset.labels == d)[0][:34] for d in (0, 1, 2)])
    return dataset.images[rows].astype(np.float32), NAMES[dataset.labels[rows]]


@pytest.fixture(scope="module")
def fitted(signs):
    """A tiny network fitted on the images (102, 64, 64)."""
    images, names = signs
    return ConvNetClassifier(**TINY, random_state=3).fit(images, names)


def test_images_or_flattened_rows_are_the_same(signs, fitted):
    images, names = signs
    flat = images.reshape(len(images), -1)
    assert fitted.n_features_in_ == PIXELS
    np.testing.assert_array_equal(fitted.predict_proba(images), fitted.predict_proba(flat))
    np.testing.assert_array_equal(fitted.predict(images), fitted.predict(flat))
    again = ConvNetClassifier(**TINY, random_state=3).fit(flat, names)  # fitted on rows
    np.testing.assert_array_equal(again.predict_proba(images), fitted.predict_proba(images))


def test_outputs_agree_with_each_other(signs, fitted):
    images, names = signs
    assert list(fitted.classes_) == ["one", "two", "zero"]
    z = fitted.decision_function(images)
    proba = fitted.predict_proba(images)
    assert z.shape == proba.shape == (102, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(fitted.predict(images), fitted.classes_[z.argmax(axis=1)])
    np.testing.assert_array_equal(proba.argmax(axis=1), z.argmax(axis=1))
    assert fitted.score(images, names) == np.mean(fitted.predict(images) == names)
    assert fitted.model_.spec["classes"] == [0, 1, 2]  # words: the class indices
    assert not fitted.model_.training
    assert (fitted.n_iter_, fitted.t_, len(fitted.loss_curve_)) == (1, 7, 1)


def test_two_classes_give_one_decision_value(signs):
    images, names = signs
    two = names != "two"
    model = ConvNetClassifier(**TINY, random_state=0).fit(images[two], names[two])
    z = model.decision_function(images[two])
    proba = model.predict_proba(images[two])
    assert z.shape == (68,) and proba.shape == (68, 2)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-9)
    np.testing.assert_array_equal(model.predict(images[two]), model.classes_[(z > 0).astype(int)])


def test_digit_labels_make_a_model_file_signdigits_reads(signs, tmp_path):
    """Labels 0–9 are the spec's classes, so that the network is a signdigits model."""
    from signdigits.io import load_model, save_model

    images, names = signs
    digits = np.array([{"zero": 0, "one": 1, "two": 2}[n] for n in names]) + 3  # 3, 4, 5
    model = ConvNetClassifier(**TINY, random_state=0).fit(images, digits)
    assert model.model_.spec["classes"] == [3, 4, 5]
    loaded = load_model(save_model(model.model_, tmp_path / "cnn.safetensors", seed=0))
    np.testing.assert_array_equal(
        predict_logits(loaded, images), predict_logits(model.model_, images)
    )


def test_fit_changes_no_parameter_and_sets_only_attributes_ending_in_(signs):
    """What check_estimators_overwrite_params and check_dont_overwrite_parameters check,
    which fail on any Pipeline for its own reason."""
    images, names = signs
    model = ConvNetClassifier(**TINY, random_state=0)
    params, attributes = model.get_params(), dict(vars(model))
    model.fit(images, names)
    assert model.get_params() == params
    assert {k: v for k, v in vars(model).items() if k in attributes} == attributes
    new = set(vars(model)) - set(attributes)
    assert new and all(name.endswith("_") for name in new)


def test_same_random_state_same_network(signs):
    """The same int, or a Generator made from it, gives the same network; NumPy's global
    random state is neither read nor advanced."""
    images, names = signs
    settings = {**TINY, "augment": True}  # augmentation and dropout draw from it too
    np.random.seed(0)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    first = ConvNetClassifier(**settings, random_state=5).fit(images, names)
    np.random.seed(1)  # noqa: NPY002
    second = ConvNetClassifier(**settings, random_state=np.random.default_rng(5)).fit(images, names)
    np.testing.assert_array_equal(first.predict_proba(images), second.predict_proba(images))
    assert first.loss_curve_ == second.loss_curve_
    other = ConvNetClassifier(**settings, random_state=6).fit(images, names)
    assert not np.array_equal(first.predict_proba(images), other.predict_proba(images))
    np.random.seed(0)  # noqa: NPY002
    ConvNetClassifier(**TINY).fit(images, names)  # None: fresh entropy
    np.testing.assert_array_equal(np.random.get_state()[1], before)  # noqa: NPY002


def test_defaults_are_signdigits_trains_cnn():
    params = ConvNetClassifier().get_params()
    spec, training = default_spec("cnn", [0, 1]), MODEL_DEFAULTS["cnn"]
    assert list(params["channels"]) == spec["channels"] and params["dropout"] == spec["dropout"]
    assert (params["epochs"], params["learning_rate"]) == (training["epochs"], training["lr"])
    assert params["optimizer"] == training["optimizer"]
    assert params["schedule"] == training["schedule"]
    assert params["augment"] == training["augment"] and params["batch_size"] == 32


def test_in_a_pipeline_and_cross_validation(signs):
    """The pipeline's first step gives rows of 4,096 pixels back as images (n, 64, 64)."""
    images, names = signs
    rows = images.reshape(len(images), -1)
    to_images = FunctionTransformer(lambda a: a.reshape(len(a), 64, 64))
    network = ConvNetClassifier(**LEARNS, learning_rate=0.001, random_state=0)
    scores = cross_val_score(make_pipeline(to_images, network), rows, names, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.6  # chance: 1/3


def test_grid_search_over_the_learning_rate(signs):
    """Three signs, 102 images: each of the three folds trains on 68 for two epochs, then
    the best learning rate on all 102."""
    images, names = signs
    grid = [0.001, 0.01]
    network = ConvNetClassifier(**LEARNS, random_state=0)
    search = GridSearchCV(network, {"learning_rate": grid}, cv=3)
    search.fit(images, names)
    assert search.best_params_["learning_rate"] in grid
    assert search.best_score_ > 0.6  # chance: 1/3
    assert search.best_estimator_.learning_rate == search.best_params_["learning_rate"]
    assert search.score(images, names) > 0.75


# --- Mistakes, named ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("channels", (2, 0), "channels must be a tuple of 1 to 6 ints ≥ 1"),
        ("channels", (1,) * 7, "channels must be a tuple of 1 to 6 ints ≥ 1"),
        ("channels", "32", "channels must be a tuple of 1 to 6 ints ≥ 1"),
        ("dropout", 1.0, "dropout must be a number in [0, 1), got 1.0"),
        ("optimizer", "rmsprop", "optimizer must be one of 'adamw', 'adam', 'sgd'"),
        ("schedule", "step", "schedule must be one of 'onecycle', 'cosine', 'none'"),
        ("learning_rate", 0.0, "learning_rate must be a finite number > 0, got 0.0"),
        ("learning_rate", float("inf"), "learning_rate must be a finite number > 0"),
        ("weight_decay", -1e-4, "weight_decay must be a finite number ≥ 0"),
        ("epochs", 0, "epochs must be an int ≥ 1, got 0"),
        ("batch_size", 2.5, "batch_size must be an int ≥ 1, got 2.5"),
        ("augment", "yes", "augment must be True or False, got 'yes'"),
        ("random_state", -1, "random_state must be None, an int ≥ 0"),
    ],
)
def test_bad_hyper_parameters_are_named_in_fit(name, value, says):
    images = np.zeros((4, 64, 64), np.float32)
    model = ConvNetClassifier(**{name: value})  # __init__ only stores
    assert getattr(model, name) is value
    with pytest.raises(ValueError, match=re.escape(says)):
        model.fit(images, [0, 1, 0, 1])


@pytest.mark.parametrize("shape", [(4, 32, 32), (4, 1, 64, 64), (4, 100), (4, 64, 63)])
def test_images_of_another_shape_are_refused(shape, fitted):
    X = np.zeros(shape, np.float32)
    says = (
        f"{SHAPE_ERROR}, as an array (n_samples, 64, 64) or flattened (n_samples, 4096); "
        f"got shape {shape}"
    )
    with pytest.raises(ValueError, match=re.escape(says)):
        ConvNetClassifier(**TINY).fit(X, [0, 1, 0, 1])
    with pytest.raises(ValueError, match=re.escape(says)):
        fitted.predict(X)


@pytest.mark.parametrize("classes", [1, 11])
def test_one_class_or_more_than_ten_are_refused(classes):
    images = np.zeros((11, 64, 64), np.float32)
    labels = np.arange(11) % classes
    with pytest.raises(ValueError, match=f"y has {classes} class.*tells 2 to 10 classes apart"):
        ConvNetClassifier(**TINY).fit(images, labels)
