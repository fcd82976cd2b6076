"""Twins for the optimizer tests: our parameters and PyTorch's, from the same start, fed the
same gradients (set as ``.grad`` on both sides), compared after each run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from signdigits import Tensor

torch.set_num_threads(1)

RTOL = 1e-10
"""float64 parameters and states agree with PyTorch's to this relative difference."""
ATOL = 1e-14
"""…or to this absolute one, for the rare value near zero."""

SHAPES = ((3, 4), (5,), ())
"""A matrix, a vector and a 0-d parameter."""


def random_start(seed: int, shapes: Sequence[tuple[int, ...]] = SHAPES) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def random_gradients(
    seed: int,
    steps: int,
    shapes: Sequence[tuple[int, ...]] = SHAPES,
    missing: float = 0.0,
) -> list[list[np.ndarray | None]]:
    """``steps`` lists of one gradient per parameter; each is None with chance ``missing``."""
    rng = np.random.default_rng(seed + 1)
    return [
        [None if rng.random() < missing else rng.standard_normal(shape) for shape in shapes]
        for _ in range(steps)
    ]


@dataclass
class Twins:
    """The same parameters twice: ours (``Tensor``) and PyTorch's (``torch.Tensor``)."""

    ours: list[Tensor]
    theirs: list[torch.Tensor]

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray], dtype: type = np.float64) -> Twins:
        return cls(
            [Tensor(np.array(a, dtype=dtype), requires_grad=True) for a in arrays],
            [torch.tensor(np.array(a, dtype=dtype), requires_grad=True) for a in arrays],
        )

    def feed(self, grads: Sequence[np.ndarray | None]) -> None:
        """Set the same ``.grad`` on both sides (None leaves a parameter without one)."""
        for ours, theirs, grad in zip(self.ours, self.theirs, grads, strict=True):
            dtype = ours.dtype
            ours.grad = None if grad is None else np.array(grad, dtype=dtype)
            theirs.grad = None if grad is None else torch.tensor(np.array(grad, dtype=dtype))

    def assert_close(self, rtol: float = RTOL, atol: float = ATOL) -> None:
        for index, (ours, theirs) in enumerate(zip(self.ours, self.theirs, strict=True)):
            expected = theirs.detach().numpy()
            assert ours.dtype == expected.dtype
            np.testing.assert_allclose(
                ours.data, expected, rtol=rtol, atol=atol, err_msg=f"parameter {index}"
            )


def assert_same_state(ours: Any, theirs: torch.optim.Optimizer, twins: Twins, rtol=RTOL) -> None:
    """Our state (by name "0", "1", …) holds what PyTorch's holds for the same parameter."""
    for index, param in enumerate(twins.theirs):
        expected = theirs.state.get(param, {})
        got = ours.state.get(str(index), {})
        expected = {k: v for k, v in expected.items() if v is not None}
        assert set(got) == set(expected), (index, sorted(got), sorted(expected))
        for key, value in expected.items():
            if key == "step":
                assert got[key] == value.item()
            else:
                np.testing.assert_allclose(got[key], value.numpy(), rtol=rtol, atol=ATOL)


def run_twins(
    ours_class: type,
    torch_class: type,
    options: dict[str, Any],
    seed: int,
    steps: int = 25,
    missing: float = 0.0,
    dtype: type = np.float64,
) -> tuple[Twins, Any, torch.optim.Optimizer]:
    """``steps`` steps of both optimizers (PyTorch's single-tensor code path) on twin
    parameters, with the same random gradients."""
    twins = Twins.from_arrays(random_start(seed), dtype)
    ours = ours_class(twins.ours, **options)
    theirs = torch_class(twins.theirs, foreach=False, **options)
    for grads in random_gradients(seed, steps, missing=missing):
        twins.feed(grads)
        ours.step()
        theirs.step()
    return twins, ours, theirs
