"""Model files and checkpoints (signdigits.io): a saved model loads and predicts exactly as it
did, with its spec and metadata; every bad file (missing, not safetensors, truncated, altered,
of another format, or written by someone who knows the format and recomputes the digest) is
refused with a ModelFileError naming the file, by the API and by `signdigits evaluate`;
checkpoints round-trip nested state and refuse damaged files."""

from __future__ import annotations

import io
import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from signdigits import __version__, nn
from signdigits import io as sio
from signdigits.autograd import Tensor, no_grad
from signdigits.data.preprocess import PREPROCESSING_VERSION
from signdigits.errors import InvalidArgumentError, ModelFileError, SignDigitsError
from signdigits.io import (
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model,
)
from signdigits.models import MODELS, as_model_input, build_model, check_spec, default_spec


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 64, 64), dtype=np.float32)


def _eval_logits(model: nn.Module, images: np.ndarray) -> np.ndarray:
    model.eval()
    with no_grad():
        return model(Tensor(as_model_input(images, model.spec))).data


def _classes(name: str) -> list[int]:
    return [0, 1] if name in ("logistic", "two-layer") else [1, 3, 5, 7, 9]


# -- save, then load ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_a_saved_model_loads_and_predicts_identically(name, tmp_path):
    model = build_model(default_spec(name, _classes(name)), 4)
    path = save_model(model, tmp_path / "model.safetensors", seed=4)
    assert path == tmp_path / "model.safetensors"
    images = _images(6)
    expected = _eval_logits(model, images)
    loaded = load_model(path)
    assert loaded.spec == model.spec
    assert np.array_equal(_eval_logits(loaded, images), expected)


def test_a_cnn_keeps_the_running_statistics_its_training_changed(tmp_path):
    spec = {"model": "cnn", "classes": [0, 1, 2], "channels": [4, 8], "dropout": 0.5}
    model = build_model(spec, np.random.default_rng(1)).train()
    before = model.state_dict()
    for seed in range(3):  # training-mode passes move batch norm's running mean and variance
        with no_grad():
            model(Tensor(as_model_input(_images(4, seed) * (seed + 1), spec)))
    after = model.state_dict()
    assert not np.array_equal(before["1.running_mean"], after["1.running_mean"])
    assert not np.array_equal(before["5.running_var"], after["5.running_var"])
    assert after["1.num_batches_tracked"] == 3

    images = _images(5, 9)
    expected = _eval_logits(model, images)
    loaded = load_model(save_model(model, tmp_path / "cnn.safetensors", seed=1))
    assert np.array_equal(_eval_logits(loaded, images), expected)
    for key, array in loaded.state_dict().items():
        assert array.dtype == after[key].dtype and array.shape == after[key].shape, key
        assert np.array_equal(array, after[key]), key


def test_the_default_cnn_round_trips_after_training_mode_passes(tmp_path):
    model = build_model(default_spec("cnn", list(range(10))), 2).train()
    for seed in range(2):
        with no_grad():
            model(Tensor(as_model_input(_images(3, seed) + seed, model.spec)))
    images = _images(4, 5)
    expected = _eval_logits(model, images)
    loaded = load_model(save_model(model, tmp_path / "cnn.safetensors", seed=2))
    assert np.array_equal(_eval_logits(loaded, images), expected)


@pytest.mark.parametrize("name", MODELS)
def test_a_loaded_model_is_in_evaluation_mode(name, tmp_path):
    model = build_model(default_spec(name, _classes(name)), 0).train()
    loaded = load_model(save_model(model, tmp_path / "m.safetensors", seed=0))
    assert all(not module.training for module in loaded.modules())


def test_a_loaded_model_has_its_spec_and_metadata(tmp_path):
    spec = default_spec("mlp", [2, 4, 6])
    model = build_model(spec, 21)
    extra = {
        "epochs": 30,
        "test_accuracy": 0.875,
        "note": "first try",
        "history": [1.5, 0.25],
        "settings": {"lr": 0.001, "schedule": None, "augment": True},
    }
    loaded = load_model(save_model(model, tmp_path / "m.safetensors", seed=21, **extra))
    assert loaded.spec == spec
    metadata = loaded.metadata
    assert str(metadata["format_version"]) == FORMAT_VERSION
    assert metadata["architecture"] == spec
    assert str(metadata["preprocessing"]) == str(PREPROCESSING_VERSION)
    assert metadata["classes"] == [2, 4, 6]
    assert metadata["seed"] == 21
    assert metadata["signdigits_version"] == __version__
    for key, value in extra.items():
        assert metadata[key] == value, key
    assert isinstance(metadata["digest"], str)


