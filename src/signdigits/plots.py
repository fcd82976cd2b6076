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
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from signdigits.atomic import atomic_write


def save_figure(figure: Figure, path: Path, fit_to_content: bool = False) -> Path:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names.

    Figures laid out with fixed margins are saved as they are; ``fit_to_content`` crops
    to what is drawn instead (a second drawing pass, so about half as fast again).
    The figure belongs to no pyplot registry, so there is nothing to close: it is
    freed with its last reference.
    """
    crop = "tight" if fit_to_content else None
    with atomic_write(path) as file:
        figure.savefig(file, dpi=120, bbox_inches=crop, format=path.suffix.lstrip("."))
    return path


def cost_curve_figure(
    costs: Sequence[float],
    *,
    learning_rate: float,
    iterations: int,
    every: int = 10,
    model: str | None = None,
) -> Figure:
    """The cost after each iteration, twice: on a linear scale, where the first drop (6.2
    to 0.7 in the tutorial) shows, and on a log scale, where the slow progress after it
    shows. A dot marks each cost the tutorial prints (every ``every`` iterations).
    ``model``, when given, names what was trained at the start of the title."""
    costs = np.asarray(costs, dtype=float)
    iterations_run = np.arange(len(costs))
    # Fixed margins rather than a layout engine: the same picture, drawn in half the time.
    figure = Figure(figsize=(9.6, 4))
    linear, logarithmic = figure.subplots(
        1, 2, gridspec_kw={"left": 0.07, "right": 0.99, "bottom": 0.13, "top": 0.84, "wspace": 0.2}
    )
    for axes in (linear, logarithmic):
        axes.plot(iterations_run, costs, color="tab:blue", label="cost after each iteration")
        axes.plot(
            iterations_run[::every],
            costs[::every],
            "o",
            color="tab:blue",
            ms=4,
            label=f"printed every {every} iterations",
        )
        axes.set_xlabel("Number of iterations")
        axes.grid(alpha=0.3)
    linear.set_ylabel("Cost")
    linear.set_title("Linear scale: the first steps", fontsize=11)
    # A cost of 0 or less has no logarithm (a cross-entropy never gets there, but a caller's
    # curve might): symlog keeps such a curve drawable.
    logarithmic.set_yscale("log" if costs.min(initial=1.0) > 0 else "symlog")
    if costs.min(initial=1.0) > 0:
        # Ticks at 0.3, 0.5, 1, 2, 3, 5, written as numbers, not as 3×10⁻¹.
        logarithmic.yaxis.set_major_locator(LogLocator(subs=(1, 2, 3, 5)))
        logarithmic.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        logarithmic.yaxis.set_minor_formatter(NullFormatter())
    logarithmic.set_ylabel("Cost (log scale)")
    logarithmic.set_title("Log scale: the slow progress after them", fontsize=11)
    linear.legend(loc="upper right")
    settings = f"learning rate {learning_rate:g}, {iterations} iterations"
    figure.suptitle(
        f"{model}: gradient descent, {settings}" if model else f"Gradient descent: {settings}"
    )
    return figure


def cost_curve(
    costs: Sequence[float],
    path: Path,
    *,
    learning_rate: float,
    iterations: int,
    every: int = 10,
    model: str | None = None,
) -> Path:
    """Draw :func:`cost_curve_figure` to ``path``."""
    figure = cost_curve_figure(
        costs, learning_rate=learning_rate, iterations=iterations, every=every, model=model
    )
    return save_figure(figure, path)


WEIGHT_COLOURS = "the weight's value\nred pushes towards sign 1, blue towards sign 0"
"""The label of the weight map's colour bar."""


def weight_map_figure(weights: np.ndarray) -> Figure:
    """The 4,096 learned weights as a 64×64 heat map: what the neuron looks at.

    Red pixels push the prediction towards the sign 1, blue towards the sign 0; the colour
    bar, centred on 0, says how strongly.
    """
    side = math.isqrt(weights.size)
    image = weights.reshape(side, side)
    limit = float(np.abs(image).max()) or 1.0
    figure = Figure(figsize=(5, 4.4))
    axes = figure.subplots()
    shown = axes.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes.set_title("Learned weights (red → sign 1, blue → sign 0)")
    axes.axis("off")
    colour_bar = figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    colour_bar.set_label(WEIGHT_COLOURS, fontsize=9)
    return figure


