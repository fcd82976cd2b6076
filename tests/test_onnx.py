"""ONNX export (signdigits.io.export_onnx, `signdigits export`): every model kind and every
exportable layer, with non-default settings, gives under onnxruntime the probabilities
signdigits gives (≤ 1e-5, the same digit) on the whole test split, at batch 1 and 413; the
file passes onnx.checker's full check, takes images (N, 1, 64, 64) float32 and carries the
preprocessing, the classes and the versions; what cannot be exported is one clear error."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from signdigits import __version__, nn
from signdigits.autograd import Tensor, no_grad
from signdigits.data.preprocess import PREPROCESSING_STEPS, PREPROCESSING_VERSION
from signdigits.data.training import choose_classes, split_indices
from signdigits.errors import ExportError, InvalidArgumentError
from signdigits.io import export_onnx, load_model
from signdigits.models import build_model, default_spec
from signdigits.onnx_export import LAYERS, OPSET
from signdigits.training import predict_logits, softmax
from tests.conftest import CliRun

TOLERANCE = 1e-5
"""The largest difference allowed between onnxruntime's probabilities and signdigits'."""


@pytest.fixture(scope="module")
def test_images(dataset) -> Callable[[list[int]], np.ndarray]:
    """``test_images(classes)``: the test split of those digits for the seed 42, as training
    holds it out: (N, 64, 64) float32."""
    cache: dict[tuple[int, ...], np.ndarray] = {}

    def images(classes: list[int]) -> np.ndarray:
        key = tuple(classes)
        if key not in cache:
            chosen, labels = choose_classes(dataset, classes)
            cache[key] = chosen[split_indices(labels, 42, 0.0).test]
        return cache[key]

    return images


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's logits and probabilities for images (N, 64, 64)."""
    logits, probabilities = _session(path).run(None, {"images": images[:, None]})
    return logits, probabilities


def _probabilities(model: nn.Module, images: np.ndarray) -> np.ndarray:
    """signdigits' probabilities for images (N, 64, 64), as ``signdigits predict`` gives
    them; a plain Sequential without a spec is given (N, 1, 64, 64) as the ONNX model."""
    if "model" in getattr(model, "spec", {}):
        logits = predict_logits(model, images)
    else:
        with no_grad():
            logits = model.eval()(Tensor(images[:, None])).data
    return softmax(logits.astype(np.float64))


def _assert_same(model: nn.Module, path: Path, images: np.ndarray) -> float:
    """onnxruntime gives signdigits' probabilities and digits for ``images``, in one batch
    and one image at a time (the first few); returns the largest difference."""
    theirs_logits, theirs = _run(path, images)
    ours = _probabilities(model, images)
    assert theirs.shape == ours.shape and len(theirs) == len(images)
    assert theirs.dtype == theirs_logits.dtype == np.float32
    difference = float(np.abs(theirs - ours).max())
    assert difference <= TOLERANCE
    np.testing.assert_array_equal(theirs.argmax(axis=1), ours.argmax(axis=1))
    for index in range(3):  # the batch axis is dynamic: one image at a time too
        _, one = _run(path, images[index : index + 1])
        assert one.shape == (1, ours.shape[1])
        assert np.abs(one[0] - ours[index]).max() <= TOLERANCE
    return difference


def _randomize_batch_norm(model: nn.Module, rng: np.random.Generator) -> None:
    """Running statistics, γ and β far from their initial 0, 1, 1, 0."""
    for layer in model.modules():
        if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            shape = layer.running_mean.shape
            layer.running_mean[...] = rng.normal(0, 0.5, shape)
            layer.running_var[...] = rng.uniform(0.2, 3, shape)
            if layer.weight is not None:
                layer.weight.data[...] = rng.uniform(0.5, 2, shape)
            if layer.bias is not None:
                layer.bias.data[...] = rng.normal(0, 0.5, shape)


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


