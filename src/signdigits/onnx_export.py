"""ONNX export: ``export_onnx(model, path)`` (also ``signdigits.io.export_onnx``) and
``signdigits export MODEL OUT.onnx``.

The export walks the module tree in order, and one registry, ``LAYERS``, maps each layer
class to the ONNX nodes that compute what it computes **in evaluation mode**:

==================  ===========================================================
``Sequential``      its layers, one after the other (nested ones too)
``Linear``          ``Gemm(x, W, b, transB=1)`` = x Wᵀ + b (``MatMul`` then ``Add``
                    on input of more than two axes)
``Conv2d``          ``Conv`` with its ``kernel_shape``, ``strides`` and ``pads``
``MaxPool2d``       ``MaxPool`` (kernel, strides; windows that do not fit are
                    dropped, as ``ceil_mode=0``)
``AvgPool2d``       ``AveragePool`` likewise (no padding)
``BatchNorm1d/2d``  ``BatchNormalization`` in inference form, from the running
                    statistics: y = γ (x − μ) / √(σ² + ε) + β
``ReLU`` …          ``Relu``, ``LeakyRelu(alpha=negative_slope)``, ``Tanh``,
                    ``Sigmoid``
``Flatten``         ``Flatten(axis=1)``, or ``Reshape`` for other axes
``Dropout``         nothing: in evaluation it is the identity (``Identity`` too)
``ZeroAndLogit``    the logits (0, z) of ``logistic`` and ``two-layer``:
                    ``Concat(ConstantOfShape(Shape(z)), z)`` on axis 1
==================  ===========================================================

The class must be exactly one of these: a subclass may compute something else, so it is
refused like any other layer, by an ``ExportError`` naming its class and its position in
the model (``2.1`` is layer 1 of layer 2, as in ``state_dict`` keys).

The ONNX model (opset ``OPSET``, checked by ``onnx.checker`` with ``full_check``):

* input ``images``: float32 ``(N, 1, 64, 64)``, N dynamic, the preprocessed images
  (``signdigits.data.preprocess.preprocess_image`` of each photo, as its one channel);
  models of flattened pixels start with their own ``Flatten``, so every kind takes this;
* outputs ``logits`` (N, K) and ``probabilities`` (N, K) = ``Softmax(logits, axis=1)``,
  float32, column k for the digit ``classes[k]``;
* metadata (``metadata_props``, strings): ``preprocessing`` (JSON: its ``version`` and
  ``steps`` in plain words, see ``PREPROCESSING_STEPS``), ``classes`` (JSON),
  ``signdigits_version``, and ``architecture`` (the JSON spec) when the model has a spec;
  a model without one (a plain ``nn.Sequential``) has the classes 0 … K − 1.

Weights are stored as float32 under their ``state_dict`` names. The file is written
atomically; its folder must exist.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from signdigits import __version__, nn
from signdigits.atomic import atomic_write
from signdigits.autograd import Tensor, no_grad
from signdigits.data.preprocess import IMAGE_SIZE, PREPROCESSING_STEPS, PREPROCESSING_VERSION
from signdigits.errors import ExportError, InvalidArgumentError, SignDigitsError
from signdigits.models import ZeroAndLogit

OPSET = 17
"""The ONNX opset of the exported models (onnxruntime 1.13 and later run it)."""

INPUT = "images"
OUTPUTS = ("logits", "probabilities")
INPUT_SHAPE = ("N", 1, IMAGE_SIZE, IMAGE_SIZE)
"""The input every exported model takes: preprocessed images, N of them."""


@dataclass
class _Value:
    """A value of the graph: its ONNX name and what signdigits computes for it on a sample
    batch (its shape and dtype guide the nodes that use it)."""

    name: str
    sample: np.ndarray


@dataclass
class _Graph:
    """The nodes and weights of the ONNX graph being built."""

    onnx: Any  # the onnx package, imported when export_onnx runs
    nodes: list[Any] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)

    def weight(self, where: str, name: str, array: np.ndarray, dtype: Any = np.float32) -> str:
        """Add a weight named as in ``state_dict`` (``where.name``); return its name."""
        full = f"{where}.{name}" if where else name
        array = np.ascontiguousarray(array, dtype)
        self.weights.append(self.onnx.numpy_helper.from_array(array, full))
        return full

    def node(self, op: str, inputs: list[str], where: str, **attributes: Any) -> str:
        output = f"{where}/{op}" if where else op
        self.nodes.append(
            self.onnx.helper.make_node(op, inputs, [output], name=output, **attributes)
        )
        return output


Exporter = Callable[[_Graph, Any, _Value, str, np.ndarray], str]
"""``exporter(graph, layer, x, where, y)``: add the layer's nodes for the input ``x`` (``y``
is what the layer gives on ``x.sample``); return the name of its output."""

LAYERS: dict[type[nn.Module], Exporter] = {}
"""The registry: layer class → the function that adds its ONNX nodes."""


def _exports(*classes: type[nn.Module]) -> Callable[[Exporter], Exporter]:
    def register(exporter: Exporter) -> Exporter:
        for cls in classes:
            LAYERS[cls] = exporter
        return exporter

    return register


@_exports(nn.Dropout, nn.Identity)
def _identity(graph: _Graph, layer: Any, x: _Value, where: str, y: np.ndarray) -> str:
    return x.name


@_exports(nn.Linear)
def _linear(graph: _Graph, layer: nn.Linear, x: _Value, where: str, y: np.ndarray) -> str:
    bias = [] if layer.bias is None else [graph.weight(where, "bias", layer.bias.data)]
    if x.sample.ndim == 2:
        weight = graph.weight(where, "weight", layer.weight.data)
        return graph.node("Gemm", [x.name, weight, *bias], where, transB=1)
    weight = graph.weight(where, "weight.T", layer.weight.data.T)
    product = graph.node("MatMul", [x.name, weight], where)
    return graph.node("Add", [product, *bias], where) if bias else product


@_exports(nn.Conv2d)
def _conv2d(graph: _Graph, layer: nn.Conv2d, x: _Value, where: str, y: np.ndarray) -> str:
    bias = [] if layer.bias is None else [graph.weight(where, "bias", layer.bias.data)]
    weight = graph.weight(where, "weight", layer.weight.data)
    (ph, pw) = layer.padding
    return graph.node(
        "Conv",
        [x.name, weight, *bias],
        where,
        kernel_shape=list(layer.kernel_size),
        strides=list(layer.stride),
        pads=[ph, pw, ph, pw],
    )


def _pair(value: Any) -> list[int]:
    return [int(v) for v in value] if isinstance(value, tuple | list) else [int(value)] * 2


@_exports(nn.MaxPool2d, nn.AvgPool2d)
def _pool(graph: _Graph, layer: Any, x: _Value, where: str, y: np.ndarray) -> str:
    op = "MaxPool" if isinstance(layer, nn.MaxPool2d) else "AveragePool"
    return graph.node(
        op, [x.name], where, kernel_shape=_pair(layer.kernel_size), strides=_pair(layer.stride)
    )


@_exports(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(graph: _Graph, layer: Any, x: _Value, where: str, y: np.ndarray) -> str:
    if layer.running_mean is None:
        raise ExportError(
            f"export_onnx: layer {where} ({type(layer).__name__}) has no running statistics "
            "(track_running_stats=False): it normalises with each batch's own, which has no "
            "inference form to export"
        )
    channels = layer.num_features
    scale = layer.weight.data if layer.weight is not None else np.ones(channels)
    shift = layer.bias.data if layer.bias is not None else np.zeros(channels)
    inputs = [
        x.name,
        graph.weight(where, "weight", scale),
        graph.weight(where, "bias", shift),
        graph.weight(where, "running_mean", layer.running_mean),
        graph.weight(where, "running_var", layer.running_var),
    ]
    return graph.node("BatchNormalization", inputs, where, epsilon=float(layer.eps))


def _activation(op: str) -> Exporter:
    def export(graph: _Graph, layer: Any, x: _Value, where: str, y: np.ndarray) -> str:
        return graph.node(op, [x.name], where)

    return export


for _layer, _op in ((nn.ReLU, "Relu"), (nn.Tanh, "Tanh"), (nn.Sigmoid, "Sigmoid")):
    LAYERS[_layer] = _activation(_op)


@_exports(nn.LeakyReLU)
def _leaky_relu(graph: _Graph, layer: nn.LeakyReLU, x: _Value, where: str, y: np.ndarray) -> str:
    return graph.node("LeakyRelu", [x.name], where, alpha=float(layer.negative_slope))


@_exports(nn.Flatten)
def _flatten(graph: _Graph, layer: nn.Flatten, x: _Value, where: str, y: np.ndarray) -> str:
    rank = x.sample.ndim
    if layer.start_dim % rank == 1 and layer.end_dim % rank == rank - 1:
        return graph.node("Flatten", [x.name], where, axis=1)
    # Any other axes: Reshape to the shape signdigits gives, the batch axis kept as it is
    # (0 copies the input's size) or, when it is merged into the first, inferred (-1).
    shape = list(y.shape)
    shape[0] = 0 if layer.start_dim % rank > 0 else -1
    target = graph.weight(where, "shape", np.array(shape), np.int64)
    return graph.node("Reshape", [x.name, target], where)


@_exports(ZeroAndLogit)
def _zero_and_logit(graph: _Graph, layer: Any, x: _Value, where: str, y: np.ndarray) -> str:
    zero = graph.onnx.helper.make_tensor("zero", graph.onnx.TensorProto.FLOAT, [1], [0.0])
    shape = graph.node("Shape", [x.name], where)
    zeros = graph.node("ConstantOfShape", [shape], where, value=zero)
    return graph.node("Concat", [zeros, x.name], where, axis=1)


def _walk(graph: _Graph, layer: nn.Module, x: _Value, where: str) -> _Value:
    """Add the nodes of ``layer`` (at position ``where``) for the input ``x``."""
    if type(layer) is nn.Sequential:
        for name, child in layer.named_children():
            x = _walk(graph, child, x, f"{where}.{name}" if where else name)
        return x
    exporter = LAYERS.get(type(layer))
    position = f"layer {where}" if where else "the model itself"
    if exporter is None:
        known = ", ".join(sorted({cls.__name__ for cls in LAYERS} | {"Sequential"}))
        raise ExportError(
            f"export_onnx: {position} is a {type(layer).__module__}.{type(layer).__qualname__}, "
            f"which has no ONNX form; the layers that export are {known}"
        )
    try:
        y = layer(Tensor(x.sample)).data
    except SignDigitsError as error:
        raise ExportError(
            f"export_onnx: {position} ({type(layer).__name__}) cannot take what comes "
            f"before it, of shape (N, {', '.join(map(str, x.sample.shape[1:]))}): {error}"
        ) from None
    return _Value(exporter(graph, layer, x, where, y), y)


def export_onnx(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` as an ONNX model, atomically; return the path.

    ``model`` is a model of :mod:`signdigits.models` (``build_model``, ``load_model``) or
    any ``nn.Sequential`` of the layers in ``LAYERS`` that takes images (N, 1, 64, 64) and
    gives logits (N, K). It is exported as in evaluation mode (batch norm from its running
    statistics, no dropout) and left in the mode it was in. See the module's docstring for
    the graph, its names and metadata; an unsupported layer is an ``ExportError`` naming it.
    """
    if not isinstance(model, nn.Module):
        raise InvalidArgumentError(
            f"export_onnx: model must be a signdigits nn.Module, got {type(model).__name__}"
        )
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(
            f"export_onnx: path must be a file path, got {type(path).__name__}"
        )
    path = Path(path)
    check_destination(path)
    try:
        import onnx
        import onnx.checker
        import onnx.numpy_helper
    except ImportError:
        raise ExportError(
            "export_onnx needs the onnx package: pip install 'signdigits[onnx]'"
        ) from None

    graph = _Graph(onnx)
    sample = np.zeros((1, *INPUT_SHAPE[1:]), np.float32)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            logits = _walk(graph, model, _Value(INPUT, sample), "")
    finally:
        model.train(was_training)
    if logits.sample.ndim != 2 or logits.sample.shape[1] < 1:
        raise ExportError(
            f"export_onnx: the model gives an output of shape (N, "
            f"{', '.join(map(str, logits.sample.shape[1:]))}), not logits (N, K)"
        )
    classes_count = logits.sample.shape[1]
    spec = getattr(model, "spec", None)
    spec = spec if isinstance(spec, dict) and "model" in spec else None
    classes = list(spec["classes"]) if spec else list(range(classes_count))
    if len(classes) != classes_count:
        raise ExportError(
            f"export_onnx: the model gives {classes_count} logits but its spec names "
            f"{len(classes)} classes"
        )
    proto = _model_proto(onnx, graph, logits, classes, spec)
    onnx.checker.check_model(proto, full_check=True)
    try:
        with atomic_write(path) as file:
            file.write(proto.SerializeToString())
    except OSError as error:
        raise ExportError(f"cannot write {path} ({error.strerror or error})") from None
    return path


