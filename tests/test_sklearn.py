"""The scikit-learn estimators pass scikit-learn's own estimator checks, and work in its
tools (Pipeline, cross_val_score, GridSearchCV) on the real data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from signdigits import tutorial
from signdigits.sklearn import LogisticRegressionGD, expected_failed_checks

ESTIMATORS = [LogisticRegressionGD(max_iter=20)]


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