def weight_map(weights: np.ndarray, path: Path) -> Path:
    """Draw :func:`weight_map_figure` to ``path``."""
    return save_figure(weight_map_figure(weights), path, fit_to_content=True)


HIDDEN_UNITS_TITLE = "What each hidden unit looks at: its 4,096 weights as a 64×64 image"
"""The title of the hidden-units figure."""

HIDDEN_UNITS_COLOURS = "weight after training\n(red > 0, blue < 0)"
"""The label of the colour bar of the weights themselves."""

HIDDEN_UNITS_CHANGE_COLOURS = "change during training\n(after − before)"
"""The label of the colour bar of what training changed."""

HIDDEN_UNITS_NOTE = (
    "A unit whose output weight is positive pushes towards the sign 1 when the image is bright "
    "where it is red;\none whose output weight is negative, when the image is bright where it "
    "is blue. One colour scale per row, centred on 0."
)
"""The note under the hidden-units figure: how a unit's picture turns into a vote."""


def hidden_units_figure(
    weights: np.ndarray,
    output_weights: Sequence[float] | None = None,
    initial_weights: np.ndarray | None = None,
) -> Figure:
    """Each hidden unit's input weights (one row of ``weights``, (units, 4096)) as a 64×64
    image, side by side: what each unit looks at.

    Red is a positive weight, blue a negative one, white 0, on one colour scale centred on 0
    for all the units (so that their strengths compare), with a labelled colour bar. With
    ``output_weights`` (one per unit, the next layer's weight of each), each panel says
    which way the unit votes. With ``initial_weights``, a second row shows what training
    changed, ``weights − initial_weights``: small random initial weights can hide it in the
    first row, and a unit that barely learned shows as a blank panel there.
    """
    weights = np.asarray(weights, dtype=float)
    units = weights.shape[0]
    side = math.isqrt(weights[0].size)
    rows = [(weights, HIDDEN_UNITS_COLOURS, "hidden unit {unit}")]
    if initial_weights is not None:
        change = weights - np.asarray(initial_weights, dtype=float)
        rows.append((change, HIDDEN_UNITS_CHANGE_COLOURS, "unit {unit}: what training changed"))
    height = 3.3 * len(rows) + 1.0
    figure = Figure(figsize=(2.8 * units + 1.4, height))
    top, bottom = 1 - 0.75 / height, 0.75 / height
    grid = {"left": 0.02, "right": 0.83, "bottom": bottom, "top": top}
    panels = np.asarray(figure.subplots(len(rows), units, squeeze=False, gridspec_kw=grid))
    for row, (values, label, heading) in enumerate(rows):
        limit = float(np.abs(values).max(initial=0.0)) or 1.0
        for unit, axes in enumerate(panels[row]):
            shown = axes.imshow(
                values[unit].reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit
            )
            title = heading.format(unit=unit + 1)
            if row == 0 and output_weights is not None:
                weight = f"{float(output_weights[unit]):+.2f}".replace("-", "−")
                title += f"\noutput weight {weight}"
            axes.set_title(title, fontsize=10)
            axes.axis("off")
        colour_bar = figure.colorbar(shown, ax=list(panels[row]), fraction=0.03, pad=0.02)
        colour_bar.set_label(label, fontsize=9)
    figure.suptitle(HIDDEN_UNITS_TITLE)
    figure.supxlabel(HIDDEN_UNITS_NOTE, fontsize=8.5, color="0.25")
    return figure


def hidden_units(
    weights: np.ndarray,
    path: Path,
    output_weights: Sequence[float] | None = None,
    initial_weights: np.ndarray | None = None,
) -> Path:
    """Draw :func:`hidden_units_figure` to ``path``."""
    return save_figure(hidden_units_figure(weights, output_weights, initial_weights), path)


SAMPLES_NOTE = (
    "Hands are bright on dark because each pixel is x = 1 − v/255 (v: the photo's grey level, "
    "255 white),\nas in the Kaggle arrays: the light background of the photos becomes dark."
)
"""The note under the sample grid: why the pictures look like negatives."""


