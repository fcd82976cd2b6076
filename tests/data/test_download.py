"""The download, for real: a local HTTP server, an empty cache, and nothing kept unless verified.

``SIGNDIGITS_DATA_URL`` points at a ``ThreadingHTTPServer`` on 127.0.0.1 serving a
copy of the archive (good, or with one image byte flipped), a missing file (404) or
a closed port (no network).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from signdigits.data import load_dataset
from signdigits.errors import DataError

if TYPE_CHECKING:
    from tests.conftest import CliRun, FileServer

ARCHIVE_NAME = "sign-language-digits-dataset.zip"
COUNTS_PER_DIGIT = [205, 206, 206, 206, 207, 207, 207, 206, 208, 204]


def folder_contents(folder: Path) -> list[str]:
    """Every file and folder below ``folder``, hidden ones too; [] if it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def good_url(http_server: FileServer, dataset_archive: Path) -> str:
    return http_server.serve(ARCHIVE_NAME, dataset_archive)


@pytest.fixture(scope="module")
def corrupt(image_names: list[str]) -> str:
    """The image whose byte is flipped in the corrupt archive."""
    return image_names[len(image_names) // 3]


@pytest.fixture(scope="module")
def corrupt_archive(
    corrupt: str,
    image_bytes: Callable[[str], bytes],
    flip_byte: Callable[..., bytes],
    dataset_copy: Callable[..., Path],
) -> Path:
    """A copy of the archive with one byte of one image flipped."""
    return dataset_copy({corrupt: flip_byte(image_bytes(corrupt))})


@pytest.fixture(scope="module")
def corrupt_url(http_server: FileServer, corrupt_archive: Path) -> str:
    return http_server.serve("corrupt.zip", corrupt_archive)


def test_load_dataset_downloads_verifies_and_keeps_the_archive(
    good_url: str, dataset_archive: Path, download_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNDIGITS_DATA_URL", good_url)

    dataset = load_dataset(show_progress=False)

    assert dataset.source.origin == "download"
    assert dataset.source.path == download_env / ARCHIVE_NAME
    assert sha256(download_env / ARCHIVE_NAME) == sha256(dataset_archive)
    assert dataset.counts() == COUNTS_PER_DIGIT
    kept = folder_contents(download_env)
    assert ARCHIVE_NAME in kept
    decoded_or_checked = (".npz", ".txt")  # the decoded arrays; the record of checked archives
    assert [n for n in kept if n != ARCHIVE_NAME and not n.endswith(decoded_or_checked)] == []


def test_a_corrupt_download_raises_and_leaves_the_cache_empty(
    corrupt_url: str, corrupt: str, download_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNDIGITS_DATA_URL", corrupt_url)

    with pytest.raises(DataError, match=f"Dataset/{corrupt}"):
        load_dataset(show_progress=False)

    assert folder_contents(download_env) == []


def fetch_env(download_env: Path, url: str) -> dict[str, str | None]:
    """The subprocess's environment: this test's, with the download address set."""
    return {"SIGNDIGITS_DATA_URL": url, "SIGNDIGITS_CACHE": str(download_env)}


def test_data_fetch_downloads_into_the_cache(
    good_url: str, dataset_archive: Path, download_env: Path, run_cli: Callable[..., CliRun]
) -> None:
    run = run_cli("data", "fetch", "--quiet", env=fetch_env(download_env, good_url))

    assert run.returncode == 0, run.stderr
    assert folder_contents(download_env) == [ARCHIVE_NAME]
    assert sha256(download_env / ARCHIVE_NAME) == sha256(dataset_archive)
    assert "2062" in run.stdout


@pytest.fixture(params=["corrupt archive", "404", "closed port"])
def failing_url(
    request: pytest.FixtureRequest, http_server: FileServer, closed_port_url: str
) -> tuple[str, str]:
    """A download address that fails, and what the error line must name."""
    if request.param == "corrupt archive":
        return request.getfixturevalue("corrupt_url"), request.getfixturevalue("corrupt")
    url = http_server.url("no-such-file.zip") if request.param == "404" else closed_port_url
    return url, url


def test_data_fetch_fails_in_one_line_and_keeps_nothing(
    failing_url: tuple[str, str], download_env: Path, run_cli: Callable[..., CliRun]
) -> None:
    url, named = failing_url

    run = run_cli("data", "fetch", "--quiet", env=fetch_env(download_env, url))

    assert named in run.error_line()
    assert folder_contents(download_env) == []


def test_data_fetch_replaces_a_damaged_archive_in_the_cache(
    good_url: str,
    corrupt_archive: Path,
    dataset_archive: Path,
    download_env: Path,
    run_cli: Callable[..., CliRun],
) -> None:
    """The errors about a damaged copy say "download a fresh copy with `signdigits data
    fetch`": that must work when the damaged copy is the cached archive itself."""
    download_env.mkdir()
    damaged = download_env / ARCHIVE_NAME
    damaged.write_bytes(corrupt_archive.read_bytes())

    run = run_cli("data", "fetch", "--quiet", env=fetch_env(download_env, good_url))

    assert run.returncode == 0, run.stderr
    assert sha256(damaged) == sha256(dataset_archive)
