"""The Tensor, backward, no_grad, the recorded graph and its memory behaviour."""

from __future__ import annotations

import gc
import sys
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

from signdigits import InvalidArgumentError, SignDigitsError, Tensor, no_grad
from signdigits.autograd import Function, apply, is_grad_enabled
from signdigits.errors import ShapeError


def leaf(values, dtype=np.float64) -> Tensor:
    return Tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# -- construction -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "dtype", "expected"),
    [
        (1.5, None, np.float32),
        ([[1.0, 2.0]], None, np.float32),
        (np.zeros(3), None, np.float64),
        (np.zeros(3, dtype=np.float32), None, np.float32),
        ([1, 2], None, np.float32),
        (3, None, np.float32),
        (np.arange(3), None, np.int64),
        ([1, 2], np.float64, np.float64),
        (np.array([True, False]), None, np.bool_),
    ],
)
def test_dtype_rules(data, dtype, expected):
    assert Tensor(data, dtype=dtype).dtype == expected


def test_attributes():
    t = Tensor(np.arange(6.0).reshape(2, 3), name="x")
    assert (t.shape, t.ndim, t.size, len(t)) == ((2, 3), 2, 6, 2)
    assert t.grad is None and not t.requires_grad and t.creator is None and t.is_leaf
    assert t.numpy() is t.data
    assert Tensor([[2.5]]).item() == 2.5
    assert "name='x'" in repr(t) and "float64" in repr(t)


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(InvalidArgumentError, match="int64"):
        Tensor(np.array([1, 2, 3]), requires_grad=True)
    with pytest.raises(InvalidArgumentError, match="floating"):
        Tensor(np.arange(3)).requires_grad_()


def test_unsupported_dtype_and_bad_item_are_clear_errors():
    with pytest.raises(InvalidArgumentError, match="complex"):
        Tensor(np.ones(2, dtype=complex))
    with pytest.raises(InvalidArgumentError, match=r"\(2,\)"):
        Tensor([1.0, 2.0]).item()
    with pytest.raises(TypeError):
        len(Tensor(1.0))


def test_float32_stays_float32_with_python_scalars_and_arrays():
    x = leaf([1.0, 2.0], np.float32)
    y = (2.0 * x + 1 - np.ones(2) / x) ** 2
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_mixed_precision_promotes_and_casts_gradients_back():
    a, b = leaf([1.0, 2.0], np.float32), leaf([3.0, 4.0], np.float64)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_allclose(a.grad, [3.0, 4.0])


def test_ndarray_on_the_left_gives_a_tensor():
    x = leaf([1.0, 2.0])
    y = np.array([10.0, 20.0]) - x
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, -1.0])


def test_comparisons_give_boolean_constants():
    x = leaf([-1.0, 0.0, 2.0])
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad
    np.testing.assert_array_equal((x <= 0).data, [True, True, False])


# -- backward ---------------------------------------------------------------------------------
def test_reused_value_accumulates_gradient():
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x  # x is used three times
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 1)


def test_grad_accumulates_over_backward_calls():
    x = leaf([1.0, 2.0])
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_only_leaves_and_retained_results_get_grad():
    x = leaf([1.0, 2.0])
    hidden, other = x * 3, x * 5
    hidden.retain_grad()
    (hidden * hidden + other).sum().backward()
    np.testing.assert_array_equal(hidden.grad, 2 * hidden.data)
    assert other.grad is None


def test_leaf_grad_is_a_private_writable_copy():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_backward_with_explicit_gradient():
    x = leaf([1.0, 2.0])
    (x * x).backward(np.array([10.0, 100.0]))
    np.testing.assert_array_equal(x.grad, [20.0, 400.0])
    with pytest.raises(ShapeError, match=r"\(3,\).*\(2,\)"):
        (x * x).backward(np.ones(3))


def test_backward_on_non_scalar_without_grad_names_the_shape():
    y = leaf(np.ones((2, 3))) * 2
    with pytest.raises(InvalidArgumentError, match=r"shape \(2, 3\)"):
        y.backward()


def test_backward_on_tensor_without_grad_is_an_error():
    with pytest.raises(InvalidArgumentError, match="does not require grad"):
        (Tensor([1.0]) * 2).backward()


@pytest.mark.parametrize(
    ("op", "pattern"),
    [
        (lambda a, b: a + b, r"add.*\(2, 3\).*\(4,\)"),
        (lambda a, b: a * b, r"mul.*\(2, 3\).*\(4,\)"),
        (lambda a, b: a / b, r"div.*\(2, 3\).*\(4,\)"),
        (lambda a, b: a @ b, r"matmul.*\(2, 3\).*\(4,\)"),
    ],
)
def test_shapes_that_do_not_fit_name_op_and_shapes(op, pattern):
    with pytest.raises(ShapeError, match=pattern) as info:
        op(leaf(np.ones((2, 3))), leaf(np.ones(4)))
    assert isinstance(info.value, SignDigitsError) and isinstance(info.value, ValueError)


