"""``signdigits data fetch --from ARCHIVE`` (or with SIGNDIGITS_DATA naming an archive)
imports a local copy into the cache, verified before it is kept; ``data info`` and
``data verify`` only look, and never download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .test_download import ARCHIVE_NAME, folder_contents, sha256

if TYPE_CHECKING:
    from tests.conftest import CliRun, FileServer

EXTRA_IMAGE = "3/IMG_EXTRA.JPG"
"""An image that is not part of the dataset, added to a copy of the archive."""


@pytest.fixture(scope="module")
def archive_with_extra_image(dataset_copy: Callable[..., Path]) -> Path:
    return dataset_copy({EXTRA_IMAGE: b"a stray file"})


def test_fetch_from_an_archive_imports_it_for_later_runs(
    dataset_archive: Path, download_env: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    run = invoke_cli("data", "fetch", "-q", "--from", dataset_archive)

    assert run.returncode == 0, run.stderr
    cached = download_env / ARCHIVE_NAME
    assert f"imported {dataset_archive} (from --from) into the cache as {cached}" in run.stdout
    assert folder_contents(download_env) == [ARCHIVE_NAME]
    assert sha256(cached) == sha256(dataset_archive)
    verify = invoke_cli("data", "verify", "-q")  # no --data, no SIGNDIGITS_DATA: the cache
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout == f"ok: 2062 images match the manifest (archive {cached})\n"


def test_fetch_with_signdigits_data_naming_an_archive_imports_it_without_network(
    dataset_archive: Path,
    download_env: Path,
    closed_port_url: str,
    invoke_cli: Callable[..., CliRun],
) -> None:
    """It used to try the network, and then advise setting SIGNDIGITS_DATA, already set."""
    env = {"SIGNDIGITS_DATA": str(dataset_archive), "SIGNDIGITS_DATA_URL": closed_port_url}

    run = invoke_cli("data", "fetch", "-q", env=env)

    assert run.returncode == 0, run.stderr
    cached = download_env / ARCHIVE_NAME
    assert f"imported {dataset_archive} (from SIGNDIGITS_DATA) into the cache as {cached}" in (
        run.stdout
    )
    assert sha256(cached) == sha256(dataset_archive)


def test_fetch_with_signdigits_data_naming_a_folder_uses_it_where_it_is(
    dataset_copy: Callable[..., Path],
    download_env: Path,
    closed_port_url: str,
    invoke_cli: Callable[..., CliRun],
) -> None:
    folder = dataset_copy(as_folder=True)
    env = {"SIGNDIGITS_DATA": str(folder), "SIGNDIGITS_DATA_URL": closed_port_url}

    run = invoke_cli("data", "fetch", "-q", env=env)

    assert run.returncode == 0, run.stderr
    assert (
        f"SIGNDIGITS_DATA points at the extracted folder {folder} (2062 images checked)"
        in run.stdout
    )
    assert "used where it is" in run.stdout and "unset SIGNDIGITS_DATA" in run.stdout
    assert folder_contents(download_env) == []


def test_fetch_from_a_folder_says_it_is_used_where_it_is(
    dataset_copy: Callable[..., Path], download_env: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    folder = dataset_copy(as_folder=True)

    line = invoke_cli("data", "fetch", "-q", "--from", folder).error_line()

    assert f"{folder} (from --from) is the dataset's extracted folder" in line
    assert "used where it is" in line and "--data" in line and "SIGNDIGITS_DATA" in line
    assert folder_contents(download_env) == []


def test_fetch_from_a_damaged_archive_keeps_nothing(
    archive_with_extra_image: Path,
    dataset_archive: Path,
    download_env: Path,
    invoke_cli: Callable[..., CliRun],
) -> None:
    """Nothing is kept, and the good archive already in the cache stays."""
    invoke_cli("data", "fetch", "-q", "--from", dataset_archive)

    line = invoke_cli("data", "fetch", "-q", "--from", archive_with_extra_image).error_line()

    assert f"the dataset at {archive_with_extra_image} has image Dataset/{EXTRA_IMAGE}" in line
    assert "nothing was kept in the cache: remove it, or give --from a complete copy" in line
    assert folder_contents(download_env) == [ARCHIVE_NAME]
    assert sha256(download_env / ARCHIVE_NAME) == sha256(dataset_archive)


def test_fetch_from_a_missing_file_is_named_in_one_line(
    tmp_path: Path, download_env: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    missing = tmp_path / "no-such-archive.zip"

    line = invoke_cli("data", "fetch", "--from", missing).error_line()

    assert f"{missing} (from --from) does not exist" in line


# --- data info and data verify only look ----------------------------------------------------


@pytest.fixture(scope="module")
def served_archive(http_server: FileServer, dataset_archive: Path) -> str:
    """A download that would succeed: only looking must not take it."""
    return http_server.serve("only-looking.zip", dataset_archive)


@pytest.mark.parametrize("command", ["info", "verify"])
def test_info_and_verify_without_data_say_where_they_looked_and_download_nothing(
    command: str, served_archive: str, download_env: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    line = invoke_cli(
        "data", command, "-q", env={"SIGNDIGITS_DATA_URL": served_archive}
    ).error_line()

    assert line == (
        "signdigits: error: no dataset found: --data not given, SIGNDIGITS_DATA not set, and "
        f"no archive in the cache folder {download_env} (from SIGNDIGITS_CACHE); run "
        "`signdigits data fetch` to download it, or `signdigits data fetch --from ARCHIVE` "
        "to import a copy you have"
    )
    assert folder_contents(download_env) == []


def test_fetch_from_a_huge_archive_refuses_it_unread(
    dataset_archive: Path, tmp_path: Path, download_env: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    """300 MB (sparse: it takes no disk) before a real zip, which zipfile still reads."""
    huge = tmp_path / "huge.zip"
    with huge.open("wb") as file:
        file.truncate(300 * 1024 * 1024)
        file.seek(0, 2)
        file.write(dataset_archive.read_bytes())

    line = invoke_cli("data", "fetch", "--from", huge).error_line()

    assert f"{huge} (from --from) is more than 268,435,456 bytes" in line
    assert "this is not the dataset; nothing was kept in the cache" in line
    assert folder_contents(download_env) == []
