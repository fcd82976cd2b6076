"""preprocess_image: any image in, a (64, 64) float32 in [0, 1] out, the same way for all.

The values are checked against references that do not use signdigits: small images
computed on paper, and ``tests.reference.reference_preprocess`` (Pillow's own gray
conversion and PyTorch's bilinear resize) within the bound that Pillow's rounding allows.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from PIL import ExifTags, Image

from signdigits.data import SignDigits, preprocess_image
from signdigits.errors import DataError
from tests.reference import reference_preprocess


def gradient_rgb(width: int, height: int) -> np.ndarray:
    """Dark on the left to light on the right, each channel a little apart, with some noise."""
    ramp = np.linspace(0.0, 215.0, width)[None, :, None] + np.array([0.0, 20.0, 40.0])
    noise = np.random.default_rng(0).integers(0, 8, size=(height, width, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def colourful_rgb(width: int, height: int) -> np.ndarray:
    """Three channels that vary independently, so that the luma's weights matter."""
    row, column = np.mgrid[0:height, 0:width] / max(width, height)
    red = 0.5 + 0.5 * np.sin(6 * column)
    green = 0.5 + 0.5 * np.cos(5 * row)
    blue = column * row
    noise = np.random.default_rng(2).integers(0, 8, size=(height, width, 3))
    return np.clip(255 * np.dstack([red, green, blue]) + noise, 0, 255).astype(np.uint8)


def image_in_mode(mode: str, width: int, height: int) -> Image.Image:
    """A gradient image of the given mode and size."""
    rgb = gradient_rgb(width, height)
    if mode == "RGBA":  # with transparency: alpha from fully transparent to opaque
        alpha = np.random.default_rng(1).integers(0, 256, size=(height, width), dtype=np.uint8)
        alpha[0, 0] = 0
        return Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")
    if mode == "I;16":
        values = np.linspace(0, 65535, width)[None, :].repeat(height, axis=0)
        image = Image.fromarray(values.astype(np.uint16))
        assert image.mode == "I;16"
        return image
    return Image.fromarray(rgb, mode="RGB").convert(mode)


def linear_upscale(profile: list[float], size: int = 64) -> np.ndarray:
    """A 1-D profile upscaled to ``size`` by bilinear interpolation, by ``np.interp``.

    Output pixel i samples the input at (i + 0.5) · n/size − 0.5, the edges held
    (the half-pixel convention of Pillow and of PyTorch's ``align_corners=False``).
    """
    n = len(profile)
    return np.interp((np.arange(size) + 0.5) * n / size - 0.5, np.arange(n), profile)


def assert_model_input(array: np.ndarray) -> None:
    assert array.shape == (64, 64)
    assert array.dtype == np.float32
    assert np.isfinite(array).all()
    assert array.min() >= 0.0
    assert array.max() <= 1.0


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "I;16", "I", "F", "1", "CMYK"])
@pytest.mark.parametrize("size", [(100, 100), (640, 480), (17, 300), (2, 3)])
def test_any_mode_and_size_gives_a_64x64_float32_in_unit_range(
    mode: str, size: tuple[int, int]
) -> None:
    image = image_in_mode(mode, *size)
    assert image.mode == mode

    result = preprocess_image(image)

    assert_model_input(result)
    assert result.max() - result.min() > 0.5  # the contrast is stretched, not lost
    assert result[:, 0].mean() > result[:, -1].mean()  # dark on the left is near 1


def test_a_2x2_image_computed_on_paper() -> None:
    """Red, green / blue, white: every one of the 64×64 values worked out by hand.

    Luma 0.299 R + 0.587 G + 0.114 B: red 76.245, green 149.685, blue 29.07, white 255.
    Stretched and inverted, x = 1 − (L − 29.07)/(255 − 29.07) = (255 − L)/225.93:
    red 178.755/225.93, green 105.315/225.93, blue 1, white 0. Bilinear upscaling 2 → 64
    samples the input at (i + 0.5)/32 − 0.5: the first 16 rows and columns hold the
    first pixel, the last 16 the second, and between them the weight of the second
    pixel is t(i) = (i − 15.5)/32.
    """
    rgb = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    top_left, top_right = 178.755 / 225.93, 105.315 / 225.93
    bottom_left, bottom_right = 1.0, 0.0
    t = np.clip((np.arange(64) - 15.5) / 32, 0.0, 1.0)
    row, column = t[:, None], t[None, :]
    expected = (
        (1 - row) * (1 - column) * top_left
        + (1 - row) * column * top_right
        + row * (1 - column) * bottom_left
        + row * column * bottom_right
    )

    result = preprocess_image(Image.fromarray(rgb))

    assert_model_input(result)
    np.testing.assert_allclose(result, expected, atol=1e-6)  # float32 arithmetic
    np.testing.assert_allclose(result[0, 0], 0.791196, atol=1e-6)  # red, on paper


