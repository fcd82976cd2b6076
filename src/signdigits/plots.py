"""Every figure signdigits draws, written as PNG files.

Figures are built with ``matplotlib.figure.Figure`` directly, not through pyplot: no
backend is chosen or switched (an application or notebook that imports signdigits
keeps its own), no window opens, no global list of open figures grows, and it works
on machines without a screen. ``Figure.savefig`` picks the renderer for the file's
format by itself.

Files are written under a temporary name and moved into place, so an interrupted
run never leaves half a picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from signdigits.atomic import atomic_write


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names.

    The figure belongs to no pyplot registry, so there is nothing to close: it is
    freed with its last reference.
    """
    with atomic_write(path) as file:
        figure.savefig(file, dpi=120, bbox_inches="tight", format=path.suffix.lstrip("."))
    return path


def cost_curve(costs: Sequence[float], path: Path, every: int = 10) -> Path:
    """The cost after each iteration, with a dot where the tutorial prints it."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    iterations = np.arange(len(costs))
    axes.plot(iterations, costs, color="tab:blue", label="cost")
    axes.plot(iterations[::every], np.asarray(costs)[::every], "o", color="tab:blue", ms=4)
    axes.set_xlabel("Number of iterations")
    axes.set_ylabel("Cost")
    axes.set_title("Gradient descent: the cost goes down")
    axes.grid(alpha=0.3)
    return save_figure(figure, path)


def weight_map(weights: np.ndarray, path: Path) -> Path:
    """The 4,096 learned weights as a 64×64 heat map: what the neuron looks at.

    Red pixels push the prediction towards the sign 1, blue towards the sign 0.
    """
    side = math.isqrt(weights.size)
    image = weights.reshape(side, side)
    limit = float(np.abs(image).max()) or 1.0
    figure = Figure(figsize=(5, 4.4))
    axes = figure.subplots()
    shown = axes.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes.set_title("Learned weights (red → sign 1, blue → sign 0)")
    axes.axis("off")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    return save_figure(figure, path)


def sample_grid(images: np.ndarray, labels: Sequence[int], path: Path, columns: int = 6) -> Path:
    """A grid of images with their labels above them."""
    rows = int(np.ceil(len(images) / columns))
    figure = Figure(figsize=(1.6 * columns, 1.8 * rows))
    grid = figure.subplots(rows, columns, squeeze=False)
    for axes in grid.flat:
        axes.axis("off")
    for axes, image, label in zip(grid.flat, images, labels, strict=False):
        axes.imshow(image, cmap="gray")
        axes.set_title(f"label {label}", fontsize=9)
    return save_figure(figure, path)
