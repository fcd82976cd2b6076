"""Where the images come from: an archive zip, an extracted folder or the Kaggle pair.

The archive and the folder hold the original photos as ``Dataset/<digit>/*.JPG``,
under a single top folder or none. The Kaggle pair is ``X.npy`` (2062, 64, 64),
already preprocessed, and ``Y.npy`` (2062, 10), one-hot with scrambled columns.

Everything read here may be damaged or hostile, so nothing is read before its size
is known to be sane. An image file is refused when the zip directory (or the file
system) says it is far larger than any photo of the dataset, and it is read through
a bounded stream in any case, because a zip directory can lie. An archive is opened
in one place only, ``_read_archive``, whatever its origin (``--data``,
``SIGNDIGITS_DATA``, the cache or a download), and refuses what ``zipfile`` cannot
read safely: encryption, unknown compression methods, duplicate entry names, names
that are not the UTF-8 they claim. An ``.npy`` header is parsed and checked before
its array is read. Every problem is one ``DataError`` naming the file and what to do.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import numpy as np
from numpy.lib import format as npy_format

from signdigits.data.manifest import REDOWNLOAD_HINT, Hint, digit_counts, shown_name
from signdigits.data.paths import expand_user, is_denied, is_too_long, strerror
from signdigits.errors import DataError

try:
    import lzma
except ImportError:  # a Python built without liblzma
    lzma = None  # type: ignore[assignment]

SourceKind = Literal["archive", "folder", "kaggle"]

KAGGLE_COLUMN_DIGITS = (9, 0, 7, 6, 1, 8, 4, 3, 2, 5)
"""Column i of the Kaggle ``Y.npy`` is the sign for digit ``KAGGLE_COLUMN_DIGITS[i]``."""

LARGEST_PHOTO_BYTES = 1_578_672
"""The size of the dataset's largest photo, ``Dataset/7/IMG_5978.JPG``."""

MAX_IMAGE_BYTES = 8 * 1024 * 1024
"""The largest image file read, five times the largest photo: beyond it, not the dataset."""

MAX_IMAGES_BYTES = 128 * 1024 * 1024
"""The most bytes read for all images together (the dataset's photos come to 24 MB)."""

MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
"""The largest archive read (into memory, whole): the dataset's archive is 17 MB."""

_ZIP_CHUNK = 64 * 1024
"""Bytes read from a zip entry at a time; ``zipfile`` inflates deflate by at most that."""

_LZMA_CHUNK = 4096
"""Bytes read from an LZMA entry at a time. ``zipfile`` inflates LZMA without an output
bound, so each read must be small: 4 KiB of LZMA inflates to at most ~30 MB."""

_ENCRYPTED = 0x01 | 0x40  # the zip flag bits of traditional and of strong encryption
_PATCHED = 0x20  # "compressed patched data", which zipfile cannot read

_METHOD_NAMES = {
    zipfile.ZIP_STORED: "no compression",
    zipfile.ZIP_DEFLATED: "deflate",
    9: "deflate64",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "LZMA",
    93: "Zstandard",
    95: "XZ",
    98: "PPMd",
    99: "AES encryption",
}

_READABLE_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED} | (
    {zipfile.ZIP_LZMA} if lzma is not None else set()
)
"""Compression methods read. Not bzip2: ``zipfile`` inflates a bzip2 read without any
output bound, and 200 bytes of bzip2 inflate to 256 MiB, so a lying directory could
not be caught before the memory is gone. The dataset's archive uses deflate."""

_ZIP_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,  # UnicodeDecodeError among them
    NotImplementedError,  # a zip version or feature zipfile does not know
    RuntimeError,  # encryption, or a decompressor this Python lacks
) + ((lzma.LZMAError,) if lzma is not None else ())
"""What ``zipfile`` raises on a damaged or unusual archive."""

_IMAGE_PATH = re.compile(r"Dataset/([0-9])/([^/]+)")  # used with fullmatch


@dataclass(frozen=True)
class DataSource:
    """A located copy of the dataset.

    ``origin`` says how it was found: ``"--data"``, ``"SIGNDIGITS_DATA"``,
    ``"cache"`` or ``"download"``.
    """

    kind: SourceKind
    path: Path
    origin: str


