"""Data for training: the split of the chosen digits, mini-batches and augmentation.

The split is stratified (each digit in the same proportion in every part) and comes from
the seed alone: ``test_fraction`` (20 %) of the images is the test part, never seen by
training, validation or model selection; ``val_fraction`` of the rest is the validation
part. For all ten digits and the seed 42: 1,649 training images (1,484 to train on and 165
to validate with) and 413 test images. Training then leaves the known label errors
(:mod:`signdigits.data.label_errors`) out of the parts it learns and validates from.

Augmentation works on a whole batch at once, in NumPy: each image gets its own random
affine map (rotation, scale, shift), brightness and contrast, a hidden square (cutout) and
Gaussian noise, all drawn from the training run's one Generator, so that the same seed
gives the same run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from signdigits.data.dataset import SignDigits
from signdigits.errors import InvalidArgumentError

TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """Indices into the chosen images: ``train`` (what is fitted), ``val`` and ``test``."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def class_rows(dataset: SignDigits, classes: Sequence[int]) -> np.ndarray:
    """(N,) bool: the dataset's images of ``classes``."""
    return np.isin(dataset.labels, np.asarray(classes))


def choose_classes(dataset: SignDigits, classes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The images of ``classes`` and their labels as class indices 0…K−1 (the position of
    each image's digit in ``classes``), in the dataset's order."""
    digits = np.asarray(classes)
    chosen = class_rows(dataset, classes)
    lookup = np.full(10, -1)
    lookup[digits] = np.arange(len(digits))
    return dataset.images[chosen], lookup[dataset.labels[chosen]]


def split_indices(
    labels: np.ndarray,
    seed: int,
    val_fraction: float = 0.1,
    test_fraction: float = TEST_FRACTION,
    leave_out: np.ndarray | None = None,
) -> Split:
    """The stratified test and validation parts for ``seed``, as scikit-learn's
    ``train_test_split(..., stratify=labels, random_state=seed)`` makes them.

    ``leave_out``, a boolean mask over ``labels`` (the known label errors), takes those
    images out of the training and validation parts once the split is drawn: every other
    image is where it would be without it, and the test part is unchanged."""
    from sklearn.model_selection import train_test_split

    if not 0 <= val_fraction < 1:
        raise InvalidArgumentError(f"the validation fraction must be in [0, 1), got {val_fraction}")
    everything = np.arange(len(labels))
    rest, test = train_test_split(
        everything, test_size=test_fraction, stratify=labels, random_state=seed
    )
    if val_fraction == 0:
        train, val = rest, np.array([], dtype=int)
    else:
        train, val = train_test_split(
            rest, test_size=val_fraction, stratify=labels[rest], random_state=seed
        )
    if leave_out is not None:
        train, val = train[~leave_out[train]], val[~leave_out[val]]
    return Split(np.sort(train), np.sort(val), np.sort(test))


class DataLoader:
    """Mini-batches of the rows of in-memory arrays, as ``torch.utils.data.DataLoader``.

    Each pass (``iter``) draws a new order from ``rng`` when ``shuffle``; ``drop_last``
    leaves out a last batch smaller than ``batch_size``. ``epoch_order`` and ``batches``
    are the two halves of a pass, for a training run that stops and resumes mid-epoch.
    """

    def __init__(
        self,
        *arrays: np.ndarray,
        batch_size: int,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
    ) -> None:
        if not arrays or len({len(a) for a in arrays}) != 1:
            raise InvalidArgumentError("DataLoader: give one or more arrays of the same length")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(
                f"DataLoader: batch_size must be an int ≥ 1, got {batch_size!r}"
            )
        if shuffle and not isinstance(rng, np.random.Generator):
            raise InvalidArgumentError("DataLoader: shuffling needs rng, a numpy Generator")
        self.arrays, self.batch_size = arrays, batch_size
        self.shuffle, self.rng, self.drop_last = shuffle, rng, drop_last

    def __len__(self) -> int:
        rows = len(self.arrays[0])
        return rows // self.batch_size if self.drop_last else math.ceil(rows / self.batch_size)

    def epoch_order(self) -> np.ndarray:
        """The order of the rows for one pass: a permutation from ``rng``, or 0…n−1."""
        rows = len(self.arrays[0])
        return self.rng.permutation(rows) if self.shuffle else np.arange(rows)

    def batches(self, order: np.ndarray, start: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
        """The batches of ``order`` from batch number ``start`` on."""
        for number in range(start, len(self)):
            rows = order[number * self.batch_size : (number + 1) * self.batch_size]
            yield tuple(array[rows] for array in self.arrays)

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        return self.batches(self.epoch_order())


@dataclass(frozen=True)
class Augmentation:
    """How far augmentation may go: rotation in degrees, scale and shift as fractions
    (shift of the image's side), brightness as an offset and contrast as a factor's range;
    ``cutout``, the side in pixels of a square hidden (set to 0) in a ``cutout_fraction`` of
    the images; ``noise``, the largest standard deviation of the Gaussian noise added (each
    image draws its own σ from [0, noise]). The defaults: ±12°, ±10 % scale and shift, ±0.1
    brightness, ×(1 ± 0.2) contrast, a 16×16 square in half the images, noise σ ≤ 0.1.

    Why cutout and noise: a network trained on the affine changes alone loses half its
    accuracy under noise of σ = 0.1 and 13 points when a 16×16 patch is hidden
    (``benchmarks/robustness.py``); hands in photos are partly covered and cameras are noisy.
    """

    rotation: float = 12.0
    scale: float = 0.1
    shift: float = 0.1
    brightness: float = 0.1
    contrast: float = 0.2
    cutout: int = 16
    cutout_fraction: float = 0.5
    noise: float = 0.1


def augment(
    images: np.ndarray, rng: np.random.Generator, settings: Augmentation = Augmentation()
) -> np.ndarray:
    """A randomly transformed copy of a batch of images (N, H, W) in [0, 1]: each image its
    own rotation θ, scale s and shift t (``affine_warp``), then x ↦ (x − m)·c + m + b, with
    m the image's mean, c its contrast factor and b its brightness offset; then, in some
    images, a square set to 0 (it may reach past the border); then x ↦ x + σ·ε with
    ε ~ N(0, 1) per pixel; clipped to [0, 1].
    """
    n, height, width = images.shape
    theta = rng.uniform(-settings.rotation, settings.rotation, n)
    scale = rng.uniform(1 - settings.scale, 1 + settings.scale, n)
    shift = rng.uniform(-settings.shift, settings.shift, (n, 2)) * (height, width)
    contrast = rng.uniform(1 - settings.contrast, 1 + settings.contrast, n)
    brightness = rng.uniform(-settings.brightness, settings.brightness, n)
    warped = affine_warp(images, theta, scale, shift).reshape(n, -1)
    dtype = warped.dtype
    mean = warped.mean(axis=1, keepdims=True)
    adjusted = (warped - mean) * contrast[:, None].astype(dtype) + mean
    adjusted += brightness[:, None].astype(dtype)
    adjusted = adjusted.reshape(n, height, width)
    if settings.cutout and settings.cutout_fraction:
        adjusted *= ~_squares(n, height, width, settings, rng)
    if settings.noise:
        sigma = rng.uniform(0, settings.noise, n).astype(dtype)
        adjusted += sigma[:, None, None] * rng.standard_normal(adjusted.shape, dtype=dtype)
    return np.clip(adjusted, 0, 1, out=adjusted)


def _squares(
    n: int, height: int, width: int, settings: Augmentation, rng: np.random.Generator
) -> np.ndarray:
    """Masks (N, H, W), True inside a ``cutout``-sided square for a ``cutout_fraction`` of
    the images, whose centre is anywhere in the image."""
    side = settings.cutout
    hidden = rng.random(n) < settings.cutout_fraction
    top = rng.integers(0, height, n) - side // 2
    left = rng.integers(0, width, n) - side // 2
    rows = np.arange(height)[None, :, None] - top[:, None, None]
    cols = np.arange(width)[None, None, :] - left[:, None, None]
    return hidden[:, None, None] & (rows >= 0) & (rows < side) & (cols >= 0) & (cols < side)


def affine_warp(
    images: np.ndarray, degrees: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Images (N, H, W) each rotated by ``degrees[n]`` (counter-clockwise), scaled by
    ``scale[n]`` about its centre and shifted by ``shift[n]`` = (rows, columns) pixels.

    Output pixel p (relative to the centre) takes the value at p' = R(−θ)(p − t)/s of the
    input, read by bilinear interpolation between the four nearest pixels, with the edge
    pixels repeated beyond the border.
    """
    n, height, width = images.shape
    dtype = images.dtype if images.dtype.kind == "f" else np.dtype(np.float32)
    theta = np.deg2rad(np.asarray(degrees, dtype=float))
    shift = np.asarray(shift, dtype=float).reshape(n, 2)
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    v = rows.reshape(1, -1) - (height - 1) / 2 - shift[:, :1]  # (n, H·W), centred, unshifted
    u = cols.reshape(1, -1) - (width - 1) / 2 - shift[:, 1:]
    scale = np.asarray(scale, dtype=float)
    cos, sin = (np.cos(theta) / scale)[:, None], (np.sin(theta) / scale)[:, None]
    source_col = cos * u + sin * v + (width - 1) / 2  # R(−θ)/s applied to (u, v)
    source_row = -sin * u + cos * v + (height - 1) / 2
    row0, col0 = np.floor(source_row), np.floor(source_col)
    fr, fc = (source_row - row0).astype(dtype), (source_col - col0).astype(dtype)
    flat = images.reshape(n, -1).astype(dtype, copy=False)

    def at(r: np.ndarray, c: np.ndarray) -> np.ndarray:
        row = np.clip(r, 0, height - 1).astype(np.intp)
        col = np.clip(c, 0, width - 1).astype(np.intp)
        return np.take_along_axis(flat, row * width + col, axis=1)

    top = at(row0, col0) * (1 - fc) + at(row0, col0 + 1) * fc
    bottom = at(row0 + 1, col0) * (1 - fc) + at(row0 + 1, col0 + 1) * fc
    return (top * (1 - fr) + bottom * fr).reshape(n, height, width)
