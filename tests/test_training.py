"""Training on the real dataset: the split, the batches, augmentation, a short training
that learns, stopping and resuming to the same weights, the files a run writes, and the
mistakes a newcomer makes on the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from signdigits.data import SignDigits
from signdigits.data.training import (
    Augmentation,
    DataLoader,
    augment,
    choose_classes,
    split_indices,
)
from signdigits.errors import InvalidArgumentError
from signdigits.io import load_checkpoint, load_model
from signdigits.training import (
    CHECKPOINT,
    LAST_MODEL,
    RESULT_FILES,
    TrainingInterrupted,
    TrainSettings,
    average_into,
    evaluate_file,
    train,
)
from tests.test_tutorial_part2_run import PART1_KEYS

# --- the split, the batches and augmentation ------------------------------------------------


def test_the_ten_digit_split_is_1649_and_413_stratified(dataset: SignDigits) -> None:
    _, labels = choose_classes(dataset, range(10))
    split = split_indices(labels, seed=42, val_fraction=0.1)

    assert (len(split.train), len(split.val), len(split.test)) == (1484, 165, 413)
    everything = np.concatenate([split.train, split.val, split.test])
    assert sorted(everything) == list(range(2062)), "parts overlap or miss images"
    for part in (split.train, split.val, split.test):
        shares = np.bincount(labels[part], minlength=10) / len(part)
        np.testing.assert_allclose(shares, np.bincount(labels) / len(labels), atol=0.01)


def test_the_test_part_depends_on_the_seed_only(dataset: SignDigits) -> None:
    _, labels = choose_classes(dataset, range(10))
    test = split_indices(labels, 42, 0.1).test
    np.testing.assert_array_equal(split_indices(labels, 42, 0.0).test, test)
    np.testing.assert_array_equal(split_indices(labels, 42, 0.3).test, test)
    assert not np.array_equal(split_indices(labels, 1, 0.1).test, test)


def test_choose_classes_maps_digits_to_their_positions(dataset: SignDigits) -> None:
    images, labels = choose_classes(dataset, [7, 2])
    assert len(images) == (dataset.labels == 7).sum() + (dataset.labels == 2).sum()
    np.testing.assert_array_equal(np.unique(labels), [0, 1])
    assert (labels == 0).sum() == (dataset.labels == 7).sum()


@pytest.mark.parametrize(
    ("rows", "batch", "drop_last"),
    [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (0, 4, False)],
)
def test_a_pass_of_the_loader_gives_every_row_once(rows: int, batch: int, drop_last: bool) -> None:
    x, y = np.arange(rows * 2).reshape(rows, 2), np.arange(rows)
    loader = DataLoader(
        x, y, batch_size=batch, shuffle=True, rng=np.random.default_rng(0), drop_last=drop_last
    )
    seen = [yb for _, yb in loader]
    assert len(seen) == len(loader)
    flat = np.concatenate(seen) if seen else np.array([], int)
    expected = rows - rows % batch if drop_last else rows
    assert len(flat) == expected and len(set(flat.tolist())) == expected
    assert all(len(b) == batch for b in seen[:-1] if seen)


def test_the_loader_shuffles_from_its_generator() -> None:
    y = np.arange(100)
    first = [b for (b,) in DataLoader(y, batch_size=10, shuffle=True, rng=np.random.default_rng(3))]
    again = [b for (b,) in DataLoader(y, batch_size=10, shuffle=True, rng=np.random.default_rng(3))]
    ordered = [b for (b,) in DataLoader(y, batch_size=10)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(np.concatenate(first), np.arange(100))
    np.testing.assert_array_equal(np.concatenate(ordered), np.arange(100))


@pytest.mark.parametrize(
    "arguments",
    [
        {"batch_size": 0},
        {"batch_size": 2.5},
        {"batch_size": True},
        {"batch_size": 4, "shuffle": True},
    ],
)
def test_the_loader_refuses_bad_arguments(arguments: dict) -> None:
    with pytest.raises(InvalidArgumentError):
        DataLoader(np.zeros(4), **arguments)
    with pytest.raises(InvalidArgumentError):
        DataLoader(np.zeros(4), np.zeros(5), batch_size=2)


def test_augmentation_with_no_range_is_the_identity(dataset: SignDigits) -> None:
    images = dataset.images[:8]
    nothing = Augmentation(
        rotation=0, scale=0, shift=0, brightness=0, contrast=0, cutout=0, noise=0
    )
    np.testing.assert_allclose(
        augment(images, np.random.default_rng(0), nothing), images, atol=1e-6
    )


def test_augmentation_is_random_per_image_and_repeatable(dataset: SignDigits) -> None:
    images = np.repeat(dataset.images[:1], 6, axis=0)
    first = augment(images, np.random.default_rng(5))
    again = augment(images, np.random.default_rng(5))
    np.testing.assert_array_equal(first, again)
    assert first.shape == images.shape and first.dtype == np.float32
    assert first.min() >= 0 and first.max() <= 1
    assert len({image.tobytes() for image in first}) == 6, "two images got the same transform"
    assert not np.allclose(first[0], images[0])


def test_a_shift_moves_the_image_by_the_drawn_amount() -> None:
    """A bright square on black: the centre of its brightness moves by the drawn shift
    (bilinear interpolation keeps the centre of a blob that stays inside the picture)."""
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 26:38, 24:36] = 1.0
    rng = np.random.default_rng(0)
    settings = Augmentation(
        rotation=0, scale=0, shift=0.1, brightness=0, contrast=0, cutout=0, noise=0
    )
    shifted = augment(image, rng, settings)
    replay = np.random.default_rng(0)  # the draws of augment, in its order
    replay.uniform(0, 0, 1), replay.uniform(1, 1, 1)
    dy, dx = replay.uniform(-0.1, 0.1, (1, 2))[0] * 64
    assert max(abs(dy), abs(dx)) > 1

    rows, cols = np.indices((64, 64))

    def centre(picture: np.ndarray) -> np.ndarray:
        return np.array([(rows * picture).sum(), (cols * picture).sum()]) / picture.sum()

    np.testing.assert_allclose(centre(shifted[0]) - centre(image[0]), [dy, dx], atol=0.05)


def test_cutout_hides_one_square_in_the_chosen_share_of_the_images() -> None:
    """On white images, cutout alone leaves each image white but for at most one black
    square of the given side (smaller where it reaches past the border), in about the
    chosen fraction of the images."""
    images = np.ones((400, 64, 64), np.float32)
    settings = Augmentation(
        rotation=0, scale=0, shift=0, brightness=0, contrast=0, cutout=16, noise=0
    )
    hidden = augment(images, np.random.default_rng(3), settings)
    assert set(np.unique(hidden)) <= {0.0, 1.0}
    counts = (hidden == 0).sum(axis=(1, 2))
    assert 0.4 < np.mean(counts > 0) < 0.6
    assert counts.max() == 16 * 16
    for image in hidden[counts > 0]:
        rows, cols = np.nonzero(image == 0)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert height * width == len(rows), "the hidden pixels are not one rectangle"
        assert height <= 16 and width <= 16
        assert height == 16 or rows.min() == 0 or rows.max() == 63
        assert width == 16 or cols.min() == 0 or cols.max() == 63


def test_noise_has_each_images_own_deviation_up_to_the_limit() -> None:
    images = np.full((300, 64, 64), 0.5, np.float32)
    settings = Augmentation(
        rotation=0, scale=0, shift=0, brightness=0, contrast=0, cutout=0, noise=0.1
    )
    noisy = augment(images, np.random.default_rng(4), settings)
    deviations = (noisy - 0.5).std(axis=(1, 2))
    assert deviations.max() < 0.1 * 1.05 and deviations.min() < 0.01
    np.testing.assert_allclose(np.mean(deviations), 0.05, atol=0.005)  # σ ~ U(0, 0.1)
    np.testing.assert_allclose((noisy - 0.5).mean(), 0, atol=1e-3)


# --- training ---------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own (the last trained model is remembered there),
    holding the session's decoded dataset and its record of checked archives."""
    folder = tmp_path / "cache"
    source = Path(os.environ.get("SIGNDIGITS_CACHE", ""))
    folder.mkdir()
    kept = ("decoded-*.npz", "checked-archives-*.txt")  # no decoding, no check of every image
    for path in [p for pattern in kept for p in source.glob(pattern)] if source.is_dir() else []:
        (folder / path.name).symlink_to(path)
    monkeypatch.setenv("SIGNDIGITS_CACHE", str(folder))
    return folder


