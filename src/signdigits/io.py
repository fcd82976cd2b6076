"""Model files and training checkpoints, as safetensors.

A **model file** (``save_model(model, path, **metadata)``, ``load_model(path)``) holds the
model's weights and buffers (its ``state_dict``) and, as safetensors metadata (strings):

* ``format_version`` (``FORMAT_VERSION``), ``architecture`` (the JSON spec of
  :mod:`signdigits.models`), ``preprocessing`` (its version), ``classes`` (JSON),
  ``seed``, ``signdigits_version``, and any other metadata given, as JSON;
* ``digest``: SHA-256 over all the other metadata and every tensor's name, dtype, shape
  and bytes. safetensors itself checks the layout but not the values: a changed weight
  or setting would otherwise load silently.

Loading never executes code and never unpickles (safetensors has no pickles; the
architecture is data, built by ``build_model``). Everything is checked before a model is
returned, and each refusal is a ``ModelFileError`` saying what is wrong: a file that is
missing or not safetensors, truncated, altered, of an unknown ``format_version``, with an
architecture signdigits does not know, or weights that do not fit it.

A **checkpoint** (``save_checkpoint``, ``load_checkpoint``) holds nested state (the model,
the optimizer, the schedule, the training loop's own) in one file: every array as a
tensor named by its path in the state, everything else as JSON. It is written atomically,
so a run that is killed leaves the last complete checkpoint.

An **ONNX model** (``export_onnx(model, path)``, from :mod:`signdigits.onnx_export`, where
its registry of layers and its names and metadata are described) runs the model elsewhere,
with onnxruntime or any ONNX runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from signdigits import __version__
from signdigits.atomic import atomic_write
from signdigits.data.preprocess import PREPROCESSING_VERSION
from signdigits.errors import InvalidArgumentError, ModelFileError
from signdigits.models import build_model, check_spec, state_size
from signdigits.nn import Module
from signdigits.onnx_export import export_onnx as export_onnx  # one name for every model file

FORMAT_VERSION = "1"
CHECKPOINT_VERSION = "1"

_REQUIRED = ("format_version", "architecture", "preprocessing", "classes", "seed", "digest")
_BUILD_ANYWAY = 1 << 24
"""Values: an architecture up to this size is built to name the tensors that do not fit;
a larger one, far from what the file holds, is refused by its size alone."""
_PLAIN = {"format_version", "preprocessing", "signdigits_version", "digest"}
"""Metadata stored as plain text; the rest is JSON."""


def _digest(metadata: dict[str, str], tensors: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != "digest":
            digest.update(json.dumps([key, metadata[key]]).encode())
    for name in sorted(tensors):
        array = np.require(tensors[name], requirements="C")  # keeps 0-d arrays 0-d
        digest.update(json.dumps([name, array.dtype.str, list(array.shape)]).encode())
        digest.update(array.data)
    return digest.hexdigest()


def _write(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    from safetensors.numpy import save

    contiguous = {name: np.require(array, requirements="C") for name, array in tensors.items()}
    with atomic_write(path) as file:
        file.write(save(contiguous, metadata=metadata))


def _read(path: Path, what: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file, or a ``ModelFileError``."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        content = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist; give the path of a {what}") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder, not a {what}") from None
    except OSError as error:
        raise ModelFileError(
            f"cannot read {path} ({error.strerror}); give a readable {what}"
        ) from None
    try:
        tensors = load(content)
        header_size = int.from_bytes(content[:8], "little")
        header = json.loads(content[8 : 8 + header_size])
    except KeyError as error:  # a dtype NumPy has no type for, such as BF16
        raise ModelFileError(
            f"{path} holds a tensor of type {error.args[0]}, which NumPy cannot hold; it is not "
            f"a {what}"
        ) from None
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelFileError(
            f"{path} is not a {what} (not a complete safetensors file: {reason}); it is "
            "truncated or damaged, or another kind of file"
        ) from None
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path} has metadata that is not text; it is not a {what}")
    return tensors, metadata


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays as JSON's numbers and lists."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


# -- model files ------------------------------------------------------------------------------
def save_model(model: Module, path: str | os.PathLike[str], **metadata: Any) -> Path:
    """Write ``model`` (built by ``build_model``: it has a ``spec``) to ``path``, atomically.

    ``metadata`` must include ``seed``; ``classes`` come from the spec. Other values are
    stored as JSON.
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise InvalidArgumentError(
            "save_model: the model has no architecture spec; build it with "
            "signdigits.models.build_model"
        )
    if "seed" not in metadata:
        raise InvalidArgumentError("save_model: give the seed of the run (seed=...)")
    try:
        text = {key: json.dumps(value, default=_plain) for key, value in metadata.items()}
    except TypeError as error:
        raise InvalidArgumentError(f"save_model: metadata must be JSON-able: {error}") from None
    text.update(
        format_version=FORMAT_VERSION,
        architecture=json.dumps(spec, sort_keys=True),
        preprocessing=str(PREPROCESSING_VERSION),
        classes=json.dumps(spec["classes"]),
        signdigits_version=__version__,
    )
    tensors = dict(model.state_dict())
    text["digest"] = _digest(text, tensors)
    path = Path(path)
    _write(path, tensors, text)
    return path


