"""Figures: real PNG files, drawn without pyplot and without touching the backend."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from signdigits import plots, tutorial
from signdigits.data.preprocess import open_image, preprocess_image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

DRAW_SCRIPT = """
import json, sys
from pathlib import Path

import matplotlib
matplotlib.use("pdf")  # the host application's choice, which signdigits must keep

import numpy as np
import signdigits, signdigits.cli, signdigits.graph, signdigits.tutorial
from signdigits import plots

out = Path(sys.argv[1])
rng = np.random.default_rng(0)
written = [
    plots.cost_curve(
        list(np.linspace(0.7, 0.3, 150)), out / "cost_curve.png", learning_rate=0.01, iterations=150
    ),
    plots.weight_map(rng.standard_normal(4096), out / "weights.png"),
    plots.sample_grid(rng.random((10, 64, 64)), list(range(10)), out / "samples.png"),
]
print(json.dumps({
    "backend": matplotlib.get_backend(),
    "pyplot_loaded": "matplotlib.pyplot" in sys.modules,
    "written": [str(path) for path in written],
}))
"""

SIZES = {"cost_curve.png": (1165, 493), "weights.png": (572, 455), "samples.png": (1165, 541)}
"""Each figure's size in pixels at 120 dpi, with a tight bounding box (a few pixels'
leeway below, for other font versions)."""


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Every figure, drawn once in a process whose chosen backend is ``pdf``."""
    out = tmp_path_factory.mktemp("figures")
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DRAW_SCRIPT), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout), out


def test_drawing_keeps_the_chosen_backend_and_never_loads_pyplot(drawn: tuple[dict, Path]) -> None:
    report, out = drawn
    assert report["backend"] == "pdf"
    assert report["pyplot_loaded"] is False
    assert sorted(Path(path).name for path in report["written"]) == sorted(SIZES)
    assert sorted(path.name for path in out.iterdir()) == sorted(SIZES)  # no temporary left


@pytest.mark.parametrize("name", SIZES)
def test_each_figure_is_a_real_png(name: str, drawn: tuple[dict, Path]) -> None:
    path = drawn[1] / name
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = SIZES[name]
        assert image.format == "PNG"
        assert width - 40 <= image.width <= width + 40
        assert height - 40 <= image.height <= height + 40
        assert image.width <= 1200  # a README shows it without shrinking its text
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50  # a picture, not a blank page


def test_weight_map_shows_both_signs_in_red_and_blue(tmp_path: Path) -> None:
    weights = np.zeros(4096)
    weights[:2048], weights[2048:] = 1.0, -1.0  # top half pushes to 1, bottom half to 0
    with Image.open(plots.weight_map(weights, tmp_path / "w.png")) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    red = (pixels[..., 0] > 150) & (pixels[..., 2] < 80)
    blue = (pixels[..., 2] > 150) & (pixels[..., 0] < 80)
    assert red.sum() > 1000 and blue.sum() > 1000


def test_a_figure_that_cannot_be_written_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="xyz"):
        plots.cost_curve([1.0, 0.5], tmp_path / "cost.xyz", learning_rate=0.01, iterations=2)
    assert list(tmp_path.iterdir()) == []


# What each figure says, read from the figure itself ------------------------------------

TUTORIAL_COSTS = [6.233 * 0.7**i for i in range(8)] + list(np.linspace(0.64, 0.25, 142))
"""A cost curve shaped like the tutorial's: 6.2 to 0.7 in a few steps, then slowly down."""


def legend_texts(figure: Figure) -> list[str]:
    return [
        text.get_text()
        for axes in figure.axes
        if axes.get_legend()
        for text in axes.get_legend().get_texts()
    ]


def test_cost_curve_has_a_log_scale_panel_and_names_its_run() -> None:
    figure = plots.cost_curve_figure(TUTORIAL_COSTS, learning_rate=0.005, iterations=150)
    linear, logarithmic = figure.axes
    assert (linear.get_yscale(), logarithmic.get_yscale()) == ("linear", "log")
    for axes in (linear, logarithmic):  # both panels show every iteration's cost
        line = axes.get_lines()[0]
        np.testing.assert_allclose(line.get_ydata(), TUTORIAL_COSTS)
    # The slow part, 0.64 down to 0.25, fills a quarter of the log panel's height and less
    # than a tenth of the linear one's.
    low, high = np.log10(logarithmic.get_ylim())
    assert (np.log10(0.64) - np.log10(0.25)) / (high - low) > 0.25
    assert (0.64 - 0.25) / np.diff(linear.get_ylim())[0] < 0.1
    title = figure.get_suptitle()
    assert "learning rate 0.005" in title and "150 iterations" in title


