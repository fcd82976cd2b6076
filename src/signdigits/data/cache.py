"""The cache folder: the downloaded archive and the decoded arrays.

``$SIGNDIGITS_CACHE`` chooses the folder; by default it is the platform's user
cache folder (``~/.cache/signdigits`` on Linux).

The decoded arrays are only trusted when they prove what they are. The file's name
and the ``key`` stored in it come from the manifest and the preprocessing version;
its ``digest`` is the BLAKE2b digest of that key and of the arrays (BLAKE2b rather than
SHA-256: twice as fast on 34 MB where the CPU has no SHA instructions); its labels must be the
manifest's digits in decoding order, its images in [0, 1]. It is read without
``np.load``: each member's header is checked (shape and dtype exactly, so an object
array is never unpickled) before its bytes are read, and the file's size is bounded
first. Anything else (another version's file, random arrays, shifted labels, a
truncated file, a folder in its place) is ignored and the photos are decoded again:
a damaged cache is not the user's error.

The cache also remembers, by the BLAKE2b digest of their bytes, the archives whose every
image was checked against the manifest: an archive identical byte for byte to one of them
needs no second check of its 2,062 images (``is_checked_archive``).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
import zipfile
import zlib
from functools import cache
from pathlib import Path
from typing import IO

import numpy as np
import platformdirs
from numpy.lib import format as npy_format

from signdigits.atomic import atomic_write
from signdigits.data.manifest import digit_counts, manifest_digest
from signdigits.data.paths import expand_user, is_denied, is_too_long, strerror
from signdigits.data.preprocess import IMAGE_SIZE, PREPROCESSING_VERSION
from signdigits.errors import DataError

ARCHIVE_NAME = "sign-language-digits-dataset.zip"

_MEMBER_SLACK = 64 * 1024
"""Room in the npz for zip headers and .npy headers beside the arrays' own bytes."""


def cache_dir() -> Path:
    """The cache folder, from ``$SIGNDIGITS_CACHE`` or the user cache folder."""
    configured = os.environ.get("SIGNDIGITS_CACHE")
    if configured:
        return expand_user(configured, "SIGNDIGITS_CACHE")
    try:
        return platformdirs.user_cache_path("signdigits")
    except RuntimeError:  # no home folder to put it in
        raise DataError(
            "cannot tell where the user cache folder is (the home folder cannot be "
            "determined); set SIGNDIGITS_CACHE to a folder for the cache"
        ) from None


def cached_archive() -> Path:
    """Where the downloaded archive lives in the cache."""
    return cache_dir() / ARCHIVE_NAME


def cache_folder_fix(folder: Path, error: OSError) -> str:
    """What to do about a cache folder that cannot be used, for the end of a message."""
    if is_denied(error):
        return (
            f"give yourself access to it (chmod u+rwx {folder}), or set SIGNDIGITS_CACHE "
            "to a folder you can write to"
        )
    if is_too_long(error):
        return "set SIGNDIGITS_CACHE to a shorter path"
    return "set SIGNDIGITS_CACHE to a folder you can write to"


def find_cached_archive() -> Path | None:
    """The archive in the cache folder, or ``None`` if there is none.

    A cache folder that cannot be looked into (not searchable, a name too long) is a
    ``DataError`` naming it, rather than a traceback or a silent download.
    """
    path = cached_archive()
    try:
        return path if path.is_file() else None
    except OSError as error:
        raise DataError(
            f"cannot look into the cache folder {path.parent} ({strerror(error)}); "
            f"{cache_folder_fix(path.parent, error)}"
        ) from None


@cache
def decoded_key() -> str:
    """Identifies the decoded arrays: the manifest's digest and the preprocessing version."""
    return hashlib.sha256(f"{manifest_digest()}:{PREPROCESSING_VERSION}".encode()).hexdigest()


def decoded_path() -> Path:
    """The npz of decoded images, named by ``decoded_key``."""
    return cache_dir() / f"decoded-{decoded_key()[:16]}.npz"


def expected_labels() -> np.ndarray:
    """The labels of the decoded images: the manifest's digits, grouped 0 to 9."""
    return np.repeat(np.arange(10, dtype=np.int64), digit_counts())


def arrays_digest(images: np.ndarray, labels: np.ndarray, key: str) -> str:
    """BLAKE2b (256 bits) of ``key`` and of the arrays' dtypes, shapes and bytes."""
    digest = hashlib.blake2b(key.encode(), digest_size=32)
    for array in (images, labels):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _members() -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """What the npz holds: each member's shape and dtype."""
    n_images = sum(digit_counts())
    return {
        "images": ((n_images, IMAGE_SIZE, IMAGE_SIZE), np.dtype(np.float32)),
        "labels": ((n_images,), np.dtype(np.int64)),
        "key": ((), np.dtype("U64")),
        "digest": ((), np.dtype("U64")),
    }


