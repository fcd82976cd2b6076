"""scikit-learn estimators over signdigits' own models.

They follow scikit-learn's contract, so that its tools work on them unchanged: ``Pipeline``,
``cross_val_score``, ``GridSearchCV``. Hyper-parameters are set in ``__init__`` only and
checked in ``fit``; what ``fit`` learns ends in ``_`` (``coef_``, ``classes_``,
``n_features_in_``); any labels work (``classes_`` maps them to 0, 1, …); inputs are
samples first, ``X`` of shape (n_samples, n_features), as everywhere in scikit-learn.

:func:`expected_failed_checks` names the checks of scikit-learn's
``parametrize_with_checks`` that an estimator is known to fail, each with its reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from signdigits import tutorial
from signdigits.errors import InvalidArgumentError


class LogisticRegressionGD(ClassifierMixin, BaseEstimator):
    """Part 1's logistic regression as a scikit-learn classifier: weights all 0.01 and bias
    0, then ``max_iter`` steps of full-batch gradient descent with ``learning_rate``,
    exactly as ``signdigits.tutorial.logistic_regression`` (no regularisation).

    For two classes: ``classes_[1]`` is the positive class, predicted where
    ŷ = σ(w·x + b) > 0.5, that is where the decision function w·x + b > 0.
    """

    def __init__(self, learning_rate: float = 0.01, max_iter: int = 150) -> None:
        self.learning_rate = learning_rate
        self.max_iter = max_iter

    def fit(self, X: Any, y: Any) -> LogisticRegressionGD:
        """Learn ``coef_`` (1, n_features) and ``intercept_`` (1,) by gradient descent;
        ``cost_curve_`` holds the cost of every iteration."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        target_type = type_of_target(y, input_name="y", raise_unknown=True)
        if target_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{target_type}: LogisticRegressionGD needs exactly 2 classes in y."
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        w, b = tutorial.initialize_weights_and_bias(X.shape[1])
        try:
            parameters, _, costs = tutorial.update(
                w,
                b,
                X.T,
                encoded.reshape(1, -1).astype(np.float64),
                self.learning_rate,
                self.max_iter,
            )
        except InvalidArgumentError as error:
            raise ValueError(str(error)) from None
        self.coef_ = np.asarray(parameters["weight"]).reshape(1, -1)
        self.intercept_ = np.array([float(parameters["bias"])])
        self.cost_curve_ = costs
        self.n_iter_ = self.max_iter
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """z = w·x + b for each sample: positive where ``classes_[1]`` is predicted."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict_proba(self, X: Any) -> np.ndarray:
        """(1 − ŷ, ŷ) for each sample, with ŷ = σ(z) the probability of ``classes_[1]``."""
        positive = tutorial.sigmoid(self.decision_function(X))
        return np.column_stack([1 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` where ŷ > 0.5, else ``classes_[0]``."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """The checks of scikit-learn's ``parametrize_with_checks`` that ``estimator`` is known
    to fail, by name, each with its reason (none, today)."""
    return {}
