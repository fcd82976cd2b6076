"""A decoded cache that is not what was decoded from the verified photos is decoded again.

Each case writes a hostile file where the decoded cache belongs, in a cache folder of
its own, then loads the real archive: the load must succeed with the right arrays
(the dataset's digit counts, the images of a fresh decode), write a good cache, and
never unpickle. A corrupt cache is not the user's error: no message, no traceback.

Decoding the 2,062 photos takes seconds, so the cases replace the decoding with a
stand-in that returns the arrays of one real decode, made once for the module, and
counts its calls; ``test_a_forged_cache_is_decoded_again_for_real`` decodes for real.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import signdigits.data.dataset as dataset_module
from signdigits.cli import main
from signdigits.data import SignDigits, load_dataset
from signdigits.data.cache import (
    arrays_digest,
    decoded_key,
    decoded_path,
    expected_labels,
    is_checked_archive,
    load_decoded,
    remember_checked_archive,
    save_decoded,
)
from signdigits.data.sources import identify_source, read_image_files

from .hostile_inputs import Unpickles

COUNTS_PER_DIGIT = [205, 206, 206, 206, 207, 207, 207, 206, 208, 204]

Arrays = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def decoded(dataset: SignDigits) -> Arrays:
    """The real archive's images and labels, decoded (the session's dataset: a test of
    test_dataset.py checks that it equals a fresh decode of the archive)."""
    assert dataset.counts() == COUNTS_PER_DIGIT
    return dataset.images, dataset.labels


@pytest.fixture(scope="module")
def photo_files(dataset_archive: Path) -> dict[str, bytes]:
    """The archive's photo files, as load_dataset reads them."""
    return read_image_files(identify_source(dataset_archive, "--data"))


