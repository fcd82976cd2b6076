"""Where the images come from: an archive zip, an extracted folder or the Kaggle pair.

The archive and the folder hold the original photos as ``Dataset/<digit>/*.JPG``,
under a single top folder or none. The Kaggle pair is ``X.npy`` (2062, 64, 64),
already preprocessed, and ``Y.npy`` (2062, 10), one-hot with scrambled columns.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from signdigits.errors import DataError

SourceKind = Literal["archive", "folder", "kaggle"]

KAGGLE_COLUMN_DIGITS = (9, 0, 7, 6, 1, 8, 4, 3, 2, 5)
"""Column i of the Kaggle ``Y.npy`` is the sign for digit ``KAGGLE_COLUMN_DIGITS[i]``."""

_IMAGE_PATH = re.compile(r"^Dataset/([0-9])/([^/]+)$")


@dataclass(frozen=True)
class DataSource:
    """A located copy of the dataset.

    ``origin`` says how it was found: ``"--data"``, ``"SIGNDIGITS_DATA"``,
    ``"cache"`` or ``"download"``.
    """

    kind: SourceKind
    path: Path
    origin: str


def identify_source(path: str | Path, origin: str) -> DataSource:
    """Tell what kind of copy of the dataset ``path`` is, or raise ``DataError``."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(
            f"{path} (from {origin}) does not exist; give the dataset's zip archive, "
            "its extracted folder, or a folder with the Kaggle X.npy and Y.npy"
        )
    if path.is_file() and zipfile.is_zipfile(path):
        return DataSource("archive", path, origin)
    if path.is_file() and path.suffix.lower() == ".zip":
        raise DataError(
            f"{path} (from {origin}) is not a readable zip archive (truncated or not a zip); "
            "download it again with `signdigits data fetch`"
        )
    if path.is_dir() and (path / "X.npy").is_file() and (path / "Y.npy").is_file():
        return DataSource("kaggle", path, origin)
    if path.is_dir() and _dataset_folder(path) is not None:
        return DataSource("folder", path, origin)
    raise DataError(
        f"{path} (from {origin}) is neither a zip archive of the dataset, a folder with "
        "Dataset/<digit>/ images, nor a folder with the Kaggle X.npy and Y.npy; "
        "check the path or download the data with `signdigits data fetch`"
    )


def _dataset_folder(root: Path) -> Path | None:
    """``root/Dataset`` or ``root/<single top folder>/Dataset``, if either exists."""
    if (root / "Dataset").is_dir():
        return root / "Dataset"
    children = [child for child in root.iterdir() if not child.name.startswith(".")]
    if len(children) == 1 and (children[0] / "Dataset").is_dir():
        return children[0] / "Dataset"
    return None


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX")


def read_image_files(source: DataSource) -> dict[str, bytes]:
    """The bytes of every file in the source's ``Dataset/<digit>/`` folders.

    Keys are the paths inside ``Dataset/``, such as ``0/IMG_1118.JPG``.
    """
    if source.kind == "archive":
        return _read_archive(source.path)
    if source.kind == "folder":
        folder = _dataset_folder(source.path)
        assert folder is not None  # identify_source checked it
        return {
            f"{digit_dir.name}/{file.name}": file.read_bytes()
            for digit_dir in sorted(folder.iterdir())
            if digit_dir.is_dir() and re.fullmatch("[0-9]", digit_dir.name)
            for file in sorted(digit_dir.iterdir())
            if file.is_file() and not _is_hidden(file.name)
        }
    raise ValueError(f"a {source.kind} source has no image files")


def _read_archive(path: Path) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if not _is_hidden(name)]
            tops = {name.split("/", 1)[0] for name in names}
            prefix = ""
            if "Dataset" not in tops:
                if len(tops) != 1:
                    raise DataError(
                        f"the archive {path} has no Dataset/ folder (nor a single top folder "
                        "holding one); download the dataset's archive again"
                    )
                prefix = tops.pop() + "/"
            files = {}
            for name in names:
                match = _IMAGE_PATH.match(name.removeprefix(prefix))
                if match and not _is_hidden(match[2]):
                    files[f"{match[1]}/{match[2]}"] = archive.read(name)
            return files
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:
        raise DataError(
            f"the archive {path} is corrupt ({error}); download it again with "
            "`signdigits data fetch` or point SIGNDIGITS_DATA at a good copy"
        ) from None


def read_kaggle_arrays(source: DataSource) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 64, 64) float32 and digit labels (N,) from the Kaggle ``X.npy``/``Y.npy``.

    ``Y.npy`` is one-hot, but its columns are scrambled: column ``i`` is the digit
    ``KAGGLE_COLUMN_DIGITS[i]``. The labels returned are the true digits.
    """
    x_path, y_path = source.path / "X.npy", source.path / "Y.npy"
    try:
        x = np.load(x_path, allow_pickle=False)
        y = np.load(y_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(
            f"cannot read the Kaggle arrays in {source.path} ({error}); "
            "download X.npy and Y.npy again"
        ) from None
    if x.ndim != 3 or x.shape[1:] != (64, 64) or not np.issubdtype(x.dtype, np.floating):
        raise DataError(
            f"{x_path} holds a {x.dtype} array of shape {x.shape}; expected floats of "
            "shape (N, 64, 64), as in the Kaggle Sign Language Digits X.npy"
        )
    if y.shape != (x.shape[0], 10):
        raise DataError(
            f"{y_path} has shape {y.shape}; expected ({x.shape[0]}, 10), one one-hot row "
            "per image of X.npy"
        )
    if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
        raise DataError(
            f"{y_path} is not one-hot: each row must hold a single 1 and nine 0s; "
            "download the Kaggle Y.npy again"
        )
    if not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
        raise DataError(
            f"{x_path} has values outside [0, 1]; expected the Kaggle X.npy, "
            "scaled to [0, 1]; download it again"
        )
    digits = np.asarray(KAGGLE_COLUMN_DIGITS)[y.argmax(axis=1)]
    return x.astype(np.float32), digits.astype(np.int64)
