"""scikit-learn's fit for the tutorial's table, and the cache that spares its import.

A kept result must be exactly the fit's result for the same split, model and library
versions, and anything else must fit again: a different seed or split, another
version of scikit-learn, or a cache file that is not what was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import signdigits.comparison as comparison
from signdigits.comparison import fit_and_score, fit_logistic_regression
from signdigits.data import SignDigits
from signdigits.tutorial import load_zeros_and_ones, split_flatten_transpose

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def split(dataset: SignDigits) -> Split:
    """The tutorial's split, samples first, as scikit-learn takes it."""
    x_train, y_train, x_test, y_test = split_flatten_transpose(*load_zeros_and_ones(dataset))
    return x_train.T, y_train.ravel(), x_test.T, y_test.ravel()


@pytest.fixture(scope="module")
def fitted(split: Split) -> dict:
    """The fit without any cache: the reference."""
    return fit_logistic_regression(*split, seed=42)


@pytest.fixture
def fits(fitted: dict, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the fits instead of running them: each returns the reference result. For
    the tests of what the cache keeps and refuses, where the fit itself is not in question."""
    calls: list[str] = []

    def fit(model: LogisticRegression, *split: np.ndarray) -> dict:
        calls.append(repr(model))
        return {
            key: fitted[key] for key in ("train_accuracy", "test_accuracy", "seconds", "converged")
        }

    monkeypatch.setattr(comparison, "fit_and_score", fit)
    return calls


def kept_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("sklearn-fit-*.json"))


def same_scores(a: dict, b: dict) -> bool:
    keys = ("train_accuracy", "test_accuracy", "converged")
    return all(a[key] == b[key] for key in keys)


def test_the_fit_is_scikit_learns_logistic_regression(split: Split, fitted: dict) -> None:
    direct = fit_and_score(LogisticRegression(random_state=42, max_iter=150), *split)
    assert same_scores(fitted, direct)
    assert fitted["cached"] is False
    assert (fitted["train_accuracy"], fitted["test_accuracy"]) == (1.0, 1.0)


def test_a_second_fit_comes_from_the_cache(split: Split, fitted: dict, tmp_path: Path) -> None:
    first = fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    second = fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)

    assert first["cached"] is False and second["cached"] is True
    assert {**first, "cached": True} == second, "the kept result is not the fit's, exactly"
    assert same_scores(second, fitted)
    assert len(kept_files(tmp_path)) == 1


def test_a_cached_result_needs_no_scikit_learn_import(split: Split, tmp_path: Path) -> None:
    """The point of the cache: a fresh process with a kept result never imports it."""
    fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    np.savez(tmp_path / "split.npz", *split)
    program = f"""
import sys, numpy as np
from pathlib import Path
from signdigits.comparison import fit_logistic_regression
with np.load({str(tmp_path / "split.npz")!r}) as arrays:
    split = [arrays[f"arr_{{i}}"] for i in range(4)]
result = fit_logistic_regression(*split, seed=42, cache_folder=Path({str(tmp_path)!r}))
print(result["cached"], "sklearn" in sys.modules)
"""
    output = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    ).stdout
    assert output.split() == ["True", "False"]


def change_one_pixel(split: Split) -> Split:
    X_train = split[0].copy()
    X_train[0, 0] += 1e-12
    return (X_train, *split[1:])


@pytest.mark.parametrize(
    "change",
    [
        lambda split, seed: (split, seed + 1),
        lambda split, seed: (change_one_pixel(split), seed),
        lambda split, seed: ((split[0].astype(np.float32), *split[1:]), seed),
        lambda split, seed: ((split[2], split[3], split[0], split[1]), seed),
    ],
    ids=["another seed", "one pixel changed by 1e-12", "float32", "train and test swapped"],
)
def test_any_other_fit_is_fitted_again(
    change, split: Split, tmp_path: Path, fits: list[str]
) -> None:
    fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    other_split, other_seed = change(split, 42)

    again = fit_logistic_regression(*other_split, seed=other_seed, cache_folder=tmp_path)

    assert again["cached"] is False
    assert len(fits) == 2 and f"random_state={other_seed}" in fits[1]
    assert len(kept_files(tmp_path)) == 2


def test_another_library_version_is_fitted_again(
    split: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fits: list[str]
) -> None:
    fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    real_version = comparison.version
    monkeypatch.setattr(
        comparison,
        "version",
        lambda name: "0.0.1" if name == "scikit-learn" else real_version(name),
    )

    assert fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)["cached"] is False


GOOD = {"train_accuracy": 1.0, "test_accuracy": 1.0, "seconds": 0.3, "converged": True}

DAMAGED: dict[str, bytes] = {
    "empty": b"",
    "not JSON": b"{not json",
    "binary": b"\x00\xff" * 100,
    "a list": b"[1, 2]",
    "a key missing": json.dumps({k: v for k, v in GOOD.items() if k != "seconds"}).encode(),
    "a key more": json.dumps({**GOOD, "extra": 1}).encode(),
    "accuracy above 1": json.dumps({**GOOD, "test_accuracy": 1.5}).encode(),
    "accuracy as text": json.dumps({**GOOD, "test_accuracy": "1.0"}).encode(),
    "accuracy as int": b'{"train_accuracy": 1, "test_accuracy": 1.0, "seconds": 0.3, '
    b'"converged": true}',
    "converged as 1": json.dumps({**GOOD, "converged": 1}).encode(),
    "seconds NaN": json.dumps({**GOOD, "seconds": float("nan")}).encode(),
    "seconds negative": json.dumps({**GOOD, "seconds": -1.0}).encode(),
    "seconds infinite": json.dumps({**GOOD, "seconds": float("inf")}).encode(),
    "5 MB": b" " * 5_000_000 + json.dumps(GOOD).encode(),
}


@pytest.mark.parametrize("content", list(DAMAGED.values()), ids=list(DAMAGED))
def test_a_damaged_kept_result_is_fitted_again(
    content: bytes, split: Split, fitted: dict, tmp_path: Path, fits: list[str]
) -> None:
    fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    (path,) = kept_files(tmp_path)
    path.write_bytes(content)

    again = fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)

    assert again["cached"] is False
    assert same_scores(again, fitted)
    assert fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)["cached"] is True
    assert len(fits) == 2


def test_a_kept_result_that_is_a_folder_or_an_unwritable_cache_changes_nothing(
    split: Split, fitted: dict, tmp_path: Path, fits: list[str]
) -> None:
    fit_logistic_regression(*split, seed=42, cache_folder=tmp_path)
    (path,) = kept_files(tmp_path)
    path.unlink()
    path.mkdir()
    file_in_the_way = tmp_path / "a file"
    file_in_the_way.write_text("")

    for folder in (tmp_path, file_in_the_way / "cache"):
        result = fit_logistic_regression(*split, seed=42, cache_folder=folder)
        assert result["cached"] is False
        assert same_scores(result, fitted)
