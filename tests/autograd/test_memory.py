"""Freed arrays are kept for the next ones: a training step's arrays cost no fresh pages."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

import signdigits.autograd  # noqa: F401  (importing the engine sets glibc's thresholds)
from signdigits.autograd.memory import keep_freed_memory

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not glibc, reason="the thresholds are glibc's")
@pytest.mark.parametrize("mib", [16, 48])
def test_a_freed_array_is_reused_without_page_faults(mib: int) -> None:
    """Without the thresholds, five such arrays made about 500 (16 MiB) and 2,700 (48 MiB)
    page faults here; with them, none."""
    assert keep_freed_memory()
    size = mib * 1024 * 1024 // 4  # float32
    np.ones(size, np.float32)  # allocated, touched and freed once
    before = page_faults()
    for _ in range(5):
        np.ones(size, np.float32)
    faults = page_faults() - before

    assert faults < 50, f"{faults} page faults for five {mib} MiB arrays: freed memory not kept"


@pytest.mark.skipif(glibc, reason="elsewhere than glibc nothing is changed")
def test_nothing_is_changed_elsewhere() -> None:
    assert keep_freed_memory() is False
