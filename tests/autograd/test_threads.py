"""The engine's threads: the setting, the splits, and kernels that give the same numbers on
any number of threads.

Kernels that add nothing up across parts (convolution forward, ReLU, max-pool, the
normalisation itself) must give bit-identical results on 1, 2 and 3 threads; those that
add partial sums (batch-norm statistics, a convolution's weight gradient) the same
within float32's rounding, and exactly the same from run to run at one count.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import signdigits.functional as F
from signdigits.autograd import Tensor, threads
from signdigits.errors import InvalidArgumentError


@pytest.fixture(autouse=True)
def restore_thread_count():
    yield
    threads.set_num_threads(None)


def blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_set_num_threads(count: int) -> None:
    threads.set_num_threads(count)
    assert threads.get_num_threads() == count
    assert blas_threads() and set(blas_threads()) == {1}, "BLAS must run on one thread"


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, None.__class__])
def test_a_bad_thread_count_is_refused_in_one_line(bad) -> None:
    with pytest.raises(InvalidArgumentError, match="whole number"):
        threads.set_num_threads(bad)


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5", "2 3"])
def test_a_bad_environment_variable_is_refused_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(threads.ENVIRONMENT_VARIABLE, value)
    with pytest.raises(InvalidArgumentError, match=threads.ENVIRONMENT_VARIABLE):
        threads.set_num_threads(None)


def test_the_environment_variable_sets_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(threads.ENVIRONMENT_VARIABLE, " 3 ")
    threads.set_num_threads(None)
    assert threads.get_num_threads() == 3


@pytest.mark.parametrize("length", [0, 1, 2, 5, 32, 33, 1000])
@pytest.mark.parametrize("parts", [1, 2, 3, 7])
def test_split_covers_the_range_in_even_contiguous_parts(length: int, parts: int) -> None:
    slices = threads.split(length, parts)
    covered = [i for part in slices for i in range(length)[part]]
    assert covered == list(range(length))
    sizes = [part.stop - part.start for part in slices]
    assert all(size > 0 for size in sizes) or length == 0
    assert len(slices) == max(1, min(parts, length))
    assert max(sizes) - min(sizes) <= 1


def test_run_keeps_the_order_and_uses_other_threads() -> None:
    threads.set_num_threads(3)
    seen: list[str] = []

    def work(part: int) -> int:
        seen.append(threading.current_thread().name)
        return part * part

    assert threads.run(work, [1, 2, 3, 4, 5, 6]) == [1, 4, 9, 16, 25, 36]
    assert any(name.startswith("signdigits") for name in seen)


def test_an_error_in_a_part_is_raised_after_every_part_finished() -> None:
    threads.set_num_threads(2)
    finished: list[int] = []

    def work(part: int) -> None:
        if part == 1:
            raise ValueError("part 1 failed")
        threading.Event().wait(0.05)
        finished.append(part)

    with pytest.raises(ValueError, match="part 1 failed"):
        threads.run(work, [0, 1])
    assert finished == [0]


def test_a_large_product_on_its_own_uses_blas_threads_and_leaves_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads.set_num_threads(2)
    during: list[list[int]] = []
    real_matmul = np.matmul

    def watching(a, b, **kwargs):
        during.append(blas_threads())
        return real_matmul(a, b, **kwargs)

    rng = np.random.default_rng(0)
    a, b = rng.random((256, 512)), rng.random((512, 256))
    monkeypatch.setattr(threads.np, "matmul", watching)
    np.testing.assert_array_equal(threads.matmul(a, b), a @ b)
    threads.matmul(a[:4], b[:, :4])  # small: one thread

    assert during == [[2] * len(during[0]), [1] * len(during[1])]
    assert set(blas_threads()) == {1}


def run_kernels(count: int | None, dtype: type, seed: int = 0) -> dict[str, np.ndarray]:
    """A conv → batch norm → ReLU → max-pool block, forward and backward, on ``count``
    threads (``None``: as set); every output and gradient by name."""
    if count is not None:
        threads.set_num_threads(count)
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((9, 5, 17, 18)).astype(dtype), requires_grad=True)
    w = Tensor(rng.standard_normal((12, 5, 3, 3)).astype(dtype), requires_grad=True)
    b = Tensor(rng.standard_normal(12).astype(dtype), requires_grad=True)
    gamma = Tensor(rng.random(12).astype(dtype) + 0.5, requires_grad=True)
    beta = Tensor(rng.standard_normal(12).astype(dtype), requires_grad=True)
    conv = F.conv2d(x, w, b, padding=1)
    normed = F.batch_norm(conv, None, None, gamma, beta, training=True)
    activated = F.relu(normed)
    pooled = F.max_pool2d(activated, 2)
    g = rng.standard_normal(pooled.shape).astype(dtype)
    (pooled * Tensor(g)).sum().backward()
    named = {"conv": conv, "normed": normed, "relu": activated, "pool": pooled}
    arrays = {name: t.data.copy() for name, t in named.items()}
    for name, t in {"x": x, "w": w, "b": b, "gamma": gamma, "beta": beta}.items():
        arrays[f"grad {name}"] = t.grad.copy()
    return arrays


EXACT_ON_ANY_COUNT = {"conv"}
"""Outputs that add no partial sums across threads."""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("count", [2, 3])
def test_kernels_agree_across_thread_counts(dtype: type, count: int) -> None:
    one = run_kernels(1, dtype)
    many = run_kernels(count, dtype)
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    for name, expected in one.items():
        if name in EXACT_ON_ANY_COUNT:
            np.testing.assert_array_equal(many[name], expected, err_msg=name)
        else:
            np.testing.assert_allclose(
                many[name], expected, rtol=tolerance, atol=tolerance, err_msg=name
            )


@pytest.mark.parametrize("count", [1, 2, 3])
def test_kernels_repeat_exactly_at_one_count(count: int) -> None:
    first, second = run_kernels(count, np.float32), run_kernels(count, np.float32)
    for name, expected in first.items():
        np.testing.assert_array_equal(second[name], expected, err_msg=name)


def test_relu_max_pool_and_normalisation_are_exact_across_counts_given_the_same_input() -> None:
    """Fed the same input, the elementwise kernels give the same bits on any count."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((16, 8, 32, 32)).astype(np.float32)
    data[0, 0, 0, :4] = [np.nan, -0.0, 0.0, np.inf]
    results = []
    for count in (1, 2, 3):
        threads.set_num_threads(count)
        x = Tensor(data, requires_grad=True)
        y = F.max_pool2d(F.relu(x), 2)
        y.backward(np.ones(y.shape, np.float32))
        results.append((y.data.copy(), x.grad.copy()))
    for y, grad in results[1:]:
        np.testing.assert_array_equal(y, results[0][0])
        np.testing.assert_array_equal(grad, results[0][1])


