"""The one exception family of signdigits.

Every error a user can cause (bad data, a bad argument, a bad model file) is a
``SignDigitsError``. The command line turns it into one line on stderr and exit
code 2; anything else escaping is a bug in signdigits.
"""

from __future__ import annotations


class SignDigitsError(Exception):
    """Base of every error that a user can cause and fix."""


class DataError(SignDigitsError):
    """The dataset is missing, incomplete, corrupt or of the wrong shape."""


class InvalidArgumentError(SignDigitsError, ValueError):
    """An argument has a value outside what the function accepts."""


class ModelFileError(SignDigitsError):
    """A model file is missing, corrupt, tampered with or of another format."""


class ShapeError(SignDigitsError, ValueError):
    """Arrays of shapes that an operation cannot combine (they do not broadcast, or do not fit)."""


class IndexingError(SignDigitsError, IndexError):
    """An index that does not fit the tensor (out of range, or of a type that cannot index)."""


class TrainingError(SignDigitsError):
    """Training cannot go on: the cost or the parameters are no longer finite numbers."""


class ExportError(SignDigitsError):
    """A model cannot be exported: a layer with no ONNX form, or the ``onnx`` package is
    missing."""
