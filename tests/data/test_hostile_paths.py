"""Paths the file system refuses, given as --data, --from, SIGNDIGITS_DATA or
SIGNDIGITS_CACHE: ``~nosuchuser/...``, a name too long, a cache folder that cannot be
searched. Each ends in one line that names the path and what to do, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .without_privileges import folder_of_mode, run_without_privileges

if TYPE_CHECKING:
    from tests.conftest import CliRun

NO_USER = "~signdigits-nosuchuser"
"""A ``~user`` prefix naming no user: ``Path.expanduser`` raises ``RuntimeError`` for it."""

TOO_LONG = "n" * 300
"""A file name longer than any file system takes (255 bytes at most): ENAMETOOLONG."""

NO_DATA = {"SIGNDIGITS_DATA": None}


@pytest.mark.parametrize(
    ("args", "env", "origin"),
    [
        (("data", "info", "--data", f"{NO_USER}/dataset.zip"), NO_DATA, "--data"),
        (("data", "verify", "--data", f"{NO_USER}/dataset.zip"), NO_DATA, "--data"),
        (("data", "info"), {"SIGNDIGITS_DATA": f"{NO_USER}/dataset.zip"}, "SIGNDIGITS_DATA"),
        (("data", "fetch", "--from", f"{NO_USER}/dataset.zip"), NO_DATA, "--from"),
        (("data", "info"), {**NO_DATA, "SIGNDIGITS_CACHE": f"{NO_USER}/cache"}, "SIGNDIGITS_CACHE"),
        (
            ("data", "fetch"),
            {**NO_DATA, "SIGNDIGITS_CACHE": f"{NO_USER}/cache"},
            "SIGNDIGITS_CACHE",
        ),
    ],
    ids=["info --data", "verify --data", "SIGNDIGITS_DATA", "--from", "info cache", "fetch cache"],
)
def test_a_home_folder_of_no_user_is_named_in_one_line(
    args: tuple[str, ...],
    env: dict[str, str | None],
    origin: str,
    isolated_cache: Path,
    invoke_cli: Callable[..., CliRun],
) -> None:
    line = invoke_cli(*args, env=env).error_line()

    assert f"{NO_USER}/" in line and f"(from {origin})" in line
    assert "no user named signdigits-nosuchuser" in line and "full path" in line


@pytest.mark.parametrize("command", ["info", "verify"])
def test_a_data_path_too_long_is_named_in_one_line(
    command: str, tmp_path: Path, isolated_cache: Path, invoke_cli: Callable[..., CliRun]
) -> None:
    path = tmp_path / TOO_LONG / "dataset.zip"

    line = invoke_cli("data", command, "--data", path).error_line()

    assert f"cannot use {path} (from --data): File name too long" in line
    assert "shorter path" in line


@pytest.mark.parametrize("command", ["info", "fetch"])
def test_a_cache_path_too_long_is_named_in_one_line(
    command: str, tmp_path: Path, invoke_cli: Callable[..., CliRun], closed_port_url: str
) -> None:
    cache = tmp_path / TOO_LONG
    env = {**NO_DATA, "SIGNDIGITS_CACHE": str(cache), "SIGNDIGITS_DATA_URL": closed_port_url}

    line = invoke_cli("data", command, "-q", env=env).error_line()

    assert f"the cache folder {cache} (File name too long)" in line
    assert "set SIGNDIGITS_CACHE to a shorter path" in line


@pytest.fixture
def unsearchable_cache(tmp_path: Path) -> Iterator[Path]:
    """A cache folder of mode 0o000: nothing in it can be looked up, nor listed."""
    with folder_of_mode(tmp_path / "unsearchable-cache", 0o000) as cache:
        yield cache


@pytest.mark.parametrize("command", ["info", "verify", "fetch"])
def test_a_cache_folder_that_cannot_be_searched_is_named_in_one_line(
    command: str, unsearchable_cache: Path, closed_port_url: str
) -> None:
    """Without --data, the archive is looked for in the cache: a folder of mode 0o000
    made ``is_file()`` raise PermissionError, a traceback."""
    env = {"SIGNDIGITS_DATA_URL": closed_port_url}

    run = run_without_privileges(unsearchable_cache, "data", command, "-q", env=env)

    line = run.error_line()
    assert f"cannot look into the cache folder {unsearchable_cache} (Permission denied)" in line
    assert f"chmod u+rwx {unsearchable_cache}" in line and "SIGNDIGITS_CACHE" in line


@pytest.mark.parametrize("locked", ["Dataset/0/IMG_1.JPG", "Dataset/1"])
def test_an_image_or_folder_that_cannot_be_read_is_named_in_one_line(tmp_path, locked):
    """Mode 000 on one photo, or on one digit's folder, read by a process that file
    permissions bind (root included): one line naming it, no traceback."""
    root = tmp_path / "dataset"
    for name in ("Dataset/0/IMG_1.JPG", "Dataset/1/IMG_2.JPG"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"not really a photo")
    (root / locked).chmod(0o000)
    try:
        with folder_of_mode(tmp_path / "cache", 0o555) as cache:
            line = run_without_privileges(cache, "data", "verify", "--data", root).error_line()
    finally:
        (root / locked).chmod(0o755)
    assert f"cannot read {root / locked} (Permission denied)" in line
