"""signdigits: deep learning from scratch on the Sign Language Digits dataset."""

from __future__ import annotations

from signdigits.errors import DataError, InvalidArgumentError, ModelFileError, SignDigitsError

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "InvalidArgumentError",
    "ModelFileError",
    "SignDigitsError",
    "__version__",
]
