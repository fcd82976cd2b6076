"""preprocess_image: any image in, a (64, 64) float32 in [0, 1] out, the same way for all."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from PIL import ExifTags, Image

from signdigits.data import SignDigits, preprocess_image
from signdigits.errors import DataError


def gradient_rgb(width: int, height: int) -> np.ndarray:
    """Dark on the left to light on the right, each channel a little apart, with some noise."""
    ramp = np.linspace(0.0, 215.0, width)[None, :, None] + np.array([0.0, 20.0, 40.0])
    noise = np.random.default_rng(0).integers(0, 8, size=(height, width, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


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


def test_transparency_is_flattened_onto_white() -> None:
    """Transparent pixels count as white paper, whatever colour they hold.

    Here they hold black, darker than the opaque gray: read without their alpha, they
    would be the ink.
    """
    rgba = np.zeros((40, 60, 4), dtype=np.uint8)
    rgba[:, :30] = (128, 128, 128, 255)  # left half: opaque gray; right half: transparent black
    on_white = np.full((40, 60, 3), 255, dtype=np.uint8)
    on_white[:, :30] = 128

    result = preprocess_image(Image.fromarray(rgba, mode="RGBA"))

    np.testing.assert_allclose(result, preprocess_image(Image.fromarray(on_white)), atol=1e-6)
    assert result[:, :28].min() > 0.99  # the gray is the darkest: ink, near 1
    assert result[:, 36:].max() < 0.01  # the transparent half is paper: near 0


def test_palette_transparency_is_flattened_onto_white() -> None:
    indices = np.zeros((20, 20), dtype=np.uint8)  # colour 0 on the left
    indices[:, 10:] = 1  # colour 1 on the right
    palette = Image.fromarray(indices, mode="P")
    palette.putpalette([128, 128, 128, 0, 0, 0])  # 0 gray, 1 black
    palette.info["transparency"] = 1  # the black is transparent

    result = preprocess_image(palette)

    assert result[:, :28].min() > 0.99  # gray: ink
    assert result[:, 36:].max() < 0.01  # transparent: paper


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


def test_the_first_image_of_digit_0_gives_the_datasets_first_array(
    dataset: SignDigits, image_names: list[str], image_bytes: Callable[[str], bytes]
) -> None:
    first_of_digit_0 = next(name for name in image_names if name.startswith("0/"))
    assert dataset.labels[0] == 0

    np.testing.assert_array_equal(
        preprocess_image(image_bytes(first_of_digit_0)), dataset.images[0]
    )


def test_bytes_that_are_not_an_image_raise_a_data_error() -> None:
    with pytest.raises(DataError, match="not a readable image"):
        preprocess_image(b"this is text, not a JPEG")