KINDS = {
    "logistic": (default_spec("logistic", [0, 1]), ["Flatten", "Gemm"]),
    "two-layer": (default_spec("two-layer", [0, 1]), ["Flatten", "Gemm", "Tanh", "Gemm"]),
    "softmax": (default_spec("softmax", list(range(10))), ["Flatten", "Gemm"]),
    "mlp": (
        default_spec("mlp", list(range(10))),
        ["Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm"],
    ),
    "cnn": (
        {**default_spec("cnn", list(range(10))), "channels": [4, 8]},
        ["Conv", "BatchNormalization", "Relu", "MaxPool"] * 2 + ["Flatten", "Gemm"],
    ),
}
ZERO_AND_LOGIT = ["Shape", "ConstantOfShape", "Concat"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_model_kind_gives_the_same_probabilities_on_the_test_split(
    kind, test_images, tmp_path
):
    spec, layers = KINDS[kind]
    rng = np.random.default_rng(7)
    model = build_model(spec, rng)
    _randomize_batch_norm(model, rng)
    path = export_onnx(model, tmp_path / f"{kind}.onnx")
    assert path == tmp_path / f"{kind}.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    images = test_images(spec["classes"])
    assert len(images) == (413 if len(spec["classes"]) == 10 else 83)
    _assert_same(model, path, images)
    tail = ZERO_AND_LOGIT if kind in ("logistic", "two-layer") else []
    assert _ops(path) == [*layers, *tail, "Softmax"]  # no Dropout: mlp and cnn have some


def test_the_default_cnn_exports_with_its_trained_shape(test_images, tmp_path):
    model = build_model(default_spec("cnn", list(range(10))), 3)
    _randomize_batch_norm(model, np.random.default_rng(3))
    path = export_onnx(model, tmp_path / "cnn.onnx")
    images = test_images(list(range(10)))[:16]
    _assert_same(model, path, images)
    proto = onnx.load(str(path))
    assert [i.dims for i in proto.graph.initializer if i.name == "0.weight"] == [[32, 1, 3, 3]]
    assert "Dropout" not in _ops(path)


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_the_input_outputs_opset_and_metadata(tmp_path):
    spec = default_spec("mlp", [3, 5, 7])
    path = export_onnx(build_model(spec, 0), tmp_path / "mlp.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", OPSET)]
    (image,) = proto.graph.input
    assert image.name == "images"
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(image) == ["N", 1, 64, 64]
    assert [(o.name, _dims(o)) for o in proto.graph.output] == [
        ("logits", ["N", 3]),
        ("probabilities", ["N", 3]),
    ]
    assert proto.producer_name == "signdigits" and proto.producer_version == __version__
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert set(metadata) == {"preprocessing", "classes", "signdigits_version", "architecture"}
    preprocessing = json.loads(metadata["preprocessing"])
    assert preprocessing["version"] == PREPROCESSING_VERSION
    assert preprocessing["steps"] == list(PREPROCESSING_STEPS)
    assert json.loads(metadata["classes"]) == [3, 5, 7]
    assert metadata["signdigits_version"] == __version__
    assert json.loads(metadata["architecture"]) == spec
    # The same through onnxruntime, as a user elsewhere reads it.
    session = _session(path)
    (given,) = session.get_inputs()
    assert (given.name, given.shape, given.type) == ("images", ["N", 1, 64, 64], "tensor(float)")
    assert json.loads(session.get_modelmeta().custom_metadata_map["classes"]) == [3, 5, 7]


def _layer_zoo(rng: np.random.Generator) -> nn.Sequential:
    """Every exportable layer, most with settings other than their defaults."""
    model = nn.Sequential(
        nn.Conv2d(1, 3, 5, stride=2, padding=0, rng=rng),  # 64 → 30
        nn.LeakyReLU(0.2),
        nn.MaxPool2d(3, stride=2),  # 30 → 14, windows overlapping
        nn.Sequential(  # nested
            nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 1), bias=False, rng=rng),
            nn.BatchNorm2d(4, eps=1e-3),  # (N, 4, 16, 8)
            nn.Identity(),
        ),
        nn.AvgPool2d(3, stride=(2, 1)),  # 16×8 → 7×6, the last row dropped
        nn.Sigmoid(),
        nn.Flatten(2),  # Reshape: (N, 4, 42)
        nn.BatchNorm1d(4, affine=False),
        nn.Linear(42, 5, rng=rng),  # MatMul and Add on three axes: (N, 4, 5)
        nn.Tanh(),
        nn.Flatten(),
        nn.Dropout(0.3, rng=rng),
        nn.Linear(20, 8, rng=rng),
        nn.BatchNorm1d(8, bias=False),
        nn.ReLU(),
        nn.Linear(8, 10, bias=False, rng=rng),
    )
    _randomize_batch_norm(model, rng)
    return model


