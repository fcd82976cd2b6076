"""The cache folder: the downloaded archive and the decoded arrays.

``$SIGNDIGITS_CACHE`` chooses the folder; by default it is the platform's user
cache folder (``~/.cache/signdigits`` on Linux).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import platformdirs

from signdigits.atomic import atomic_write
from signdigits.data.manifest import load_manifest, manifest_digest
from signdigits.data.preprocess import IMAGE_SIZE, PREPROCESSING_VERSION

ARCHIVE_NAME = "sign-language-digits-dataset.zip"


def cache_dir() -> Path:
    """The cache folder, from ``$SIGNDIGITS_CACHE`` or the user cache folder."""
    configured = os.environ.get("SIGNDIGITS_CACHE")
    if configured:
        return Path(configured).expanduser()
    return platformdirs.user_cache_path("signdigits")


def cached_archive() -> Path:
    """Where the downloaded archive lives in the cache."""
    return cache_dir() / ARCHIVE_NAME


def decoded_path() -> Path:
    """The npz of decoded images, keyed by the manifest and the preprocessing version."""
    key = hashlib.sha256(f"{manifest_digest()}:{PREPROCESSING_VERSION}".encode()).hexdigest()
    return cache_dir() / f"decoded-{key[:16]}.npz"


def load_decoded() -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(images, labels)``, or ``None`` when absent or unreadable."""
    path = decoded_path()
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images, labels = arrays["images"], arrays["labels"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    expected = (len(load_manifest()), IMAGE_SIZE, IMAGE_SIZE)
    if images.shape != expected or images.dtype != np.float32 or labels.shape != expected[:1]:
        return None  # written by something else: decode again
    return images, labels


def save_decoded(images: np.ndarray, labels: np.ndarray) -> None:
    """Write the decoded arrays atomically: a reader never sees half a file."""
    try:
        with atomic_write(decoded_path()) as file:
            np.savez(file, images=images, labels=labels)
    except OSError:
        pass  # the cache only saves time: a read-only or full disk must not stop the work
