"""Find the dataset, check it, and load it as arrays.

Where the data comes from, in order: the ``data`` argument (``--data``), then
``$SIGNDIGITS_DATA``, then the archive in the cache folder, then a download (unless
the caller only looks: ``download=False``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from signdigits.data.cache import (
    cache_dir,
    find_cached_archive,
    is_checked_archive,
    load_decoded,
    remember_checked_archive,
    save_decoded,
)
from signdigits.data.download import fetch_archive, import_archive
from signdigits.data.manifest import load_manifest, verify_images
from signdigits.data.preprocess import open_image, preprocess_image
from signdigits.data.sources import (
    DataSource,
    hint_for,
    identify_source,
    read_archive,
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
    file-name order. ``names`` are their paths inside ``Dataset/`` (such as
    ``0/IMG_1118.JPG``), or None for the Kaggle arrays, which have none.
    """

    images: np.ndarray
    labels: np.ndarray
    source: DataSource
    names: tuple[str, ...] | None = None

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
        names = None if self.names is None else tuple(self.names[i] for i in index)
        return SignDigits(self.images[index], self.labels[index], self.source, names)


def find_source(
    data: str | os.PathLike[str] | None = None, download: bool = True, show_progress: bool = True
) -> DataSource:
    """Locate the dataset: ``data``, ``$SIGNDIGITS_DATA``, the cache, then a download.

    With ``download=False`` it only looks: finding nothing is a ``DataError`` that says
    where it looked and how to get the data.
    """
    if data is not None:
        return identify_source(data, "--data")
    configured = os.environ.get("SIGNDIGITS_DATA")
    if configured:
        return identify_source(configured, "SIGNDIGITS_DATA")
    archive = find_cached_archive()
    if archive is not None:
        return DataSource("archive", archive, "cache")
    if not download:
        raise DataError(no_dataset_message())
    return DataSource("archive", fetch_archive(show_progress=show_progress), "download")


def no_dataset_message() -> str:
    """Where the dataset was looked for, in vain, and how to get it."""
    variable = "empty" if "SIGNDIGITS_DATA" in os.environ else "not set"
    cache_origin = (
        "from SIGNDIGITS_CACHE"
        if os.environ.get("SIGNDIGITS_CACHE")
        else "the default: SIGNDIGITS_CACHE not set"
    )
    return (
        f"no dataset found: --data not given, SIGNDIGITS_DATA {variable}, and no archive "
        f"in the cache folder {cache_dir()} ({cache_origin}); run `signdigits data fetch` to "
        "download it, or `signdigits data fetch --from ARCHIVE` to import a copy you have"
    )


@dataclass(frozen=True)
class Fetched:
    """What ``fetch_dataset`` did.

    ``action`` is ``"found"`` (the cache held a verified archive already),
    ``"downloaded"``, ``"imported"`` (``source`` was copied into the cache) or
    ``"used in place"`` (``source``, a folder or the Kaggle pair, stays where it is).
    ``path`` is where the dataset is now and ``images`` how many were checked;
    ``replaced`` says why the archive that was in the cache was replaced, if it was.
    """

    action: Literal["found", "downloaded", "imported", "used in place"]
    path: Path
    images: int
    source: DataSource | None = None
    replaced: str | None = None


def fetch_dataset(
    from_path: str | os.PathLike[str] | None = None, show_progress: bool = True
) -> Fetched:
    """Make the dataset available in the cache, as ``signdigits data fetch`` does.

    ``from_path`` (``--from``) is a copy of the zip archive to import into the cache.
    Without it, an archive named by ``$SIGNDIGITS_DATA`` is imported, and a folder or
    Kaggle pair named there is verified and used where it is (only the archive goes
    into the cache); without either, the archive is downloaded. Either of the last two
    is skipped when the cache already holds a verified archive. Whatever goes into the
    cache is verified against the manifest first.
    """
    if from_path is not None:
        source = identify_source(from_path, "--from")
        if source.kind != "archive":
            raise DataError(
                f"{source.path} (from --from) is {_describe(source)}, which is used where it "
                "is rather than imported (only the zip archive goes into the cache): give it "
                "with --data, or point SIGNDIGITS_DATA at it"
            )
        cached = find_cached_archive()
        if cached is not None and _same_file(source.path, cached):  # nothing to copy
            return Fetched("found", cached, verify_source(DataSource("archive", cached, "cache")))
        return Fetched("imported", import_archive(source), _count(), source)
    configured = os.environ.get("SIGNDIGITS_DATA")
    source = identify_source(configured, "SIGNDIGITS_DATA") if configured else None
    if source is not None and source.kind != "archive":
        return Fetched("used in place", source.path, verify_source(source), source)
    cached = find_cached_archive()
    replaced = None
    if cached is not None:
        try:
            return Fetched("found", cached, verify_source(DataSource("archive", cached, "cache")))
        except DataError as error:  # what is wrong with it, without what to do
            replaced = str(error).removesuffix(f"; {hint_for('cache')}")
    if source is not None:
        return Fetched("imported", import_archive(source), _count(), source, replaced)
    path = fetch_archive(show_progress=show_progress)
    return Fetched("downloaded", path, _count(), None, replaced)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _count() -> int:
    return len(load_manifest())