def sample_grid_figure(
    images: np.ndarray,
    labels: Sequence[int],
    columns: int = 6,
    title: str = "Sample images and their labels",
) -> Figure:
    """A grid of images with their labels above them, a title and a note on the colours.

    Each image is shown as it is learned from, x in [0, 1] from black to white. The grid is
    one picture (the images tiled with white gaps) in one set of axes: a dozen axes would
    take five times as long to draw, for the same picture.
    """
    images = np.asarray(images, dtype=np.float32)
    count, height, width = images.shape
    rows = max(1, math.ceil(count / columns))
    gap = max(height, width) // 6
    mosaic = np.ones((rows * (height + gap), columns * (width + gap)), dtype=np.float32)
    figure = Figure(figsize=(1.6 * columns, 1.8 * rows + 0.8))
    axes = figure.add_axes((0.0, 0.16, 1.0, 0.84 - 0.5 / (1.8 * rows + 0.8)))
    for k, (image, label) in enumerate(zip(images, labels, strict=False)):
        top, left = (k // columns) * (height + gap) + gap, (k % columns) * (width + gap) + gap // 2
        mosaic[top : top + height, left : left + width] = image
        axes.text(left + width / 2, top - 1, f"label {label}", ha="center", va="bottom", fontsize=9)
    axes.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.axis("off")
    figure.suptitle(title)
    figure.supxlabel(SAMPLES_NOTE, fontsize=8.5, color="0.25")
    return figure


def sample_grid(
    images: np.ndarray,
    labels: Sequence[int],
    path: Path,
    columns: int = 6,
    title: str = "Sample images and their labels",
) -> Path:
    """Draw :func:`sample_grid_figure` to ``path``."""
    return save_figure(sample_grid_figure(images, labels, columns, title), path)


# -- training ---------------------------------------------------------------------------------
def learning_curves_figure(history: Sequence[dict], title: str = "Learning curves") -> Figure:
    """Loss and accuracy after each epoch, on the training batches (as they were trained
    on, augmented and with dropout) and on the validation part."""
    epochs = [entry["epoch"] for entry in history]
    figure = Figure(figsize=(9.6, 4))
    loss_axes, accuracy_axes = figure.subplots(
        1, 2, gridspec_kw={"left": 0.07, "right": 0.99, "bottom": 0.13, "top": 0.84, "wspace": 0.2}
    )
    for axes, key, label in (
        (loss_axes, "loss", "cross-entropy loss"),
        (accuracy_axes, "accuracy", "accuracy"),
    ):
        scale = 100 if key == "accuracy" else 1
        for part, style in (("train", "-"), ("val", "--")):
            values = [entry[f"{part}_{key}"] for entry in history]
            if all(value is not None for value in values):
                axes.plot(epochs, np.array(values, dtype=float) * scale, style, label=f"{part}")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label + (" (%)" if key == "accuracy" else ""))
        axes.grid(alpha=0.3)
        axes.legend()
    loss_axes.set_yscale("log")
    figure.suptitle(title)
    return figure


def learning_curves(history: Sequence[dict], path: Path, title: str = "Learning curves") -> Path:
    """Draw :func:`learning_curves_figure` to ``path``."""
    return save_figure(learning_curves_figure(history, title), path)


def confusion_matrix_figure(matrix: np.ndarray, classes: Sequence[int], title: str) -> Figure:
    """The confusion matrix: row = the true digit, column = the predicted one; each cell
    gives its count, coloured by the share of its row."""
    matrix = np.asarray(matrix)
    size = len(classes)
    figure = Figure(figsize=(1.0 + 0.55 * size, 0.8 + 0.55 * size))
    axes = figure.add_axes((0.15, 0.12, 0.8, 0.76))
    shares = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(size):
        for j in range(size):
            if matrix[i, j]:
                colour = "white" if shares[i, j] > 0.5 else "black"
                axes.text(
                    j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize=9
                )
    axes.set_xticks(range(size), [str(c) for c in classes])
    axes.set_yticks(range(size), [str(c) for c in classes])
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title(title, fontsize=10)
    return figure


