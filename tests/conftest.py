"""Shared fixtures: the real dataset, found the way users find it."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from signdigits.data import SignDigits, find_source, load_dataset
from signdigits.data.sources import DataSource
from signdigits.errors import DataError


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


OFFLINE = "SIGNDIGITS_OFFLINE"
"""Set (``make test OFFLINE=1``) to never download the dataset: its tests then skip."""

NO_DATASET = "no dataset"
"""The start of the skip reason of every test that needs the real dataset (counted once in
the summary, see ``pytest_terminal_summary``)."""


@pytest.fixture(scope="session")
def dataset_source() -> DataSource:
    """The real dataset, found as users find it: --data is not given, so SIGNDIGITS_DATA,
    then the cache, then a download into the cache (unless SIGNDIGITS_OFFLINE is set).

    Outside CI a machine without the data skips these tests; under CI they fail.
    """
    offline = bool(os.environ.get(OFFLINE))
    try:
        return find_source(download=not offline, show_progress=False)
    except DataError as error:
        if _in_ci():
            pytest.fail(f"the real dataset is required under CI: {error}")
        pytest.skip(f"{NO_DATASET} ({'offline' if offline else 'download failed'})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for all the tests skipped for want of the dataset, saying what to do."""
    skipped = terminalreporter.stats.get("skipped", [])
    count = sum(1 for report in skipped if NO_DATASET in str(report.longrepr))
    if count:
        terminalreporter.write_line(
            f"{count} tests skipped: no dataset found. Point SIGNDIGITS_DATA at the archive "
            "(or run `signdigits data fetch`) and run them again."
        )


@pytest.fixture(scope="session")
def dataset_archive(dataset_source: DataSource) -> Path:
    """The dataset as its zip archive (tests that corrupt or serve it need the archive)."""
    if dataset_source.kind != "archive":
        if _in_ci():
            pytest.fail(f"CI needs SIGNDIGITS_DATA to be the archive, got {dataset_source}")
        pytest.skip("these tests need the dataset as a zip archive")
    return dataset_source.path


@pytest.fixture(scope="session")
def dataset(dataset_source: DataSource) -> SignDigits:
    """The whole decoded dataset (2,062 images)."""
    return load_dataset(dataset_source.path, show_progress=False)


# --- Copies of the archive, with changes ---------------------------------------------------

TOP_FOLDER = "Sign-Language-Digits-Dataset-master"
"""The single top folder of the real archive; the images are under ``TOP_FOLDER/Dataset/``."""


@pytest.fixture(scope="session")
def archive_members(dataset_archive: Path) -> dict[str, bytes]:
    """Every entry of the real archive, name to bytes, in the archive's order."""
    with zipfile.ZipFile(dataset_archive) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


@pytest.fixture(scope="session")
def image_names(archive_members: dict[str, bytes]) -> list[str]:
    """The images' paths inside ``Dataset/`` (such as ``0/IMG_1118.JPG``), sorted."""
    prefix = f"{TOP_FOLDER}/Dataset/"
    return sorted(
        name.removeprefix(prefix)
        for name in archive_members
        if name.startswith(prefix) and name.upper().endswith(".JPG")
    )


@pytest.fixture(scope="session")
def image_bytes(archive_members: dict[str, bytes]) -> Callable[[str], bytes]:
    """``image_bytes("0/IMG_1118.JPG")``: an image file's bytes, as in the real archive."""
    return lambda name: archive_members[f"{TOP_FOLDER}/Dataset/{name}"]