def quick(model: str = "softmax", **changes) -> TrainSettings:
    base = {"epochs": 2, "augment": False} if model != "cnn" else {"epochs": 1}
    classes = (0, 1) if model in ("logistic", "two-layer", "cnn") else tuple(range(10))
    return TrainSettings(model=model, classes=classes, **{**base, **changes})


def weights(folder: Path) -> dict[str, np.ndarray]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize(("model", "above"), [("softmax", 0.45), ("cnn", 0.8), ("two-layer", 0.85)])
def test_a_short_training_learns_far_above_chance(
    model: str, above: float, dataset_source, tmp_path: Path, cache: Path
) -> None:
    """A few epochs (the CNN: one, at a constant rate, without augmentation; the two-layer
    network: ten, of ten batches each)."""
    changes = {"augment": False, "schedule": "none", "lr": 1e-3} if model == "cnn" else {}
    changes |= {"epochs": 10} if model == "two-layer" else {}
    settings = quick(model, **changes)
    metrics = train(settings, data=dataset_source.path, out=tmp_path / "run", verbose=False)
    assert metrics["test_accuracy"] > above, metrics["test_accuracy"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(RESULT_FILES)


def test_a_run_writes_its_files_and_remembers_its_model(
    dataset_source, tmp_path: Path, cache: Path
) -> None:
    out = tmp_path / "run"
    metrics = train(quick(), data=dataset_source.path, out=out, verbose=False)

    saved = json.loads((out / "metrics.json").read_text())
    for key in (*PART1_KEYS, "learning_rate", "epochs", "history", "per_class", "confusion_matrix"):
        assert key in saved, key
    assert saved == json.loads(json.dumps(metrics))
    assert saved["epochs"] == len(saved["history"]) == 2
    # Seed 42's training and validation parts hold both known label errors: left out.
    assert saved["left_out"] == ["2/IMG_5176.JPG", "3/IMG_5108.JPG"]
    assert (saved["n_train"] + saved["n_val"], saved["n_test"]) == (1649 - 2, 413)
    assert np.array(saved["confusion_matrix"]).sum() == 413
    assert set(saved["per_class"]) == {str(d) for d in range(10)}
    assert (cache / LAST_MODEL).read_bytes() == (out / "model.safetensors").read_bytes()
    assert not (out / CHECKPOINT).exists()
    model = load_model(out / "model.safetensors")
    assert model.metadata["seed"] == 42 and model.spec["model"] == "softmax"


def test_evaluate_scores_the_same_test_images_as_training(
    dataset_source, tmp_path: Path, cache: Path
) -> None:
    metrics = train(quick(), data=dataset_source.path, out=tmp_path / "run", verbose=False)
    report = evaluate_file(tmp_path / "run" / "model.safetensors", data=dataset_source.path)
    assert report["test_accuracy"] == metrics["test_accuracy"]
    assert report["confusion_matrix"] == metrics["confusion_matrix"]
    other = evaluate_file(tmp_path / "run" / "model.safetensors", data=dataset_source.path, seed=7)
    assert other["n_test"] == 413 and other["seed"] == 7


def test_the_same_seed_gives_the_same_run(dataset_source, tmp_path: Path, cache: Path) -> None:
    """With augmentation (the stopped-and-resumed CNN below covers dropout and batch norm)."""
    settings = TrainSettings(model="two-layer", classes=(0, 1), epochs=2, augment=True)
    for name in ("a", "b"):
        train(settings, data=dataset_source.path, out=tmp_path / name, verbose=False)
    first, second = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(np.array_equal(first[k], second[k]) for k in first)


def stop_after(batches: int):
    """A ``should_stop`` that turns true once it has been asked ``batches`` times."""
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) >= batches

    return should_stop


