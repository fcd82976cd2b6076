"""One preprocessing for every image: the dataset's and any user's photo.

The steps reproduce how the Kaggle ``X.npy`` used by the tutorial was made:

1. honour the EXIF orientation, flatten any transparency onto white;
2. gray value by ITU-R 601 luma: ``v = 0.299 R + 0.587 G + 0.114 B``;
3. per-image min-max stretch to 0..255: ``v = 255 (v - min v) / (max v - min v)``;
4. bilinear resize to 64×64;
5. ``x = 1 - v / 255``: a float32 in [0, 1], dark pixels near 1.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from signdigits.errors import DataError

IMAGE_SIZE = 64
"""Side of the square images the models see."""

PREPROCESSING_VERSION = "1"
"""Changes whenever the steps above change, so that cached arrays are rebuilt."""

PREPROCESSING_STEPS = (
    "decode the image with Pillow and turn it as its EXIF orientation says",
    "integer or float gray images (Pillow modes I, I;16, F) keep their values; any other "
    "mode with transparency is composited onto opaque white, then converted to RGB",
    "gray value v = 0.299 R + 0.587 G + 0.114 B (ITU-R 601 luma), in float32",
    "stretch each image to 0..255: v = (v - min v) * (255 / (max v - min v)); an image "
    "with max v = min v is all zeros and skips the next steps",
    "resize to 64x64 with Pillow's bilinear filter on the float32 image "
    "(Image.resize((64, 64), Image.Resampling.BILINEAR), which widens the filter when "
    "shrinking), then clip to 0..255",
    "x = 1 - v / 255: float32 in [0, 1], dark pixels near 1",
    "the model's input is (N, 1, 64, 64): each image's 64x64 array as its one channel",
)
"""The steps of ``preprocess_image`` in plain words, for those who reproduce them outside
signdigits (an exported ONNX model carries them); they change with the version."""

_LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def open_image(source: str | Path | bytes, name: str | None = None) -> Image.Image:
    """Open an image file (a path or its bytes) with Pillow and decode it fully.

    Raises ``DataError`` naming the file when Pillow cannot read it.
    """
    label = name or (str(source) if not isinstance(source, bytes) else "the image")
    try:
        with warnings.catch_warnings():  # above Pillow's pixel limit: refused, not warned
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"{label} has more pixels than Pillow's limit of {Image.MAX_IMAGE_PIXELS:,}; it is "
            "refused as a possible decompression bomb (a photo of a hand needs far fewer)"
        ) from None
    except FileNotFoundError:
        raise DataError(f"image {label} does not exist; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{label} is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(
            f"{label} is not a readable image ({error}); give a JPEG, PNG or other "
            "image file that Pillow can open"
        ) from None
    return image


def _gray_values(image: Image.Image) -> np.ndarray:
    """The image's gray values as float32, any mode, before stretching."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return np.asarray(image, dtype=np.float32)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    return rgb @ _LUMA_601


def preprocess_image(image: Image.Image | str | Path | bytes) -> np.ndarray:
    """Turn one image into the model's input: a (64, 64) float32 array in [0, 1].

    Accepts a Pillow image in any mode and size, a path or the file's bytes.
    """
    if not isinstance(image, Image.Image):
        image = open_image(image)
    gray = _gray_values(image)
    low, high = float(gray.min()), float(gray.max())
    if high <= low:  # a blank image has no contrast to stretch, and no hand: all zeros
        return np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    stretched = (gray - low) * np.float32(255.0 / (high - low))
    resized = Image.fromarray(stretched.astype(np.float32)).resize(
        (IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR
    )
    values = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)
    return (1.0 - values / np.float32(255.0)).astype(np.float32)
