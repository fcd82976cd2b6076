"""The real dataset: its counts and arrays, the archive and folder sources, the decoded cache.

Decoding the 2,062 photos takes seconds, so each source is decoded once, in a cache
folder of its own (the decoded cache is shared by every source of the same images,
and would otherwise hide a difference between them).
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signdigits.data import SignDigits, load_dataset
from signdigits.data.cache import decoded_path, expected_labels, load_decoded, save_decoded
from signdigits.data.manifest import load_manifest

COUNTS_PER_DIGIT = [205, 206, 206, 206, 207, 207, 207, 206, 208, 204]
"""Images of the digits 0 … 9, as the dataset's README gives them."""


def load_with_own_cache(data: Path, cache: Path) -> SignDigits:
    """``load_dataset(data)`` with ``cache`` as the cache folder, for this load only."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SIGNDIGITS_CACHE", str(cache))
        env.delenv("SIGNDIGITS_DATA", raising=False)
        return load_dataset(data, show_progress=False)


def assert_same_arrays(loaded: SignDigits, expected: SignDigits) -> None:
    assert loaded.images.dtype == expected.images.dtype == np.float32
    np.testing.assert_array_equal(loaded.labels, expected.labels)
    np.testing.assert_array_equal(loaded.images, expected.images)


@pytest.fixture(scope="module")
def archive_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("archive-cache")


@pytest.fixture(scope="module")
def decoded_archive(dataset_archive: Path, archive_cache: Path) -> SignDigits:
    """The archive, decoded from its photos into an empty cache folder."""
    assert not archive_cache.exists() or not any(archive_cache.iterdir())
    return load_with_own_cache(dataset_archive, archive_cache)


@pytest.fixture(scope="module")
def extracted(dataset_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The archive extracted as ``unzip`` does: ``extracted/<top folder>/Dataset/``."""
    root = tmp_path_factory.mktemp("extracted")
    with zipfile.ZipFile(dataset_archive) as archive:
        archive.extractall(root)
    return root


def test_counts_per_digit(dataset: SignDigits) -> None:
    assert dataset.counts() == COUNTS_PER_DIGIT
    assert len(dataset) == sum(COUNTS_PER_DIGIT)


def test_images_are_64_by_64_float32_in_unit_range(dataset: SignDigits) -> None:
    assert dataset.images.shape == (sum(COUNTS_PER_DIGIT), 64, 64)
    assert dataset.images.dtype == np.float32
    assert np.isfinite(dataset.images).all()
    assert dataset.images.min() >= 0.0
    assert dataset.images.max() <= 1.0
    assert dataset.images.std() > 0.1  # real photos, not a blank array


def test_images_are_grouped_by_digit(dataset: SignDigits) -> None:
    expected = np.repeat(np.arange(10), COUNTS_PER_DIGIT)
    np.testing.assert_array_equal(dataset.labels, expected)


@pytest.mark.parametrize(
    "layout",
    ["with the top folder", "Dataset/ directly inside"],
)
def test_extracted_folder_gives_the_archives_arrays(
    layout: str,
    decoded_archive: SignDigits,
    extracted: Path,
    tmp_path: Path,
    archive_members: dict[str, bytes],
) -> None:
    if layout == "with the top folder":
        folder = extracted
    else:
        (top,) = {name.split("/", 1)[0] for name in archive_members}
        folder = extracted / top
        assert (folder / "Dataset").is_dir()
    from_folder = load_with_own_cache(folder, tmp_path / "cache")

    assert from_folder.source.kind == "folder"
    assert decoded_archive.source.kind == "archive"
    assert_same_arrays(from_folder, decoded_archive)


def test_users_dataset_equals_a_fresh_decode(
    decoded_archive: SignDigits, dataset: SignDigits
) -> None:
    """The dataset other tests use (from the users' cache) is the archive's, decoded afresh."""
    assert_same_arrays(dataset, decoded_archive)


def test_first_load_writes_the_decoded_cache(
    decoded_archive: SignDigits, archive_cache: Path
) -> None:
    assert len(decoded_archive) == sum(COUNTS_PER_DIGIT)
    assert len(list(archive_cache.glob("*.npz"))) == 1


def test_second_load_comes_from_the_cache(
    decoded_archive: SignDigits, dataset_archive: Path, archive_cache: Path
) -> None:
    (npz,) = archive_cache.glob("*.npz")
    written = npz.stat()

    started = time.perf_counter()
    again = load_with_own_cache(dataset_archive, archive_cache)
    seconds = time.perf_counter() - started

    assert seconds < 1.5, f"the second load took {seconds:.2f} s: it decoded again?"
    (npz_after,) = archive_cache.glob("*.npz")
    assert (npz_after.stat().st_ino, npz_after.stat().st_mtime_ns) == (
        written.st_ino,
        written.st_mtime_ns,
    ), "the decoded cache was written again"
    assert_same_arrays(again, decoded_archive)


def test_a_decoded_cache_of_the_wrong_shape_is_ignored(isolated_cache: Path) -> None:
    save_decoded(np.zeros((5, 3), np.float32), np.zeros(5, np.int64))
    assert decoded_path().is_file()
    assert load_decoded() is None


def test_a_damaged_decoded_cache_is_ignored(isolated_cache: Path) -> None:
    """A cut-off npz (a crash, a full disk) must be decoded again, not crash the load."""
    n_images = len(load_manifest())
    save_decoded(np.zeros((n_images, 64, 64), np.float32), expected_labels())
    assert load_decoded() is not None
    whole = decoded_path().read_bytes()
    decoded_path().write_bytes(whole[: len(whole) // 2])

    assert load_decoded() is None