def test_any_sequential_of_the_layers_exports_with_their_settings(test_images, tmp_path):
    model = _layer_zoo(np.random.default_rng(11))
    model.train()  # exported as in evaluation, and left in training mode
    path = export_onnx(model, tmp_path / "zoo.onnx")
    assert model.training and model[11].training
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    assert _ops(path) == [
        "Conv", "LeakyRelu", "MaxPool", "Conv", "BatchNormalization", "AveragePool",
        "Sigmoid", "Reshape", "BatchNormalization", "MatMul", "Add", "Tanh", "Flatten",
        "Gemm", "BatchNormalization", "Relu", "Gemm", "Softmax",
    ]  # fmt: skip
    _assert_same(model, path, test_images(list(range(10))))
    proto = onnx.load(str(path))
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    assert json.loads(metadata["classes"]) == list(range(10))  # no spec: the output's order
    assert "architecture" not in metadata
    names = {i.name for i in proto.graph.initializer}
    assert {"0.weight", "3.0.weight", "3.1.running_var", "12.weight"} <= names


def test_every_registered_layer_is_covered_by_these_tests():
    used = {type(m) for m in _layer_zoo(np.random.default_rng(0)).modules()}
    from signdigits.models import ZeroAndLogit

    assert set(LAYERS) <= used | {ZeroAndLogit}  # the logistic model has it


class Doubling(nn.Module):
    def forward(self, x):
        return x * 2


class MyReLU(nn.ReLU):
    def forward(self, x):
        return x.relu() * 3


@pytest.mark.parametrize(
    ("model", "says"),
    [
        (
            nn.Sequential(nn.Flatten(), nn.Linear(4096, 10, rng=0), Doubling()),
            "layer 2 is a tests.test_onnx.Doubling, which has no ONNX form",
        ),
        (
            nn.Sequential(nn.Flatten(), nn.Sequential(MyReLU()), nn.Linear(4096, 2, rng=0)),
            "layer 1.0 is a tests.test_onnx.MyReLU",
        ),
        (Doubling(), "the model itself is a tests.test_onnx.Doubling"),
        (
            nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False), nn.Flatten()),
            "layer 0 (BatchNorm2d) has no running statistics",
        ),
        (nn.Sequential(nn.Linear(4096, 10, rng=0)), "layer 0 (Linear) cannot take what comes"),
        (nn.Sequential(nn.Conv2d(1, 2, 3, rng=0)), "not logits (N, K)"),
    ],
)
def test_what_cannot_be_exported_is_one_clear_error(tmp_path, model, says):
    with pytest.raises(ExportError, match=r"^export_onnx: ") as caught:
        export_onnx(model, tmp_path / "model.onnx")
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_bad_destinations_and_arguments(tmp_path, monkeypatch):
    model = build_model(default_spec("softmax", [0, 1]), 0)
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(model, tmp_path)
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(model, tmp_path / "missing" / "model.onnx")
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportError, match="is a file, not a folder"):
        export_onnx(model, tmp_path / "file" / "model.onnx")
    with pytest.raises(InvalidArgumentError, match=r"nn\.Module"):
        export_onnx("model.safetensors", tmp_path / "model.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(ExportError, match=r"pip install 'signdigits\[onnx\]'"):
        export_onnx(model, tmp_path / "model.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # nothing half-written


def test_the_command_exports_a_saved_model(invoke_cli, model_file, test_images, tmp_path):
    out = tmp_path / "model.onnx"
    run: CliRun = invoke_cli("export", model_file, out)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (
        f"wrote {out}: softmax for the digits 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, ONNX opset {OPSET}, "
        "input images (N, 1, 64, 64) float32, outputs logits and probabilities"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    _assert_same(load_model(model_file), out, test_images(list(range(10))))


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (lambda model, tmp: (model, tmp), "is a folder"),
        (lambda model, tmp: (model, tmp / "missing" / "m.onnx"), "does not exist"),
        (lambda model, tmp: (model, tmp / "m.safetensors"), "must end in .onnx"),
        (lambda model, tmp: (tmp / "none.safetensors", tmp / "m.onnx"), "does not exist"),
        (lambda model, tmp: (tmp / "bad.safetensors", tmp / "m.onnx"), "not a signdigits model"),
        (lambda model, tmp: (model,), "Missing argument"),
    ],
)
def test_the_command_refuses_bad_arguments_in_one_line(
    invoke_cli, model_file, tmp_path, arguments, says
):
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    line = invoke_cli("export", *arguments(model_file, tmp_path)).error_line()
    assert says in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]
