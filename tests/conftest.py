"""Shared fixtures: the real dataset, found the way users find it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from signdigits.data import SignDigits, find_source, load_dataset
from signdigits.data.sources import DataSource
from signdigits.errors import DataError


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def dataset_source() -> DataSource:
    """The real dataset, by the users' resolution (SIGNDIGITS_DATA, then the cache).

    Outside CI a machine without the data skips these tests; under CI they fail.
    """
    try:
        return find_source(download=False, show_progress=False)
    except DataError as error:
        if _in_ci():
            pytest.fail(f"the real dataset is required under CI: {error}")
        pytest.skip(f"the real dataset is not available: {error}")


@pytest.fixture(scope="session")
def dataset_archive(dataset_source: DataSource) -> Path:
    """The dataset as its zip archive (tests that corrupt or serve it need the archive)."""
    if dataset_source.kind != "archive":
        if _in_ci():
            pytest.fail(f"CI needs SIGNDIGITS_DATA to be the archive, got {dataset_source}")
        pytest.skip("these tests need the dataset as a zip archive")
    return dataset_source.path


@pytest.fixture(scope="session")
def dataset(dataset_source: DataSource) -> SignDigits:
    """The whole decoded dataset (2,062 images)."""
    return load_dataset(dataset_source.path, show_progress=False)
