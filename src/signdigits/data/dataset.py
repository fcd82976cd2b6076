"""Find the dataset, check it, and load it as arrays.

Where the data comes from, in order: the ``data`` argument (``--data``), then
``$SIGNDIGITS_DATA``, then the archive in the cache folder, then a download.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from signdigits.data.cache import cached_archive, load_decoded, save_decoded
from signdigits.data.download import data_url, fetch_archive
from signdigits.data.manifest import verify_images
from signdigits.data.preprocess import open_image, preprocess_image
from signdigits.data.sources import (
    DataSource,
    identify_source,
    read_image_files,
    read_kaggle_arrays,
)
from signdigits.errors import DataError, InvalidArgumentError
from signdigits.progress import track

DIGITS = tuple(range(10))


@dataclass(frozen=True)
class SignDigits:
    """The images and their digits, samples first.

    ``images`` is (N, 64, 64) float32 in [0, 1] and ``labels`` (N,) int64; digit 0
    is the sign for 0 whatever the source. Images are grouped by digit, each group in
    file-name order.
    """

    images: np.ndarray
    labels: np.ndarray
    source: DataSource

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> list[int]:
        """The number of images of each digit, 0 to 9."""
        return np.bincount(self.labels, minlength=len(DIGITS)).tolist()

    def first_of_each(self, digits: Sequence[int], count: int) -> SignDigits:
        """The first ``count`` images of each of ``digits``, in that order."""
        chosen = []
        for digit in digits:
            (indices,) = np.nonzero(self.labels == digit)
            if len(indices) < count:
                raise InvalidArgumentError(
                    f"digit {digit} has {len(indices)} images, fewer than the {count} asked for"
                )
            chosen.append(indices[:count])
        index = np.concatenate(chosen)
        return SignDigits(self.images[index], self.labels[index], self.source)


def find_source(
    data: str | os.PathLike[str] | None = None, download: bool = True, show_progress: bool = True
) -> DataSource:
    """Locate the dataset: ``data``, ``$SIGNDIGITS_DATA``, the cache, then a download."""
    if data is not None:
        return identify_source(data, "--data")
    configured = os.environ.get("SIGNDIGITS_DATA")
    if configured:
        return identify_source(configured, "SIGNDIGITS_DATA")
    archive = cached_archive()
    if archive.is_file():
        return DataSource("archive", archive, "cache")
    if not download:
        raise DataError(
            f"no dataset found: pass --data, set SIGNDIGITS_DATA, or run "
            f"`signdigits data fetch` to download it from {data_url()}"
        )
    return DataSource("archive", fetch_archive(show_progress=show_progress), "download")


def verify_source(source: DataSource) -> int:
    """Check an archive or folder against the manifest; return the number of images checked.

    The Kaggle arrays have no per-image files to check against the manifest; they are
    checked for what is known of the dataset when they are read (see
    ``read_kaggle_arrays``).
    """
    if source.kind == "kaggle":
        return len(read_kaggle_arrays(source)[1])
    images = read_image_files(source)
    verify_images(images, where=str(source.path))
    return len(images)


SPOT_CHECKS = 8
"""Images decoded again on each load from the cache, to compare with the cached rows."""


def _decoding_order(files: dict[str, bytes]) -> list[str]:
    return sorted(files, key=lambda name: (int(name.split("/")[0]), name))


def _decode_one(files: dict[str, bytes], name: str) -> np.ndarray:
    return preprocess_image(open_image(files[name], name=f"Dataset/{name}"))


def _decode(files: dict[str, bytes], show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
    names = _decoding_order(files)
    images = np.empty((len(names), 64, 64), dtype=np.float32)
    decoding = track(names, "Decoding images", total=len(names), show=show_progress)
    for i, name in enumerate(decoding):
        images[i] = _decode_one(files, name)
    labels = np.array([int(name.split("/")[0]) for name in names], dtype=np.int64)
    return images, labels


def _agrees_with_files(images: np.ndarray, files: dict[str, bytes]) -> bool:
    """Whether a few of the cached images, spread over the dataset, decode the same again.

    The cache's digest proves that it was not damaged since it was written; this proves
    that what was written was decoded from these photos by this preprocessing.
    """
    names = _decoding_order(files)
    if len(names) != len(images):
        return False
    spread = np.linspace(0, len(names) - 1, SPOT_CHECKS).round().astype(int)
    return all(np.array_equal(images[i], _decode_one(files, names[i])) for i in spread)


def load_dataset(
    data: str | os.PathLike[str] | None = None, download: bool = True, show_progress: bool = True
) -> SignDigits:
    """Find, verify and load the whole dataset (2,062 images).

    Decoded images are cached, so only the first load of an archive or folder
    decodes the photos; each load still checks them against the manifest. The cache
    is used only when it proves to be this decoding (see ``signdigits.data.cache``) and
    ``SPOT_CHECKS`` of its images, spread over the dataset, decode the same again;
    otherwise the photos are decoded afresh, silently.
    """
    source = find_source(data, download=download, show_progress=show_progress)
    if source.kind == "kaggle":
        images, labels = read_kaggle_arrays(source)
        order = np.argsort(labels, kind="stable")
        return SignDigits(images[order], labels[order], source)
    files = read_image_files(source)
    verify_images(files, where=str(source.path))
    decoded = load_decoded()
    if decoded is not None and not _agrees_with_files(decoded[0], files):
        decoded = None
    if decoded is None:
        decoded = _decode(files, show_progress)
        save_decoded(*decoded)
    return SignDigits(*decoded, source)
