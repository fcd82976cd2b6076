"""Fixtures of the data tests that need no real data."""

from __future__ import annotations

import numpy as np
import pytest

from .hostile_inputs import kaggle_like_arrays


@pytest.fixture(scope="session")
def kaggle_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``kaggle_like_arrays()``, made once and read-only: copy before changing them."""
    x, y = kaggle_like_arrays()
    x.flags.writeable = y.flags.writeable = False
    return x, y