def test_a_model_file_is_safetensors_with_text_metadata(tmp_path):
    model = build_model(default_spec("logistic", [0, 1]), 0)
    path = save_model(model, str(tmp_path / "m.safetensors"), seed=3, note="x")
    tensors, metadata = _parts(path)
    assert set(tensors) == set(model.state_dict())
    assert metadata["format_version"] == FORMAT_VERSION
    assert json.loads(metadata["architecture"]) == model.spec
    assert metadata["seed"] == "3" and metadata["note"] == '"x"'
    assert metadata["digest"] == sio._digest(metadata, tensors)


def test_saving_again_replaces_the_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(build_model(default_spec("softmax", [0, 1]), 0), path, seed=0)
    second = build_model(default_spec("logistic", [0, 1]), 1)
    save_model(second, path, seed=1)
    assert load_model(path).spec == second.spec
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_save_model_needs_the_seed(tmp_path):
    model = build_model(default_spec("softmax", [0, 1]), 0)
    with pytest.raises(InvalidArgumentError, match=r"seed=\.\.\."):
        save_model(model, tmp_path / "m.safetensors", epochs=3)
    assert not (tmp_path / "m.safetensors").exists()


def test_save_model_needs_a_model_built_from_a_spec(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4096, 2, rng=0))
    with pytest.raises(InvalidArgumentError, match="no architecture spec"):
        save_model(model, tmp_path / "m.safetensors", seed=0)
    assert not (tmp_path / "m.safetensors").exists()


# -- bad files ------------------------------------------------------------------------------------
def _parts(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a safetensors file."""
    data = Path(path).read_bytes()
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
    return load_safetensors(data), header.get("__metadata__", {})


def _data_start(data: bytes) -> int:
    return 8 + int.from_bytes(data[:8], "little")


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


def _rewrite(
    good: Path,
    target: Path,
    tensors: Callable[[dict], dict] = lambda t: t,
    metadata: Callable[[dict], dict] = lambda m: m,
    keep_digest: bool = False,
) -> Path:
    """``good`` rewritten as someone who knows the format would: tensors and metadata changed,
    and (unless ``keep_digest``) a digest recomputed that matches the change."""
    old_tensors, old_metadata = _parts(good)
    new_tensors = tensors(dict(old_tensors))
    new_metadata = metadata(dict(old_metadata))
    if not keep_digest:
        new_metadata["digest"] = sio._digest(new_metadata, new_tensors)
    sio._write(target, new_tensors, new_metadata)
    return target


def _architecture(change: Callable[[dict], None]) -> Callable[[dict], dict]:
    def edit(metadata: dict) -> dict:
        spec = json.loads(metadata["architecture"])
        change(spec)
        metadata["architecture"] = json.dumps(spec)
        return metadata

    return edit


class _Marker:
    """Unpickling it creates a file (what a malicious pickle would do, harmlessly)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (64, 64), 128).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_bytes(target: Path, data: bytes) -> Path:
    target.write_bytes(data)
    return target


NOT_SAFETENSORS = "is not a signdigits model file (not a complete safetensors file"
ALTERED = "was altered after it was written"

