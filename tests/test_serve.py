"""The web API, through httpx against the app, and a real uvicorn server on 127.0.0.1:
the right digit for dataset photos, every bad upload a 4xx JSON error, and the page."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from signdigits.data.preprocess import preprocess_image
from signdigits.io import load_model
from signdigits.serve import create_app
from signdigits.training import predict_logits
from tests.conftest import png_declaring


@pytest.fixture(scope="module")
def client(model_file: Path) -> TestClient:
    return TestClient(create_app(load_model(model_file), "test model", max_upload_bytes=2_000_000))


def upload(client: TestClient, content: bytes, field: str = "image", **params) -> httpx.Response:
    return client.post(
        "/api/predict", files={field: ("photo.jpg", content, "image/jpeg")}, params=params
    )


def test_a_dataset_photo_gets_the_models_digit(
    client, model_file, image_names, image_bytes
) -> None:
    model = load_model(model_file)
    for name in image_names[::400]:
        answer = upload(client, image_bytes(name))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = predict_logits(model, preprocess_image(image_bytes(name))[None]).argmax()
        assert body["digit"] == model.spec["classes"][expected]
        assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-9
        assert body["model"] == "test model" and body["elapsed_ms"] > 0
        assert "saliency" not in body


def test_explain_adds_the_input_and_the_saliency_as_pictures(
    client, image_names, image_bytes
) -> None:
    body = upload(client, image_bytes(image_names[0]), explain=1).json()
    for key in ("input", "saliency"):
        assert body[key].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("not an image", 400, "not a readable image"),
        ("truncated JPEG", 400, "not a readable image"),
        ("decompression bomb", 400, "decompression bomb"),
        ("over the size limit", 413, "limit"),
        ("empty field", 400, "is empty"),
        ("another field", 400, "no field 'image'"),
        ("no body", 400, "no body"),
        ("not multipart", 400, "multipart/form-data"),
    ],
)
def test_a_bad_upload_gets_a_4xx_json_error_and_the_server_goes_on(
    client, image_names, image_bytes, case, status, says
) -> None:
    photo = image_bytes(image_names[0])
    if case == "not an image":
        answer = upload(client, b"hello, not an image")
    elif case == "truncated JPEG":
        answer = upload(client, photo[: len(photo) // 3])
    elif case == "decompression bomb":
        answer = upload(client, png_declaring(40_000, 40_000))
    elif case == "over the size limit":
        answer = upload(client, photo + b"\0" * 2_000_000)
    elif case == "empty field":
        answer = upload(client, b"")
    elif case == "another field":
        answer = upload(client, photo, field="picture")
    elif case == "no body":
        answer = client.post("/api/predict")
    else:
        answer = client.post("/api/predict", content=photo, headers={"content-type": "image/jpeg"})
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert upload(client, photo).status_code == 200, "the server stopped serving"


def test_the_page_the_model_and_health(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "getUserMedia" in page.text
    assert "http://" not in page.text and "https://" not in page.text, "an external asset"
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/api/model").json()
    assert info["architecture"]["model"] == "softmax" and info["metadata"]["seed"] == 42


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_real_server_on_127_0_0_1_answers_many_clients_at_once(
    model_file, image_names, image_bytes
) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "signdigits", "serve", str(model_file), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert server.poll() is None, server.stdout.read().decode()
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
        photos = [image_bytes(name) for name in image_names[::250]]

        async def many() -> list[httpx.Response]:
            import asyncio

            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                return await asyncio.gather(
                    *(http.post("/api/predict", files={"image": ("p.jpg", p)}) for p in photos * 3),
                    http.get("/healthz"),
                )

        import asyncio

        answers = asyncio.run(many())
        assert all(answer.status_code == 200 for answer in answers)
        digits = [answer.json()["digit"] for answer in answers[:-1]]
        assert digits[: len(photos)] == digits[len(photos) : 2 * len(photos)]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serve_without_a_model_says_how_to_make_one(invoke_cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SIGNDIGITS_CACHE", str(tmp_path / "empty-cache"))
    assert "none trained yet" in invoke_cli("serve").error_line()