def write_dataset_copy(
    members: Mapping[str, bytes],
    target: Path,
    changes: Mapping[str, bytes | None] | None = None,
    as_folder: bool = False,
) -> Path:
    """Write the archive's entries to ``target`` as a zip, or as an extracted folder.

    ``changes`` maps image paths inside ``Dataset/`` to new bytes (a new path adds an
    image) or to ``None`` (the image is left out). A folder is written the way
    ``unzip`` extracts the archive: ``target/<top folder>/Dataset/<digit>/``.
    """
    entries = dict(members)
    for image, data in (changes or {}).items():
        name = f"{TOP_FOLDER}/Dataset/{image}"
        if data is None:
            del entries[name]
        else:
            entries[name] = data
    if as_folder:
        for name, data in entries.items():
            path = target / name
            if name.endswith("/"):
                path.mkdir(parents=True, exist_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as archive:  # stored, not deflated: fast to write
            for name, data in entries.items():
                archive.writestr(name, data)
    return target


def _flip_byte(data: bytes, index: int | None = None) -> bytes:
    index = len(data) // 2 if index is None else index
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


@pytest.fixture(scope="session")
def flip_byte() -> Callable[..., bytes]:
    """``flip_byte(data, index=None)``: ``data`` with one byte inverted (the middle one)."""
    return _flip_byte


@pytest.fixture(scope="session")
def dataset_copy(
    archive_members: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """Write a changed copy of the real archive; see ``write_dataset_copy``.

    ``dataset_copy(changes, as_folder=False)`` writes into a new temporary folder and
    returns the zip's path, or the folder to give as ``--data``.
    """

    def make(changes: Mapping[str, bytes | None] | None = None, as_folder: bool = False) -> Path:
        folder = tmp_path_factory.mktemp("dataset-copy")
        target = folder / "dataset" if as_folder else folder / "dataset.zip"
        return write_dataset_copy(archive_members, target, changes, as_folder=as_folder)

    return make


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder of this test's own, and no ``SIGNDIGITS_DATA``."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIGNDIGITS_CACHE", str(cache))
    monkeypatch.delenv("SIGNDIGITS_DATA", raising=False)
    return cache


def _save_kaggle_pair(folder: Path, x: np.ndarray, y: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "X.npy", x)
    np.save(folder / "Y.npy", y)
    return folder


@pytest.fixture(scope="session")
def save_kaggle_pair() -> Callable[..., Path]:
    """``save_kaggle_pair(folder, x, y)``: a folder in the Kaggle layout, X.npy and Y.npy."""
    return _save_kaggle_pair


# --- A real HTTP server on 127.0.0.1 --------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@dataclass(frozen=True)
class FileServer:
    """An HTTP server on 127.0.0.1 that serves the files of ``root``."""

    root: Path
    base_url: str

    def serve(self, name: str, content: bytes | Path) -> str:
        """Put ``content`` at ``name`` in the served folder and return its URL."""
        data = content.read_bytes() if isinstance(content, Path) else content
        (self.root / name).write_bytes(data)
        return self.url(name)

    def url(self, name: str) -> str:
        """The URL of ``name`` (whether it exists or not: a missing file answers 404)."""
        return f"{self.base_url}/{name}"


@pytest.fixture(scope="session")
def http_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """A real ``ThreadingHTTPServer`` on a free port of 127.0.0.1, for the whole session."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FileServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="session")
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: a machine without network, in effect."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/sign-language-digits-dataset.zip"


@pytest.fixture
def download_env(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, no ``SIGNDIGITS_DATA`` and no proxy for 127.0.0.1; returns the cache.

    Set ``SIGNDIGITS_DATA_URL`` to choose what is downloaded.
    """
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    return isolated_cache


# --- The command line: in this process, or in a process of its own ---------------------------


@dataclass(frozen=True)
class CliRun:
    """What one ``signdigits`` command did (in a process of its own, or ``main`` in this one)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def error_line(self) -> str:
        """The one line of a user error: exit code 2, one stderr line, no traceback."""
        report = f"signdigits {' '.join(self.args)}\nstdout: {self.stdout}\nstderr: {self.stderr}"
        assert self.returncode == 2, report
        assert "Traceback" not in self.stdout + self.stderr, report
        lines = self.stderr.strip().splitlines()
        assert len(lines) == 1, report
        return lines[0]


def _set_env(patch: pytest.MonkeyPatch, env: Mapping[str, str | None] | None) -> None:
    for name, value in (env or {}).items():
        if value is None:
            patch.delenv(name, raising=False)
        else:
            patch.setenv(name, value)


@pytest.fixture
def invoke_cli(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> Callable[..., CliRun]:
    """``invoke_cli("data", "info", env={...})``: ``signdigits.cli.main(ARGS)`` in this process.

    The contract of a user error (exit code 2, one line on stderr) is ``main``'s, so it
    is checked here in milliseconds rather than in a new Python process. ``env``
    overrides variables for this call only; ``None`` removes one. Anything ``main``
    raises instead of returning is a bug and fails the test with its traceback. What
    only a real process shows (warnings printed at startup, the exit status itself)
    is left to the few tests that use ``run_cli``.
    """
    from signdigits.cli import main

    def invoke(*args: str | Path, env: Mapping[str, str | None] | None = None) -> CliRun:
        words = tuple(str(arg) for arg in args)
        with monkeypatch.context() as patch:
            _set_env(patch, env)
            capfd.readouterr()  # drop whatever was printed before this call
            returncode = main(list(words))
            stdout, stderr = capfd.readouterr()
        return CliRun(words, returncode, stdout, stderr)

    return invoke


def run_signdigits(*args: str | Path, env: Mapping[str, str | None] | None = None) -> CliRun:
    """Run ``python -m signdigits.cli ARGS`` with a copy of this process's environment.

    ``env`` overrides variables of the copy; ``None`` removes one.
    """
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    words = tuple(str(arg) for arg in args)
    completed = subprocess.run(
        [sys.executable, "-m", "signdigits.cli", *words],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return CliRun(words, completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliRun]:
    """``run_signdigits``, for test modules: ``run_cli("data", "info", env={...})``.

    A new Python process costs about a second of import time: prefer ``invoke_cli``
    unless the test is about the process itself.
    """
    return run_signdigits


@pytest.fixture(scope="session")
def model_file(dataset_source: DataSource, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A softmax model on all ten digits, two epochs (about two seconds): enough to tell
    photos apart, for the tests of predicting and serving."""
    from signdigits.training import TrainSettings, train

    out = tmp_path_factory.mktemp("quick-model") / "run"
    settings = TrainSettings(model="softmax", epochs=2, augment=False)
    train(settings, data=dataset_source.path, out=out, verbose=False)
    return out / "model.safetensors"


def png_declaring(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares ``width`` × ``height`` pixels: a decompression bomb
    by its size, without the memory."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
