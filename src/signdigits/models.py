"""The models signdigits trains, each built from :mod:`signdigits.nn` and described by a
small JSON-able **architecture spec**, from which it is rebuilt exactly (a model file
stores the spec beside the weights).

Every model takes images (N, 64, 64) or (N, 1, 64, 64) and gives one logit per class,
(N, K), for the softmax cross-entropy:

* ``logistic``: part 1's model, z = wᵀx + b on the 4,096 pixels. With two classes it gives
  the logits (0, z): softmax((0, z)) = (1 − σ(z), σ(z)), so cross-entropy on them is
  exactly part 1's loss −y log σ(z) − (1 − y) log(1 − σ(z)).
* ``two-layer``: part 2's network, 4096 → 3 tanh units → z, logits (0, z) likewise.
* ``softmax``: multinomial logistic regression, 4096 → K logits.
* ``mlp``: an L-layer ReLU network, 4096 → ``hidden`` … → K (``hidden`` settable).
* ``cnn``: the default; blocks of [conv 3×3, padding 1 → batch norm → ReLU → max-pool
  2×2] with ``channels`` (32, 64, 128), then dropout and a linear layer to K.

A spec is ``{"model": name, "classes": [digits], ...}`` with the model's own settings
(``hidden``, ``channels``, ``dropout``); ``build_model(spec, rng)`` checks it and builds
the model, ``default_spec(name, classes)`` gives the defaults.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from signdigits import nn
from signdigits.autograd import Tensor, concatenate
from signdigits.errors import InvalidArgumentError

MODELS = ("cnn", "mlp", "softmax", "logistic", "two-layer")
"""The models by name; the first is the default."""

IMAGE_SIZE = 64
PIXELS = IMAGE_SIZE * IMAGE_SIZE

_SETTINGS: dict[str, dict[str, Any]] = {
    "logistic": {},
    "two-layer": {"hidden": 3},
    "softmax": {},
    "mlp": {"hidden": [512, 256], "dropout": 0.2},
    "cnn": {"channels": [32, 64, 128], "dropout": 0.5},
}
"""Each model's settings, with their defaults."""


class ZeroAndLogit(nn.Module):
    """One logit z per image as the two logits (0, z): softmax of them is (1 − σ(z), σ(z))."""

    def forward(self, z: Tensor) -> Tensor:
        return concatenate([Tensor(np.zeros(z.shape, z.dtype)), z], axis=1)


def default_spec(model: str, classes: Sequence[int]) -> dict[str, Any]:
    """The spec of ``model`` with its default settings, for ``classes``."""
    if model not in _SETTINGS:
        raise InvalidArgumentError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    settings = {
        key: list(value) if isinstance(value, list) else value
        for key, value in _SETTINGS[model].items()
    }
    return {"model": model, "classes": [int(c) for c in classes], **settings}


