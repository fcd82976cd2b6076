"""An archive checked in full once is not checked image by image again, and nothing else is.

The cache remembers the digest of each archive whose every image matched the manifest.
These tests load the real archive with the decoding replaced by the arrays of one real
decode (see ``test_hostile_cache.py``) and count how often every image is checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import signdigits.data.dataset as dataset_module
import signdigits.data.sources as sources_module
from signdigits.cli import main
from signdigits.data import SignDigits, load_dataset
from signdigits.data.cache import is_checked_archive, remember_checked_archive
from signdigits.data.manifest import verify_images
from signdigits.errors import DataError

from .test_hostile_cache import COUNTS_PER_DIGIT, assert_the_decoded_dataset, decode_calls  # noqa: F401

Arrays = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def decoded(dataset: SignDigits) -> Arrays:
    return dataset.images, dataset.labels


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of images in each check of every image against the manifest."""
    checks: list[int] = []

    def counting(files: dict[str, bytes], **where: object) -> None:
        checks.append(len(files))
        verify_images(files, **where)  # type: ignore[arg-type]

    monkeypatch.setattr(dataset_module, "verify_images", counting)
    return checks


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of image files read from an archive, per read."""
    reads: list[int] = []
    original = sources_module._read_archive

    def counting(*args: object) -> dict[str, bytes]:
        files = original(*args)  # type: ignore[arg-type]
        reads.append(len(files))
        return files

    monkeypatch.setattr(sources_module, "_read_archive", counting)
    return reads


@pytest.fixture
def record_path(
    dataset_archive: Path,
    isolated_cache: Path,
    decode_calls: list[int],  # noqa: F811
    full_checks: list[int],
) -> Path:
    """The record of checked archives, after one load of the real archive wrote it."""
    load_dataset(dataset_archive, show_progress=False)
    (record,) = isolated_cache.glob("checked-archives-*.txt")
    return record


def test_an_archive_checked_once_is_read_in_part_after(
    decoded: Arrays,
    dataset_archive: Path,
    isolated_cache: Path,
    decode_calls: list[int],  # noqa: F811
    full_checks: list[int],
    files_read: list[int],
) -> None:
    first = load_dataset(dataset_archive, show_progress=False)
    second = load_dataset(dataset_archive, show_progress=False)

    images = sum(COUNTS_PER_DIGIT)
    assert full_checks == [images], "the second load checked every image again"
    assert files_read == [images, dataset_module.SPOT_CHECKS]
    assert decode_calls == [images]
    assert_the_decoded_dataset(first, decoded)
    assert_the_decoded_dataset(second, decoded)
    assert is_checked_archive(dataset_archive.read_bytes())


def test_another_archive_is_checked_in_full_and_refused(
    dataset_archive: Path,
    dataset_copy,
    image_names: list[str],
    flip_byte,
    image_bytes,
    isolated_cache: Path,
    decode_calls: list[int],  # noqa: F811
    full_checks: list[int],
) -> None:
    """One changed byte in an image no spot check looks at: the record of the genuine
    archive must not vouch for it."""
    load_dataset(dataset_archive, show_progress=False)
    spot_checked = set(dataset_module._spot_check_names())
    damaged = next(name for name in image_names if name not in spot_checked)
    copy = dataset_copy({damaged: flip_byte(image_bytes(damaged))})

    with pytest.raises(DataError, match=f"Dataset/{damaged}"):
        load_dataset(copy, show_progress=False)

    assert full_checks == [sum(COUNTS_PER_DIGIT)] * 2
    assert not is_checked_archive(copy.read_bytes())


@pytest.mark.parametrize(
    "record",
    [
        b"\xff\xfe binary \x00" * 100,
        b"0" * 64 + b"\n",
        b"a" * 10_000_000,
    ],
    ids=["binary", "another digest", "10 MB"],
)
def test_a_damaged_record_means_a_full_check(
    record: bytes, decoded: Arrays, dataset_archive: Path, record_path: Path, full_checks: list[int]
) -> None:
    record_path.write_bytes(record)

    loaded = load_dataset(dataset_archive, show_progress=False)

    assert full_checks == [sum(COUNTS_PER_DIGIT)] * 2
    assert_the_decoded_dataset(loaded, decoded)
    assert is_checked_archive(dataset_archive.read_bytes()), "the record was not rewritten"


def test_a_record_that_is_a_folder_or_cannot_be_written_changes_nothing(
    decoded: Arrays, dataset_archive: Path, record_path: Path, full_checks: list[int]
) -> None:
    path = record_path
    path.unlink()
    path.mkdir()

    for _ in range(2):
        assert_the_decoded_dataset(load_dataset(dataset_archive, show_progress=False), decoded)

    assert full_checks == [sum(COUNTS_PER_DIGIT)] * 3
    assert path.is_dir()


def test_the_record_keeps_the_newest_archives(isolated_cache: Path) -> None:
    contents = [bytes([i]) * 10 for i in range(13)]
    for content in contents[:12]:
        remember_checked_archive(content)
    assert [c for c in contents if is_checked_archive(c)] == contents[4:12]

    remember_checked_archive(contents[4])  # seen again: now the newest, not the oldest
    remember_checked_archive(contents[12])

    assert [c for c in contents if is_checked_archive(c)] == [contents[4], *contents[6:13]]


def test_an_archive_far_too_large_is_refused_before_it_is_read(
    dataset_archive: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Archives are read whole (what is checked is what is read), so one far larger
    than the dataset's is refused by its size. The limit is lowered to the real
    archive's size less one byte, rather than writing a 256 MB file."""
    limit = dataset_archive.stat().st_size - 1
    monkeypatch.setattr(sources_module, "MAX_ARCHIVE_BYTES", limit)

    with pytest.raises(DataError, match="far more than the dataset's 17 MB"):
        load_dataset(dataset_archive, show_progress=False)
    rc = main(["data", "verify", "--quiet", "--data", str(dataset_archive)])

    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    (line,) = err.strip().splitlines()
    assert str(dataset_archive) in line and f"{limit + 1:,} bytes" in line


def test_data_verify_still_checks_every_image_of_a_checked_archive(
    dataset_archive: Path, isolated_cache: Path, files_read: list[int]
) -> None:
    """``data verify`` is the command that checks: a record never replaces it."""
    remember_checked_archive(dataset_archive.read_bytes())

    assert main(["data", "verify", "--quiet", "--data", str(dataset_archive)]) == 0

    assert files_read == [sum(COUNTS_PER_DIGIT)]