def test_kernels_called_from_several_user_threads_at_once() -> None:
    """Two user threads training at once share the pool; each gets its own right answer."""
    threads.set_num_threads(2)
    expected = run_kernels(2, np.float32, seed=3)
    results: dict[int, dict[str, np.ndarray]] = {}

    def worker(index: int) -> None:
        results[index] = run_kernels(None, np.float32, seed=3)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert len(results) == 3
    for result in results.values():
        for name, value in expected.items():
            np.testing.assert_array_equal(result[name], value, err_msg=name)


SHAPE_PAIRS = [
    ((64, 1024), (64, 1024)),
    ((64, 1024), (1024,)),
    ((1, 1024), (64, 1024)),
    ((64, 1), (1, 1024)),
    ((), (300, 300)),
    ((300, 300), ()),
    ((0, 70000), (0, 70000)),
    ((1, 100000), (1, 100000)),
    ((4, 3, 100, 100), (3, 1, 1)),
]
DTYPE_PAIRS = [
    (np.float32, np.float32),
    (np.float32, np.float64),
    (np.int64, np.float32),
    (np.bool_, np.bool_),
    (np.complex64, np.float32),
]


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("ufunc", [np.add, np.subtract, np.multiply])
@pytest.mark.parametrize("shapes", SHAPE_PAIRS, ids=str)
@pytest.mark.parametrize("dtypes", DTYPE_PAIRS, ids=str)
def test_elementwise_is_numpys_ufunc_bit_for_bit(count, ufunc, shapes, dtypes) -> None:
    if ufunc is np.subtract and dtypes == (np.bool_, np.bool_):
        pytest.skip("NumPy has no boolean subtract")
    threads.set_num_threads(count)
    rng = np.random.default_rng(0)
    a, b = (
        (rng.standard_normal(shape) * 10).astype(dtype)
        for shape, dtype in zip(shapes, dtypes, strict=True)
    )
    expected = ufunc(a, b)
    result = threads.elementwise(ufunc, a, b)
    assert result.dtype == expected.dtype and result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


