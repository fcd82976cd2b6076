"""Download the dataset's archive into the cache with pooch, verified before it is kept."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import pooch

from signdigits.data.cache import cached_archive
from signdigits.data.manifest import verify_images
from signdigits.data.sources import DataSource, read_image_files
from signdigits.errors import DataError
from signdigits.progress import download_bar

DATASET_COMMIT = "4b09433ef9d5c60602e8805bb54b8aa2428527f8"
DEFAULT_URL = (
    f"https://github.com/ardamavi/Sign-Language-Digits-Dataset/archive/{DATASET_COMMIT}.zip"
)


def data_url() -> str:
    """The download address: ``$SIGNDIGITS_DATA_URL`` (for mirrors) or the pinned GitHub archive."""
    return os.environ.get("SIGNDIGITS_DATA_URL") or DEFAULT_URL


def fetch_archive(url: str | None = None, show_progress: bool = True) -> Path:
    """Download the archive into the cache and return its path.

    The file is written under a temporary name beside its final place, checked
    image by image against the manifest, and only then moved into place: a failed
    or corrupt download leaves nothing in the cache.
    """
    import requests  # pooch's own HTTP client

    url = url or data_url()
    target = cached_archive()
    try:  # a cache folder that cannot be created or is read-only fails here, in one line
        target.parent.mkdir(parents=True, exist_ok=True)
        download_dir = tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-")
    except OSError as error:
        raise DataError(
            f"cannot write to the cache folder {target.parent} ({error.strerror or error}); "
            "set SIGNDIGITS_CACHE to a writable folder"
        ) from None
    pooch.get_logger().setLevel(logging.WARNING)
    with download_dir as tmp:
        try:
            with download_bar("Downloading the dataset", show=show_progress) as bar:
                downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 16, timeout=60)
                path = pooch.retrieve(
                    url, known_hash=None, fname=target.name, path=tmp, downloader=downloader
                )
        except (requests.RequestException, OSError, ValueError) as error:
            reason = (
                "cannot connect"
                if isinstance(error, requests.ConnectionError)
                else f"{type(error).__name__}: {error}"
            )
            raise DataError(
                f"could not download the dataset from {url} ({reason}); "
                "check the network, set SIGNDIGITS_DATA_URL to a mirror, or set "
                "SIGNDIGITS_DATA to a local copy"
            ) from None
        hint = "nothing was kept in the cache; try again, or check SIGNDIGITS_DATA_URL"
        downloaded = DataSource("archive", Path(path), "download")
        images = read_image_files(downloaded, where=f"downloaded from {url}", hint=hint)
        verify_images(images, where=url, hint=hint)
        os.replace(path, target)
    return target
