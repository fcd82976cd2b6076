"""scikit-learn beside ours: its models fitted and scored, timed, for the tutorials' tables.

Importing scikit-learn takes 1.2 to 1.8 s on a 2-core machine (it imports SciPy): longer
than all the rest of the tutorial's first part. Its fit is deterministic, so
``fit_logistic_regression`` keeps its result in the cache folder, under a key made of
everything the result depends on: the split's arrays (bytes, shapes, dtypes), the model
and its parameters, and the versions of scikit-learn, SciPy and NumPy. A later run with
the same key shows the same scores and the time that fit took, without importing
scikit-learn; ``cached`` in the result says which it was. Any other key, or a cache
entry that is not what this module wrote, fits again.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from signdigits.atomic import atomic_write

_RESULT_KEYS = {
    "train_accuracy": float,
    "test_accuracy": float,
    "seconds": float,
    "converged": bool,
}
"""What ``fit_and_score`` returns, and so what a cached result must hold, with its types."""

_LARGEST_CACHED_RESULT = 4096
"""Bytes: a cached result is a few short JSON fields; anything longer is not one."""


def fit_and_score(
    model: Any, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """Fit a scikit-learn ``model`` on samples-first arrays and score it, timed (fit and
    score); ``converged`` is False when its solver warned that it stopped too early."""
    from sklearn.exceptions import ConvergenceWarning

    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X_train, y_train)
        train_accuracy = float(model.score(X_train, y_train))
        test_accuracy = float(model.score(X_test, y_test))
    seconds = time.perf_counter() - started
    return {
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "seconds": seconds,
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
    }


def fit_logistic_regression(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    cache_folder: Path | None = None,
) -> dict[str, Any]:
    """The tutorial's ``LogisticRegression(random_state=seed, max_iter=150)``, fitted and
    scored on samples-first arrays: ``fit_and_score``'s result, plus ``cached``.

    With a ``cache_folder``, a result kept there for exactly this fit is returned instead
    of fitting again, and a new result is kept there.
    """
    model_description = f"LogisticRegression(random_state={seed}, max_iter=150)"
    split = (X_train, y_train, X_test, y_test)
    path = None
    if cache_folder is not None:
        path = cache_folder / f"sklearn-fit-{_fit_key(model_description, split)[:32]}.json"
        kept = _read_result(path)
        if kept is not None:
            return {**kept, "cached": True}
    from sklearn.linear_model import LogisticRegression

    result = fit_and_score(LogisticRegression(random_state=seed, max_iter=150), *split)
    if path is not None:
        try:
            with atomic_write(path, "w", encoding="utf-8") as file:
                json.dump(result, file)
        except OSError:
            pass  # the cache only saves time: a read-only or full disk must not stop the work
    return {**result, "cached": False}


def _fit_key(model_description: str, arrays: tuple[np.ndarray, ...]) -> str:
    """BLAKE2b of all that a fit's result depends on: model, library versions, machine, data."""
    digest = hashlib.blake2b(model_description.encode(), digest_size=32)
    for package in ("scikit-learn", "scipy", "numpy"):
        digest.update(f"|{package} {version(package)}".encode())
    digest.update(f"|{platform.machine()}".encode())
    for array in arrays:
        digest.update(f"|{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _read_result(path: Path) -> dict[str, Any] | None:
    """A kept result, or ``None`` unless the file holds exactly the fields of one."""
    try:
        with path.open("rb") as file:
            text = file.read(_LARGEST_CACHED_RESULT + 1)
        result = json.loads(text) if len(text) <= _LARGEST_CACHED_RESULT else None
    except (OSError, ValueError):  # missing, a folder, unreadable, not JSON
        return None
    if not isinstance(result, dict) or set(result) != set(_RESULT_KEYS):
        return None
    if not all(type(result[key]) is kind for key, kind in _RESULT_KEYS.items()):
        return None
    if not all(0.0 <= result[key] <= 1.0 for key in ("train_accuracy", "test_accuracy")):
        return None
    return result if 0.0 <= result["seconds"] < float("inf") else None
