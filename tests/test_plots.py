"""Figures: real PNG files, drawn without pyplot and without touching the backend."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from signdigits import plots

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
    plots.cost_curve(list(np.linspace(0.7, 0.3, 150)), out / "cost_curve.png"),
    plots.weight_map(rng.standard_normal(4096), out / "weights.png"),
    plots.sample_grid(rng.random((10, 64, 64)), list(range(10)), out / "samples.png"),
]
print(json.dumps({
    "backend": matplotlib.get_backend(),
    "pyplot_loaded": "matplotlib.pyplot" in sys.modules,
    "written": [str(path) for path in written],
}))
"""

SIZES = {"cost_curve.png": (655, 470), "weights.png": (530, 455), "samples.png": (916, 366)}
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
        plots.cost_curve([1.0, 0.5], tmp_path / "cost.xyz")
    assert list(tmp_path.iterdir()) == []
