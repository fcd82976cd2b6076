"""A real `signdigits serve` on 127.0.0.1 and a headless Chromium to look at its page: for
tests/test_browser.py and benchmarks/screenshot.py.

The browser is the system's (Debian's ``chromium`` and ``chromium-driver``), named
explicitly, so that Selenium Manager never tries to download one.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

INSTALL = "install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage")


class NoBrowser(RuntimeError):
    """Chromium, its driver or Selenium is not installed."""


def start_chromium(width: int, height: int) -> Any:
    """A headless Chromium driven by Selenium, its window ``width`` × ``height`` pixels."""
    try:
        from selenium import webdriver
    except ImportError:
        raise NoBrowser(f"selenium is missing (pip install -e '.[test]'); {INSTALL}") from None
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        raise NoBrowser(f"chromium or chromedriver is not on PATH: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver)
    chromium = webdriver.Chrome(service=service, options=options)
    try:
        chromium.set_page_load_timeout(30)
        chromium.set_window_size(width, height)  # --window-size is never under 500 pixels
    except BaseException:
        chromium.quit()
        raise
    return chromium


@contextmanager
def running_server(model: Path, timeout: float = 60) -> Iterator[str]:
    """``signdigits serve MODEL`` in a process of its own on a free port of 127.0.0.1, until
    the block ends; yields its base URL once ``/healthz`` answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "signdigits", "serve", str(model), "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            give_up = time.monotonic() + timeout
            while not _answers(f"{base}/healthz"):
                if server.poll() is not None or time.monotonic() > give_up:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise RuntimeError(f"`{' '.join(command)}` did not start:\n{output}")
                time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _answers(url: str) -> bool:
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    try:
        with direct.open(url, timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False
