"""Run ``signdigits`` in a process that file permissions really bind, root included.

Tests often run as root, and root writes into a folder of mode 0o555, or looks into one
of mode 0o000, all the same (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so chmod alone
would test nothing there. As root, each command runs in a process that has dropped the
capabilities that bypass file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH,
CAP_FOWNER) from its bounding set before starting Python again, so it is root without
them: a root-owned 0o555 folder is read-only to it, as to anyone. Before running the
command, that process checks that it really cannot write into the cache folder; if it
can, the test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


def run_without_privileges(
    cache: Path, *args: str | Path, env: dict[str, str] | None = None
) -> CliRun:
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
            pytest.fail(f"cannot take file permissions away from root: {run.stderr}")
        pytest.skip(f"cannot take file permissions away from root: {run.stderr}")
    assert "CACHE-IS-WRITABLE" not in run.stderr, "the test would not exercise its cache folder"
    return run


@contextmanager
def folder_of_mode(path: Path, mode: int) -> Iterator[Path]:
    """A new, empty folder of ``mode`` (such as 0o555, read-only, or 0o000, unsearchable),
    given back mode 0o755 afterwards so that pytest can remove whatever a test left."""
    path.mkdir()
    path.chmod(mode)
    try:
        yield path
    finally:
        path.chmod(0o755)