@pytest.mark.parametrize(
    ("model", "stop_at", "changes"),
    [("softmax", 52, {}), ("softmax", 47, {}), ("softmax", 30, {"ema": 0.9}), ("cnn", 4, {})],
    ids=[
        "softmax in epoch 2",
        "softmax at an epoch's end",
        "softmax with averaged weights",
        "cnn mid-epoch",
    ],
)
def test_a_stopped_and_resumed_run_ends_with_the_same_weights(
    model: str, stop_at: int, changes: dict, dataset_source, tmp_path: Path, cache: Path
) -> None:
    """With dropout, batch norm, augmentation and one-cycle for the CNN: every random draw
    and every state must be in the checkpoint (with --ema, the average too)."""
    settings = quick(model, **changes)
    train(settings, data=dataset_source.path, out=tmp_path / "whole", verbose=False)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(
            settings,
            data=dataset_source.path,
            out=tmp_path / "parts",
            verbose=False,
            should_stop=stop_after(stop_at),
        )
    assert stopped.value.path == tmp_path / "parts" / CHECKPOINT
    assert load_checkpoint(stopped.value.path)["run"]["batch"] >= 0
    train(resume=tmp_path / "parts", data=dataset_source.path, verbose=False)

    whole, parts = weights(tmp_path / "whole"), weights(tmp_path / "parts")
    assert whole.keys() == parts.keys()
    for name in whole:
        np.testing.assert_array_equal(parts[name], whole[name], err_msg=name)
    assert not (tmp_path / "parts" / CHECKPOINT).exists()


