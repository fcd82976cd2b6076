"""The Sign Language Digits dataset: sources, download, verification, preprocessing, cache."""

from signdigits.data.cache import cache_dir
from signdigits.data.dataset import (
    DIGITS,
    Fetched,
    SignDigits,
    fetch_dataset,
    find_source,
    load_dataset,
    verify_source,
)
from signdigits.data.download import DEFAULT_URL, data_url, fetch_archive, import_archive
from signdigits.data.preprocess import IMAGE_SIZE, PREPROCESSING_VERSION, preprocess_image
from signdigits.data.sources import KAGGLE_COLUMN_DIGITS, DataSource

__all__ = [
    "DEFAULT_URL",
    "DIGITS",
    "IMAGE_SIZE",
    "KAGGLE_COLUMN_DIGITS",
    "PREPROCESSING_VERSION",
    "DataSource",
    "Fetched",
    "SignDigits",
    "cache_dir",
    "data_url",
    "fetch_archive",
    "fetch_dataset",
    "find_source",
    "import_archive",
    "load_dataset",
    "preprocess_image",
    "verify_source",
]