def hint_for(origin: str, not_kept: bool = False) -> Hint:
    """What to do about a bad copy of the dataset found by way of ``origin``.

    ``not_kept``: the copy was on its way into the cache (``signdigits data fetch``
    importing it) and was refused.
    """
    if origin == "--data":
        fix = (
            "give --data a complete copy of the dataset, or download one with "
            "`signdigits data fetch` and leave --data out"
        )
    elif origin == "SIGNDIGITS_DATA":
        fix = (
            "point SIGNDIGITS_DATA at a complete copy of the dataset, or unset it and "
            "download one with `signdigits data fetch`"
        )
    elif origin == "--from":
        fix = (
            "give --from a complete copy of the dataset's zip archive, or download it "
            "with `signdigits data fetch`"
        )
    else:  # the cache, or an archive downloaded into it earlier
        return Hint(REDOWNLOAD_HINT.fix, not_kept=not_kept)
    return Hint(fix, own_copy=True, not_kept=not_kept)


def identify_source(path: str | os.PathLike[str], origin: str) -> DataSource:
    """Tell what kind of copy of the dataset ``path`` is, or raise ``DataError``.

    ``origin`` says where the path came from (``"--data"``, ``"SIGNDIGITS_DATA"``,
    ``"--from"``), for the messages.
    """
    path = expand_user(path, origin)
    try:
        return _identify(path, origin)
    except OSError as error:  # a name too long, a folder that cannot be searched or read
        if is_too_long(error):
            fix = "give a shorter path (move or rename the dataset, or a folder above it)"
        elif is_denied(error):
            fix = "make it readable to you, or give another copy of the dataset"
        else:
            fix = hint_for(origin).fix
        raise DataError(f"cannot use {path} (from {origin}): {strerror(error)}; {fix}") from None


def _identify(path: Path, origin: str) -> DataSource:
    if not path.exists():
        unset = ", or unset SIGNDIGITS_DATA" if origin == "SIGNDIGITS_DATA" else ""
        raise DataError(
            f"{path} (from {origin}) does not exist; give the dataset's zip archive, "
            f"its extracted folder, or a folder with the Kaggle X.npy and Y.npy{unset}"
        )
    if path.is_file() and zipfile.is_zipfile(path):
        return DataSource("archive", path, origin)
    if path.is_file() and path.suffix.lower() == ".zip":
        raise DataError(
            f"{path} (from {origin}) is not a readable zip archive (truncated or not a zip); "
            f"{hint_for(origin)}"
        )
    if path.is_dir() and (path / "X.npy").is_file() and (path / "Y.npy").is_file():
        return DataSource("kaggle", path, origin)
    if path.is_dir() and _dataset_folder(path) is not None:
        return DataSource("folder", path, origin)
    raise DataError(
        f"{path} (from {origin}) is neither a zip archive of the dataset, a folder with "
        "Dataset/<digit>/ images, nor a folder with the Kaggle X.npy and Y.npy; "
        "check the path, or download the data with `signdigits data fetch`"
    )


def _dataset_folder(root: Path) -> Path | None:
    """``root/Dataset`` or ``root/<single top folder>/Dataset``, if either exists."""
    if (root / "Dataset").is_dir():
        return root / "Dataset"
    children = [child for child in root.iterdir() if not child.name.startswith(".")]
    if len(children) == 1 and (children[0] / "Dataset").is_dir():
        return children[0] / "Dataset"
    return None


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX")