def forged(key: str = "") -> Callable[[Path, np.ndarray, np.ndarray], None]:
    """Write arrays with a digest that matches them, as the cache's own writer does."""

    def write(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
        assert path == decoded_path()
        if not key:
            save_decoded(images, labels)
        else:
            digest = np.array(arrays_digest(images, labels, key))
            np.savez(path, images=images, labels=labels, key=np.array(key), digest=digest)

    return write


def with_pickle(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The labels as an object array, whose elements write a marker when unpickled."""
    payload = np.empty(len(labels), dtype=object)
    payload[:] = [Unpickles(path.parent.parent / "unpickled.marker")] * len(labels)
    np.savez(path, images=images, labels=payload, key=np.array(decoded_key()))


def with_huge_header(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """An images member whose header announces 16 PB, and no data behind it."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**12, 64, 64)}
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("images.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
        for name, array in [("labels", labels), ("key", np.array(decoded_key()))]:
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, array)


def truncated(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    save_decoded(images, labels)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])


def random_images(images: np.ndarray) -> np.ndarray:
    return np.random.default_rng(0).random(images.shape, dtype=np.float32)


# name: write a hostile cache file at a path, given the good arrays
HOSTILE: dict[str, Callable[[Path, np.ndarray, np.ndarray], None]] = {
    "random arrays, no digest": lambda path, images, labels: np.savez(
        path, images=random_images(images), labels=labels
    ),
    "random arrays, forged digest": lambda path, images, labels: forged()(
        path, random_images(images), labels
    ),
    "images shifted by one, forged digest": lambda path, images, labels: forged()(
        path, np.roll(images, 1, axis=0), labels
    ),
    "shifted labels, no digest": lambda path, images, labels: np.savez(
        path, images=images, labels=np.roll(labels, 1)
    ),
    "shifted labels, forged digest": lambda path, images, labels: forged()(
        path, images, np.roll(labels, 1)
    ),
    "changed digest": lambda path, images, labels: np.savez(
        path, images=images, labels=labels, key=np.array(decoded_key()), digest=np.array("0" * 64)
    ),
    "another version's key": forged(key="f" * 64),
    "images as float64": lambda path, images, labels: forged()(
        path, images.astype(np.float64), labels
    ),
    "labels as int32": lambda path, images, labels: forged()(path, images, labels.astype(np.int32)),
    "values above 1": lambda path, images, labels: forged()(path, images + 1, labels),
    "truncated file": truncated,
    "a folder in its place": lambda path, images, labels: path.mkdir(),
    "pickle inside": with_pickle,
    "header of 16 PB": with_huge_header,
    "not a zip": lambda path, images, labels: path.write_bytes(b"not an npz\n" * 100),
    "empty file": lambda path, images, labels: path.write_bytes(b""),
}

FOUND_BY_DECODING_AGAIN = {"random arrays, forged digest", "images shifted by one, forged digest"}
"""Forgeries that pass the file's own checks: only decoding a few photos again finds them."""

LOADED = [
    "random arrays, no digest",
    "shifted labels, forged digest",
    "images as float64",
    "truncated file",
    "a folder in its place",
    "pickle inside",
]
"""The cases also loaded through load_dataset, end to end (a forged digest over random
images is, without a stand-in, in ``test_a_forged_cache_is_decoded_again_for_real``)."""


def write_hostile(case: str, decoded: Arrays) -> Path:
    path = decoded_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    HOSTILE[case](path, *decoded)
    assert path.exists()
    return path


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_cache_is_not_trusted(
    case: str, decoded: Arrays, photo_files: dict[str, bytes], isolated_cache: Path
) -> None:
    write_hostile(case, decoded)

    cached = load_decoded()

    if case in FOUND_BY_DECODING_AGAIN:
        assert cached is not None, "the forgery should pass the file's own checks"
        assert dataset_module._cached_if_agrees(photo_files) is None
    else:
        assert cached is None
    assert not (isolated_cache.parent / "unpickled.marker").exists()


@pytest.fixture
def decode_calls(decoded: Arrays, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace the decoding by the module's real decode; the list grows by one per call."""
    calls: list[int] = []

    def decode(files: dict[str, bytes], show_progress: bool) -> Arrays:
        assert len(files) == sum(COUNTS_PER_DIGIT)
        calls.append(len(files))
        return decoded[0].copy(), decoded[1].copy()

    monkeypatch.setattr(dataset_module, "_decode", decode)
    return calls


def assert_the_decoded_dataset(loaded: SignDigits, decoded: Arrays) -> None:
    assert loaded.counts() == COUNTS_PER_DIGIT
    assert loaded.images.dtype == np.float32
    np.testing.assert_array_equal(loaded.labels, decoded[1])
    np.testing.assert_array_equal(loaded.images, decoded[0])


def cache_contents(cache: Path) -> list[str]:
    """The cache folder's files, but for the record of checked archives."""
    return sorted(
        str(path.relative_to(cache))
        for path in cache.rglob("*")
        if not path.name.startswith("checked-archives-")
    )


@pytest.mark.parametrize("checked_before", [False, True], ids=["new archive", "checked archive"])
@pytest.mark.parametrize("case", LOADED)
def test_a_hostile_cache_is_decoded_again(
    case: str,
    checked_before: bool,
    decoded: Arrays,
    dataset_archive: Path,
    isolated_cache: Path,
    decode_calls: list[int],
) -> None:
    """Also when the archive is one already checked in full, whose images are then not
    all read again: the cache must still prove itself, or the photos are decoded."""
    if checked_before:
        remember_checked_archive(dataset_archive.read_bytes())
        assert is_checked_archive(dataset_archive.read_bytes())
    path = write_hostile(case, decoded)

    loaded = load_dataset(dataset_archive, show_progress=False)

    assert decode_calls == [sum(COUNTS_PER_DIGIT)], "the hostile cache was used"
    assert_the_decoded_dataset(loaded, decoded)
    assert not (isolated_cache.parent / "unpickled.marker").exists()
    assert cache_contents(isolated_cache) == [path.name], "something else was left behind"
    again = load_decoded()
    if case == "a folder in its place":  # left alone: it cannot be written over
        assert again is None
    else:  # replaced by the good arrays
        assert again is not None
        np.testing.assert_array_equal(again[0], decoded[0])
        np.testing.assert_array_equal(again[1], decoded[1])


def test_the_good_cache_is_used(
    decoded: Arrays, dataset_archive: Path, isolated_cache: Path, decode_calls: list[int]
) -> None:
    """The baseline of the cases: a cache that save_decoded wrote is loaded, not decoded."""
    load_dataset(dataset_archive, show_progress=False)
    assert decode_calls == [sum(COUNTS_PER_DIGIT)]

    loaded = load_dataset(dataset_archive, show_progress=False)

    assert decode_calls == [sum(COUNTS_PER_DIGIT)], "the good cache was not used"
    assert_the_decoded_dataset(loaded, decoded)


def test_the_pickle_is_live(decoded: Arrays, tmp_path: Path) -> None:
    """The premise of the "pickle inside" case: loading it with pickles runs the payload."""
    path = tmp_path / "cache" / "pickled.npz"
    path.parent.mkdir()
    with_pickle(path, *decoded)
    with np.load(path, allow_pickle=True) as arrays:
        arrays["labels"]
    assert (tmp_path / "unpickled.marker").read_text() == "unpickled"


def test_data_info_over_a_hostile_cache_prints_the_counts(
    decoded: Arrays,
    dataset_archive: Path,
    isolated_cache: Path,
    decode_calls: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_hostile("shifted labels, forged digest", decoded)

    rc = main(["data", "info", "--quiet", "--data", str(dataset_archive)])

    out, err = capsys.readouterr()
    assert rc == 0, err
    assert err == ""
    assert " ".join(f"{count:>3}" for count in COUNTS_PER_DIGIT) in out
    assert decode_calls == [sum(COUNTS_PER_DIGIT)]


def test_a_forged_cache_is_decoded_again_for_real(
    decoded: Arrays, dataset_archive: Path, isolated_cache: Path
) -> None:
    """No stand-in: random images with labels and a digest that match them are found
    out by decoding a few photos again, and the whole dataset is decoded afresh."""
    path = decoded_path()
    path.parent.mkdir(parents=True)
    forged()(path, random_images(decoded[0]), expected_labels())
    assert load_decoded() is not None, "the forgery passes the file's own checks"

    loaded = load_dataset(dataset_archive, show_progress=False)

    assert_the_decoded_dataset(loaded, decoded)
    again = load_decoded()
    assert again is not None
    np.testing.assert_array_equal(again[0], decoded[0])