def test_cost_curve_explains_its_dots() -> None:
    figure = plots.cost_curve_figure(TUTORIAL_COSTS, learning_rate=0.01, iterations=150)
    assert "printed every 10 iterations" in legend_texts(figure)
    dots = [line for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    assert len(dots) == 1
    np.testing.assert_array_equal(dots[0].get_xdata(), np.arange(0, 150, 10))


def test_cost_curve_of_costs_down_to_zero_is_still_drawn(tmp_path: Path) -> None:
    figure = plots.cost_curve_figure([1.0, 0.5, 0.0], learning_rate=0.1, iterations=3)
    assert figure.axes[1].get_yscale() == "symlog"
    path = plots.cost_curve([1.0, 0.5, 0.0], tmp_path / "c.png", learning_rate=0.1, iterations=3)
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_weight_map_colour_bar_says_what_the_colours_mean() -> None:
    figure = plots.weight_map_figure(np.linspace(-2.0, 1.0, 4096))
    image_axes, colour_bar = figure.axes
    label = colour_bar.get_ylabel()
    assert label == plots.WEIGHT_COLOURS
    for words in ("value", "red pushes towards sign 1", "blue towards sign 0"):
        assert words in label
    assert image_axes.get_images()[0].get_clim() == (-2.0, 2.0)  # white is a weight of 0


def test_sample_grid_has_a_title_and_says_why_hands_are_bright() -> None:
    samples = np.random.default_rng(0).random((4, 64, 64)).astype(np.float32)
    figure = plots.sample_grid_figure(samples, [0, 0, 1, 1], columns=3, title="Some signs")
    assert figure.get_suptitle() == "Some signs"
    note = figure.get_supxlabel()
    assert "bright on dark" in note and "x = 1 − v/255" in note and "Kaggle" in note
    (axes,) = figure.axes
    (mosaic,) = axes.get_images()
    assert mosaic.get_clim() == (0.0, 1.0)  # x as learned: 1 is white
    tiles = np.asarray(mosaic.get_array())
    places = []  # where each image stands whole in the picture
    for sample in samples:
        corners = np.argwhere(tiles[:-63, :-63] == sample[0, 0])
        (place,) = [
            (top, left)
            for top, left in corners
            if np.array_equal(tiles[top : top + 64, left : left + 64], sample)
        ]
        places.append(place)
    assert places == sorted(places)  # in reading order: row by row, left to right
    assert [text.get_text() for text in axes.texts] == ["label 0", "label 0", "label 1", "label 1"]
    assert plots.sample_grid_figure(np.zeros((1, 64, 64)), [0]).get_suptitle()


# The tutorial's figures and its word on the 410 images ---------------------------------


@pytest.fixture(scope="module")
def tutorial_drawing(dataset_source, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A short tutorial run (30 iterations at learning rate 0.005), with what it passed to
    ``cost_curve`` and what it printed."""
    import io

    from rich.console import Console

    calls = []
    draw = plots.cost_curve

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return draw(*args, **kwargs)

    printed = io.StringIO()
    out = tmp_path_factory.mktemp("tutorial")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plots, "cost_curve", recording)
        tutorial.run_tutorial(
            dataset_source.path,
            learning_rate=0.005,
            iterations=30,
            out=out,
            console=Console(file=printed, width=80),
            show_progress=False,
        )
    return {"calls": calls, "printed": printed.getvalue(), "out": out}


def test_the_tutorial_titles_its_cost_curve_with_its_learning_rate_and_iterations(
    tutorial_drawing,
) -> None:
    (call,) = tutorial_drawing["calls"]
    assert (call["learning_rate"], call["iterations"]) == (0.005, 30)
    with Image.open(tutorial_drawing["out"] / "cost_curve.png") as image:
        assert image.format == "PNG"


def test_the_tutorial_says_in_one_line_which_image_it_leaves_out(tutorial_drawing) -> None:
    step_one = tutorial_drawing["printed"].split("2. Train/test split")[0]
    (line,) = [line for line in step_one.splitlines() if "IMG_5992" in line]
    assert "205 images of each sign" in line and "Dataset/1/IMG_5992.JPG" in line
    assert "left out" in line


def test_the_image_left_out_is_dataset_1_img_5992(dataset, image_bytes) -> None:
    """The 206th image of the sign 1 in the order the tutorial takes them, and in no other
    place of the 410: what the message and ``load_zeros_and_ones`` say."""
    left_out = preprocess_image(open_image(image_bytes("1/IMG_5992.JPG")))
    ones = dataset.images[dataset.labels == 1]
    assert len(ones) == 206
    np.testing.assert_array_equal(ones[205], left_out)
    X, _ = tutorial.load_zeros_and_ones(dataset)
    assert not any(np.array_equal(image, left_out) for image in X)
    assert "Dataset/1/IMG_5992.JPG" in tutorial.load_zeros_and_ones.__doc__
