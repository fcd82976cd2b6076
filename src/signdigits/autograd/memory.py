"""Fresh memory is slow: freed arrays are kept for the next ones of their size.

A training step makes and frees the same large arrays every time (activations, their
gradients, the columns of a convolution). glibc's ``malloc`` hands each block above a
threshold (which adapts, up to 32 MB) straight back to the system when it is freed, so
the next step's array of that size is fresh memory again, and touching fresh memory costs
a page fault per 4 KiB: about 2 µs each on the 2-core machines measured, 8 ms for one
16 MB activation before any work is done. The CNN step of ``benchmarks/vs_torch.py`` made
about 16,000 page faults per step this way, a fifth of its time.

``keep_freed_memory`` raises glibc's two thresholds (``mallopt``), once, when the engine
is imported: blocks up to ``MMAP_THRESHOLD`` come from the heap and stay there when freed,
and the heap gives memory back to the system only when more than ``TRIM_THRESHOLD`` lies
free at its top. The process's peak memory is unchanged; it simply does not shrink between
steps. Elsewhere than glibc (macOS, Windows, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import platform

MMAP_THRESHOLD = 256 * 1024 * 1024
"""Blocks up to this size come from the heap, and are reused once freed."""

TRIM_THRESHOLD = 512 * 1024 * 1024
"""Free memory at the top of the heap beyond this goes back to the system."""

_M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Raise glibc's thresholds so that freed blocks are reused; False where not glibc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
