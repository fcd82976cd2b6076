"""The threads the engine's kernels run on: one setting, one pool.

NumPy runs each ufunc, copy and matrix product on one core, but it releases the GIL while
it works, so independent parts of an array can be worked on from several Python threads at
once. The kernels of convolution, pooling, batch norm and ReLU, large additions,
subtractions and multiplications (``elementwise``), sums over all axes (``total``) and the
large matrix products cut their work into parts (groups of samples, blocks, or slices) and
run them on ``get_num_threads()`` threads: the calling thread and the workers of this
module's pool.

The count is one setting: ``set_num_threads(n)`` (``--threads`` on the commands that
train), else the environment variable ``SIGNDIGITS_NUM_THREADS``, else the CPUs this
process may use.

BLAS (OpenBLAS, under NumPy's matrix products) has threads of its own, and they keep
spinning for about 0.1 s after each product: any other thread that wants a core in that
time waits, and a 2-way parallel pass right after a 2-thread product measured no faster
than a serial one. So once the engine takes the work in hand, BLAS runs on one thread
(set for the process through threadpoolctl): products inside the engine's parallel parts
(a convolution's, one per group of images) then never wake its threads. A large product
on its own (``matmul``, as in a linear layer of 4096 → 256) is better split by BLAS than
by rows here (measured 20–50 % faster), so it gets the engine's thread count for BLAS
for the time of that call; small ones stay on one thread, so that nothing spins after
them. NumPy code of your own in the same process multiplies on one thread
(``threadpoolctl`` can raise that again around your code).

Every split is contiguous and depends only on the thread count, and partial sums are added
in a fixed order, so results are the same from run to run with the same count (and may
differ in the last bits between counts).
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from signdigits.errors import InvalidArgumentError

Part = TypeVar("Part")

ENVIRONMENT_VARIABLE = "SIGNDIGITS_NUM_THREADS"

MIN_PARALLEL_VALUES = 1 << 16
"""Arrays smaller than this are worked on in one piece: a thread hand-off costs ~20 µs."""

MIN_THREADED_FLOPS = 1 << 24
"""Products of fewer floating-point operations than this (~0.3 ms on one core) run on one
BLAS thread: waking BLAS's threads costs more than it saves, and they would spin after."""

_lock = threading.Lock()
_count: int | None = None
_pool: ThreadPoolExecutor | None = None
_blas_libraries: list[Any] = []  # threadpoolctl's controllers of the BLAS libraries loaded
_in_parallel = threading.local()  # .active: this thread runs one part of a parallel run


def default_num_threads() -> int:
    """``SIGNDIGITS_NUM_THREADS`` when set, else the CPUs this process may use."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if configured:
        return _checked(configured, ENVIRONMENT_VARIABLE)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _checked(value: object, where: str) -> int:
    """``value`` as a thread count: a whole number ≥ 1 (the environment variable's text
    may have spaces around it)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{where} must be a whole number of threads ≥ 1, got {value!r}")
    return value


def set_num_threads(count: int | None) -> None:
    """Use ``count`` threads for the engine's kernels (``None``: the default again)."""
    global _count, _pool
    if isinstance(count, str):
        raise InvalidArgumentError(f"the thread count must be a whole number, got {count!r}")
    resolved = default_num_threads() if count is None else _checked(count, "the thread count")
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _count = resolved
        _pool = ThreadPoolExecutor(resolved - 1, "signdigits") if resolved > 1 else None
        _single_threaded_blas()


def get_num_threads() -> int:
    """The number of threads the engine's kernels use."""
    if _count is None:
        set_num_threads(None)
    assert _count is not None
    return _count


def _single_threaded_blas() -> None:
    global _blas_libraries
    if not _blas_libraries:
        from threadpoolctl import ThreadpoolController

        _blas_libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    for library in _blas_libraries:
        library.set_num_threads(1)


