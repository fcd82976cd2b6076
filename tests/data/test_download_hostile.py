"""Downloads that go wrong slowly or half-way: a server that trickles its bytes, one that
stops sending, a body cut short, a process ended by SIGTERM, and staging folders left
by processes that were killed.

A ``ThreadingHTTPServer`` on 127.0.0.1 misbehaves on purpose (``MisbehavingHandler``).
Each failure must end in one line that says what happened (not "cannot connect") and
leave nothing in the cache.
"""

from __future__ import annotations

import fcntl
import functools
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import signdigits.data.download as download_module
from signdigits.data.download import LOCK_NAME, STAGING_PREFIX

from .test_download import ARCHIVE_NAME, folder_contents, sha256

if TYPE_CHECKING:
    from tests.conftest import CliRun, FileServer

BODY_SIZE = 1000
"""The size each misbehaving answer announces in its Content-Length."""


class MisbehavingHandler(http.server.BaseHTTPRequestHandler):
    """``/trickle``: one byte every 0.2 s, for a minute at most; ``/stall``: 100 bytes, then
    nothing; ``/truncate``: 400 bytes, then the connection closes. Each announces
    ``BODY_SIZE`` bytes."""

    stop: threading.Event  # set when the server shuts down, so that no handler lingers

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(BODY_SIZE))
        self.end_headers()
        try:
            if self.path == "/trickle":
                for _ in range(300):
                    self.wfile.write(b"P")
                    self.wfile.flush()
                    if self.stop.wait(0.2):
                        return
            elif self.path == "/stall":
                self.wfile.write(b"P" * 100)
                self.wfile.flush()
                self.stop.wait(60)
            elif self.path == "/truncate":
                self.wfile.write(b"P" * 400)
                self.wfile.flush()
        except OSError:
            return  # the client went away

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture(scope="module")
def misbehaving_url() -> Iterator[Callable[[str], str]]:
    """``misbehaving_url("trickle")``: the address of a misbehaving answer."""
    stop = threading.Event()
    handler = type("Handler", (MisbehavingHandler,), {"stop": stop})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield functools.partial("http://127.0.0.1:{}/{}".format, server.server_address[1])
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


CASES = {
    "trickle": (
        "trickle",
        {"SIGNDIGITS_DOWNLOAD_TIMEOUT": "1"},
        ["took longer than the limit of 1 s", "SIGNDIGITS_DOWNLOAD_TIMEOUT", f"of {BODY_SIZE:,}"],
    ),
    "stall": ("stall", {}, [f"stopped sending after 100 of {BODY_SIZE:,} bytes"]),
    "truncated": ("truncate", {}, [f"ended early, after 400 of {BODY_SIZE:,} bytes"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_slow_stalled_or_short_download_says_what_happened_and_keeps_nothing(
    case: str,
    misbehaving_url: Callable[[str], str],
    download_env: Path,
    invoke_cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, env, fragments = CASES[case]
    monkeypatch.setattr(download_module, "STALL_SECONDS", 0.5)  # "nothing came for 0.5 s"
    url = misbehaving_url(path)
    started = time.monotonic()

    run = invoke_cli("data", "fetch", "-q", env={"SIGNDIGITS_DATA_URL": url, **env})

    line = run.error_line()
    assert time.monotonic() - started < 10  # a trickle of 5 bytes/s would take minutes
    for fragment in [url, *fragments, "nothing was kept in the cache"]:
        assert fragment in line
    assert "cannot connect" not in line
    assert folder_contents(download_env) == []


@pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
def test_a_bad_download_timeout_is_named_in_one_line(
    value: str, download_env: Path, invoke_cli: Callable[..., CliRun], closed_port_url: str
) -> None:
    env = {"SIGNDIGITS_DOWNLOAD_TIMEOUT": value, "SIGNDIGITS_DATA_URL": closed_port_url}

    line = invoke_cli("data", "fetch", "-q", env=env).error_line()

    assert f"SIGNDIGITS_DOWNLOAD_TIMEOUT is '{value}'" in line and "above 0" in line


def staging_folders(cache: Path) -> list[Path]:
    return sorted(cache.glob(f"{STAGING_PREFIX}*")) if cache.is_dir() else []


def test_sigterm_during_a_download_leaves_nothing_in_the_cache(
    misbehaving_url: Callable[[str], str], download_env: Path
) -> None:
    """SIGTERM (what `timeout`, `kill` and service managers send) ends the download as
    Ctrl-C does: the staging folder is removed and the process ends with status 143."""
    environment = {
        **os.environ,
        "SIGNDIGITS_DATA_URL": misbehaving_url("trickle"),
        "SIGNDIGITS_CACHE": str(download_env),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "signdigits.cli", "data", "fetch", "-q"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not staging_folders(download_env) and process.poll() is None:
            assert time.monotonic() < deadline, "the download never started"
            time.sleep(0.05)
        time.sleep(0.3)  # well into the transfer
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()

    assert folder_contents(download_env) == []
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr


def make_staging_folder(cache: Path, name: str, age_s: float, lock_file: bool) -> Path:
    folder = cache / f"{STAGING_PREFIX}{name}"
    folder.mkdir(parents=True)
    (folder / ARCHIVE_NAME).write_bytes(b"half a download")
    if lock_file:
        (folder / LOCK_NAME).touch()
    then = time.time() - age_s
    os.utime(folder, (then, then))
    return folder


def test_a_later_fetch_removes_the_staging_folders_of_killed_processes(
    dataset_archive: Path,
    http_server: FileServer,
    download_env: Path,
    invoke_cli: Callable[..., CliRun],
) -> None:
    """A process killed outright (SIGKILL, a power cut) cleans nothing. A staging folder
    is in use while its lock is held; one whose lock is free is stale once a minute old
    (the minute covers the instant between making a folder and locking it), and one with
    no lock at all once an hour old."""
    killed = make_staging_folder(download_env, "killed", age_s=120, lock_file=True)
    old = make_staging_folder(download_env, "old", age_s=2 * 3600, lock_file=False)
    just_made = make_staging_folder(download_env, "just-made", age_s=1, lock_file=True)
    recent = make_staging_folder(download_env, "recent", age_s=120, lock_file=False)
    running = make_staging_folder(download_env, "running", age_s=2 * 3600, lock_file=True)
    descriptor = os.open(running / LOCK_NAME, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running fetch holds it
    url = http_server.serve(ARCHIVE_NAME, dataset_archive)
    try:
        run = invoke_cli("data", "fetch", "-q", env={"SIGNDIGITS_DATA_URL": url})
    finally:
        os.close(descriptor)

    assert run.returncode == 0, run.stderr
    assert staging_folders(download_env) == sorted([just_made, recent, running])
    assert not killed.exists() and not old.exists()
    assert sha256(download_env / ARCHIVE_NAME) == sha256(dataset_archive)