def check_spec(spec: Any) -> dict[str, Any]:
    """``spec`` if it describes a model signdigits knows, with valid settings; otherwise an
    ``InvalidArgumentError`` saying what is wrong."""
    if not isinstance(spec, dict):
        raise InvalidArgumentError(
            f"an architecture must be a JSON object, got {type(spec).__name__}"
        )
    model = spec.get("model")
    if not isinstance(model, str) or model not in _SETTINGS:
        raise InvalidArgumentError(
            f"the architecture names the model {model!r}, which signdigits does not know "
            f"(it knows {', '.join(MODELS)})"
        )
    expected = {"model", "classes", *_SETTINGS[model]}
    if set(spec) != expected:
        raise InvalidArgumentError(
            f"the {model} architecture must have exactly the keys {sorted(expected)}, "
            f"got {sorted(spec)}"
        )
    classes = spec["classes"]
    if (
        not isinstance(classes, list)
        or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 9 for c in classes)
        or len(set(classes)) != len(classes)
        or len(classes) < 2
    ):
        raise InvalidArgumentError(
            f"the architecture's classes must be two or more different digits 0–9, got {classes!r}"
        )
    if model in ("logistic", "two-layer") and len(classes) != 2:
        raise InvalidArgumentError(
            f"the {model} model tells two classes apart, not {len(classes)}; use softmax, mlp "
            "or cnn for more"
        )
    if model == "two-layer" and not _is_count(spec["hidden"]):
        raise InvalidArgumentError(f"two-layer: hidden must be a size ≥ 1, got {spec['hidden']!r}")
    if model == "mlp":
        hidden = spec["hidden"]
        if not isinstance(hidden, list) or not hidden or not all(_is_count(h) for h in hidden):
            raise InvalidArgumentError(f"mlp: hidden must be layer sizes ≥ 1, got {hidden!r}")
    if "channels" in spec:
        channels = spec["channels"]
        if (
            not isinstance(channels, list)
            or not 1 <= len(channels) <= 6
            or not all(_is_count(c) for c in channels)
        ):
            raise InvalidArgumentError(
                f"cnn: channels must be 1 to 6 channel counts ≥ 1, got {channels!r}"
            )
    if "dropout" in spec:
        p = spec["dropout"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p < 1:
            raise InvalidArgumentError(f"{model}: dropout must be in [0, 1), got {p!r}")
    return spec


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def state_size(spec: dict[str, Any]) -> int:
    """The number of values in the ``state_dict`` of the model ``spec`` describes (weights,
    biases, batch norm's statistics), worked out without building it."""
    spec = check_spec(spec)
    model, classes = spec["model"], len(spec["classes"])
    if model == "logistic":
        return PIXELS + 1
    if model == "two-layer":
        hidden = spec["hidden"]
        return PIXELS * hidden + hidden + hidden + 1
    if model == "softmax":
        return PIXELS * classes + classes
    if model == "mlp":
        widths = [PIXELS, *spec["hidden"], classes]
        return sum(a * b + b for a, b in itertools.pairwise(widths))
    total, channels_in, side = 0, 1, IMAGE_SIZE
    for channels in spec["channels"]:
        total += channels_in * channels * 9 + channels  # the convolution
        total += 4 * channels + 1  # batch norm: γ, β, running mean and variance, the count
        channels_in, side = channels, side // 2
    return total + channels_in * side * side * classes + classes


def build_model(spec: dict[str, Any], rng: np.random.Generator | int) -> nn.Sequential:
    """The model ``spec`` describes, its initial weights drawn from ``rng`` (which the
    dropout layers also keep, for their masks); ``model.spec`` is the spec."""
    spec = check_spec(spec)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    model = _layers(spec, rng)
    model.spec = spec
    return model


def _layers(spec: dict[str, Any], rng: np.random.Generator) -> nn.Sequential:
    model, classes = spec["model"], len(spec["classes"])
    if model == "logistic":
        return nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, 1, rng=rng), ZeroAndLogit())
    if model == "two-layer":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(PIXELS, spec["hidden"], rng=rng),
            nn.Tanh(),
            nn.Linear(spec["hidden"], 1, rng=rng),
            ZeroAndLogit(),
        )
    if model == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, classes, rng=rng))
    if model == "mlp":
        layers: list[nn.Module] = [nn.Flatten()]
        width = PIXELS
        for size in spec["hidden"]:
            layers += [nn.Linear(width, size, rng=rng), nn.ReLU()]
            if spec["dropout"]:
                layers.append(nn.Dropout(spec["dropout"], rng=rng))
            width = size
        layers.append(nn.Linear(width, classes, rng=rng))
        return nn.Sequential(*layers)
    layers = []
    channels_in, side = 1, IMAGE_SIZE
    for channels in spec["channels"]:
        layers += [
            nn.Conv2d(channels_in, channels, 3, padding=1, rng=rng),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels_in, side = channels, side // 2
    layers += [nn.Flatten(), nn.Dropout(spec["dropout"], rng=rng)]
    layers.append(nn.Linear(channels_in * side * side, classes, rng=rng))
    return nn.Sequential(*layers)


def as_model_input(images: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Images (N, 64, 64) in the layout the model takes: (N, 1, 64, 64) for the CNN."""
    return images[:, None] if spec["model"] == "cnn" else images