def _reason(error: BaseException) -> str:
    """An exception as a short phrase: its message, or its type when it has none. For an
    OSError, only what went wrong ("Permission denied"): the message names the file."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _too_large(size: int, zipped: bool) -> str:
    return (
        f"is {size:,} bytes, far more than any photo of the dataset (the largest is "
        f"{LARGEST_PHOTO_BYTES:,} bytes): this is not the dataset"
        + (" (perhaps a zip bomb)" if zipped else "")
    )


def read_archive(source: DataSource, where: str | None = None, hint: Hint | None = None) -> bytes:
    """The bytes of an archive source, read whole, so that what is checked is what is read.

    An archive far larger than the dataset's is refused before it is read.
    """
    where = where or str(source.path)
    hint = hint or hint_for(source.origin)
    try:
        with source.path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_ARCHIVE_BYTES:
                raise DataError(
                    f"the archive {where} is {size:,} bytes, far more than the dataset's "
                    f"17 MB: this is not the dataset; {hint}"
                )
            content = file.read(size + 1)  # a buffer the file's size, not the limit's
    except OSError as error:
        raise DataError(f"cannot read the archive {where} ({_reason(error)}); {hint}") from None
    if len(content) != size:
        raise DataError(f"the archive {where} changed while it was read; try again")
    return content


def read_image_files(
    source: DataSource,
    where: str | None = None,
    hint: Hint | None = None,
    *,
    content: bytes | None = None,
    only: Collection[str] | None = None,
) -> dict[str, bytes]:
    """The bytes of every file in the source's ``Dataset/<digit>/`` folders.

    Keys are the paths inside ``Dataset/``, such as ``0/IMG_1118.JPG``. ``where`` names
    the source in messages (its path by default) and ``hint`` says what to do (by
    default, what suits the source's origin: see ``hint_for``). For an archive,
    ``content`` is its bytes when ``read_archive`` has read them already. ``only``: read
    just these of the files (those it names that exist), though every entry is checked.
    """
    where = where or str(source.path)
    hint = hint or hint_for(source.origin)
    if source.kind == "archive":
        if content is None:
            content = read_archive(source, where, hint)
        return _read_archive(content, where, hint, only)
    if source.kind == "folder":
        files = _read_folder(source.path, hint)
        return files if only is None else {name: files[name] for name in only if name in files}
    raise ValueError(f"a {source.kind} source has no image files")


def _read_folder(root: Path, hint: Hint) -> dict[str, bytes]:
    folder = _dataset_folder(root)
    assert folder is not None  # identify_source checked it
    files, total = {}, 0
    reading = folder  # what is being read, for the message if it fails
    try:
        for digit_dir in sorted(folder.iterdir()):
            if not (digit_dir.is_dir() and re.fullmatch("[0-9]", digit_dir.name)):
                continue
            reading = digit_dir
            for file in sorted(digit_dir.iterdir()):
                if not file.is_file() or _is_hidden(file.name):
                    continue
                reading = file
                size = file.stat().st_size
                if size <= MAX_IMAGE_BYTES:
                    with file.open("rb") as stream:
                        data = stream.read(MAX_IMAGE_BYTES + 1)  # the size can change meanwhile
                    size = len(data)
                if size > MAX_IMAGE_BYTES:
                    raise DataError(
                        f"the image file {file} {_too_large(size, zipped=False)}; {hint}"
                    )
                total += size
                if total > MAX_IMAGES_BYTES:
                    raise DataError(
                        f"the images in {folder} come to more than {MAX_IMAGES_BYTES:,} bytes, "
                        f"far more than the dataset's 24 MB: this is not the dataset; {hint}"
                    )
                files[f"{digit_dir.name}/{file.name}"] = data
    except OSError as error:
        raise DataError(f"cannot read {reading} ({_reason(error)}); {hint}") from None
    return files


def _read_archive(
    content: bytes, where: str, hint: Hint, only: Collection[str] | None
) -> dict[str, bytes]:
    """The images of a zip archive: the one place where archives are opened."""

    def refuse(problem: str) -> DataError:
        return DataError(f"the archive {where} {problem}; {hint}")

    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except UnicodeDecodeError as error:
        raw = error.object if isinstance(error.object, bytes) else b""
        name = shown_name(raw.decode("utf-8", "backslashreplace"))
        raise refuse(
            f"has an entry whose name ({name}) is marked UTF-8 but is not; it is damaged"
        ) from None
    except NotImplementedError as error:  # such as "zip file version 9.9"
        raise refuse(f"uses a zip feature that cannot be read ({_reason(error)})") from None
    except _ZIP_ERRORS as error:
        raise refuse(f"cannot be read as a zip archive ({_reason(error)})") from None
    with archive:
        entries = _image_entries(archive, refuse)
        if only is not None:
            entries = {key: entries[key] for key in only if key in entries}
        files = {}
        for key, info in entries.items():
            try:
                with archive.open(info) as stream:
                    lzma_entry = info.compress_type == zipfile.ZIP_LZMA
                    chunk = _LZMA_CHUNK if lzma_entry else _ZIP_CHUNK
                    data = _read_bounded(stream, MAX_IMAGE_BYTES, chunk)
            except _ZIP_ERRORS as error:
                name, reason = shown_name(info.filename), _reason(error)
                raise refuse(f"is damaged: its entry {name} cannot be read ({reason})") from None
            if data is None:  # the directory said it was small
                raise refuse(
                    f"has an entry {shown_name(info.filename)} that inflates to more than "
                    f"{MAX_IMAGE_BYTES:,} bytes though its directory says {info.file_size:,}: "
                    "this is not the dataset (perhaps a zip bomb)"
                )
            files[key] = data
    return files


def _image_entries(
    archive: zipfile.ZipFile, refuse: Callable[[str], DataError]
) -> dict[str, zipfile.ZipInfo]:
    """The archive's image entries by path inside ``Dataset/``, each checked before reading."""
    seen: set[str] = set()
    for info in archive.infolist():
        if info.filename in seen:
            raise refuse(
                f"has two entries named {shown_name(info.filename)} (only the last would be read); "
                "it is damaged or was altered"
            )
        seen.add(info.filename)
    names = [name for name in seen if not _is_hidden(name)]
    tops = {name.split("/", 1)[0] for name in names}
    prefix = ""
    if "Dataset" not in tops:
        if len(tops) != 1:
            raise refuse("has no Dataset/ folder (nor a single top folder holding one)")
        prefix = tops.pop() + "/"
    entries, total = {}, 0
    for info in archive.infolist():
        match = _IMAGE_PATH.fullmatch(info.filename.removeprefix(prefix))
        if _is_hidden(info.filename) or not match or _is_hidden(match[2]):
            continue
        problem = _entry_problem(info)
        if problem:
            raise refuse(f"has an entry {shown_name(info.filename)} that {problem}")
        total += info.file_size
        if total > MAX_IMAGES_BYTES:
            raise refuse(
                f"holds more than {MAX_IMAGES_BYTES:,} bytes of images, far more than the "
                "dataset's 24 MB: this is not the dataset"
            )
        entries[f"{match[1]}/{match[2]}"] = info
    return entries


def _entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an image entry cannot be read safely, judged from the zip directory alone."""
    if info.flag_bits & _ENCRYPTED:
        return "is encrypted (the dataset's archive has no password)"
    if info.flag_bits & _PATCHED:
        return "holds patched data, a zip feature that cannot be read"
    if info.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "an unknown method")
        return (
            f"uses {method} (compression method {info.compress_type}), which signdigits "
            "does not read (the dataset's archive uses deflate)"
        )
    if info.file_size > MAX_IMAGE_BYTES:
        return _too_large(info.file_size, zipped=True)
    return None


def _read_bounded(stream: IO[bytes], limit: int, chunk_size: int) -> bytes | None:
    """All of ``stream`` in small reads, or ``None`` as soon as it exceeds ``limit`` bytes."""
    chunks, size = [], 0
    while chunk := stream.read(chunk_size):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


# --- The Kaggle pair ------------------------------------------------------------------------

KAGGLE_HINT = (
    "download X.npy and Y.npy again from Kaggle's Sign Language Digits Dataset, or use "
    "the original photos: `signdigits data fetch`"
)

PHOTO_ROUGHNESS_LIMIT = 0.15
"""The most an image's neighbouring pixels may differ on average (left to right).

The dataset's photos, preprocessed, differ by 0.038 on average and 0.060 at most;
uniform noise differs by 1/3. Beyond the limit, an image is not a photo."""


def read_kaggle_arrays(source: DataSource) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 64, 64) float32 and digit labels (N,) from the Kaggle ``X.npy``/``Y.npy``.

    ``Y.npy`` is one-hot, but its columns are scrambled: column ``i`` is the digit
    ``KAGGLE_COLUMN_DIGITS[i]``. The labels returned are the true digits.

    The headers are checked before any array is read (shape, dtype and file size), so
    that a header announcing petabytes, or a file that is not an ``.npy``, is refused
    without allocating. Then the arrays are checked against what is known of the
    dataset: 2,062 images, per-digit counts of the manifest once unscrambled, values
    in [0, 1], and images smooth like photos rather than noise. Their pixels cannot
    be checked against the manifest, which covers the photos' files.
    """
    x_path, y_path = source.path / "X.npy", source.path / "Y.npy"
    expected_counts = digit_counts()
    n_images = sum(expected_counts)

    def check_x(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if len(shape) != 3 or shape[1:] != (64, 64) or dtype.kind != "f":
            raise DataError(
                f"{x_path} holds an array of {dtype} of shape {shape}; expected floats of "
                f"shape ({n_images}, 64, 64), as in the Kaggle Sign Language Digits X.npy; "
                f"{KAGGLE_HINT}"
            )
        if shape[0] != n_images:
            raise DataError(
                f"{x_path} holds {shape[0]:,} images; the dataset has {n_images:,}; {KAGGLE_HINT}"
            )

    x = _read_npy(x_path, check_x)

    def check_y(shape: tuple[int, ...], dtype: np.dtype) -> None:
        if shape != (len(x), 10) or dtype.kind not in "fiub":
            raise DataError(
                f"{y_path} holds an array of {dtype} of shape {shape}; expected numbers of shape "
                f"({len(x)}, 10), one one-hot row per image of X.npy; {KAGGLE_HINT}"
            )

    y = _read_npy(y_path, check_y)
    if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
        raise DataError(
            f"{y_path} is not one-hot: each row must hold a single 1 and nine 0s; {KAGGLE_HINT}"
        )
    digits = np.asarray(KAGGLE_COLUMN_DIGITS, dtype=np.int64)[y.argmax(axis=1)]
    counts = tuple(np.bincount(digits, minlength=10).tolist())
    if counts != expected_counts:
        raise DataError(
            f"{y_path} has {' '.join(map(str, counts))} images of the digits 0 to 9 (its "
            f"columns mapped to digits); the dataset has {' '.join(map(str, expected_counts))}; "
            f"{KAGGLE_HINT}"
        )
    x = x.astype(np.float32)
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DataError(
            f"{x_path} has values outside [0, 1]; expected the Kaggle X.npy, "
            f"scaled to [0, 1]; {KAGGLE_HINT}"
        )
    roughness = np.abs(np.diff(x, axis=2)).mean(axis=(1, 2))
    worst = int(roughness.argmax())
    if roughness[worst] > PHOTO_ROUGHNESS_LIMIT:
        raise DataError(
            f"image {worst} of {x_path} is not a photo: its neighbouring pixels differ by "
            f"{roughness[worst]:.2f} on average (noise?), the dataset's by 0.06 at most; "
            f"{KAGGLE_HINT}"
        )
    return x, digits


def _read_npy(path: Path, check: Callable[[tuple[int, ...], np.dtype], None]) -> np.ndarray:
    """Read an ``.npy`` file whose header passes ``check``; never unpickles.

    ``check(shape, dtype)`` raises ``DataError`` for a header it refuses, before any
    memory is allocated for the array; the file's size must match the header.
    """
    try:
        with path.open("rb") as file:
            version = npy_format.read_magic(file)
            if version == (1, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran_order, dtype = npy_format.read_array_header_2_0(file)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            check(shape, dtype)
            count = math.prod(shape)
            expected = file.tell() + count * dtype.itemsize
            size = os.fstat(file.fileno()).st_size
            if size != expected:
                raise DataError(
                    f"{path} is {size:,} bytes, but its header announces {expected:,} (a "
                    f"{dtype} array of shape {shape}): it is truncated or damaged; {KAGGLE_HINT}"
                )
            array = np.fromfile(file, dtype=dtype, count=count)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(
            f"{path} is not a readable .npy file ({_reason(error)}); {KAGGLE_HINT}"
        ) from None
    return array.reshape(shape, order="F" if fortran_order else "C")