def split(length: int, parts: int | None = None) -> list[slice]:
    """``range(length)`` cut into at most ``parts`` (default: the thread count) contiguous
    slices, as even as can be, none empty."""
    parts = max(1, min(parts or get_num_threads(), length))
    if parts == 1:  # the common case for small arrays, without linspace's ~10 µs
        return [slice(0, length)]
    bounds = np.linspace(0, length, parts + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def run(function: Callable[[Part], Any], parts: Sequence[Part]) -> list[Any]:
    """``[function(part) for part in parts]``, the parts run at once on the pool's threads
    and the calling one (which takes the first); an exception in any part is raised here,
    after every part has finished."""
    if len(parts) <= 1 or _pool is None:
        return [function(part) for part in parts]
    futures = [_pool.submit(_as_part, function, part) for part in parts[1:]]
    try:
        first = _as_part(function, parts[0])
    finally:
        rest = [future.exception() for future in futures]  # wait for all of them
    for error in rest:
        if error is not None:
            raise error
    return [first, *(future.result() for future in futures)]


def _as_part(function: Callable[[Part], Any], part: Part) -> Any:
    """``function(part)``, marked as one part of a parallel run (for ``matmul``)."""
    _in_parallel.active = True
    try:
        return function(part)
    finally:
        _in_parallel.active = False


def for_slices(function: Callable[[slice], Any], length: int, values_per_item: int = 1) -> list:
    """``run`` ``function`` over ``split(length)``, or over one slice when the work is small
    (fewer than ``MIN_PARALLEL_VALUES`` values in all; ``values_per_item`` is per index)."""
    if length * values_per_item < MIN_PARALLEL_VALUES:
        return [function(slice(0, length))]
    return run(function, split(length, get_num_threads()))


def elementwise(ufunc: np.ufunc, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``ufunc(a, b)``, broadcasting as NumPy does; a large result is computed in parts along
    its first axis on the engine's threads (each part a plain ufunc call on views)."""
    if a.size * b.size < MIN_PARALLEL_VALUES:  # the result is smaller (cheap to tell)
        return ufunc(a, b)
    shape = np.broadcast_shapes(a.shape, b.shape)
    size = math.prod(shape)
    if size < MIN_PARALLEL_VALUES or not shape or shape[0] < 2 or get_num_threads() == 1:
        return ufunc(a, b)
    try:
        dtype = ufunc.resolve_dtypes((a.dtype, b.dtype, None))[-1]
    except (TypeError, ValueError):  # dtypes the ufunc resolves only when called (objects…)
        return ufunc(a, b)
    out = np.empty(shape, dtype)
    a_full, b_full = np.broadcast_to(a, shape), np.broadcast_to(b, shape)
    for_slices(
        lambda part: ufunc(a_full[part], b_full[part], out=out[part]), shape[0], size // shape[0]
    )
    return out


def total(x: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """``x.sum(keepdims=keepdims)``, the sum of all of ``x``'s values, bit for bit; a large
    contiguous float32 or float64 array is summed in parts on the engine's threads.

    NumPy sums a contiguous array pairwise: Σ a[0:n] = Σ a[0:h] + Σ a[h:n], with h = n/2
    rounded down to a multiple of 8, down to blocks of 128 values. The parts here are the
    subtrees of that same tree (its top levels cut until there are enough for the
    threads), and their sums are added back up the tree, so every addition is the one
    NumPy makes, in its order (``tests/autograd/test_threads.py`` checks this against
    ``np.sum``)."""
    count = get_num_threads()
    if (
        count == 1
        or x.size < MIN_PARALLEL_VALUES
        or x.dtype not in (np.float32, np.float64)
        or not x.flags.c_contiguous
    ):
        return x.sum(keepdims=keepdims)
    flat = x.reshape(-1)
    levels = math.ceil(math.log2(count))  # 2**levels ≥ count parts

    def middle(start: int, stop: int) -> int:
        half = (stop - start) // 2
        return start + half - half % 8

    def leaves(start: int, stop: int, level: int) -> list[slice]:
        if level == 0 or stop - start <= 128:
            return [slice(start, stop)]
        cut = middle(start, stop)
        return leaves(start, cut, level - 1) + leaves(cut, stop, level - 1)

    sums = iter(run(lambda part: flat[part].sum(), leaves(0, flat.size, levels)))

    def added(start: int, stop: int, level: int) -> np.ndarray:
        if level == 0 or stop - start <= 128:
            return next(sums)
        cut = middle(start, stop)
        return added(start, cut, level - 1) + added(cut, stop, level - 1)

    result = added(0, flat.size, levels)
    return result.reshape((1,) * x.ndim) if keepdims else result


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``: a large product on its own on BLAS's threads, one thread otherwise."""
    flops = 2 * a.shape[0] * a.shape[-1] * (b.shape[-1] if b.ndim > 1 else 1)
    count = get_num_threads()
    if count == 1 or flops < MIN_THREADED_FLOPS or getattr(_in_parallel, "active", False):
        return np.matmul(a, b)
    for library in _blas_libraries:
        library.set_num_threads(count)
    try:
        return np.matmul(a, b)
    finally:
        for library in _blas_libraries:
            library.set_num_threads(1)
