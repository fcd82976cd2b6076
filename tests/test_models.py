"""The models of signdigits.models: each builds from its default spec and gives (N, K) logits;
logistic and two-layer give the logits (0, z), whose cross-entropy is part 1's loss; one spec
and one seed give one model; check_spec refuses every malformed spec with a message that
names the problem; dropout draws its masks from the run's Generator."""

from __future__ import annotations

import json

import numpy as np
import pytest

from signdigits import functional as F
from signdigits import nn, tutorial
from signdigits.autograd import Tensor, no_grad
from signdigits.errors import InvalidArgumentError
from signdigits.models import (
    MODELS,
    PIXELS,
    ZeroAndLogit,
    as_model_input,
    build_model,
    check_spec,
    default_spec,
)

BINARY = ("logistic", "two-layer")
"""The models that tell two classes apart (part 1's and part 2's)."""

MULTI = tuple(name for name in MODELS if name not in BINARY)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64, 64), dtype=np.float32)


def _logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    with no_grad():
        return model(Tensor(as_model_input(images, model.spec))).data


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return list(first) == list(second) and all(
        first[name].dtype == second[name].dtype and np.array_equal(first[name], second[name])
        for name in first
    )


def _specs() -> list[tuple[str, list[int]]]:
    cases = [(name, [0, 1]) for name in BINARY]
    cases += [(name, list(range(10))) for name in MULTI]
    cases += [(name, [2, 5, 7]) for name in MULTI]
    return cases


# -- building and output shapes ---------------------------------------------------------------
def test_models_lists_the_default_cnn_first_and_every_model_has_a_default_spec():
    assert MODELS[0] == "cnn"
    assert set(MODELS) == {"cnn", "mlp", "softmax", "logistic", "two-layer"}
    for name in MODELS:
        spec = default_spec(name, [3, 4])
        assert spec["model"] == name and spec["classes"] == [3, 4]
        assert check_spec(spec) is spec


@pytest.mark.parametrize(("name", "classes"), _specs(), ids=lambda c: str(c))
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_every_model_gives_one_logit_per_class_for_each_image(name, classes, n, training):
    spec = default_spec(name, classes)
    model = build_model(spec, 0).train(training)
    logits = _logits(model, _images(n))
    assert logits.shape == (n, len(classes))
    assert logits.dtype == np.float32
    assert np.isfinite(logits).all()


def test_as_model_input_adds_a_channel_axis_for_the_cnn_only():
    images = _images(3)
    assert as_model_input(images, default_spec("cnn", [0, 1])).shape == (3, 1, 64, 64)
    for name in ("mlp", "softmax", "logistic", "two-layer"):
        assert as_model_input(images, default_spec(name, [0, 1])).shape == (3, 64, 64)


def test_default_spec_refuses_an_unknown_model():
    with pytest.raises(InvalidArgumentError, match="unknown model 'resnet'"):
        default_spec("resnet", [0, 1])


def test_default_spec_gives_fresh_lists_each_time():
    first = default_spec("mlp", [0, 1])
    first["hidden"].append(7)
    assert default_spec("mlp", [0, 1])["hidden"] == [512, 256]


# -- logistic and two-layer: logits (0, z), part 1's loss ---------------------------------------
def test_zero_and_logit_puts_a_zero_logit_before_z():
    z = np.array([[-2.0], [0.5], [3.0]])
    logits = ZeroAndLogit()(Tensor(z)).data
    assert logits.dtype == np.float64
    np.testing.assert_array_equal(logits, np.hstack([np.zeros_like(z), z]))