def load_model(path: str | os.PathLike[str]) -> Module:
    """The model in the file at ``path``, with ``model.spec`` and ``model.metadata`` (the
    metadata, JSON values decoded); in evaluation mode. See the module's docstring for the
    checks."""
    path = Path(path)
    tensors, metadata = _read(path, "signdigits model file")
    missing = [key for key in _REQUIRED if key not in metadata]
    if missing:
        raise ModelFileError(
            f"{path} is a safetensors file but not a signdigits model file (no "
            f"{', '.join(missing)} in its metadata)"
        )
    if metadata["format_version"] != FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format version {metadata['format_version']!r}; this signdigits "
            f"({__version__}) reads version {FORMAT_VERSION}: train the model again, or "
            "use the signdigits that wrote it"
        )
    if metadata["digest"] != _digest(metadata, tensors):
        raise ModelFileError(
            f"{path} was altered after it was written (its digest does not match its "
            "weights and metadata); train the model again or restore the original file"
        )
    try:
        spec = check_spec(json.loads(metadata["architecture"]))
    except (ValueError, InvalidArgumentError) as error:
        raise ModelFileError(f"{path}: {error}") from None
    held, needed = sum(array.size for array in tensors.values()), state_size(spec)
    if needed > max(2 * held, _BUILD_ANYWAY):  # a spec may ask for any size
        raise ModelFileError(
            f"{path}: its weights do not fit its {spec['model']} architecture (it needs "
            f"{needed:,} values, the file holds {held:,})"
        )
    model = build_model(spec, rng=0)
    expected = dict(model.state_dict())
    problems = _mismatches(expected, tensors)
    if problems:
        raise ModelFileError(
            f"{path}: its weights do not fit its {spec['model']} architecture: {problems}"
        )
    model.load_state_dict(tensors)
    model.eval()
    decoded: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in _PLAIN:
            decoded[key] = value
            continue
        try:
            decoded[key] = json.loads(value)
        except ValueError:
            decoded[key] = value
    model.spec = spec
    model.metadata = decoded
    return model


def _mismatches(expected: dict[str, np.ndarray], found: dict[str, np.ndarray]) -> str:
    """What keeps ``found`` from loading into a model whose state is ``expected``."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shaped = sorted(
        f"{name} is {found[name].shape}, not {expected[name].shape}"
        for name in set(expected) & set(found)
        if found[name].shape != expected[name].shape
    )
    typed = sorted(
        f"{name} is {found[name].dtype}, not {expected[name].dtype}"
        for name in set(expected) & set(found)
        if found[name].shape == expected[name].shape and found[name].dtype != expected[name].dtype
    )
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:3])}" + (" …" if len(missing) > 3 else ""))
    if extra:
        parts.append(f"unexpected {', '.join(extra[:3])}" + (" …" if len(extra) > 3 else ""))
    parts += shaped[:3] + typed[:3]
    return "; ".join(parts)


# -- checkpoints ------------------------------------------------------------------------------
def _flatten(value: Any, tensors: dict[str, np.ndarray]) -> Any:
    """``value`` as JSON-able data, its arrays moved into ``tensors``, numbered in order."""
    if isinstance(value, np.ndarray):
        name = str(len(tensors))
        tensors[name] = value
        return {"__array__": name}
    if isinstance(value, dict):
        return {"__dict__": [[key, _flatten(item, tensors)] for key, item in value.items()]}
    if isinstance(value, list | tuple):
        return [_flatten(item, tensors) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unflatten(value: Any, tensors: dict[str, np.ndarray]) -> Any:
    if isinstance(value, dict) and "__array__" in value:
        return tensors[value["__array__"]]
    if isinstance(value, dict) and "__dict__" in value:
        return {key: _unflatten(item, tensors) for key, item in value["__dict__"]}
    if isinstance(value, list):
        return [_unflatten(item, tensors) for item in value]
    return value


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write nested ``state`` (dicts, lists, arrays, numbers, strings) atomically."""
    tensors: dict[str, np.ndarray] = {}
    structure = _flatten(state, tensors)
    metadata = {"checkpoint_version": CHECKPOINT_VERSION, "state": json.dumps(structure)}
    metadata["digest"] = _digest(metadata, tensors)
    path = Path(path)
    _write(path, tensors, metadata)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The state ``save_checkpoint`` wrote, or a ``ModelFileError``."""
    path = Path(path)
    tensors, metadata = _read(path, "signdigits checkpoint")
    if metadata.get("checkpoint_version") != CHECKPOINT_VERSION or "state" not in metadata:
        raise ModelFileError(
            f"{path} is not a signdigits checkpoint of version {CHECKPOINT_VERSION}"
        )
    if metadata.get("digest") != _digest(metadata, tensors):
        raise ModelFileError(f"{path} was altered after it was written; it cannot be resumed from")
    return _unflatten(json.loads(metadata["state"]), tensors)
