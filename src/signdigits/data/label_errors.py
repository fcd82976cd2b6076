"""The dataset's known label errors: photos filed under one digit that show another.

A photo's label is the folder it is in. A few are in the wrong folder: ``label_errors.txt``
beside this module lists each, with the digit the photo shows and what gives it away.
Each was first a suspect of ``benchmarks/label_audit.py`` (its own label all but ruled
out by CNNs that never saw it) and then confirmed by eye beside typical photos of both
digits.

Training leaves them out of the parts it learns and validates from: one such photo in a
validation part of 165 can outweigh the other 164 in the validation loss (a confident
"wrong" answer costs about 20 nats), so the epoch kept would be the one least sure of the
right answer. The test parts keep every photo with its published label, so that test
accuracies stay comparable with others' on the same dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from signdigits.data.dataset import SignDigits
from signdigits.data.manifest import load_manifest

LABEL_ERRORS_PATH = Path(__file__).with_name("label_errors.txt")


@dataclass(frozen=True)
class LabelError:
    """``name`` (such as ``3/IMG_5108.JPG``) is filed under ``label`` but shows ``shows``."""

    name: str
    label: int
    shows: int
    why: str


@cache
def known_label_errors() -> tuple[LabelError, ...]:
    """The entries of ``label_errors.txt``: ``NAME DIGIT WHY…`` a line, ``#`` comments."""
    manifest = load_manifest()
    errors = []
    for line in LABEL_ERRORS_PATH.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, shows, why = line.split(maxsplit=2)
        if name not in manifest:
            raise ValueError(f"{LABEL_ERRORS_PATH.name}: {name} is not an image of the dataset")
        errors.append(LabelError(name, int(name.split("/", 1)[0]), int(shows), why))
    return tuple(errors)


def label_error_mask(dataset: SignDigits) -> np.ndarray:
    """(N,) bool, True for the dataset's images listed in ``label_errors.txt``. All False
    for the Kaggle arrays, which have no file names to find them by."""
    if dataset.names is None:
        return np.zeros(len(dataset), dtype=bool)
    listed = {error.name for error in known_label_errors()}
    return np.array([name in listed for name in dataset.names], dtype=bool)