class _NotTheDecodedArrays(Exception):
    """The cached file is not what ``save_decoded`` wrote for this dataset."""


_UNREADABLE = (
    _NotTheDecodedArrays,
    OSError,  # missing, a folder, unreadable
    EOFError,
    ValueError,  # a bad .npy header
    KeyError,
    struct.error,
    zlib.error,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    NotImplementedError,
    RuntimeError,
)


def load_decoded() -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(images, labels)``, or ``None`` unless they prove to be the decoded ones."""
    try:
        return _read_decoded(decoded_path())
    except _UNREADABLE:
        return None


def _read_decoded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    members = _members()
    limit = sum(math.prod(shape) * dtype.itemsize for shape, dtype in members.values())
    if not path.is_file() or path.stat().st_size > limit + _MEMBER_SLACK:
        raise _NotTheDecodedArrays(path)
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        if sorted(info.filename for info in infos) != sorted(f"{name}.npy" for name in members):
            raise _NotTheDecodedArrays("other members")
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x01:
                raise _NotTheDecodedArrays("compressed or encrypted")
            name = info.filename.removesuffix(".npy")
            with archive.open(info) as stream:
                arrays[name] = _read_member(stream, *members[name])
    images, labels = arrays["images"], arrays["labels"]
    key = decoded_key()
    if str(arrays["key"]) != key or str(arrays["digest"]) != arrays_digest(images, labels, key):
        raise _NotTheDecodedArrays("another key, or arrays changed since written")
    if not np.array_equal(labels, expected_labels()):
        raise _NotTheDecodedArrays("labels")
    if not (np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise _NotTheDecodedArrays("values outside [0, 1]")
    return images, labels


def _read_member(stream: IO[bytes], shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """One .npy member whose header must announce exactly ``shape`` and ``dtype``."""
    version = npy_format.read_magic(stream)
    if version == (1, 0):
        header = npy_format.read_array_header_1_0(stream)
    elif version == (2, 0):
        header = npy_format.read_array_header_2_0(stream)
    else:
        raise _NotTheDecodedArrays(f"npy version {version}")
    if header != (shape, False, dtype):
        raise _NotTheDecodedArrays(f"header {header}")
    size = math.prod(shape) * dtype.itemsize
    data = stream.read(size + 1)
    if len(data) != size:
        raise _NotTheDecodedArrays("truncated or too long")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def save_decoded(images: np.ndarray, labels: np.ndarray) -> None:
    """Write the decoded arrays atomically, with their key and digest."""
    key = decoded_key()
    try:
        with atomic_write(decoded_path()) as file:
            np.savez(
                file,
                images=images,
                labels=labels,
                key=np.array(key),
                digest=np.array(arrays_digest(images, labels, key)),
            )
    except OSError:
        pass  # the cache only saves time: a read-only or full disk must not stop the work


_CHECKED_ARCHIVES_KEPT = 8
"""How many checked archives are remembered (the newest ones)."""


def archive_digest(content: bytes) -> str:
    """BLAKE2b (256 bits) of an archive's bytes: what identifies a checked archive."""
    return hashlib.blake2b(content, digest_size=32).hexdigest()


def _checked_archives_path() -> Path:
    """The list of checked archives' digests, named by the manifest they were checked against."""
    return cache_dir() / f"checked-archives-{manifest_digest()[:16]}.txt"


def _checked_archives() -> list[str]:
    try:
        with _checked_archives_path().open("rb") as file:
            text = file.read(_CHECKED_ARCHIVES_KEPT * 65).decode("ascii")
    except (OSError, UnicodeDecodeError):
        return []
    return text.split()


def is_checked_archive(content: bytes) -> bool:
    """Whether an archive with exactly these bytes had every image checked before."""
    return archive_digest(content) in _checked_archives()


def remember_checked_archive(content: bytes) -> None:
    """Record that the archive with these bytes had every image checked against the manifest."""
    digest = archive_digest(content)
    kept = [digest] + [known for known in _checked_archives() if known != digest]
    try:
        with atomic_write(_checked_archives_path()) as file:
            file.write("".join(f"{known}\n" for known in kept[:_CHECKED_ARCHIVES_KEPT]).encode())
    except OSError:
        pass  # like the decoded arrays, a record that only saves time