def test_deep_chain_of_ten_thousand_ops():
    x = leaf([0.5])
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [1.0001**10_000], rtol=1e-9)


def test_second_backward_needs_retain_graph():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)
    with pytest.raises(InvalidArgumentError, match="retain_graph=True"):
        y.backward()
    np.testing.assert_allclose(x.grad, 2 * first)  # the refused backward changed nothing


# -- no_grad ----------------------------------------------------------------------------------
def test_no_grad_records_nothing_and_restores():
    x = leaf([1.0])
    with no_grad():
        assert not is_grad_enabled()
        y = x * 2 + 1
        with no_grad():
            pass
        assert not is_grad_enabled()
    assert is_grad_enabled()
    assert not y.requires_grad and y.creator is None
    assert (x * 2).requires_grad


def test_no_grad_as_decorator_and_per_thread():
    seen = []

    @no_grad()
    def evaluate():
        worker = threading.Thread(target=lambda: seen.append(is_grad_enabled()))
        worker.start()
        worker.join()
        return leaf([1.0]) * 3

    assert not evaluate().requires_grad
    assert seen == [True]


def test_detach_leaves_the_graph():
    x = leaf([1.0])
    d = (x * 2).detach()
    assert d.creator is None and not d.requires_grad


# -- the graph, for drawing -------------------------------------------------------------------
def test_graph_is_inspectable_and_kept_after_backward():
    x, w = leaf(np.ones((2, 3))), leaf(np.ones((3, 4)))
    h = x @ w
    loss = h.tanh().sum()
    assert loss.creator.name == "sum"
    (t,) = loss.creator.inputs
    assert t.creator.name == "tanh" and t.creator.inputs == (h,)
    assert h.creator.name == "matmul" and h.creator.inputs == (x, w)
    assert x.creator is None
    loss.backward()
    assert loss.creator.name == "sum" and h.creator.inputs == (x, w)  # still drawable
    assert h.creator.freed and h.creator.saved is None  # saved arrays released


# -- memory -----------------------------------------------------------------------------------
def _train_step(x, target, w1, w2):
    loss = (((x @ w1).relu() @ w2 - target) ** 2).mean()
    loss.backward()
    with no_grad():
        for p in (w1, w2):
            p.data -= 0.01 * p.grad
            p.grad = None
    return loss.item()


def test_graph_is_freed_without_the_cycle_collector():
    x = leaf(np.ones((4, 3)))
    gc.disable()
    try:
        hidden = (x * 2).tanh()
        out = (hidden * hidden).sum()
        probe = weakref.ref(hidden)
        del hidden
        out.backward()
        assert probe() is not None  # still reachable from out
        del out
        assert probe() is None
    finally:
        gc.enable()


def test_memory_stays_flat_over_a_training_loop():
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((16, 8)), rng.standard_normal((16, 1))
    w1, w2 = leaf(rng.standard_normal((8, 16))), leaf(rng.standard_normal((16, 1)))
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep anything the collector would free, to inspect it
    tracemalloc.start()
    try:
        for _ in range(20):
            _train_step(x, target, w1, w2)
        # A full collection also empties CPython's free lists (recycled tuples and the like),
        # whose size depends on the peak number of small objects, not on a leak. Any cycle
        # it collects is kept in gc.garbage (DEBUG_SAVEALL) and inspected below.
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        losses = [_train_step(x, target, w1, w2) for _ in range(200)]
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
        in_cycles = [o for o in gc.garbage if isinstance(o, Tensor | Function)]
    finally:
        tracemalloc.stop()
        gc.set_debug(0)
        gc.garbage.clear()
    assert losses[-1] < losses[0]
    assert after - warm < 50_000, f"memory grew by {after - warm} bytes over 200 steps"
    assert in_cycles == []


# -- as PyTorch users expect ------------------------------------------------------------------
def test_truth_value_of_one_element_and_ambiguity_of_more():
    assert not bool(Tensor([0.0]))
    assert bool(Tensor(3.0))
    loss = Tensor(7.0)
    assert loss > 5  # if loss > 5: works on a 0-d tensor
    for ambiguous in (Tensor([1.0, 2.0]), Tensor(np.zeros((0,)))):
        with pytest.raises(InvalidArgumentError, match="ambiguous"):
            bool(ambiguous)
    assert (Tensor([0.0, 1.0]) > 0).any() and not (Tensor([0.0, 1.0]) > 0).all()
    assert float(Tensor([2.5])) == 2.5 and int(Tensor(3.0)) == 3