def test_elementwise_on_views_and_transposes() -> None:
    threads.set_num_threads(2)
    rng = np.random.default_rng(1)
    base = rng.standard_normal((512, 512)).astype(np.float32)
    for a, b in [(base.T, base), (base[::2], base[1::2]), (base[:, ::3], base[:, 1::3])]:
        np.testing.assert_array_equal(threads.elementwise(np.multiply, a, b), a * b)


def spy_on_parts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of parts of each ``threads.run`` call from now on."""
    counts: list[int] = []
    real_run = threads.run

    def run(function, parts):
        counts.append(len(parts))
        return real_run(function, parts)

    monkeypatch.setattr(threads, "run", run)
    return counts


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("shape", [(32, 32, 64, 64), (4, 100_000), (3, 1, 70_000)], ids=str)
def test_a_large_elementwise_op_is_cut_into_a_part_per_thread(
    monkeypatch: pytest.MonkeyPatch, count: int, shape: tuple[int, ...]
) -> None:
    threads.set_num_threads(count)
    parts = spy_on_parts(monkeypatch)
    a = np.ones(shape, np.float32)
    threads.elementwise(np.multiply, a, a)
    assert parts == [min(count, shape[0])]


def test_a_small_elementwise_op_is_one_part(monkeypatch: pytest.MonkeyPatch) -> None:
    threads.set_num_threads(2)
    parts = spy_on_parts(monkeypatch)
    a = np.ones((64, 1000), np.float32)
    threads.elementwise(np.add, a, a)
    assert parts == []


TOTAL_SHAPES = [(32, 32, 64, 64), (65_536,), (70_001,), (3, 5, 7, 11, 13, 17), (1, 1, 300, 301)]


@pytest.mark.parametrize("count", [2, 3, 4, 8])
@pytest.mark.parametrize("shape", TOTAL_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keepdims", [False, True])
def test_total_is_numpys_sum_bit_for_bit_on_several_threads(
    monkeypatch: pytest.MonkeyPatch, count: int, shape, dtype, keepdims: bool
) -> None:
    threads.set_num_threads(count)
    parts = spy_on_parts(monkeypatch)
    rng = np.random.default_rng(count)
    x = (rng.standard_normal(shape) * 100 + 3).astype(dtype)
    expected = x.sum(keepdims=keepdims)
    result = threads.total(x, keepdims)
    assert parts and parts[0] >= count  # it did run in parts
    assert type(result) is type(expected) and result.dtype == expected.dtype
    assert np.shape(result) == np.shape(expected)
    np.testing.assert_array_equal(result, expected)
    tensor = Tensor(x, requires_grad=True)
    np.testing.assert_array_equal(tensor.sum().data, x.sum())
    np.testing.assert_array_equal(tensor.mean().data, x.mean())


@pytest.mark.parametrize(
    "x",
    [
        np.arange(200_000, dtype=np.float32).reshape(400, 500).T,  # not contiguous
        np.arange(200_000, dtype=np.int64),  # integers: NumPy's own sum
        np.full(200_000, 0.125, np.float16),
        np.ones(1000, np.float32),  # small
        np.zeros((0, 100_000), np.float32),
    ],
    ids=["transposed", "int64", "float16", "small", "empty"],
)
def test_total_leaves_other_arrays_to_numpy(monkeypatch: pytest.MonkeyPatch, x) -> None:
    threads.set_num_threads(2)
    parts = spy_on_parts(monkeypatch)
    result = threads.total(x)
    assert parts == []
    assert result.dtype == x.sum().dtype
    np.testing.assert_array_equal(result, x.sum())
