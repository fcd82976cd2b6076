"""A damaged copy of the dataset is refused with a DataError naming what is wrong.

Each case rewrites a copy of the real archive (or an extracted folder) in tmp_path
and loads it with a cache folder of its own, so that decoded arrays cached from a
good copy cannot hide the damage. The checks run before any photo is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from signdigits.data import load_dataset, verify_source
from signdigits.data.sources import identify_source
from signdigits.errors import DataError


@pytest.fixture(scope="module")
def damaged_image(image_names: list[str]) -> str:
    """An image from the middle of the dataset (not the first nor the last checked)."""
    return image_names[len(image_names) // 2]


def assert_refused(data: Path, *fragments: str) -> None:
    """Loading ``data`` raises a DataError whose message holds every fragment."""
    with pytest.raises(DataError) as raised:
        load_dataset(data, show_progress=False)
    for fragment in fragments:
        assert fragment in str(raised.value)


@pytest.mark.parametrize("as_folder", [False, True], ids=["archive", "folder"])
@pytest.mark.parametrize(
    ("damage", "what"),
    [
        ("one-flipped-byte", "does not match"),
        ("truncated", "does not match"),
        ("missing", "missing image"),
        ("extra", "not part of"),
    ],
)
def test_a_damaged_image_is_named(
    damage: str,
    what: str,
    as_folder: bool,
    damaged_image: str,
    image_bytes: Callable[[str], bytes],
    dataset_copy: Callable[..., Path],
    flip_byte: Callable[..., bytes],
    isolated_cache: Path,
) -> None:
    original = image_bytes(damaged_image)
    if damage == "extra":  # a copy of the photo under a name the dataset does not have
        named, changed = f"{damaged_image.split('/')[0]}/IMG_EXTRA.JPG", original
    else:
        named = damaged_image
        changed = {
            "one-flipped-byte": flip_byte(original),
            "truncated": original[: len(original) // 2],
            "missing": None,
        }[damage]
    copy = dataset_copy({named: changed}, as_folder=as_folder)

    assert_refused(copy, f"Dataset/{named}", what)
    assert not list(isolated_cache.glob("*.npz")), "nothing should have been decoded"


def test_an_undamaged_copy_passes_the_checks(
    dataset_copy: Callable[..., Path], image_names: list[str], isolated_cache: Path
) -> None:
    """The baseline of the cases above: the rewritten copy itself passes the checks."""
    copy = dataset_copy()
    assert verify_source(identify_source(copy, "--data")) == len(image_names)


def garbage(archive: bytes) -> bytes:
    return b"this is not a zip archive\n" * 1000


def first_half(archive: bytes) -> bytes:
    return archive[: len(archive) // 2]


def zeroed_middle(archive: bytes) -> bytes:
    middle = len(archive) // 2
    return archive[:middle] + bytes(4096) + archive[middle + 4096 :]


@pytest.mark.parametrize("corruption", [garbage, first_half, zeroed_middle])
def test_a_corrupt_zip_raises_a_data_error(
    corruption, dataset_archive: Path, tmp_path: Path, isolated_cache: Path
) -> None:
    corrupt = tmp_path / "sign-language-digits-dataset.zip"
    corrupt.write_bytes(corruption(dataset_archive.read_bytes()))

    assert_refused(corrupt, str(corrupt))
