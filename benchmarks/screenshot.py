"""The README's picture of the web page, docs/serve.png: the page of `signdigits serve MODEL`
as it opens, before any photo is chosen (so that no dataset photo is in it), in headless
Chromium 1000 pixels wide, cropped below the page's content.

Run:  .venv/bin/python benchmarks/screenshot.py MODEL docs/serve.png

It needs Debian's chromium and chromium-driver, as the browser test does (tests/browser.py).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.browser
from tests.browser import running_server, start_chromium

WIDTH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description="A screenshot of the web page as it opens.")
    parser.add_argument("model", type=Path, help="a model file from `signdigits train`")
    parser.add_argument("out", type=Path, help="the PNG file to write")
    args = parser.parse_args()
    browser = start_chromium(WIDTH, 800)
    try:
        with running_server(args.model) as base:
            browser.get(base + "/")
            bottom = browser.execute_script(
                "return Math.ceil(document.body.getBoundingClientRect().bottom)"
            )
            png = browser.get_screenshot_as_png()
    finally:
        browser.quit()
    page = Image.open(io.BytesIO(png))
    height = min(bottom, page.height)
    page.convert("RGB").crop((0, 0, page.width, height)).save(args.out, optimize=True)
    print(f"{args.out}: {page.width}×{height} pixels")


if __name__ == "__main__":
    main()