def check_destination(path: Path) -> None:
    """Refuse, by an ``ExportError``, a ``path`` that is a folder or in no folder."""
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give the path of the .onnx file to write")
    folder = path.parent
    if not folder.exists():
        raise ExportError(f"the folder {folder} does not exist; create it or write elsewhere")
    if not folder.is_dir():
        raise ExportError(f"{folder} is a file, not a folder: {path} cannot be written there")


def _model_proto(
    onnx: Any, graph: _Graph, logits: _Value, classes: list[int], spec: dict | None
) -> Any:
    helper, float32 = onnx.helper, onnx.TensorProto.FLOAT
    if not graph.nodes or graph.nodes[-1].output[0] != logits.name:  # no node to rename
        graph.node("Identity", [logits.name], "")
    graph.nodes[-1].output[0] = OUTPUTS[0]
    graph.node("Softmax", [OUTPUTS[0]], "", axis=1)
    graph.nodes[-1].output[0] = OUTPUTS[1]
    k = len(classes)
    digits = ", ".join(map(str, classes))
    inputs = [
        helper.make_tensor_value_info(
            INPUT,
            float32,
            list(INPUT_SHAPE),
            doc_string="preprocessed images, float32 in [0, 1]: see the metadata 'preprocessing'",
        )
    ]
    outputs = [
        helper.make_tensor_value_info(
            OUTPUTS[0], float32, ["N", k], doc_string=f"one logit per class ({digits})"
        ),
        helper.make_tensor_value_info(
            OUTPUTS[1],
            float32,
            ["N", k],
            doc_string=f"softmax of the logits: the probability of each class ({digits})",
        ),
    ]
    name = f"signdigits-{spec['model']}" if spec else "signdigits"
    onnx_graph = helper.make_graph(graph.nodes, name, inputs, outputs, graph.weights)
    opsets = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="signdigits",
        producer_version=__version__,
        doc_string=f"A signdigits model: sign-language digit photos ({digits}).",
    )
    metadata = {
        "preprocessing": json.dumps(
            {
                "version": PREPROCESSING_VERSION,
                "steps": list(PREPROCESSING_STEPS),
                "signdigits_function": "signdigits.data.preprocess.preprocess_image",
            }
        ),
        "classes": json.dumps(classes),
        "signdigits_version": __version__,
    }
    if spec:
        metadata["architecture"] = json.dumps(spec, sort_keys=True)
    helper.set_model_props(proto, metadata)
    return proto