def _describe(source: DataSource) -> str:
    if source.kind == "kaggle":
        return "a folder with the Kaggle X.npy and Y.npy"
    if source.kind == "folder":
        return "the dataset's extracted folder"
    return "the dataset's zip archive"


def verify_source(source: DataSource) -> int:
    """Check an archive or folder against the manifest; return the number of images checked.

    The Kaggle arrays have no per-image files to check against the manifest; they are
    checked for what is known of the dataset when they are read (see
    ``read_kaggle_arrays``).
    """
    if source.kind == "kaggle":
        return len(read_kaggle_arrays(source)[1])
    images = read_image_files(source)
    verify_images(images, where=str(source.path), hint=hint_for(source.origin))
    return len(images)


SPOT_CHECKS = 8
"""Images decoded again on each load from the cache, to compare with the cached rows."""


def _decoding_order(files: dict[str, bytes]) -> list[str]:
    return sorted(files, key=lambda name: (int(name.split("/")[0]), name))


def _names() -> tuple[str, ...]:
    """The images' names in decoding order (the files are the manifest's, once verified)."""
    return tuple(_decoding_order(load_manifest()))


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


def _spot_check_names() -> list[str]:
    """The ``SPOT_CHECKS`` images decoded again on each load, spread over the dataset."""
    names = _decoding_order(load_manifest())
    spread = np.linspace(0, len(names) - 1, SPOT_CHECKS).round().astype(int)
    return [names[i] for i in spread]


def _cached_if_agrees(files: dict[str, bytes]) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, if they prove to be the decoding (see ``signdigits.data.cache``)
    and the spot-check images among ``files`` decode the same again.

    The cache's digest proves that it was not damaged since it was written; the spot
    checks prove that what was written was decoded from these photos by this preprocessing.
    """
    decoded = load_decoded()
    if decoded is None:
        return None
    cached_images = decoded[0]
    row_of = {name: row for row, name in enumerate(_decoding_order(load_manifest()))}
    for name in _spot_check_names():
        if name not in files:
            return None
        if not np.array_equal(cached_images[row_of[name]], _decode_one(files, name)):
            return None
    return decoded


def load_dataset(
    data: str | os.PathLike[str] | None = None, download: bool = True, show_progress: bool = True
) -> SignDigits:
    """Find, verify and load the whole dataset (2,062 images).

    Decoded images are cached, so only the first load of an archive or folder
    decodes the photos; each load still checks them against the manifest. An archive
    identical byte for byte to one already checked in full (the cache remembers their
    digests) is not checked image by image again. The cache is used only when it
    proves to be this decoding and ``SPOT_CHECKS`` of its images, spread over the
    dataset, decode the same again; otherwise the photos are decoded afresh, silently.
    """
    source = find_source(data, download=download, show_progress=show_progress)
    if source.kind == "kaggle":
        images, labels = read_kaggle_arrays(source)
        order = np.argsort(labels, kind="stable")
        return SignDigits(images[order], labels[order], source)
    content = read_archive(source) if source.kind == "archive" else None
    if content is not None and is_checked_archive(content):
        decoded = _cached_if_agrees(
            read_image_files(source, content=content, only=_spot_check_names())
        )
        if decoded is not None:
            return SignDigits(*decoded, source, _names())
    files = read_image_files(source, content=content)
    verify_images(files, where=str(source.path), hint=hint_for(source.origin))
    if content is not None:
        remember_checked_archive(content)
    decoded = _cached_if_agrees(files)
    if decoded is None:
        decoded = _decode(files, show_progress)
        save_decoded(*decoded)
    return SignDigits(*decoded, source, _names())
