"""Bring the dataset's archive into the cache: downloaded with pooch, or imported from a
local copy; either way verified image by image before it is kept.

**Staging.** Every copy on its way into the cache is written into a folder of its own,
``.download-*`` inside the cache folder, checked against the manifest there, and only
then renamed into place: a failed, corrupt or interrupted transfer leaves nothing. The
folder is removed on every way out of Python, Ctrl-C included, and on SIGTERM too (see
``_terminate_cleanly``). What no program can clean up after (SIGKILL, a power cut) is
removed by a later fetch: each staging folder is locked (``flock`` on its ``.lock``)
while in use, so a folder whose lock is free belongs to no running process and is
removed once it is a minute old (the minute covers the instant between creating a
folder and locking it). Where file locks are not available, or a folder has no lock
file, only folders older than an hour are removed.

**Time limits.** Connecting, and each wait for more data, give up after
``STALL_SECONDS`` ("the server stopped sending"). The whole transfer has a deadline,
``$SIGNDIGITS_DOWNLOAD_TIMEOUT`` seconds (``DEFAULT_DOWNLOAD_TIMEOUT`` by default), so a
server that trickles its bytes cannot hold a download for ever. A body shorter than its
``Content-Length`` is reported as such, with the byte counts.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pooch

from signdigits.data.cache import cache_folder_fix, cached_archive
from signdigits.data.manifest import Hint, verify_images
from signdigits.data.paths import strerror
from signdigits.data.sources import DataSource, hint_for, read_image_files
from signdigits.errors import DataError
from signdigits.progress import download_bar

try:
    import fcntl
except ImportError:  # Windows: staging folders are then judged by their age alone
    fcntl = None  # type: ignore[assignment]

DATASET_COMMIT = "4b09433ef9d5c60602e8805bb54b8aa2428527f8"
DEFAULT_URL = (
    f"https://github.com/ardamavi/Sign-Language-Digits-Dataset/archive/{DATASET_COMMIT}.zip"
)

DEFAULT_DOWNLOAD_TIMEOUT = 600.0
"""Seconds a whole download may take, unless ``$SIGNDIGITS_DOWNLOAD_TIMEOUT`` says otherwise."""

STALL_SECONDS = 30.0
"""Seconds to wait for a connection, for the server's answer, and for each piece of the body."""

MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
"""The largest archive accepted; the dataset's is 17 MB (24 MB of photos, deflated)."""

STAGING_PREFIX = ".download-"
LOCK_NAME = ".lock"
STALE_AFTER_SECONDS = 60.0
"""A staging folder whose lock is free is removed once this old."""
STALE_UNLOCKED_AFTER_SECONDS = 3600.0
"""A staging folder without a lock to test (or without ``fcntl``) is removed once this old."""

_CHUNK = 64 * 1024
_IMPORT_FIX = "or import a copy of the archive you have with `signdigits data fetch --from ARCHIVE`"


def data_url() -> str:
    """The download address: ``$SIGNDIGITS_DATA_URL`` (for mirrors) or the pinned GitHub archive."""
    return os.environ.get("SIGNDIGITS_DATA_URL") or DEFAULT_URL


def download_timeout() -> float:
    """The seconds a whole download may take: ``$SIGNDIGITS_DOWNLOAD_TIMEOUT``, or 600."""
    configured = os.environ.get("SIGNDIGITS_DOWNLOAD_TIMEOUT")
    if not configured:
        return DEFAULT_DOWNLOAD_TIMEOUT
    try:
        seconds = float(configured)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise DataError(
            f"SIGNDIGITS_DOWNLOAD_TIMEOUT is {configured!r}; set it to the most seconds a "
            f"download may take, a number above 0 (the default is {DEFAULT_DOWNLOAD_TIMEOUT:g})"
        )
    return seconds


# --- The download ---------------------------------------------------------------------------


