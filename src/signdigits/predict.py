"""Predicting the digit of people's own photos with a trained model.

Each photo goes through the one preprocessing of training (:mod:`signdigits.data.preprocess`:
any size and mode, EXIF orientation honoured) and then through the model, in evaluation
mode. A folder stands for the files in it. A file that cannot be read is reported on its
own and the others are still predicted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from signdigits.data.cache import cache_dir
from signdigits.data.preprocess import preprocess_image
from signdigits.errors import InvalidArgumentError, ModelFileError, SignDigitsError
from signdigits.io import load_model
from signdigits.nn import Module
from signdigits.training import LAST_MODEL, predict_logits, softmax


@dataclass
class Prediction:
    """The result for one image: its digit and probability, the ``top`` digits with
    theirs, or the ``error`` that kept it from being read."""

    image: str
    digit: int | None = None
    probability: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)
    error: str | None = None
    input: np.ndarray | None = field(default=None, repr=False)  # what the network received

    def as_json(self) -> dict:
        if self.error is not None:
            return {"image": self.image, "error": self.error}
        return {
            "image": self.image,
            "digit": self.digit,
            "probability": self.probability,
            "top": [{"digit": d, "probability": p} for d, p in self.top],
        }


def last_model_path() -> Path:
    """The model file of the last ``signdigits train``, kept in the cache folder."""
    return cache_dir() / LAST_MODEL


def load_model_or_last(path: str | os.PathLike[str] | None) -> Module:
    """The model at ``path``, or the last trained one, or a one-line error saying how to
    make one."""
    if path is not None:
        return load_model(path)
    last = last_model_path()
    if not last.is_file():
        raise ModelFileError(
            "no model given and none trained yet; train one with `signdigits train`, or give "
            "a model file: signdigits predict MODEL.safetensors IMAGE..."
        )
    return load_model(last)


def expand_images(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The image paths: each file as given, each folder's visible files in name order."""
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            paths.append(path)
    return paths


def predict_images(
    model: Module, inputs: Sequence[str | os.PathLike[str]], top: int = 1
) -> list[Prediction]:
    """A ``Prediction`` for each image of ``inputs`` (folders expanded), in order."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidArgumentError(f"--top must be a whole number ≥ 1, got {top!r}")
    classes = model.spec["classes"]
    top = min(top, len(classes))
    results, images, readable = [], [], []
    for path in expand_images(inputs):
        result = Prediction(image=str(path))
        try:
            result.input = preprocess_image(path)
            images.append(result.input)
            readable.append(result)
        except SignDigitsError as error:
            result.error = str(error)
        except OSError as error:  # a folder that vanished, a file we may not read
            result.error = f"cannot read {path} ({error.strerror or error})"
        results.append(result)
    if images:
        probabilities = softmax(predict_logits(model, np.stack(images)).astype(np.float64))
        for result, row in zip(readable, probabilities, strict=True):
            order = np.argsort(-row, kind="stable")[:top]
            result.top = [(int(classes[i]), float(row[i])) for i in order]
            result.digit, result.probability = result.top[0]
    return results


def explain_all(
    model: Module, results: Sequence[Prediction], folder: str | os.PathLike[str]
) -> list[Path]:
    """For each predicted image, a picture of what the network looked at (see
    :mod:`signdigits.explain`) in ``folder``: its input, saliency and occlusion maps."""
    from signdigits import explain, plots

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"--explain {folder} is a file; give a folder for the pictures")
    written = []
    classes = list(model.spec["classes"])
    for number, result in enumerate(results, start=1):
        if result.error is not None or result.input is None:
            continue
        target = classes.index(result.digit)
        title = f"{Path(result.image).name}: {result.digit} ({100 * result.probability:.1f} %)"
        written.append(
            plots.explanation(
                result.input,
                explain.saliency(model, result.input, target),
                explain.occlusion(model, result.input, target),
                title,
                folder / f"{number:03d}-{Path(result.image).stem}.png",
            )
        )
    return written