@pytest.mark.parametrize("seed", range(5))
def test_cross_entropy_of_zero_and_z_is_part_ones_loss(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 4, size=50)
    z[:2] = [-40.0, 40.0]  # where σ(z) rounds to 0 and 1
    y = rng.integers(0, 2, size=50)
    logits = ZeroAndLogit()(Tensor(z[:, None]))
    loss = F.cross_entropy(logits, y).item()
    expected = float(np.mean(tutorial.cross_entropy_loss(z, y)))
    assert loss == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_softmax_of_zero_and_z_is_part_ones_sigmoid():
    z = np.linspace(-8, 8, 17)
    logits = ZeroAndLogit()(Tensor(z[:, None])).data
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probabilities[:, 1], tutorial.sigmoid(z), rtol=1e-12)
    np.testing.assert_allclose(probabilities[:, 0], 1 - tutorial.sigmoid(z), rtol=1e-12)


def _binary_z(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """The model's z computed here from its weights, in float64."""
    state = {name: array.astype(np.float64) for name, array in model.state_dict().items()}
    x = images.reshape(len(images), PIXELS).astype(np.float64)
    if model.spec["model"] == "logistic":
        return (x @ state["1.weight"].T + state["1.bias"])[:, 0]
    hidden = np.tanh(x @ state["1.weight"].T + state["1.bias"])
    return (hidden @ state["3.weight"].T + state["3.bias"])[:, 0]


@pytest.mark.parametrize("name", BINARY)
@pytest.mark.parametrize("seed", range(3))
def test_binary_models_give_logits_zero_and_z_with_part_ones_loss(name, seed):
    model = build_model(default_spec(name, [0, 1]), seed)
    images = _images(8, seed).astype(np.float64)
    y = np.random.default_rng(seed).integers(0, 2, size=8)
    logits = _logits(model, images)  # float64 images give float64 logits
    assert logits.dtype == np.float64
    z = _binary_z(model, images)
    np.testing.assert_array_equal(logits[:, 0], 0.0)
    np.testing.assert_allclose(logits[:, 1], z, rtol=1e-9, atol=1e-9)
    loss = F.cross_entropy(Tensor(logits), y).item()
    assert loss == pytest.approx(float(np.mean(tutorial.cross_entropy_loss(z, y))), abs=1e-6)


# -- one spec, one seed, one model --------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_the_same_spec_and_seed_give_identical_weights(name):
    spec = default_spec(name, [0, 1])
    assert _same_state(build_model(spec, 11), build_model(spec, 11))


@pytest.mark.parametrize("name", MODELS)
def test_a_different_seed_gives_different_weights(name):
    spec = default_spec(name, [0, 1])
    first, second = build_model(spec, 11).state_dict(), build_model(spec, 12).state_dict()
    first_layer = "0.weight" if name == "cnn" else "1.weight"
    assert not np.array_equal(first[first_layer], second[first_layer])


@pytest.mark.parametrize("name", MODELS)
def test_an_int_seed_is_the_generator_made_from_it(name):
    spec = default_spec(name, [0, 1])
    assert _same_state(build_model(spec, 5), build_model(spec, np.random.default_rng(5)))


@pytest.mark.parametrize(("name", "classes"), _specs(), ids=lambda c: str(c))
def test_a_spec_survives_json_and_rebuilds_the_same_model(name, classes):
    spec = default_spec(name, classes)
    again = json.loads(json.dumps(spec))
    assert again == spec
    model, rebuilt = build_model(spec, 3), build_model(again, 3)
    assert rebuilt.spec == spec
    assert _same_state(model, rebuilt)
    images = _images(2)
    np.testing.assert_array_equal(_logits(model.eval(), images), _logits(rebuilt.eval(), images))


@pytest.mark.parametrize("name", MODELS)
def test_model_spec_is_the_spec_it_was_built_from(name):
    spec = default_spec(name, [1, 4])
    model = build_model(spec, 0)
    assert model.spec == spec
    assert model.spec == default_spec(name, [1, 4])


def test_model_settings_shape_the_layers():
    mlp = build_model({"model": "mlp", "classes": [0, 1, 2], "hidden": [7], "dropout": 0}, 0)
    assert [array.shape for array in mlp.state_dict().values()] == [
        (7, PIXELS),
        (7,),
        (3, 7),
        (3,),
    ]
    assert not any(isinstance(module, nn.Dropout) for module in mlp.modules())
    two_layer = build_model({"model": "two-layer", "classes": [0, 1], "hidden": 5}, 0)
    assert two_layer.state_dict()["1.weight"].shape == (5, PIXELS)
    cnn = build_model({"model": "cnn", "classes": [0, 1], "channels": [4, 8], "dropout": 0.0}, 0)
    assert cnn.state_dict()["4.weight"].shape == (8, 4, 3, 3)
    assert _logits(cnn, _images(2)).shape == (2, 2)


# -- check_spec refuses what it does not know ---------------------------------------------------
def _with(name: str, **changes) -> dict:
    spec = default_spec(name, [0, 1, 2] if name not in BINARY else [0, 1])
    spec.update(changes)
    return spec


def _without(name: str, key: str) -> dict:
    spec = default_spec(name, [0, 1])
    del spec[key]
    return spec


KEYS = "must have exactly the keys"
CLASSES = "classes must be two or more different digits 0–9"
MLP_HIDDEN = "mlp: hidden must be layer sizes ≥ 1"
TWO_LAYER_HIDDEN = "two-layer: hidden must be a size ≥ 1"
CHANNELS = "cnn: channels must be 1 to 6 channel counts ≥ 1"

BAD_SPECS = {
    "a list": (["cnn", [0, 1]], "must be a JSON object, got list"),
    "None": (None, "must be a JSON object, got NoneType"),
    "a JSON string": ('{"model": "cnn"}', "must be a JSON object, got str"),
    "an unknown model": ({"model": "resnet", "classes": [0, 1]}, "'resnet', which signdigits"),
    "no model": ({"classes": [0, 1]}, "names the model None, which signdigits does not know"),
    "a model name in another case": (_with("cnn", model="CNN"), "'CNN', which signdigits"),
    "no classes": (_without("softmax", "classes"), KEYS),
    "no dropout": (_without("cnn", "dropout"), KEYS),
    "no channels": (_without("cnn", "channels"), KEYS),
    "no hidden": (_without("two-layer", "hidden"), KEYS),
    "an extra key": (_with("softmax", hidden=3), KEYS),
    "another model's key": (_with("mlp", channels=[32]), KEYS),
    "classes a tuple": (_with("softmax", classes=(0, 1)), CLASSES),
    "classes a string": (_with("softmax", classes="01"), CLASSES),
    "classes a dict": (_with("softmax", classes={0: 0, 1: 1}), CLASSES),
    "duplicate classes": (_with("softmax", classes=[3, 3, 4]), CLASSES),
    "the digit 10": (_with("softmax", classes=[9, 10]), CLASSES),
    "a negative digit": (_with("softmax", classes=[-1, 0]), CLASSES),
    "a bool class": (_with("softmax", classes=[0, True]), CLASSES),
    "a float class": (_with("softmax", classes=[0, 1.0]), CLASSES),
    "a string class": (_with("softmax", classes=["0", "1"]), CLASSES),
    "one class": (_with("softmax", classes=[3]), CLASSES),
    "no classes at all": (_with("softmax", classes=[]), CLASSES),
    "logistic with 3 classes": (_with("logistic", classes=[0, 1, 2]), "logistic model tells two"),
    "two-layer with 3 classes": (
        _with("two-layer", classes=[0, 1, 2]),
        "two-layer model tells two classes apart, not 3",
    ),
    "mlp hidden []": (_with("mlp", hidden=[]), MLP_HIDDEN),
    "mlp hidden [0]": (_with("mlp", hidden=[0]), MLP_HIDDEN),
    "mlp hidden '256'": (_with("mlp", hidden="256"), MLP_HIDDEN),
    "mlp hidden 256": (_with("mlp", hidden=256), MLP_HIDDEN),
    "mlp hidden [256.0]": (_with("mlp", hidden=[256.0]), MLP_HIDDEN),
    "mlp hidden [True]": (_with("mlp", hidden=[True]), MLP_HIDDEN),
    "two-layer hidden 0": (_with("two-layer", hidden=0), TWO_LAYER_HIDDEN),
    "two-layer hidden [3]": (_with("two-layer", hidden=[3]), TWO_LAYER_HIDDEN),
    "two-layer hidden True": (_with("two-layer", hidden=True), TWO_LAYER_HIDDEN),
    "two-layer hidden 3.0": (_with("two-layer", hidden=3.0), TWO_LAYER_HIDDEN),
    "cnn channels []": (_with("cnn", channels=[]), CHANNELS),
    "cnn channels [32, 0]": (_with("cnn", channels=[32, 0]), CHANNELS),
    "cnn channels of 7 blocks": (_with("cnn", channels=[4] * 7), CHANNELS),
    "cnn channels 32": (_with("cnn", channels=32), CHANNELS),
    "cnn channels [-8]": (_with("cnn", channels=[-8]), CHANNELS),
}
for _name in ("mlp", "cnn"):
    for _p in (-0.1, 1.0, 1.5, True, "0.5", None, float("nan"), float("inf")):
        BAD_SPECS[f"{_name} dropout {_p!r}"] = (
            _with(_name, dropout=_p),
            f"{_name}: dropout must be in [0, 1), got {_p!r}",
        )


@pytest.mark.parametrize(("spec", "says"), list(BAD_SPECS.values()), ids=list(BAD_SPECS))
def test_check_spec_refuses_a_bad_spec_naming_the_problem(spec, says):
    with pytest.raises(InvalidArgumentError) as caught:
        check_spec(spec)
    assert says in str(caught.value)


def test_the_key_error_lists_the_expected_and_the_given_keys():
    with pytest.raises(InvalidArgumentError) as caught:
        check_spec(_with("softmax", hidden=3))
    message = str(caught.value)
    assert "['classes', 'model']" in message and "['classes', 'hidden', 'model']" in message


@pytest.mark.parametrize(
    ("spec", "says"),
    [BAD_SPECS[key] for key in ("an unknown model", "duplicate classes", "cnn dropout 1.0")],
)
def test_build_model_refuses_what_check_spec_refuses(spec, says):
    with pytest.raises(InvalidArgumentError) as caught:
        build_model(spec, 0)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "spec",
    [
        _with("mlp", dropout=0),
        _with("mlp", dropout=0.0),
        _with("cnn", dropout=0.999, channels=[2]),
        _with("cnn", channels=[1] * 6),
        _with("softmax", classes=list(range(10))),
        _with("mlp", hidden=[1]),
        _with("two-layer", hidden=1),
        _with("logistic", classes=[9, 0]),
    ],
    ids=str,
)
def test_check_spec_accepts_the_edges_of_what_is_valid(spec):
    assert check_spec(spec) is spec
    model = build_model(spec, 0)
    assert _logits(model, _images(2)).shape == (2, len(spec["classes"]))


# -- dropout draws from the run's Generator ------------------------------------------------------
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_dropout_layers_keep_the_generator_given_to_build_model(name):
    rng = np.random.default_rng(8)
    model = build_model(default_spec(name, [0, 1]), rng)
    dropouts = [module for module in model.modules() if isinstance(module, nn.Dropout)]
    assert dropouts
    assert all(layer.rng is rng for layer in dropouts)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_dropout_masks_come_from_the_runs_seed(name):
    spec = default_spec(name, [0, 1])
    images = _images(4)

    def train_logits(seed: int, draw_first: bool = False) -> np.ndarray:
        rng = np.random.default_rng(seed)
        model = build_model(spec, rng)
        if draw_first:
            rng.random()  # the shared Generator moves on: the masks change
        return _logits(model, images)

    first = train_logits(8)
    np.testing.assert_array_equal(first, train_logits(8))
    assert not np.array_equal(first, train_logits(8, draw_first=True))
    eval_model = build_model(spec, 8).eval()
    assert not np.array_equal(first, _logits(eval_model, images))  # dropout was on