def fetch_archive(url: str | None = None, show_progress: bool = True) -> Path:
    """Download the archive into the cache and return its path.

    The file is downloaded into a staging folder in the cache, checked image by image
    against the manifest, and only then moved into place: a failed, corrupt, stalled,
    too slow or interrupted download leaves nothing in the cache.
    """
    url = url or data_url()
    limit = download_timeout()
    target = cached_archive()
    pooch.get_logger().setLevel(logging.WARNING)
    with _terminate_cleanly(), _staging(target.parent) as folder:
        try:
            with download_bar("Downloading the dataset", show=show_progress) as bar:
                downloader = _Downloader(limit, bar or None)
                path = pooch.retrieve(
                    url, known_hash=None, fname=target.name, path=folder, downloader=downloader
                )
        except _DownloadFailed as failure:
            raise DataError(
                f"could not download the dataset from {url} ({failure.reason}), so nothing "
                f"was kept in the cache; {failure.fix or _download_fix()}"
            ) from None
        except OSError as error:  # writing into the staging folder
            raise _cannot_write(target.parent, error) from None
        hint = _download_hint()
        downloaded = DataSource("archive", Path(path), "download")
        images = read_image_files(downloaded, where=f"downloaded from {url}", hint=hint)
        verify_images(images, where=url, hint=hint)
        _move_into_place(Path(path), target)
    return target


def _download_fix() -> str:
    if os.environ.get("SIGNDIGITS_DATA_URL"):
        return f"check the network and SIGNDIGITS_DATA_URL and try again, {_IMPORT_FIX}"
    return f"check the network and try again, set SIGNDIGITS_DATA_URL to a mirror, {_IMPORT_FIX}"


def _download_hint() -> Hint:
    """What to do about a download that is not the dataset (it was not kept)."""
    if os.environ.get("SIGNDIGITS_DATA_URL"):
        fix = "try again, or check that SIGNDIGITS_DATA_URL serves the dataset's archive"
    else:
        fix = "try again, or set SIGNDIGITS_DATA_URL to a mirror of the dataset's archive"
    return Hint(fix, not_kept=True)


