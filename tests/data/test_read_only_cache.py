"""A read-only cache folder: the data is decoded without caching, or one clear line.

The commands run in a process that file permissions bind even as root (see
``without_privileges``).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from .without_privileges import folder_of_mode
from .without_privileges import run_without_privileges as run_read_only


@pytest.fixture
def read_only_cache(tmp_path: Path) -> Iterator[Path]:
    """An empty cache folder of mode 0o555 (r-x for all: nothing can be created in it)."""
    with folder_of_mode(tmp_path / "read-only-cache", 0o555) as cache:
        yield cache


def test_a_read_only_cache_still_loads_the_data_without_caching(
    read_only_cache: Path, dataset_archive: Path
) -> None:
    """The cache only saves time: the photos are decoded (once, here) and not kept."""
    run = run_read_only(read_only_cache, "data", "info", "--data", dataset_archive, "--quiet")

    assert run.returncode == 0, run.stderr
    assert "205 206 206 206 207 207 207 206 208 204" in run.stdout
    assert run.stderr == ""
    assert list(read_only_cache.iterdir()) == []
    assert stat.S_IMODE(read_only_cache.stat().st_mode) == 0o555


def test_a_download_into_a_read_only_cache_ends_in_one_line(
    read_only_cache: Path, closed_port_url: str
) -> None:
    """Without the data, the download has nowhere to go: the error names the cache folder
    and what to do, before any connection is tried."""
    env = {"SIGNDIGITS_DATA_URL": closed_port_url}

    line = run_read_only(read_only_cache, "data", "fetch", "--quiet", env=env).error_line()

    assert line.startswith("signdigits: error: ")
    assert str(read_only_cache) in line
    assert "SIGNDIGITS_CACHE" in line
    assert list(read_only_cache.iterdir()) == []