@pytest.mark.parametrize("size", [(100, 100), (640, 480), (17, 300), (2, 3)])
def test_agrees_with_pillows_luma_and_torchs_bilinear_resize(size: tuple[int, int]) -> None:
    """Against Pillow's ``convert("L")`` (601-2 luma, whole levels) and PyTorch's resize.

    Pillow rounds each gray value to a whole level: the tolerance is the bound that
    rounding allows after the stretch (``reference_preprocess``), about 0.005 here.
    Another luma (equal weights, or Rec. 709's) or another filter misses by 0.1 or more.
    """
    image = Image.fromarray(colourful_rgb(*size))
    reference = reference_preprocess(image)

    result = preprocess_image(image)

    assert_model_input(result)
    np.testing.assert_allclose(result, reference.x, rtol=0, atol=reference.tolerance)


def test_transparency_is_flattened_onto_white() -> None:
    """Transparent pixels count as white paper, whatever colour they hold.

    Here they hold black, darker than the opaque gray: read without their alpha, they
    would be the ink. On white, the gray (128) is the darkest value and stretches to
    x = 1, the paper (255) to x = 0; the 60 columns are then upscaled to 64.
    """
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[:, :30] = (128, 128, 128, 255)  # left half: opaque gray; right half: transparent black

    result = preprocess_image(Image.fromarray(rgba, mode="RGBA"))

    expected = linear_upscale([1.0] * 30 + [0.0] * 30)
    np.testing.assert_allclose(result, np.broadcast_to(expected, (64, 64)), atol=1e-6)


def test_palette_transparency_is_flattened_onto_white() -> None:
    indices = np.zeros((20, 20), dtype=np.uint8)  # colour 0 on the left
    indices[:, 10:] = 1  # colour 1 on the right
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([128, 128, 128, 0, 0, 0])  # 0 gray, 1 black
    palette.info["transparency"] = 1  # the black is transparent

    result = preprocess_image(palette)

    expected = linear_upscale([1.0] * 10 + [0.0] * 10)  # gray: ink; transparent: paper
    np.testing.assert_allclose(result, np.broadcast_to(expected, (64, 64)), atol=1e-6)


@pytest.mark.parametrize(
    ("mode", "value"),
    [("RGB", (200, 200, 200)), ("RGBA", (0, 0, 0, 255)), ("L", 0), ("I;16", 40000)],
)
def test_a_constant_image_gives_zeros_without_warnings(mode: str, value: int | tuple) -> None:
    """No contrast, no ink: all zeros, and no division by zero on the way."""
    image = Image.new(mode, (50, 30), value)
    with warnings.catch_warnings(), np.errstate(all="warn"):
        warnings.simplefilter("error")
        result = preprocess_image(image)
    assert_model_input(result)
    assert not result.any()


def jpeg_with_orientation(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("orientation", "quarter_turns_anticlockwise"),
    [(6, -1), (8, 1), (3, 2)],
    ids=["6: turn clockwise", "8: turn anticlockwise", "3: turn half"],
)
def test_exif_orientation_is_honoured(orientation: int, quarter_turns_anticlockwise: int) -> None:
    pixels = np.full((48, 80, 3), 230, dtype=np.uint8)  # wide, with a dark corner block
    pixels[4:20, 6:30] = 20
    pixels[30:44, 60:76] = 120
    data = jpeg_with_orientation(Image.fromarray(pixels), orientation)
    stored = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # as saved, not turned
    turned = np.ascontiguousarray(np.rot90(stored, k=quarter_turns_anticlockwise))

    result = preprocess_image(data)

    np.testing.assert_allclose(result, preprocess_image(Image.fromarray(turned)), atol=1e-5)
    assert np.abs(result - preprocess_image(Image.fromarray(stored))).max() > 0.5


@pytest.mark.parametrize("index", [0, 204, 205, 1000, 2061])
def test_the_datasets_arrays_agree_with_the_reference_on_their_photos(
    index: int,
    dataset: SignDigits,
    image_names: list[str],
    image_bytes: Callable[[str], bytes],
) -> None:
    """Row i of the decoded dataset is the i-th photo (by digit, then file name), and
    its values are the reference's (Pillow's luma, PyTorch's resize) within its bound."""
    name = image_names[index]  # "0/IMG_1118.JPG": sorted by name is by digit, then name
    assert dataset.labels[index] == int(name.split("/")[0])
    reference = reference_preprocess(image_bytes(name))

    np.testing.assert_allclose(
        dataset.images[index], reference.x, rtol=0, atol=reference.tolerance, err_msg=name
    )


def test_bytes_that_are_not_an_image_raise_a_data_error() -> None:
    with pytest.raises(DataError, match="not a readable image"):
        preprocess_image(b"this is text, not a JPEG")