class _DownloadFailed(Exception):
    """Why a download failed, as a phrase for the message, and what to do if not the usual."""

    def __init__(self, reason: str, fix: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


class _Downloader:
    """pooch's downloader interface, ``downloader(url, output_file, pooch)``, over requests.

    Unlike ``pooch.HTTPDownloader``, whose timeout applies to each read only, it holds
    the whole transfer to a deadline, and it tells apart a server that cannot be
    reached, one that stops sending, a body that ends early and a download too slow.

    The body is read with urllib3's ``read1``, which returns what has arrived rather
    than waiting for a whole chunk, so the deadline is checked between reads however
    slowly the bytes come, and a body cut short is counted to the byte. Each read waits
    at most ``STALL_SECONDS`` (or the whole limit, if shorter), which bounds how far the
    deadline can be overrun. (A urllib3 older than 2.3 has no ``read1``: reads of 64 KiB
    then wait for the whole 64 KiB, and a trickle is only caught between them.)
    """

    def __init__(self, limit: float, progress: Any = None) -> None:
        self.limit = limit
        self.wait = min(STALL_SECONDS, limit)
        self.progress = progress
        self.received = 0
        self.expected: int | None = None

    def __call__(self, url: str, output_file: str | IO[bytes], pooch_object: object = None) -> None:
        import requests  # pooch's own HTTP client

        deadline = time.monotonic() + self.limit
        try:
            response = requests.get(url, stream=True, timeout=(self.wait, self.wait))
        except requests.ConnectTimeout:
            raise _DownloadFailed(f"cannot connect: no answer within {self.wait:g} s") from None
        except requests.ReadTimeout:
            raise _DownloadFailed(
                f"the server took the connection but sent nothing for {self.wait:g} s"
            ) from None
        except requests.ConnectionError as error:
            raise _DownloadFailed(f"cannot connect: {_innermost(error)}") from None
        except requests.RequestException as error:  # an invalid address, too many redirects
            raise _DownloadFailed(f"{type(error).__name__}: {_innermost(error)}") from None
        with response:
            if not response.ok:
                raise _DownloadFailed(
                    f"the server answered {response.status_code} {response.reason}"
                )
            self.expected = _announced_size(response)
            if self.expected is not None and self.expected > MAX_ARCHIVE_BYTES:
                raise self._too_large()
            if self.progress is not None:
                self.progress.total = self.expected or 0
            if isinstance(output_file, str):
                with open(output_file, "wb") as file:
                    self._receive(response.raw, file, deadline)
            else:
                self._receive(response.raw, output_file, deadline)

    def _receive(self, raw: Any, out: IO[bytes], deadline: float) -> None:
        import urllib3

        read = getattr(raw, "read1", None) or raw.read
        while True:
            if time.monotonic() > deadline:
                raise self._too_slow()
            try:
                chunk = read(_CHUNK, decode_content=True)
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise self._broken(error, deadline) from None
            if not chunk:
                break
            self.received += len(chunk)
            if self.received > MAX_ARCHIVE_BYTES:
                raise self._too_large()
            out.write(chunk)  # an OSError here is the cache's: the caller names the folder
            if self.progress is not None:
                self.progress.update(len(chunk))
        if self.expected is not None and self.received < self.expected:
            raise _DownloadFailed(f"the download ended early, after {self._count()}")

    def _broken(self, error: BaseException, deadline: float) -> _DownloadFailed:
        if time.monotonic() > deadline:
            return self._too_slow()
        if _is_timeout(error):
            return _DownloadFailed(
                f"the server stopped sending after {self._count()}: nothing came for "
                f"{self.wait:g} s"
            )
        return _DownloadFailed(f"the download ended early, after {self._count()}")

    def _too_slow(self) -> _DownloadFailed:
        return _DownloadFailed(
            f"it took longer than the limit of {self.limit:g} s, with {self._count()} received",
            fix="try again on a faster connection, allow more time with "
            f"SIGNDIGITS_DOWNLOAD_TIMEOUT=SECONDS (now {self.limit:g}), {_IMPORT_FIX}",
        )

    def _too_large(self) -> _DownloadFailed:
        return _DownloadFailed(
            f"it is more than {MAX_ARCHIVE_BYTES:,} bytes, far more than the dataset's "
            "17 MB archive: this is not the dataset"
        )

    def _count(self) -> str:
        if self.expected is None:
            return f"{self.received:,} bytes"
        return f"{self.received:,} of {self.expected:,} bytes"


def _announced_size(response: Any) -> int | None:
    """The body's size from ``Content-Length``, when the bytes received are counted in it."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    try:
        size = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return size if encoding == "identity" and size >= 0 else None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error and those it wraps: ``reason`` (urllib3), ``args[0]`` (requests), causes."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        inner = getattr(error, "reason", None)
        if not isinstance(inner, BaseException):
            first = error.args[0] if error.args else None
            inner = first if isinstance(first, BaseException) else None
        error = inner or error.__cause__ or error.__context__  # type: ignore[assignment]


def _innermost(error: BaseException) -> str:
    """The deepest reason of a requests error: "Connection refused", not a wrapper's repr."""
    for inner in reversed(list(_chain(error))):
        if isinstance(inner, OSError) and inner.strerror:
            return inner.strerror
    return str(error) or type(error).__name__


def _is_timeout(error: BaseException) -> bool:
    import urllib3

    timeouts = (TimeoutError, socket.timeout, urllib3.exceptions.TimeoutError)
    return any(isinstance(inner, timeouts) for inner in _chain(error))


# --- A local copy ---------------------------------------------------------------------------


def import_archive(source: DataSource) -> Path:
    """Copy a local archive into the cache, verified as a download is; return where it is now.

    The copy goes to a staging folder in the cache, is checked there against the
    manifest (so what is kept is what was checked, even if the original changes
    meanwhile) and is then renamed into place.
    """
    target = cached_archive()
    hint = hint_for(source.origin, not_kept=True)
    with _terminate_cleanly(), _staging(target.parent) as folder:
        staged = folder / target.name
        _copy_bounded(source, staged, hint)
        copy = DataSource("archive", staged, source.origin)
        images = read_image_files(copy, where=str(source.path), hint=hint)
        verify_images(images, where=str(source.path), hint=hint)
        _move_into_place(staged, target)
    return target


def _copy_bounded(source: DataSource, staged: Path, hint: Hint) -> None:
    """Copy ``source`` to ``staged``, refusing one far larger than the dataset's archive."""
    too_large = DataError(
        f"{source.path} (from {source.origin}) is more than {MAX_ARCHIVE_BYTES:,} bytes, far "
        f"more than the dataset's 17 MB archive: this is not the dataset; {hint}"
    )
    try:
        with source.path.open("rb") as reader:
            if os.fstat(reader.fileno()).st_size > MAX_ARCHIVE_BYTES:
                raise too_large
            data = reader.read(MAX_ARCHIVE_BYTES + 1)  # it may have grown meanwhile
    except OSError as error:
        raise DataError(
            f"cannot read {source.path} (from {source.origin}): {strerror(error)}; {hint}"
        ) from None
    if len(data) > MAX_ARCHIVE_BYTES:
        raise too_large
    try:
        with staged.open("xb") as writer:
            writer.write(data)
    except OSError as error:
        raise _cannot_write(staged.parent.parent, error) from None


# --- Into the cache, and nothing left behind ------------------------------------------------


def _cannot_write(cache: Path, error: OSError) -> DataError:
    return DataError(
        f"cannot write to the cache folder {cache} ({strerror(error)}); "
        f"{cache_folder_fix(cache, error)}"
    )


def _move_into_place(staged: Path, target: Path) -> None:
    try:
        os.replace(staged, target)
    except OSError as error:  # a folder in its place, say
        raise DataError(
            f"cannot put the archive at {target} ({strerror(error)}); remove what is there, "
            "or set SIGNDIGITS_CACHE to another folder"
        ) from None


@contextmanager
def _staging(cache: Path) -> Iterator[Path]:
    """A new, locked staging folder in ``cache``, removed on the way out whatever happens.

    Stale staging folders, left by processes that were killed, are removed first.
    """
    folder = lock = None
    try:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(cache)
            folder = Path(tempfile.mkdtemp(dir=cache, prefix=STAGING_PREFIX))
        except OSError as error:  # a cache folder that cannot be created, or is read-only
            raise _cannot_write(cache, error) from None
        lock = _lock(folder)
        yield folder
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if lock is not None:
            os.close(lock)  # the lock goes with the descriptor


def _lock(folder: Path) -> int | None:
    """Hold an exclusive ``flock`` on ``folder/.lock``: the folder is in use while it is held."""
    if fcntl is None:
        return None
    try:
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def remove_stale_staging(cache: Path, now: float | None = None) -> list[Path]:
    """Remove the staging folders in ``cache`` that no running process uses; return them.

    A folder is stale when its lock is free and it is more than a minute old, or, when
    it has no lock to test, more than an hour old. Nothing here raises: a folder that
    cannot be judged or removed is left.
    """
    now = time.time() if now is None else now
    try:
        candidates = [path for path in cache.iterdir() if path.name.startswith(STAGING_PREFIX)]
    except OSError:
        return []
    removed = []
    for folder in candidates:
        if not _is_stale(folder, now):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        if not os.path.lexists(folder):
            removed.append(folder)
    return removed


def _is_stale(folder: Path, now: float) -> bool:
    try:
        if folder.is_symlink() or not folder.is_dir():
            return False
        age = now - folder.stat().st_mtime
    except OSError:
        return False
    if age < STALE_AFTER_SECONDS:
        return False  # perhaps created an instant ago, and not locked yet
    if fcntl is None:
        return age > STALE_UNLOCKED_AFTER_SECONDS
    try:
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # no lock file: not made by this version, or not yet
        return age > STALE_UNLOCKED_AFTER_SECONDS
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a running process holds it
    except OSError:  # locks not supported on this file system
        return age > STALE_UNLOCKED_AFTER_SECONDS
    finally:
        os.close(descriptor)
    return True


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """While in this block, SIGTERM raises ``SystemExit(143)`` rather than ending the
    process at once, so that every ``finally`` and ``with`` on the way out runs and the
    staging folder is removed; the exit status is the one SIGTERM gives (128 + 15).

    Only in the main thread (the only one signals reach in Python), and only where
    SIGTERM still has its default action: a program that installed its own handler has
    its own plans. A second SIGTERM, during the clean-up, ends the process at once.
    The previous handler is put back on the way out.
    """
    sigterm = getattr(signal, "SIGTERM", None)
    if (
        sigterm is None
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(sigterm) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        signal.signal(sigterm, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    signal.signal(sigterm, terminate)
    try:
        yield
    finally:
        if signal.getsignal(sigterm) is terminate:
            signal.signal(sigterm, signal.SIG_DFL)