LOGISTIC = ("train", "--model", "logistic", "--classes", "0,1", "--quiet")
"""A model whose epochs take a few milliseconds, for the tests of stopping a process."""


def run_cli(*args: str | Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "signdigits", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def started_run(out: Path, dataset_source, epochs: int) -> subprocess.Popen:
    """A `signdigits train` process of the fast logistic model, once its first epoch's
    checkpoint is written."""
    process = run_cli(
        *LOGISTIC, "--epochs", str(epochs), "--data", dataset_source.path, "--out", out
    )
    wait_for(out / CHECKPOINT, process)
    return process


def test_ctrl_c_stops_with_a_checkpoint_and_resume_finishes(
    dataset_source, tmp_path: Path, cache: Path
) -> None:
    out = tmp_path / "run"
    process = started_run(out, dataset_source, epochs=60)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 130
    (line,) = stderr.strip().splitlines()
    assert f"signdigits train --resume {out}" in line and "Traceback" not in stderr
    assert not (out / "model.safetensors").exists()

    resumed = run_cli("train", "--resume", out, "--data", dataset_source.path, "--quiet")
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert load_model(out / "model.safetensors").metadata["epochs"] == 60


def test_a_killed_run_leaves_its_last_complete_checkpoint(
    dataset_source, tmp_path: Path, cache: Path
) -> None:
    out = tmp_path / "run"
    process = started_run(out, dataset_source, epochs=400)
    time.sleep(0.3)
    process.kill()
    process.communicate()

    state = load_checkpoint(out / CHECKPOINT)  # complete, whatever the moment of the kill
    assert state["run"]["epoch"] >= 1


# --- the command line: a newcomer's mistakes --------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--model", "resnet"), "Invalid value for '--model'"),
        (("--classes", "11"), "--classes '11' is not a list of digits"),
        (("--classes", "a,b"), "is not a list of digits"),
        (("--classes", "3"), "two or more different digits"),
        (("--classes", "1,1"), "two or more different digits"),
        (("--model", "logistic"), "tells two signs apart"),
        (("--epochs", "0"), "Invalid value for '--epochs'"),
        (("--batch-size", "0"), "Invalid value for '--batch-size'"),
        (("--lr", "0"), "--lr must be a number > 0"),
        (("--lr", "nan"), "--lr must be a number > 0"),
        (("--val-fraction", "0.7"), "--val-fraction must be in [0, 0.5)"),
        (("--seed", "-1"), "--seed must be a whole number"),
        (("--optimizer", "rmsprop"), "Invalid value for '--optimizer'"),
        (("--threads", "0"), "Invalid value for '--threads'"),
        (("--ema", "1"), "--ema must be a decay in [0, 1), got 1.0"),
        (("--ema", "-0.5"), "--ema must be a decay in [0, 1)"),
        (("--weight-decay", "-0.01"), "--weight-decay must be a number ≥ 0, got -0.01"),
        (("--weight-decay", "inf"), "--weight-decay must be a number ≥ 0"),
    ],
)
def test_bad_training_flags_end_in_one_line(invoke_cli, tmp_path: Path, flags, says) -> None:
    out = tmp_path / "run"
    line = invoke_cli("train", "--out", out, *flags).error_line()
    assert says in line
    assert not out.exists()


