"""Inputs for the data tests, made without the real data: arrays shaped like the Kaggle
pair, and an object whose unpickling leaves a trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from signdigits.data.manifest import digit_counts
from signdigits.data.sources import KAGGLE_COLUMN_DIGITS


def one_hot(columns: np.ndarray, width: int = 10) -> np.ndarray:
    rows = np.zeros((len(columns), width))
    rows[np.arange(len(columns)), columns] = 1.0
    return rows


def kaggle_like_arrays() -> tuple[np.ndarray, np.ndarray]:
    """X (2062, 64, 64) float32 and Y (2062, 10) that pass every check of the Kaggle pair.

    Like the real pair: the images are grouped by Y's column, whose digits are
    scrambled (``KAGGLE_COLUMN_DIGITS``), with the dataset's count of each digit; the
    values lie in [0, 1] and vary smoothly, as a photo's do (gentle ramps here).
    """
    counts = digit_counts()
    column_sizes = [counts[digit] for digit in KAGGLE_COLUMN_DIGITS]
    y = one_hot(np.repeat(np.arange(10), column_sizes))
    ramp = np.add.outer(np.arange(64), np.arange(64)) / 300.0  # 0 to 0.42, in steps of 1/300
    shifts = (np.arange(len(y)) % 50) / 100.0
    x = (ramp[None, :, :] + shifts[:, None, None]).astype(np.float32)
    return x, y


def _record_unpickling(marker: str) -> str:
    Path(marker).write_text("unpickled")
    return "unpickled"


class Unpickles:
    """Pickled, then unpickled, it writes the file ``marker``: proof that it was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], str], tuple[str]]:
        return _record_unpickling, (str(self.marker),)
