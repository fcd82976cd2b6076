"""Shared checks of the nn tests: a signdigits module against the torch.nn module of the same
structure, with the same weights copied in (through ``state_dict``)."""

from __future__ import annotations

import numpy as np
import torch

from signdigits import Tensor
from signdigits.nn import Module
from tests.autograd.helpers import assert_close

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_state(module: Module) -> dict[str, torch.Tensor]:
    """Our ``state_dict`` as torch tensors (for ``torch_module.load_state_dict``)."""
    return {name: torch.from_numpy(array) for name, array in module.state_dict().items()}


def numpy_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """A torch ``state_dict`` converted to NumPy (what a user porting weights writes)."""
    return {name: value.detach().numpy().copy() for name, value in module.state_dict().items()}


def randomize(module: Module, seed: int) -> Module:
    """Random parameters (normal) and float buffers (in [0.5, 1.5): valid variances), in
    place, so that no comparison passes by the luck of ones and zeros."""
    rng = np.random.default_rng(seed)
    for param in module.parameters():
        param.data[...] = rng.standard_normal(param.shape)
    for array in module.buffers():
        if array.dtype.kind == "f":
            array[...] = rng.random(array.shape) + 0.5
    return module


def same_weights(ours: Module, theirs: torch.nn.Module, dtype: type) -> torch.nn.Module:
    """``theirs`` in ``dtype``, holding our parameters and buffers, in our mode."""
    theirs.to(TORCH_DTYPES[np.dtype(dtype)])
    theirs.load_state_dict(torch_state(ours))
    return theirs.train(ours.training)


def assert_same_state(ours: Module, theirs: torch.nn.Module, dtype: type) -> None:
    """Same keys in the same order, and the same values (running statistics included)."""
    mine, reference = ours.state_dict(), numpy_state(theirs)
    assert list(mine) == list(reference)
    for name, array in mine.items():
        assert array.dtype == reference[name].dtype, name
        if array.dtype.kind == "f":
            assert_close(array, reference[name], dtype)
        else:
            np.testing.assert_array_equal(array, reference[name], err_msg=name)


def compare_step(
    ours: Module,
    theirs: torch.nn.Module,
    x: np.ndarray,
    dtype: type,
    seed: int = 1,
) -> tuple[Tensor, torch.Tensor]:
    """One forward and backward of both on ``x`` (cast to ``dtype``) with the same random
    upstream gradient: outputs, the input's gradient, every parameter's gradient (None for a
    frozen one in both) and the state after it agree. Returns both inputs."""
    xs = Tensor(x.astype(dtype), requires_grad=True)
    xt = torch.tensor(x.astype(dtype), requires_grad=True)
    out, ref = ours(xs), theirs(xt)
    assert out.dtype == dtype
    assert_close(out.data, ref.detach().numpy(), dtype)
    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    assert_close(xs.grad, xt.grad.numpy(), dtype)
    names = [name for name, _ in theirs.named_parameters()]
    assert [name for name, _ in ours.named_parameters()] == names
    for (name, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        if q.grad is None:
            assert p.grad is None, name
        else:
            assert p.grad is not None and p.grad.dtype == dtype, name
            assert_close(p.grad, q.grad.numpy(), dtype)
    assert_same_state(ours, theirs, dtype)
    return xs, xt
