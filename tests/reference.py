"""Independent references for the tests: built from other libraries, not from signdigits.

A test that compares our code with a copy of itself proves nothing. These helpers
compute the same quantities another way:

- ``torch_cost_and_gradients``: the tutorial's cost and its gradients by PyTorch's
  autograd, the cost from ``torch.nn.functional.binary_cross_entropy_with_logits``;
- ``torch_two_layer`` and ``torch_sgd_step``: the same for part 2's two-layer network
  (tanh, then sigmoid), and one step of ``torch.optim.SGD``;
- ``reference_preprocess``: the preprocessing with Pillow's own gray conversion
  (``convert("L")``, ITU-R 601-2 luma in fixed point, rounded to whole levels) and
  PyTorch's antialiased bilinear resize (``interpolate(..., antialias=True)``, written
  to match Pillow's resampling but implemented apart from it), with the error bound
  that Pillow's rounding allows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps

PILLOW_LUMA_ERROR = 0.51
"""The most Pillow's ``convert("L")`` differs from 0.299 R + 0.587 G + 0.114 B, in levels.

Pillow computes ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16``: it rounds to a whole
level (≤ 0.5) and its weights differ from 0.299, 0.587 and 0.114 by less than 1e-5
each (≤ 0.003 levels for channels up to 255).
"""


def torch_cost_and_gradients(
    w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray
) -> tuple[float, np.ndarray, float]:
    """cost = mean binary cross-entropy of σ(wᵀx + b) against y, and ∂cost/∂w, ∂cost/∂b.

    Features first as in the tutorial: w (n, 1), x (n, m), y (1, m); float64 throughout.
    """
    w_t = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    b_t = torch.tensor(float(b), dtype=torch.float64, requires_grad=True)
    z = w_t.T @ torch.from_numpy(np.asarray(x, dtype=np.float64)) + b_t
    target = torch.from_numpy(np.asarray(y, dtype=np.float64))
    cost = torch.nn.functional.binary_cross_entropy_with_logits(z, target)
    cost.backward()
    return cost.item(), w_t.grad.numpy(), b_t.grad.item()


def torch_losses(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The cross-entropy of each σ(z) against y, by PyTorch (no reduction), float64."""
    return torch.nn.functional.binary_cross_entropy_with_logits(
        torch.as_tensor(np.asarray(z, dtype=np.float64)),
        torch.as_tensor(np.asarray(y, dtype=np.float64)),
        reduction="none",
    ).numpy()


@dataclass(frozen=True)
class ReferenceImage:
    """The reference's model input and how far a correct preprocessing may be from it."""

    x: np.ndarray
    """(64, 64) float64: 1 − v/255, with v the stretched and resized gray."""
    tolerance: float
    """The bound on |ours − x| that Pillow's rounding of the gray values allows."""


def reference_preprocess(image: Image.Image | bytes, size: int = 64) -> ReferenceImage:
    """The preprocessing by Pillow's ``convert("L")`` and PyTorch's bilinear resize.

    For an opaque RGB image: EXIF orientation by Pillow, gray by Pillow's luma, a
    min-max stretch to 0..255 in float64, PyTorch's antialiased bilinear resize
    (the same filter as Pillow's ``BILINEAR``), then ``1 − v/255``.

    The tolerance: each gray value, the minimum and the maximum may each be off by
    ``PILLOW_LUMA_ERROR`` levels; the stretched fraction (L − lo)/(hi − lo) then moves
    by at most 2 · 0.51 / (hi − lo) to first order, and a resize (a weighted mean
    with non-negative weights) does not make it larger. 1.05/(hi − lo) covers the
    second order; 1e-5 covers float32 storage and the two resamplers' arithmetic.
    """
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    image = ImageOps.exif_transpose(image)
    if image.mode != "RGB":
        raise ValueError(f"the reference handles opaque RGB images, got {image.mode}")
    gray = np.asarray(image.convert("L"), dtype=np.float64)
    low, high = gray.min(), gray.max()
    stretched = 255.0 * (gray - low) / (high - low)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(stretched)[None, None],
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )[0, 0].numpy()
    return ReferenceImage(x=1.0 - resized / 255.0, tolerance=1.05 / (high - low) + 1e-5)


@dataclass(frozen=True)
class TorchTwoLayer:
    """Part 2's network by PyTorch: its output, its cost and the cost's gradients."""

    A2: np.ndarray
    """σ(W2 tanh(W1 x + b1) + b2), (1, m)."""
    cost: float
    grads: dict[str, np.ndarray]
    """∂cost/∂p for each parameter p, keyed as the tutorial's grads: "dweight1", …"""


def torch_two_layer(
    parameters: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray
) -> TorchTwoLayer:
    """Part 2's two-layer network, cost and gradients by PyTorch's autograd, float64.

    Features first as in the tutorial: x (n, m), y (1, m); parameters keyed "weight1"
    (h, n), "bias1" (h, 1), "weight2" (1, h), "bias2" (1, 1). The cost is the mean of
    ``binary_cross_entropy_with_logits`` of Z2 against y (the full cross-entropy).
    """
    leaves = {
        name: torch.tensor(np.asarray(value, dtype=np.float64), requires_grad=True)
        for name, value in parameters.items()
    }
    x_t = torch.from_numpy(np.asarray(x, dtype=np.float64))
    A1 = torch.tanh(leaves["weight1"] @ x_t + leaves["bias1"])
    Z2 = leaves["weight2"] @ A1 + leaves["bias2"]
    target = torch.from_numpy(np.asarray(y, dtype=np.float64))
    cost = torch.nn.functional.binary_cross_entropy_with_logits(Z2, target)
    cost.backward()
    return TorchTwoLayer(
        A2=torch.sigmoid(Z2).detach().numpy(),
        cost=cost.item(),
        grads={"d" + name: leaf.grad.numpy() for name, leaf in leaves.items()},
    )


def torch_sgd_step(
    parameters: dict[str, np.ndarray], grads: dict[str, np.ndarray], learning_rate: float
) -> dict[str, np.ndarray]:
    """One step of ``torch.optim.SGD`` (no momentum) from ``parameters`` along ``grads``."""
    leaves = {name: torch.tensor(value, dtype=torch.float64) for name, value in parameters.items()}
    for name, leaf in leaves.items():
        leaf.grad = torch.tensor(grads["d" + name], dtype=torch.float64)
    torch.optim.SGD(list(leaves.values()), lr=learning_rate).step()
    return {name: leaf.numpy() for name, leaf in leaves.items()}
