"""Hostile Kaggle pairs: headers checked before any array is read, arrays checked against
what is known of the dataset; one DataError naming the file and what to do, never a
traceback nor a MemoryError.

Every pair is built here, in tmp_path, from arrays shaped like the real pair
(``kaggle_like_arrays``): 2,062 smooth images in [0, 1] and one-hot labels with the
dataset's count of each digit, which pass every check unless broken.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from signdigits.cli import main
from signdigits.data import load_dataset
from signdigits.errors import DataError

from .hostile_inputs import Unpickles

MiB = 1024 * 1024
Pair = tuple[np.ndarray, np.ndarray]


def write_header_only(path: Path, descr: str, shape: tuple[int, ...]) -> None:
    """An .npy header announcing ``shape``, and no data behind it."""
    with path.open("wb") as file:
        header = {"descr": descr, "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(file, header)


def npz_as_x(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    with (folder / "X.npy").open("wb") as file:  # a file object: savez adds no ".npz"
        np.savez(file, x=x)
    np.save(folder / "Y.npy", y)


def pickled_y(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.save(folder / "X.npy", x)
    payload = np.empty(y.shape, dtype=object)
    payload[...] = Unpickles(folder.parent / "unpickled.marker")
    np.save(folder / "Y.npy", payload, allow_pickle=True)


def arrays(change: Callable[[np.ndarray, np.ndarray], Pair]) -> Callable[..., None]:
    """A case that saves changed arrays as an ordinary pair."""

    def write(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
        x, y = change(x.copy(), y.copy())
        np.save(folder / "X.npy", x)
        np.save(folder / "Y.npy", y)

    return write


def truncate(name: str) -> Callable[..., None]:
    def write(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
        np.save(folder / "X.npy", x)
        np.save(folder / "Y.npy", y)
        whole = (folder / name).read_bytes()
        (folder / name).write_bytes(whole[: len(whole) * 2 // 3])

    return write


def one_digit_everywhere(x: np.ndarray, y: np.ndarray) -> Pair:
    """Every row one-hot in column 0, which is the digit 9."""
    y[:] = 0
    y[:, 0] = 1
    return x, y


def relabel_first(x: np.ndarray, y: np.ndarray) -> Pair:
    """The first image (a 9, column 0) labelled with the last column (a 5)."""
    y[0] = 0
    y[0, -1] = 1
    return x, y


def with_value(value: float) -> Callable[[np.ndarray, np.ndarray], Pair]:
    def change(x: np.ndarray, y: np.ndarray) -> Pair:
        x[100, 10, 10] = value
        return x, y

    return change


# name: (write the pair into a folder, the file the message must name, words it must hold)
HOSTILE: dict[str, tuple[Callable[..., None], str, str]] = {
    "empty pair": (
        lambda folder, x, y: [(folder / name).write_bytes(b"") for name in ("X.npy", "Y.npy")],
        "X.npy",
        "not a readable .npy",
    ),
    "X header of petabytes": (
        lambda folder, x, y: (
            write_header_only(folder / "X.npy", "<f4", (10**13, 64, 64)),
            np.save(folder / "Y.npy", y),
        ),
        "X.npy",
        "images",
    ),
    "Y header of petabytes": (
        lambda folder, x, y: (
            np.save(folder / "X.npy", x),
            write_header_only(folder / "Y.npy", "<f8", (10**15, 10)),
        ),
        "Y.npy",
        "shape",
    ),
    "X header right, data missing": (
        lambda folder, x, y: (
            write_header_only(folder / "X.npy", "<f4", x.shape),
            np.save(folder / "Y.npy", y),
        ),
        "X.npy",
        "truncated",
    ),
    "X truncated": (truncate("X.npy"), "X.npy", "truncated"),
    "Y truncated": (truncate("Y.npy"), "Y.npy", "truncated"),
    "an npz saved as X.npy": (npz_as_x, "X.npy", "not a readable .npy"),
    "a pickle in Y.npy": (pickled_y, "Y.npy", "object"),
    "X of strings": (
        arrays(lambda x, y: (np.full(x.shape, "a"), y)),
        "X.npy",
        "expected floats",
    ),
    "random noise": (
        arrays(lambda x, y: (np.random.default_rng(0).random(x.shape, dtype=np.float32), y)),
        "X.npy",
        "not a photo",
    ),
    "a single image": (arrays(lambda x, y: (x[:1], y[:1])), "X.npy", "1 images"),
    "one image too many": (
        arrays(lambda x, y: (np.concatenate([x, x[:1]]), np.concatenate([y, y[:1]]))),
        "X.npy",
        "2,063 images",
    ),
    "every label the digit 9": (arrays(one_digit_everywhere), "Y.npy", "0 0 2062 images"),
    "one image relabelled": (arrays(relabel_first), "Y.npy", "digits 0 to 9"),
    "a value of 1.5": (arrays(with_value(1.5)), "X.npy", "[0, 1]"),
    "a value below 0": (arrays(with_value(-0.01)), "X.npy", "[0, 1]"),
    "a NaN": (arrays(with_value(np.nan)), "X.npy", "[0, 1]"),
}


@pytest.fixture(params=list(HOSTILE), ids=list(HOSTILE))
def hostile(
    request: pytest.FixtureRequest, kaggle_arrays: Pair, tmp_path: Path
) -> tuple[Path, str, str]:
    write, bad_file, words = HOSTILE[request.param]
    folder = tmp_path / "kaggle"
    folder.mkdir()
    write(folder, *kaggle_arrays)
    return folder, bad_file, words


def test_a_hostile_pair_raises_a_data_error_naming_the_file(
    hostile: tuple[Path, str, str], isolated_cache: Path
) -> None:
    folder, bad_file, words = hostile
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as raised:
            load_dataset(folder, show_progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    message = str(raised.value)
    assert str(folder / bad_file) in message
    assert words in message
    assert "download X.npy and Y.npy again" in message
    assert peak < 256 * MiB, f"{peak / MiB:.0f} MiB allocated"
    assert not (folder.parent / "unpickled.marker").exists()
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


def test_data_verify_refuses_a_hostile_pair_in_one_line(
    hostile: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, bad_file, _ = hostile

    rc = main(["data", "verify", "--quiet", "--data", str(folder)])

    out, err = capsys.readouterr()
    report = f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert rc == 2, report
    assert "Traceback" not in out + err, report
    (line,) = err.strip().splitlines()
    assert str(folder / bad_file) in line


def test_the_pair_they_break_verifies(
    kaggle_arrays: Pair, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The baseline of the cases: the arrays they break, unbroken, pass `data verify`."""
    np.save(tmp_path / "X.npy", kaggle_arrays[0])
    np.save(tmp_path / "Y.npy", kaggle_arrays[1])

    rc = main(["data", "verify", "--quiet", "--data", str(tmp_path)])

    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "ok: 2062" in out


def test_the_pickle_in_y_is_live(kaggle_arrays: Pair, tmp_path: Path) -> None:
    """The premise of "a pickle in Y.npy": loading it with pickles runs the payload."""
    folder = tmp_path / "kaggle"
    folder.mkdir()
    pickled_y(folder, *kaggle_arrays)
    np.load(folder / "Y.npy", allow_pickle=True)
    assert (tmp_path / "unpickled.marker").exists()
