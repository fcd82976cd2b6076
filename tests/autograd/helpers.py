"""Shared checks for the autograd and functional tests: PyTorch as the reference for values
and gradients, finite differences (gradcheck) for gradients, and hypothesis strategies."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from signdigits import Tensor, gradcheck

torch.set_num_threads(1)

SETTINGS = settings(max_examples=25, deadline=None)
FLOAT_DTYPES = st.sampled_from([np.float32, np.float64])
SEEDS = st.integers(0, 2**32 - 1)
SHAPES = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
BROADCAST_PAIRS = hnp.mutually_broadcastable_shapes(
    num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4
)

# float64 must agree to 1e-8; float32 to 1e-4 (relative, or absolute near zero).
TOLERANCES = {np.dtype(np.float64): 1e-8, np.dtype(np.float32): 1e-4}


def random_arrays(seed: int, shapes: Sequence[tuple[int, ...]], positive: bool = False):
    """Standard-normal float64 arrays of the given shapes; with ``positive``, in [0.5, ∞)."""
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(shape) for shape in shapes]
    return [np.abs(a) + 0.5 for a in arrays] if positive else arrays


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: np.dtype) -> None:
    tol = TOLERANCES[np.dtype(dtype)]
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def check_against_torch(
    ours: Callable[..., Tensor],
    theirs: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    dtype: type = np.float64,
) -> None:
    """``ours`` on Tensors and ``theirs`` on torch tensors made from the same arrays (cast to
    ``dtype``) agree on the output, its dtype, and the gradients of every input for the same
    random upstream gradient."""
    ts = [Tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    tt = [torch.tensor(a.astype(dtype), requires_grad=True) for a in arrays]
    out, ref = ours(*ts), theirs(*tt)
    assert out.dtype == dtype
    assert_close(out.data, ref.detach().numpy(), dtype)
    upstream = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for t, r in zip(ts, tt, strict=True):
        expected = np.zeros(t.shape, dtype) if r.grad is None else r.grad.numpy()
        assert t.grad is not None and t.grad.dtype == dtype
        assert_close(t.grad, expected, dtype)


def check_gradient(fn: Callable[..., Tensor], arrays: Sequence[np.ndarray]) -> None:
    """Backward's gradients of ``fn`` match central finite differences in float64."""
    result = gradcheck(fn, [np.asarray(a, dtype=np.float64) for a in arrays], atol=1e-6, rtol=1e-5)
    assert result, str(result)


def check_op(
    ours: Callable[..., Tensor],
    theirs: Callable[..., torch.Tensor],
    arrays: Sequence[np.ndarray],
    dtype: type,
) -> None:
    """Both checks: against PyTorch in ``dtype``, and against finite differences."""
    check_against_torch(ours, theirs, arrays, dtype)
    check_gradient(ours, arrays)
