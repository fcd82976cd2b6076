"""The Kaggle pair X.npy/Y.npy: its scrambled label columns, and bad arrays named clearly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from signdigits.data import SignDigits, load_dataset
from signdigits.data.manifest import digit_counts
from signdigits.errors import DataError

from .hostile_inputs import one_hot

KAGGLE_COLUMN_ORDER = [9, 0, 7, 6, 1, 8, 4, 3, 2, 5]
"""Column i of the Kaggle Y.npy is the sign for the digit ``KAGGLE_COLUMN_ORDER[i]``,
and X.npy holds the images grouped in that order."""


def test_labels_are_mapped_back_to_the_true_digits(
    dataset: SignDigits, tmp_path: Path, save_kaggle_pair: Callable[..., Path]
) -> None:
    groups = [dataset.images[dataset.labels == digit] for digit in KAGGLE_COLUMN_ORDER]
    x = np.concatenate(groups)
    y = one_hot(np.repeat(np.arange(10), [len(group) for group in groups]))
    folder = save_kaggle_pair(tmp_path / "kaggle", x, y)

    loaded = load_dataset(folder, show_progress=False)

    assert loaded.source.kind == "kaggle"
    assert loaded.counts() == dataset.counts()
    for digit in range(10):
        np.testing.assert_array_equal(
            loaded.images[loaded.labels == digit],
            dataset.images[dataset.labels == digit],
            err_msg=f"the images labelled {digit} are not the sign for {digit}",
        )


def test_a_kaggle_like_pair_loads(
    kaggle_arrays: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    save_kaggle_pair: Callable[..., Path],
) -> None:
    """The baseline of the bad-input cases below: the same arrays, unbroken, load."""
    x, y = kaggle_arrays
    loaded = load_dataset(save_kaggle_pair(tmp_path, x, y), show_progress=False)
    assert loaded.images.shape == x.shape
    assert loaded.counts() == list(digit_counts())
    assert sorted(loaded.labels.tolist()) == sorted(
        KAGGLE_COLUMN_ORDER[column] for column in y.argmax(axis=1)
    )


def with_row(y: np.ndarray, row: int, columns: list[int], value: float) -> np.ndarray:
    y = y.copy()
    y[row] = 0
    y[row, columns] = value
    return y


BREAKAGES = {
    "X flattened": (lambda x, y: (x.reshape(len(x), -1), y), "X.npy", "shape"),
    "X of 63 columns": (lambda x, y: (x[:, :, :63], y), "X.npy", "shape"),
    "Y row with two ones": (lambda x, y: (x, with_row(y, 3, [1, 4], 1.0)), "Y.npy", "one-hot"),
    "Y row of halves": (lambda x, y: (x, with_row(y, 5, [2, 7], 0.5)), "Y.npy", "one-hot"),
    "Y of nine columns": (lambda x, y: (x, y[:, :9]), "Y.npy", "shape"),
    "Y one row short": (lambda x, y: (x, y[:-1]), "Y.npy", "shape"),
}


@pytest.mark.parametrize(("breakage", "bad_file", "what"), BREAKAGES.values(), ids=list(BREAKAGES))
def test_bad_arrays_raise_a_data_error_naming_the_file(
    breakage,
    bad_file: str,
    what: str,
    kaggle_arrays: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    save_kaggle_pair: Callable[..., Path],
) -> None:
    x, y = breakage(*kaggle_arrays)
    folder = save_kaggle_pair(tmp_path, x, y)

    with pytest.raises(DataError) as raised:
        load_dataset(folder, show_progress=False)

    message = str(raised.value)
    assert str(folder / bad_file) in message
    assert what in message