def confusion_matrix(matrix: np.ndarray, classes: Sequence[int], path: Path, title: str) -> Path:
    """Draw :func:`confusion_matrix_figure` to ``path``."""
    return save_figure(confusion_matrix_figure(matrix, classes, title), path)


def mistakes_figure(
    images: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    probability: Sequence[float],
    columns: int = 8,
    most: int = 48,
) -> Figure:
    """The misclassified test images (at most ``most``), each with its true digit, the
    predicted one and the probability the model gave it."""
    count = min(len(images), most)
    if count == 0:
        figure = Figure(figsize=(5, 1.5))
        figure.text(0.5, 0.5, "No test image was misclassified.", ha="center", va="center")
        return figure
    images = np.asarray(images[:count], dtype=np.float32)
    rows = math.ceil(count / columns)
    height, width = images.shape[1:]
    gap = height // 3
    mosaic = np.ones((rows * (height + gap), columns * (width + gap)), dtype=np.float32)
    figure = Figure(figsize=(1.5 * columns, 1.75 * rows + 0.6))
    axes = figure.add_axes((0.0, 0.0, 1.0, 1 - 0.6 / (1.75 * rows + 0.6)))
    for k in range(count):
        top, left = (k // columns) * (height + gap) + gap, (k % columns) * (width + gap) + gap // 2
        mosaic[top : top + height, left : left + width] = images[k]
        axes.text(
            left + width / 2,
            top - 1,
            f"{true[k]} → {predicted[k]} ({100 * probability[k]:.0f} %)",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axes.imshow(mosaic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    axes.axis("off")
    shown = f"the first {count} of {len(true)}" if len(true) > count else f"all {count}"
    figure.suptitle(f"Misclassified test images ({shown}): true → predicted (its probability)")
    return figure


def mistakes(
    images: np.ndarray,
    true: Sequence[int],
    predicted: Sequence[int],
    probability: Sequence[float],
    path: Path,
) -> Path:
    """Draw :func:`mistakes_figure` to ``path``."""
    return save_figure(mistakes_figure(images, true, predicted, probability), path)


# -- explanations -----------------------------------------------------------------------------
def explanation_figure(
    image: np.ndarray, saliency: np.ndarray, occlusion: np.ndarray, title: str
) -> Figure:
    """Three panels: the 64×64 input the network receives, its saliency map over it, and
    the occlusion map (the drop in probability when each square is hidden)."""
    figure = Figure(figsize=(10.5, 3.9))
    axes = figure.subplots(
        1, 3, gridspec_kw={"left": 0.02, "right": 0.93, "bottom": 0.03, "top": 0.8, "wspace": 0.25}
    )
    axes[0].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[0].set_title("the input (64 × 64)", fontsize=10)
    axes[1].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    shown = axes[1].imshow(
        saliency / max(float(saliency.max()), 1e-12), cmap="inferno", alpha=0.6, vmin=0, vmax=1
    )
    figure.colorbar(
        shown, ax=axes[1], fraction=0.046, pad=0.03, label="|∂ score / ∂ pixel|, scaled"
    )
    axes[1].set_title("saliency (SmoothGrad)", fontsize=10)
    limit = max(float(np.abs(occlusion).max()), 1e-6)
    side = image.shape[0]
    hidden = axes[2].imshow(
        occlusion,
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        extent=(-0.5, side - 0.5, side - 0.5, -0.5),
    )
    axes[2].imshow(image, cmap="gray", vmin=0, vmax=1, alpha=0.35, interpolation="nearest")
    figure.colorbar(hidden, ax=axes[2], fraction=0.046, pad=0.03, label="drop in probability")
    axes[2].set_title("occlusion: the square hidden", fontsize=10)
    for axis in axes:
        axis.axis("off")
    figure.suptitle(title)
    return figure


def explanation(
    image: np.ndarray, saliency: np.ndarray, occlusion: np.ndarray, title: str, path: Path
) -> Path:
    """Draw :func:`explanation_figure` to ``path``."""
    return save_figure(explanation_figure(image, saliency, occlusion, title), path)
