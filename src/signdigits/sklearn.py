"""scikit-learn estimators over signdigits' own models.

- :class:`LogisticRegressionGD`: part 1's logistic regression, full-batch gradient descent.
- :class:`MLPClassifier`: a multi-layer perceptron built on :mod:`signdigits.nn` and trained
  with :mod:`signdigits.optim` on mini-batches; with its defaults it is the tutorial's
  "L-layer" Keras network (4096 → 8 → 4 → 1, ReLU, uniform ±0.05 weights, Adam).

They follow scikit-learn's contract, so that its tools work on them unchanged: ``Pipeline``,
``cross_val_score``, ``GridSearchCV``. Hyper-parameters are set in ``__init__`` only and
checked in ``fit``; what ``fit`` learns ends in ``_`` (``coef_``, ``classes_``,
``n_features_in_``); any labels work (``classes_`` maps them to 0, 1, …); inputs are
samples first, ``X`` of shape (n_samples, n_features), as everywhere in scikit-learn.

:func:`expected_failed_checks` names the checks of scikit-learn's
``parametrize_with_checks`` that an estimator is known to fail, each with its reason.
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from signdigits import functional as F
from signdigits import nn, optim, tutorial
from signdigits.autograd.tensor import Tensor, no_grad
from signdigits.errors import InvalidArgumentError, TrainingError


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


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}
"""``MLPClassifier``'s activations, with scikit-learn's names, and their layers."""

OPTIMIZERS = ("adam", "sgd")
INITS = ("uniform", "default")
UNIFORM_LIMIT = 0.05
"""Keras's ``"uniform"`` initializer (``RandomUniform``) draws from U(−0.05, 0.05)."""


class MLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron on :mod:`signdigits.nn`, trained with :mod:`signdigits.optim`
    on shuffled mini-batches.

    The network is ``Linear → activation`` for each size in ``hidden_layer_sizes``, then a
    ``Linear`` output layer: one unit for two classes, trained with the binary cross-entropy
    computed from the logit (``functional.binary_cross_entropy_with_logits``, stable where a
    separate sigmoid and log would reach log 0), or one unit per class for three or more,
    trained with the softmax cross-entropy (``functional.cross_entropy``). Each of ``epochs``
    epochs shuffles the samples and takes one optimizer step per batch of ``batch_size``
    (the last batch may be smaller), as Keras's ``fit`` does. Training is in float32.

    The defaults are the tutorial's Keras network (``build_classifier`` in the notebook):
    hidden layers (8, 4), ReLU, weights uniform in ±0.05 and biases 0 (``init="uniform"``,
    Keras's ``"uniform"``), Adam with learning rate 0.001, β = (0.9, 0.999) and ε = 1e-7
    (Keras's ε), 100 epochs of batches of 32. ``init="default"`` keeps PyTorch's initial
    values instead (uniform in ±1/√fan_in); ``optimizer="sgd"`` takes plain gradient steps.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int ≥ 1, default (8, 4). ``()`` is logistic regression.
    activation : {"relu", "tanh", "logistic", "identity"}, default "relu".
    optimizer : {"adam", "sgd"}, default "adam".
    learning_rate : float > 0, default 0.001.
    epochs : int ≥ 1, default 100.
    batch_size : int ≥ 1, default 32 (a batch larger than the data is the whole data).
    init : {"uniform", "default"}, default "uniform".
    betas : pair of floats in [0, 1), default (0.9, 0.999): Adam's β₁ and β₂.
    eps : float ≥ 0, default 1e-7: Adam's ε.
    random_state : None, int, or numpy.random.Generator, default None. One Generator is made
        from it (``np.random.default_rng``) and draws the initial weights, then each epoch's
        order: the same int gives the same network, bit for bit. None draws fresh entropy
        from the operating system; nothing reads NumPy's global random state.

    Attributes
    ----------
    classes_ : the labels, sorted; the network's output unit k (or its one unit's
        "positive" side, for two classes) is ``classes_[k]`` (``classes_[1]``).
    n_features_in_ : the number of features seen in ``fit``.
    model_ : the trained ``nn.Sequential``.
    coefs_, intercepts_ : each layer's weights (n_in, n_out) and biases, as scikit-learn's
        ``MLPClassifier`` lays them out (copies, float32).
    loss_curve_ : the mean training loss of each epoch.
    n_iter_ : the number of epochs run; ``t_``: the number of optimizer steps taken.
    """

    def __init__(
        self,
        hidden_layer_sizes: tuple[int, ...] = (8, 4),
        activation: str = "relu",
        optimizer: str = "adam",
        learning_rate: float = 0.001,
        epochs: int = 100,
        batch_size: int = 32,
        init: str = "uniform",
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-7,
        random_state: int | np.random.Generator | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.init = init
        self.betas = betas
        self.eps = eps
        self.random_state = random_state

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Build the network, then train it for ``epochs`` epochs of mini-batches."""
        sizes = self._checked_hyperparameters()
        rng = self._generator()
        X, y = validate_data(self, X, y, dtype=np.float32)
        check_classification_targets(y)
        self.classes_, encoded = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise InvalidArgumentError(
                f"y has 1 class ({self.classes_[0]!r}): MLPClassifier needs at least 2 classes"
            )
        binary = len(self.classes_) == 2
        outputs = 1 if binary else len(self.classes_)
        model = self._build([X.shape[1], *sizes, outputs], rng)
        target = encoded.astype(np.float32) if binary else encoded.astype(np.intp)
        if self.optimizer == "adam":
            step = optim.Adam(
                model.named_parameters(), lr=self.learning_rate, betas=self.betas, eps=self.eps
            )
        else:
            step = optim.SGD(model.named_parameters(), lr=self.learning_rate)
        from threadpoolctl import threadpool_limits  # installed with scikit-learn

        n, batch = len(X), min(self.batch_size, len(X))
        losses, steps = [], 0
        model.train()
        # Each product here is a few dozen rows by a few units: BLAS threads cannot share
        # such small work, and on a machine with few cores their spinning after each call
        # only costs time. One thread, chosen here rather than left to chance.
        with threadpool_limits(limits=1, user_api="blas"):
            for epoch in range(self.epochs):
                order = rng.permutation(n)
                total = 0.0
                for start in range(0, n, batch):
                    rows = order[start : start + batch]
                    step.zero_grad()
                    loss = self._loss(model(Tensor(X[rows])), target[rows], binary)
                    loss.backward()
                    step.step()
                    total += float(loss.data) * len(rows)
                    steps += 1
                if not math.isfinite(total):
                    raise TrainingError(
                        f"MLPClassifier: training diverged in epoch {epoch}: the loss is no "
                        f"longer a finite number (learning rate {self.learning_rate} is too "
                        "large?); try a smaller learning_rate"
                    )
                losses.append(total / n)
        model.eval()
        self.model_ = model
        self.loss_curve_ = losses
        self.n_iter_ = self.epochs
        self.t_ = steps
        return self

    @staticmethod
    def _loss(output: Tensor, target: np.ndarray, binary: bool) -> Tensor:
        if binary:  # the cross-entropy from the logit: no separate sigmoid, no log 0
            return F.binary_cross_entropy_with_logits(output.reshape(-1), target)
        return F.cross_entropy(output, target)

    def _build(self, sizes: list[int], rng: np.random.Generator) -> nn.Sequential:
        layers: list[nn.Module] = []
        for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
            linear = nn.Linear(fan_in, fan_out, rng=rng)  # PyTorch's initial values
            if self.init == "uniform":  # Keras's: weights U(−0.05, 0.05), biases 0
                nn.init.uniform_(linear.weight, -UNIFORM_LIMIT, UNIFORM_LIMIT, rng=rng)
                nn.init.zeros_(linear.bias)
            layers.append(linear)
            if index < len(sizes) - 2:
                layers.append(ACTIVATIONS[self.activation]())
        return nn.Sequential(*layers)

    def _generator(self) -> np.random.Generator:
        seed = self.random_state
        if seed is None or isinstance(seed, np.random.Generator):
            return np.random.default_rng(seed)
        if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
            return np.random.default_rng(int(seed))
        if isinstance(seed, np.random.RandomState):  # scikit-learn's own kind: a seed from it
            return np.random.default_rng(seed.randint(2**32, dtype=np.uint64))
        raise InvalidArgumentError(
            f"random_state must be None, an int ≥ 0 or a numpy.random.Generator, got {seed!r}"
        )

    def _checked_hyperparameters(self) -> list[int]:
        """Every hyper-parameter, checked at the start of ``fit`` (before the data): returns
        the hidden layer sizes as a list."""
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = (sizes,)
        if not isinstance(sizes, tuple | list) or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in sizes
        ):
            raise InvalidArgumentError(
                "hidden_layer_sizes must be a tuple of ints ≥ 1 (one per hidden layer), got "
                f"{self.hidden_layer_sizes!r}; try (8, 4)"
            )
        for name, allowed in (
            ("activation", tuple(ACTIVATIONS)),
            ("optimizer", OPTIMIZERS),
            ("init", INITS),
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or value not in allowed:
                choices = ", ".join(repr(a) for a in allowed)
                raise InvalidArgumentError(f"{name} must be one of {choices}, got {value!r}")
        if not _is_real(self.learning_rate) or not self.learning_rate > 0:
            raise InvalidArgumentError(
                f"learning_rate must be a finite number > 0, got {self.learning_rate!r}; try 0.001"
            )
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise InvalidArgumentError(f"{name} must be an int ≥ 1, got {value!r}")
        betas = self.betas
        if not (
            isinstance(betas, tuple | list)
            and len(betas) == 2
            and all(_is_real(b) and 0 <= b < 1 for b in betas)
        ):
            raise InvalidArgumentError(
                f"betas must be a pair of numbers in [0, 1), got {betas!r}; try (0.9, 0.999)"
            )
        if not _is_real(self.eps) or self.eps < 0:
            raise InvalidArgumentError(f"eps must be a finite number ≥ 0, got {self.eps!r}")
        return [int(s) for s in sizes]

    # -- predict ------------------------------------------------------------------------------
    def decision_function(self, X: Any) -> np.ndarray:
        """The network's output for each sample, before the sigmoid or softmax: shape
        (n_samples,) for two classes (positive where ``classes_[1]`` is predicted), else
        (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, reset=False)
        with no_grad():
            output = self.model_(Tensor(X)).data.astype(np.float64)
        return output[:, 0] if len(self.classes_) == 2 else output

    def predict_proba(self, X: Any) -> np.ndarray:
        """The probability of each class, (n_samples, n_classes): (1 − σ(z), σ(z)) for two
        classes, the softmax of the outputs for more."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = tutorial.sigmoid(scores)
            return np.column_stack([1 - positive, positive])
        scores = scores - scores.max(axis=1, keepdims=True)
        exponentials = np.exp(scores)
        return exponentials / exponentials.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample (``classes_[1]`` where z > 0, for two)."""
        scores = self.decision_function(X)
        chosen = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[chosen]

    @property
    def coefs_(self) -> list[np.ndarray]:
        """Each Linear layer's weights, (n_in, n_out) as in scikit-learn's MLPClassifier."""
        check_is_fitted(self, "model_")
        return [m.weight.data.T.copy() for m in self.model_ if isinstance(m, nn.Linear)]

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Each Linear layer's biases, (n_out,)."""
        check_is_fitted(self, "model_")
        return [m.bias.data.copy() for m in self.model_ if isinstance(m, nn.Linear)]


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | np.bool_)
        and math.isfinite(value)
    )


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """The checks of scikit-learn's ``parametrize_with_checks`` that ``estimator`` is known
    to fail, by name, each with its reason (none, today)."""
    return {}