def test_iteration_as_in_torch():
    with pytest.raises(TypeError, match="0-d"):
        list(Tensor(1.0))
    x = leaf([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    rows = list(x)
    assert len(rows) == 3 and rows[1].shape == (2,)
    sum(row.sum() for row in rows).backward()
    np.testing.assert_array_equal(x.grad, np.ones((3, 2)))


def test_numpy_array_of_a_tensor_is_a_snapshot():
    """np.array(t) copies, as NumPy 2's copy contract says: a snapshot of the best weights
    must not change when the parameters are updated in place."""
    w = leaf([1.0, 2.0])
    snapshot, converted = np.array(w), np.array(w, dtype=np.float32)
    w.data -= 1.0
    np.testing.assert_array_equal(snapshot, [1.0, 2.0])
    np.testing.assert_array_equal(converted, [1.0, 2.0])
    assert np.shares_memory(np.asarray(w), w.data)  # asarray shares when it can
    assert np.shares_memory(np.array(w, copy=False), w.data)
    with pytest.raises(ValueError, match="copy"):
        np.array(w, dtype=np.float32, copy=False)


class _Custom(Function):
    """A user's Function whose backward returns whatever the test puts in ``grads``."""

    name = "custom"

    def __init__(self, grads):
        self.grads = grads

    def forward(self, *arrays):
        return arrays[0] * 1.0

    def backward(self, g):
        return self.grads(g)


@pytest.mark.parametrize(
    ("input_shape", "grad", "says"),
    [
        ((2, 3), lambda g: (g.reshape(3, 2),), r"custom.*\(3, 2\).*\(2, 3\)"),
        ((2, 3), lambda g: (g.ravel(),), r"custom.*\(6,\).*\(2, 3\)"),
        ((2, 3), lambda g: (np.ones((2, 1)),), r"custom.*\(2, 1\).*\(2, 3\)"),
    ],
)
def test_a_gradient_of_the_wrong_shape_is_an_error_not_a_reshape(input_shape, grad, says):
    x = leaf(np.ones(input_shape))
    y = apply(_Custom(grad), x)
    with pytest.raises(ShapeError, match=says):
        y.backward(np.ones(input_shape))


def test_broadcast_gradients_are_summed_back():
    x = leaf(np.ones((1, 3)))
    y = apply(_Custom(lambda g: (np.broadcast_to(g.sum(), (4, 2, 3)),)), x)
    y.backward(np.ones((1, 3)))
    np.testing.assert_array_equal(x.grad, np.full((1, 3), 24.0))


def test_backward_returning_the_wrong_number_of_gradients_is_named():
    x, y = leaf([1.0]), leaf([2.0])
    out = apply(_Custom(lambda g: (g,)), x, y)
    with pytest.raises(InvalidArgumentError, match="custom: backward returned 1 gradients for 2"):
        out.backward(np.ones(1))


def test_backward_from_many_threads_into_one_shared_leaf_loses_nothing():
    """Threads sharing a parameter: creating and adding to its .grad is one step. (Without
    the lock this loses gradient in most runs: NumPy releases the GIL inside a large +=.)"""
    threads, steps = 8, 20
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(3):
            w = leaf(np.zeros(100_000))
            barrier = threading.Barrier(threads)

            def work(k: int, w: Tensor = w, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                for _ in range(steps):
                    (w * float(k + 1)).sum().backward()

            workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            expected = steps * sum(range(1, threads + 1))
            np.testing.assert_array_equal(w.grad, np.full(100_000, float(expected)))
    finally:
        sys.setswitchinterval(previous)


def test_no_grad_object_can_be_reused_and_nested():
    block = no_grad()
    with block:
        with block:
            assert not is_grad_enabled()
        assert not is_grad_enabled()
    assert is_grad_enabled()
    with block:
        assert not (leaf([1.0]) * 2).requires_grad
    assert is_grad_enabled()


def test_no_grad_decorates_generator_functions():
    x = leaf([1.0])

    @no_grad()
    def batches():
        for _ in range(3):
            received = yield x * 2, is_grad_enabled()
            assert received is None or received == "next"

    seen = []
    for y, enabled in batches():
        seen.append((y.requires_grad, enabled, is_grad_enabled()))  # the caller keeps its mode
    assert seen == [(False, False, True)] * 3

    @no_grad
    def plain(t):
        return t * 3

    assert not plain(x).requires_grad
    assert (x * 3).requires_grad
