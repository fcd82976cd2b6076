"""A read-only cache folder: the data is decoded without caching, or one clear line.

Tests often run as root, and root writes into a folder of mode 0o555 all the same
(CAP_DAC_OVERRIDE), so chmod alone would test nothing there. As root, each command
runs in a process that has dropped the capabilities that bypass file permissions
(CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set before
starting Python again, so it is root without them: a root-owned 0o555 folder is
read-only to it, as to anyone. Before running the command, that process checks that
it really cannot write into the cache folder; if it can, the test fails.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CliRun

LAUNCHER = r"""
import ctypes, os, sys

if os.geteuid() == 0:
    # Take the capabilities that bypass file permissions out of the bounding set: the
    # Python started below runs as root without them (root's inheritable set is empty).
    libc = ctypes.CDLL(None, use_errno=True)
    PR_CAPBSET_DROP = 24
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            error = os.strerror(ctypes.get_errno())
            sys.exit(f"CANNOT-DROP-CAPABILITY {capability}: {error}")
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
"""

COMMAND = r"""
import os, sys
from pathlib import Path

probe = Path(os.environ["SIGNDIGITS_CACHE"]) / ".write-probe"
try:
    probe.mkdir()
except PermissionError:
    pass
else:
    probe.rmdir()
    sys.exit("CACHE-IS-WRITABLE: this process can write into the cache folder")

from signdigits.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def read_only_cache(tmp_path: Path) -> Iterator[Path]:
    """An empty cache folder of mode 0o555 (r-x for all: nothing can be created in it)."""
    cache = tmp_path / "read-only-cache"
    cache.mkdir()
    cache.chmod(0o555)
    yield cache
    cache.chmod(0o755)  # so that pytest can remove whatever a failed test left


def run_read_only(cache: Path, *args: str | Path, env: dict[str, str] | None = None) -> CliRun:
    """``signdigits ARGS`` with ``cache`` as the cache folder, in a process that cannot
    write into it (root included), without ``SIGNDIGITS_DATA`` and without network."""
    environment = {
        **{name: value for name, value in os.environ.items() if name != "SIGNDIGITS_DATA"},
        "SIGNDIGITS_CACHE": str(cache),
        **(env or {}),
    }
    words = tuple(str(arg) for arg in args)
    completed = subprocess.run(
        [sys.executable, "-c", LAUNCHER, COMMAND, *words],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    run = CliRun(words, completed.returncode, completed.stdout, completed.stderr)
    if "CANNOT-DROP-CAPABILITY" in run.stderr:  # as root, without CAP_SETPCAP
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"cannot make the cache folder read-only to root: {run.stderr}")
        pytest.skip(f"cannot make the cache folder read-only to root: {run.stderr}")
    assert "CACHE-IS-WRITABLE" not in run.stderr, "the test would not exercise a read-only cache"
    return run


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


@pytest.mark.parametrize(
    "args", [("data", "fetch", "--quiet"), ("data", "info", "--quiet")], ids=["fetch", "info"]
)
def test_a_download_into_a_read_only_cache_ends_in_one_line(
    args: tuple[str, ...], read_only_cache: Path, closed_port_url: str
) -> None:
    """Without the data, the download has nowhere to go: the error names the cache folder
    and what to do, before any connection is tried."""
    env = {"SIGNDIGITS_DATA_URL": closed_port_url}

    line = run_read_only(read_only_cache, *args, env=env).error_line()

    assert line.startswith("signdigits: error: ")
    assert str(read_only_cache) in line
    assert "SIGNDIGITS_CACHE" in line
    assert list(read_only_cache.iterdir()) == []