def test_an_out_that_is_a_file_or_holds_other_files_is_refused(invoke_cli, tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert "is a file" in invoke_cli("train", "--out", a_file).error_line()
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("mine")
    assert "holds other files" in invoke_cli("train", "--out", folder).error_line()
    assert (folder / "thesis.tex").read_text() == "mine"


def test_resume_without_a_checkpoint_is_refused(invoke_cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = invoke_cli("train", "--resume", tmp_path / "empty").error_line()
    assert "has no checkpoint.safetensors to resume from" in line
    line = invoke_cli("train", "--resume", tmp_path / "nowhere").error_line()
    assert "nowhere" in line


def test_the_moving_average_warms_up_then_decays_each_float_array() -> None:
    """a ← d·a + (1 − d)·w with d = min(decay, (1 + step)/(10 + step)); counts are copied."""
    averaged = {"w": np.array([1.0, 2.0]), "n": np.array(3)}
    average_into(averaged, {"w": np.array([3.0, 6.0]), "n": np.array(5)}, 0.99, step=0)
    np.testing.assert_allclose(averaged["w"], 0.1 * np.array([1.0, 2.0]) + 0.9 * np.array([3, 6]))
    assert averaged["n"] == 5
    averaged = {"w": np.array([1.0])}
    average_into(averaged, {"w": np.array([2.0])}, 0.99, step=10_000)
    np.testing.assert_allclose(averaged["w"], [0.99 * 1.0 + 0.01 * 2.0])


def test_with_ema_the_kept_model_is_the_averaged_one(
    dataset_source, tmp_path: Path, cache: Path
) -> None:
    """The run validates and keeps the averaged weights: they differ from the trained ones,
    and the model still learns."""
    plain = train(quick("softmax"), data=dataset_source.path, out=tmp_path / "a", verbose=False)
    averaged = train(
        quick("softmax", ema=0.99), data=dataset_source.path, out=tmp_path / "b", verbose=False
    )
    assert averaged["settings"]["ema"] == 0.99 and plain["settings"]["ema"] == 0.0
    first, second = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert any(not np.array_equal(first[k], second[k]) for k in first)
    assert averaged["test_accuracy"] > 0.45
