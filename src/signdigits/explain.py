"""What the network looks at: saliency and occlusion maps of one input.

**Saliency** is the gradient of the predicted class's score (its logit) with respect to
the 4,096 input pixels, |∂z_c/∂x|: how much each pixel would move the score. It comes from
the engine's own backward, the tutorial's computational graph run back to the image.
A single gradient is noisy, so it is averaged over copies of the input with Gaussian
noise added (SmoothGrad: M = mean over n of |∂z_c/∂x (x + εᵢ)|, εᵢ ~ N(0, σ²)); the n
copies go through the network as one batch, and one backward of the sum of their scores
gives every copy's gradient at once.

**Occlusion** hides one square patch at a time (set to 0, the dark background) and
records the drop in the predicted class's probability: p_c(x) − p_c(x with the patch
hidden). Where the drop is large, the network needed what was there. All the occluded
copies go through the network as one batch.
"""

from __future__ import annotations

import numpy as np

from signdigits.autograd import Tensor, no_grad
from signdigits.models import as_model_input
from signdigits.nn import Module
from signdigits.training import softmax


def saliency(
    model: Module,
    image: np.ndarray,
    target: int,
    samples: int = 16,
    noise: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """SmoothGrad saliency of class index ``target`` for ``image`` (64, 64): (64, 64) ≥ 0."""
    rng = np.random.default_rng(seed)
    copies = image[None] + rng.normal(0, noise, (samples, *image.shape)).astype(image.dtype)
    if samples == 1 or noise == 0:
        copies = image[None].copy()
    was_training = model.training
    model.eval()
    x = Tensor(as_model_input(copies.astype(np.float32), model.spec), requires_grad=True)
    scores = model(x)
    scores[:, target].sum().backward()
    model.train(was_training)
    gradient = np.abs(x.grad).reshape(len(copies), *image.shape)
    return gradient.mean(axis=0)


def occlusion(model: Module, image: np.ndarray, target: int, patch: int = 8) -> np.ndarray:
    """The drop in the probability of class index ``target`` when each ``patch``×``patch``
    square of ``image`` is hidden: (64/patch, 64/patch), one value per square."""
    side = image.shape[0]
    squares = side // patch
    copies = np.repeat(image[None], squares * squares + 1, axis=0)
    for k in range(squares * squares):
        row, col = divmod(k, squares)
        copies[k + 1, row * patch : (row + 1) * patch, col * patch : (col + 1) * patch] = 0
    was_training = model.training
    model.eval()
    with no_grad():
        logits = model(Tensor(as_model_input(copies.astype(np.float32), model.spec))).data
    model.train(was_training)
    probabilities = softmax(logits.astype(np.float64))[:, target]
    return (probabilities[0] - probabilities[1:]).reshape(squares, squares)
