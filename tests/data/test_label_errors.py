"""The dataset's known label errors: the list itself, finding them in the real dataset, and
leaving them out of the training and validation parts only."""

from __future__ import annotations

import numpy as np
import pytest

from signdigits.data import SignDigits
from signdigits.data.label_errors import known_label_errors, label_error_mask
from signdigits.data.manifest import load_manifest
from signdigits.data.training import choose_classes, class_rows, split_indices
from signdigits.training import TrainSettings, training_split


def test_each_listed_error_is_an_image_filed_under_another_digit() -> None:
    errors = known_label_errors()
    assert errors, "the list is empty"
    assert len({error.name for error in errors}) == len(errors), "an image is listed twice"
    for error in errors:
        assert error.name in load_manifest()
        assert error.label == int(error.name.split("/")[0])
        assert error.shows in range(10) and error.shows != error.label, error
        assert error.why.strip(), f"{error.name}: say what gives it away"


def test_the_mask_finds_exactly_the_listed_images_in_the_real_dataset(
    dataset: SignDigits,
) -> None:
    mask = label_error_mask(dataset)
    assert mask.shape == (len(dataset),)
    found = {dataset.names[i] for i in np.flatnonzero(mask)}
    assert found == {error.name for error in known_label_errors()}
    for error in known_label_errors():
        assert dataset.labels[dataset.names.index(error.name)] == error.label


def test_a_subset_keeps_its_names(dataset: SignDigits) -> None:
    subset = dataset.first_of_each([3, 6], 150)
    assert len(subset.names) == 300
    assert subset.names[0] == dataset.names[int(np.flatnonzero(dataset.labels == 3)[0])]
    np.testing.assert_array_equal(
        label_error_mask(subset),
        [name in {e.name for e in known_label_errors()} for name in subset.names],
    )


def test_arrays_without_names_have_no_known_errors(dataset: SignDigits) -> None:
    unnamed = SignDigits(dataset.images, dataset.labels, dataset.source)
    assert not label_error_mask(unnamed).any()


@pytest.mark.parametrize("seed", [42, 1, 2, 3])
@pytest.mark.parametrize("val_fraction", [0.1, 0.0])
def test_leaving_out_changes_the_training_and_validation_parts_only(
    dataset: SignDigits, seed: int, val_fraction: float
) -> None:
    _, labels = choose_classes(dataset, range(10))
    wrong = label_error_mask(dataset)
    plain = split_indices(labels, seed, val_fraction)
    cleaned = split_indices(labels, seed, val_fraction, leave_out=wrong)

    np.testing.assert_array_equal(cleaned.test, plain.test)
    for part, kept in ((plain.train, cleaned.train), (plain.val, cleaned.val)):
        np.testing.assert_array_equal(kept, part[~wrong[part]])
    assert not wrong[np.concatenate([cleaned.train, cleaned.val])].any()


@pytest.mark.parametrize("classes", [tuple(range(10)), (3, 6), (0, 1)])
def test_a_run_names_the_errors_it_leaves_out_unless_told_to_keep_them(
    dataset: SignDigits, classes: tuple[int, ...]
) -> None:
    _, labels = choose_classes(dataset, classes)
    listed = {e.name: e for e in known_label_errors()}
    for seed in (42, 1, 2, 3):
        settings = TrainSettings(classes=classes, seed=seed).resolved()
        split, left_out = training_split(dataset, labels, settings)
        names = np.array(dataset.names, dtype=object)[class_rows(dataset, classes)]
        expected = [
            name
            for i, name in enumerate(names)
            if name in listed and i not in set(split.test.tolist())
        ]
        assert left_out == expected
        assert not set(names[np.concatenate([split.train, split.val])]) & set(listed)
        kept = TrainSettings(classes=classes, seed=seed, keep_label_errors=True).resolved()
        plain, nothing = training_split(dataset, labels, kept)
        assert nothing == []
        assert len(plain.train) + len(plain.val) == len(split.train) + len(split.val) + len(
            left_out
        )
