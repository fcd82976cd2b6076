"""signdigits: deep learning from scratch on the Sign Language Digits dataset."""

from __future__ import annotations

from signdigits.autograd import Tensor, gradcheck, no_grad
from signdigits.errors import DataError, InvalidArgumentError, ModelFileError, SignDigitsError

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "InvalidArgumentError",
    "ModelFileError",
    "SignDigitsError",
    "Tensor",
    "__version__",
    "gradcheck",
    "no_grad",
]