BAD_FILES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "a missing path": (lambda good, t: t / "nothing-here.safetensors", "does not exist"),
    "a folder": (lambda good, t: t, "is a folder, not a signdigits model file"),
    "an empty file": (lambda good, t: _write_bytes(t / "empty.safetensors", b""), NOT_SAFETENSORS),
    "random bytes": (
        lambda good, t: _write_bytes(
            t / "random.safetensors", np.random.default_rng(0).bytes(5000)
        ),
        NOT_SAFETENSORS,
    ),
    "a PNG image": (lambda good, t: _write_bytes(t / "image.png", _png_bytes()), NOT_SAFETENSORS),
    "a pickle": (
        lambda good, t: _write_bytes(
            t / "model.pkl", pickle.dumps(_Marker(t / "pwned"), protocol=4)
        ),
        NOT_SAFETENSORS,
    ),
    "truncated to 8 bytes": (
        lambda good, t: _write_bytes(t / "cut.safetensors", good.read_bytes()[:8]),
        NOT_SAFETENSORS,
    ),
    "truncated in the header": (
        lambda good, t: _write_bytes(
            t / "cut.safetensors",
            good.read_bytes()[: (8 + _data_start(good.read_bytes())) // 2],
        ),
        NOT_SAFETENSORS,
    ),
    "truncated in the data": (
        lambda good, t: _write_bytes(
            t / "cut.safetensors",
            good.read_bytes()[: (_data_start(good.read_bytes()) + good.stat().st_size) // 2],
        ),
        NOT_SAFETENSORS,
    ),
    "all but the last byte": (
        lambda good, t: _write_bytes(t / "cut.safetensors", good.read_bytes()[:-1]),
        NOT_SAFETENSORS,
    ),
    "a byte flipped in the weights": (
        lambda good, t: _write_bytes(
            t / "flipped.safetensors",
            _flip(good.read_bytes(), (_data_start(good.read_bytes()) + good.stat().st_size) // 2),
        ),
        ALTERED,
    ),
    "the last weight byte flipped": (
        lambda good, t: _write_bytes(
            t / "flipped.safetensors", _flip(good.read_bytes(), good.stat().st_size - 1)
        ),
        ALTERED,
    ),
    "the architecture changed, the digest kept": (
        lambda good, t: _rewrite(
            good,
            t / "edited.safetensors",
            metadata=_architecture(lambda spec: spec.update(classes=[0, 2])),
            keep_digest=True,
        ),
        ALTERED,
    ),
    "the seed changed, the digest kept": (
        lambda good, t: _rewrite(
            good,
            t / "edited.safetensors",
            metadata=lambda m: {**m, "seed": "8"},
            keep_digest=True,
        ),
        ALTERED,
    ),
    "a weight changed, the digest kept": (
        lambda good, t: _rewrite(
            good,
            t / "edited.safetensors",
            tensors=lambda ts: {**ts, "1.bias": ts["1.bias"] + 1},
            keep_digest=True,
        ),
        ALTERED,
    ),
    "another format version": (
        lambda good, t: _rewrite(
            good, t / "v2.safetensors", metadata=lambda m: {**m, "format_version": "2"}
        ),
        "has format version '2'; this signdigits",
    ),
    "no digest": (
        lambda good, t: _rewrite(
            good,
            t / "nodigest.safetensors",
            metadata=lambda m: {k: v for k, v in m.items() if k != "digest"},
            keep_digest=True,
        ),
        "is a safetensors file but not a signdigits model file (no digest",
    ),
    "plain safetensors, no metadata": (
        lambda good, t: _write_bytes(
            t / "plain.safetensors", save_safetensors({"w": np.zeros(3, np.float32)})
        ),
        "not a signdigits model file (no format_version, architecture",
    ),
    "an unknown model name": (
        lambda good, t: _rewrite(
            good,
            t / "unknown.safetensors",
            metadata=_architecture(lambda spec: spec.update(model="transformer")),
        ),
        "names the model 'transformer', which signdigits does not know",
    ),
    "an architecture that is not JSON": (
        lambda good, t: _rewrite(
            good, t / "notjson.safetensors", metadata=lambda m: {**m, "architecture": "{cnn"}
        ),
        "notjson.safetensors: ",
    ),
    "an architecture with a bad setting": (
        lambda good, t: _rewrite(
            good,
            t / "bad.safetensors",
            metadata=_architecture(lambda spec: spec.update(classes=[0, 1, 2])),
        ),
        "logistic model tells two classes apart, not 3",
    ),
    "a missing tensor": (
        lambda good, t: _rewrite(
            good,
            t / "missing.safetensors",
            tensors=lambda ts: {k: v for k, v in ts.items() if k != "1.bias"},
        ),
        "weights do not fit its logistic architecture: missing 1.bias",
    ),
    "an extra tensor": (
        lambda good, t: _rewrite(
            good,
            t / "extra.safetensors",
            tensors=lambda ts: {**ts, "2.weight": np.ones((2, 2), np.float32)},
        ),
        "weights do not fit its logistic architecture: unexpected 2.weight",
    ),
    "a mis-shaped tensor": (
        lambda good, t: _rewrite(
            good,
            t / "shape.safetensors",
            tensors=lambda ts: {**ts, "1.weight": ts["1.weight"].reshape(64, 64)},
        ),
        "1.weight is (64, 64), not (1, 4096)",
    ),
    "a float64 tensor": (
        lambda good, t: _rewrite(
            good,
            t / "float64.safetensors",
            tensors=lambda ts: {**ts, "1.weight": ts["1.weight"].astype(np.float64)},
        ),
        "1.weight is float64, not float32",
    ),
}


@pytest.fixture(scope="module")
def good_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid logistic model file, to damage."""
    path = tmp_path_factory.mktemp("good") / "model.safetensors"
    return save_model(build_model(default_spec("logistic", [0, 1]), 0), path, seed=7)


def test_the_good_file_loads(good_file):
    """The bad files below are made from this one: it loads, so each refusal is the damage."""
    assert load_model(good_file).spec == default_spec("logistic", [0, 1])


def test_the_pickle_would_run_code_if_it_were_unpickled(tmp_path):
    """The pickle below is no dummy: unpickling it creates its marker file."""
    pickle.loads(pickle.dumps(_Marker(tmp_path / "marker")))
    assert (tmp_path / "marker").exists()


@pytest.mark.parametrize(("make", "says"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_load_model_refuses_a_bad_file_naming_it_and_the_problem(make, says, good_file, tmp_path):
    path = make(good_file, tmp_path)
    with pytest.raises(ModelFileError) as caught:
        load_model(path)
    assert isinstance(caught.value, SignDigitsError)
    message = str(caught.value)
    assert str(path) in message
    assert says in message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("make", "says"), list(BAD_FILES.values()), ids=list(BAD_FILES))
def test_evaluate_refuses_a_bad_file_in_one_line(make, says, good_file, tmp_path, invoke_cli):
    path = make(good_file, tmp_path)
    line = invoke_cli("evaluate", path).error_line()  # exit 2, one line, no traceback
    assert line.startswith("signdigits: error: ")
    assert str(path) in line
    assert says in line
    assert not (tmp_path / "pwned").exists()


def test_every_truncation_of_a_model_file_is_refused(good_file, tmp_path):
    data = good_file.read_bytes()
    start = _data_start(data)
    cuts = sorted({0, 1, 7, 8, 9, start // 2, start - 1, start, start + 1, len(data) - 4})
    cuts += list(range(start + 1, len(data), max(1, (len(data) - start) // 7)))
    for cut in cuts:
        path = _write_bytes(tmp_path / f"cut-{cut}.safetensors", data[:cut])
        with pytest.raises(ModelFileError, match="truncated or damaged"):
            load_model(path)


def test_a_byte_flipped_anywhere_is_refused_or_harmless(good_file, tmp_path):
    """Flipped bytes across the whole file: each is refused; none loads different weights."""
    data = good_file.read_bytes()
    original = load_model(good_file).state_dict()
    for index in range(0, len(data), max(1, len(data) // 97)):
        path = _write_bytes(tmp_path / "flipped.safetensors", _flip(data, index))
        try:
            loaded = load_model(path)
        except ModelFileError as error:
            assert str(path) in str(error)
            continue
        state = loaded.state_dict()  # a flip in JSON whitespace or padding changes nothing
        assert all(np.array_equal(state[key], original[key]) for key in original), index


def test_a_checkpoint_is_not_a_model_file(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.safetensors", {"epoch": 1})
    with pytest.raises(ModelFileError, match="not a signdigits model file"):
        load_model(path)


# -- checkpoints ----------------------------------------------------------------------------------
def _state() -> dict:
    rng = np.random.default_rng(12345)
    rng.random(3)
    model = build_model({"model": "cnn", "classes": [0, 1], "channels": [2], "dropout": 0.5}, 0)
    return {
        "model": model.state_dict(),
        "optimizer": {
            "step": 17,
            "lr": 1e-3,
            "betas": [0.9, 0.999],
            "moments": [np.full((2, 3), 0.5, np.float32), np.arange(4, dtype=np.float64)],
            "scale": np.array(2.5),
        },
        "rng": rng.bit_generator.state,
        "epoch": 4,
        "history": [{"loss": 1.25, "accuracy": 0.5}, {"loss": 0.75, "accuracy": 0.625}],
        "per_class": {0: [1, 2], 7: []},
        "best": None,
        "stopped": False,
        "name": "run-1",
        "big": 2**100,
        "nested": [[1, [np.arange(3, dtype=np.int64), np.array(7, np.int32)]], {}],
        "empty": np.zeros((0, 4), np.float32),
    }


def _assert_same(found, expected, where="state"):
    if isinstance(expected, np.ndarray):
        assert isinstance(found, np.ndarray), where
        assert found.dtype == expected.dtype and found.shape == expected.shape, where
        assert np.array_equal(found, expected), where
    elif isinstance(expected, dict):
        assert isinstance(found, dict) and list(found) == list(expected), where
        for key in expected:
            _assert_same(found[key], expected[key], f"{where}/{key}")
    elif isinstance(expected, list | tuple):
        assert isinstance(found, list) and len(found) == len(expected), where
        for i, (a, b) in enumerate(zip(found, expected, strict=True)):
            _assert_same(a, b, f"{where}/{i}")
    else:
        assert type(found) is type(expected) and found == expected, where


def test_a_checkpoint_round_trips_nested_state(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "checkpoint.safetensors", state)
    assert path == tmp_path / "checkpoint.safetensors"
    loaded = load_checkpoint(path)
    _assert_same(loaded, state)
    assert loaded["optimizer"]["scale"].shape == ()  # 0-d arrays stay 0-d
    assert loaded["nested"][0][1][1].shape == ()
    assert loaded["big"] == 2**100


def test_a_checkpoint_restores_a_generator_exactly(tmp_path):
    rng = np.random.default_rng(2024)
    rng.normal(size=10)
    state = rng.bit_generator.state
    assert state["state"]["state"] > 2**64  # PCG64's 128-bit integers
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", {"rng": state}))
    assert loaded["rng"] == state
    resumed = np.random.default_rng()
    resumed.bit_generator.state = loaded["rng"]
    np.testing.assert_array_equal(resumed.random(20), rng.random(20))


def test_a_checkpoint_turns_tuples_into_lists_and_numpy_scalars_into_numbers(tmp_path):
    state = {"pair": (1, 2), "scalar": np.float32(0.5), "count": np.int64(3)}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", state))
    assert loaded == {"pair": [1, 2], "scalar": 0.5, "count": 3}
    assert type(loaded["count"]) is int


def test_a_checkpoint_of_a_non_contiguous_array_keeps_its_values(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2].T
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", {"a": array}))
    np.testing.assert_array_equal(loaded["a"], array)


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "checkpoint.safetensors", _state())


def test_a_checkpoint_with_a_flipped_byte_is_refused(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    start = _data_start(data)
    for index in (start, (start + len(data)) // 2, len(data) - 1):
        path = _write_bytes(tmp_path / "flipped.safetensors", _flip(data, index))
        with pytest.raises(ModelFileError, match="was altered after it was written") as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value)


def test_a_checkpoint_with_its_state_edited_is_refused(checkpoint, tmp_path):
    path = _rewrite(
        checkpoint,
        tmp_path / "edited.safetensors",
        metadata=lambda m: {**m, "state": m["state"].replace('"epoch", 4', '"epoch", 9')},
        keep_digest=True,
    )
    assert '"epoch", 9' in _parts(path)[1]["state"]
    with pytest.raises(ModelFileError, match="altered"):
        load_checkpoint(path)


def test_a_truncated_checkpoint_is_refused(checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    start = _data_start(data)
    for cut in (0, 8, start // 2, start, (start + len(data)) // 2, len(data) - 1):
        path = _write_bytes(tmp_path / f"cut-{cut}.safetensors", data[:cut])
        with pytest.raises(ModelFileError, match="truncated or damaged") as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value)


def test_load_checkpoint_refuses_a_model_file_and_a_missing_path(good_file, tmp_path):
    with pytest.raises(ModelFileError, match="is not a signdigits checkpoint of version"):
        load_checkpoint(good_file)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_checkpoint(tmp_path / "none.safetensors")


def test_a_checkpoint_of_another_version_is_refused(checkpoint, tmp_path):
    path = _rewrite(
        checkpoint, tmp_path / "v2.safetensors", metadata=lambda m: {**m, "checkpoint_version": "2"}
    )
    with pytest.raises(ModelFileError, match="not a signdigits checkpoint of version 1"):
        load_checkpoint(path)


def test_a_checkpoint_is_written_atomically_over_an_older_one(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {"epoch": 1})
    save_checkpoint(path, {"epoch": 2, "w": np.ones(3)})
    assert load_checkpoint(path)["epoch"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.safetensors"]


def test_a_damaged_header_length_is_refused(good_file, tmp_path):
    data = good_file.read_bytes()
    huge = struct.pack("<Q", 2**63 + 5) + data[8:]
    path = _write_bytes(tmp_path / "huge.safetensors", huge)
    with pytest.raises(ModelFileError, match="truncated or damaged"):
        load_model(path)


# --- cases found by trying to break the loader -------------------------------------------------


def _good_logistic(tmp_path: Path) -> Path:
    return save_model(
        build_model(default_spec("logistic", [0, 1]), 0), tmp_path / "m.safetensors", seed=7
    )


def test_a_tensor_of_a_type_numpy_cannot_hold_is_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    with pytest.raises(ModelFileError, match="BF16"):
        load_model(path)


@pytest.mark.parametrize("name", [["cnn"], {"a": 1}, 3, None])
def test_a_model_name_that_is_not_text_is_refused(name, tmp_path):
    with pytest.raises(InvalidArgumentError):
        check_spec({"model": name, "classes": [0, 1]})
    bad = _rewrite(
        _good_logistic(tmp_path),
        tmp_path / "name.safetensors",
        metadata=lambda m: {**m, "architecture": json.dumps({"model": name, "classes": [0, 1]})},
    )
    with pytest.raises(ModelFileError, match="does not know"):
        load_model(bad)


def test_an_architecture_far_larger_than_its_weights_is_refused_before_it_is_built(tmp_path):
    """A valid digest over an mlp of 2⁴⁰ hidden units: refused by size, nothing allocated."""
    huge = {"model": "mlp", "classes": [0, 1], "hidden": [2**40], "dropout": 0.0}
    bad = _rewrite(
        _good_logistic(tmp_path),
        tmp_path / "huge.safetensors",
        metadata=lambda m: {**m, "architecture": json.dumps(huge)},
    )
    with pytest.raises(ModelFileError, match=r"needs .* values, the file holds"):
        load_model(bad)


def test_text_metadata_comes_back_as_text(tmp_path):
    metadata = load_model(_good_logistic(tmp_path)).metadata
    assert metadata["format_version"] == sio.FORMAT_VERSION
    assert metadata["preprocessing"] == str(PREPROCESSING_VERSION)
    assert metadata["signdigits_version"] == __version__
    assert metadata["seed"] == 7


def test_numpy_numbers_in_the_metadata_are_stored_as_numbers(tmp_path):
    model = build_model(default_spec("logistic", [0, 1]), 0)
    path = save_model(model, tmp_path / "m.safetensors", seed=np.int64(3), score=np.float32(0.5))
    loaded = load_model(path).metadata
    assert (loaded["seed"], loaded["score"]) == (3, 0.5)
    with pytest.raises(InvalidArgumentError, match="JSON-able"):
        save_model(model, tmp_path / "n.safetensors", seed=1, note=object())


def test_checkpoint_keys_with_slashes_do_not_collide(tmp_path):
    state = {"a/0": np.array([1.0]), "a": [np.array([2.0])]}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "c.safetensors", state))
    np.testing.assert_array_equal(loaded["a/0"], [1.0])
    np.testing.assert_array_equal(loaded["a"][0], [2.0])
