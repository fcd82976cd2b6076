"""The web page in a real browser: headless Chromium, driven by Selenium, against a real
`signdigits serve` on 127.0.0.1. A dataset photo chosen in the page's file input shows the
model's digit, ten probability bars, the 64×64 input and the saliency map; the page loads
nothing from elsewhere and fits a phone's screen.

Screenshots go to the folder named by SIGNDIGITS_ARTIFACTS (else to pytest's tmp_path).
Under CI (CI=true) a missing Chromium fails these tests; elsewhere it skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from signdigits.data.preprocess import preprocess_image
from signdigits.io import load_model
from signdigits.training import predict_logits, softmax
from tests.browser import NoBrowser, running_server, start_chromium
from tests.conftest import _in_ci

WAIT_S = 20


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        driver = start_chromium(1000, 1000)
    except NoBrowser as error:
        if _in_ci():
            pytest.fail(f"the browser test must run under CI: {error}")
        pytest.skip(str(error))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def base_url(model_file: Path) -> Iterator[str]:
    with running_server(model_file) as base:
        yield base


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SIGNDIGITS_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_page(driver: Any, base_url: str, width: int, height: int) -> None:
    driver.set_window_size(width, height)
    driver.get(base_url + "/")
    assert driver.title.startswith("signdigits")
    assert driver.execute_script("return window.innerWidth") == width, "the window did not resize"


def choose_photo(driver: Any, photo: Path) -> dict[str, Any]:
    """Choose ``photo`` in the page's file input, wait until its answer is drawn (pictures
    loaded), and return what the page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = driver.execute_script('return document.getElementById("input").src')
    driver.find_element(By.ID, "file").send_keys(str(photo))
    shown = """
        const el = (id) => document.getElementById(id);
        const error = el("error").textContent;
        const drawn = el("input").src !== arguments[0]
            && ["input", "saliency"].every((id) => el(id).complete && el(id).naturalWidth > 0);
        if (!error && !drawn) return null;
        return {
            error,
            digit: el("digit").textContent,
            pictures: ["input", "saliency"].map((id) => ({
                src: el(id).src, width: el(id).naturalWidth, height: el(id).naturalHeight,
                shownWidth: el(id).getBoundingClientRect().width})),
            bars: [...document.querySelectorAll("#bars .bar")].map((bar) => ({
                digit: bar.dataset.digit, best: bar.classList.contains("best"),
                fillWidth: bar.querySelector(".fill").getBoundingClientRect().width,
                text: bar.textContent})),
        };
    """
    page = WebDriverWait(driver, WAIT_S, poll_frequency=0.05).until(
        lambda d: d.execute_script(shown, before), "the page never showed an answer"
    )
    assert not page["error"], page["error"]
    return page


def test_a_chosen_photo_shows_the_models_digit_bars_and_pictures(
    browser, base_url, model_file, image_names, image_bytes, artifacts, tmp_path
) -> None:
    model = load_model(model_file)
    classes = [int(c) for c in model.spec["classes"]]
    open_page(browser, base_url, 1000, 1000)
    for name in (image_names[0], image_names[-1]):  # a 0, then a 9: the answer is replaced
        photo = tmp_path / name.replace("/", "_")
        photo.write_bytes(image_bytes(name))
        probabilities = softmax(predict_logits(model, preprocess_image(photo.read_bytes())[None]))
        expected = classes[int(probabilities[0].argmax())]
        page = choose_photo(browser, photo)
        assert page["digit"] == str(expected), f"{name}: the page shows {page['digit']}"
        assert [bar["digit"] for bar in page["bars"]] == [str(c) for c in classes]
        assert [bar["best"] for bar in page["bars"]] == [c == expected for c in classes]
        shown = [
            float(bar["text"].removeprefix(bar["digit"]).removesuffix(" %")) for bar in page["bars"]
        ]
        np.testing.assert_allclose(shown, 100 * probabilities[0], atol=0.051)
        assert all(bar["fillWidth"] >= 1 for bar in page["bars"]), "a bar is not drawn"
        for picture in page["pictures"]:
            assert picture["src"].startswith("data:image/png;base64,")
            assert picture["width"] > 0 and picture["height"] > 0 and picture["shownWidth"] > 0
    screenshot = artifacts / "browser-desktop.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")


def test_the_page_loads_nothing_from_another_origin(
    browser, base_url, image_names, image_bytes, tmp_path
) -> None:
    open_page(browser, base_url, 1000, 1000)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(image_names[len(image_names) // 2]))
    choose_photo(browser, photo)  # so that the pictures have their sources too
    referenced = browser.execute_script(
        "return [...document.querySelectorAll('[src], [href]')]"
        ".map((e) => e.getAttribute('src') !== null ? e.src : e.href)"
    )
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    assert len(referenced) >= 2 and any("/api/predict" in url for url in fetched)
    outside = [
        url
        for url in referenced + fetched
        if not (url.startswith(base_url + "/") or url.startswith("data:"))
    ]
    assert not outside, f"the page loads from elsewhere: {outside}"


def test_the_page_with_an_answer_fits_a_phones_screen(
    browser, base_url, image_names, image_bytes, artifacts, tmp_path
) -> None:
    open_page(browser, base_url, 390, 844)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(image_bytes(image_names[len(image_names) // 3]))
    choose_photo(browser, photo)
    widths = "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    wide, room = browser.execute_script(widths)
    screenshot = artifacts / "browser-phone.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"screenshot: {screenshot}")
    assert wide <= room, f"a horizontal scroll on a phone: {wide} px in {room}"
    # The quick model is unsure; a confident one (the README's CNN) draws the longest bar.
    shown = browser.execute_script("""
        const src = (id) => document.getElementById(id).src;
        const digits = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        show({digit: 0, probabilities: digits.map((d) => (d === 0 ? 1 : 0)), classes: digits,
              input: src("input"), saliency: src("saliency")});
        return document.getElementById("probability").textContent;
    """)
    assert shown == "(100.0 %)"
    wide, room = browser.execute_script(widths)
    assert wide <= room, f"a confident answer scrolls sideways on a phone: {wide} px in {room}"
