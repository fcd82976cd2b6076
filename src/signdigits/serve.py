"""The web page and its API: `signdigits serve [MODEL] [--host 127.0.0.1] [--port 8000]`.

A FastAPI app (``create_app``), served by uvicorn:

* ``GET /``: one page, every asset inline (no CDN, no external font): choose a photo or
  take one with the camera, then see the 64×64 image the network receives, the digit, a
  bar for each digit's probability and the saliency map.
* ``POST /api/predict``: a multipart form with the field ``image``; the answer is
  ``{"digit", "probabilities" (one per class), "classes", "model", "elapsed_ms"}``, plus
  ``"input"`` and ``"saliency"`` (PNG data URLs) with ``?explain=1``.
* ``GET /api/model``: the architecture and the model file's metadata; ``GET /healthz``.

Bad input (no body, no ``image`` field, not an image, a truncated one, one over Pillow's
pixel limit, a body over ``max_upload_bytes``) gets a 4xx JSON ``{"error": ...}`` saying
what is wrong. The body is read into memory, bounded, and parsed there: nothing from an
upload is written to disk (a ``multipart`` form in Starlette would spool big files to a
temporary file). Inference runs in a worker thread, so the event loop keeps answering
other clients; one model is used by one request at a time.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from signdigits.errors import SignDigitsError
from signdigits.nn import Module

MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class BadUpload(Exception):
    """An upload answered with a 4xx JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadUpload(413, f"the upload is {int(declared):,} bytes; the limit is {limit:,}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadUpload(413, f"the upload is over the limit of {limit:,} bytes")
    return bytes(body)


def _image_field(body: bytes, content_type: str) -> bytes:
    """The bytes of the form field ``image`` of a multipart body, parsed in memory."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload(400, "send the photo as multipart/form-data with the field 'image'")
    parts: list[dict[str, Any]] = []
    header: list[bytes] = [b"", b""]

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header[0] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header[1] += data[start:end]

    def on_header_end() -> None:
        parts[-1]["headers"][header[0].lower()] = header[1]
        header[0], header[1] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    try:
        parser.write(body)
        parser.finalize()
    except Exception as error:  # python-multipart's own parse errors
        raise BadUpload(400, f"the multipart body cannot be read ({error})") from None
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == b"image":
            if not part["data"]:
                raise BadUpload(400, "the field 'image' is empty; choose a photo")
            return bytes(part["data"])
    raise BadUpload(400, "the form has no field 'image'; send the photo in a field named image")


def _png_data_url(values: np.ndarray, colour: bool = False) -> str:
    from matplotlib import colormaps
    from PIL import Image

    scaled = values / max(float(values.max()), 1e-12)
    if colour:
        pixels = (colormaps["inferno"](scaled)[..., :3] * 255).astype(np.uint8)
    else:
        pixels = (np.clip(scaled, 0, 1) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((256, 256), Image.Resampling.NEAREST).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def create_app(model: Module, name: str, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The app serving ``model`` (named ``name`` in answers); see the module's docstring."""
    from signdigits.data.preprocess import preprocess_image
    from signdigits.explain import saliency
    from signdigits.training import predict_logits, softmax

    app = FastAPI(title="signdigits", docs_url=None, redoc_url=None, openapi_url=None)
    classes = [int(c) for c in model.spec["classes"]]
    lock = threading.Lock()

    def predict(content: bytes, explain: bool) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            image = preprocess_image(content)
        except SignDigitsError as error:
            raise BadUpload(400, str(error).replace("the image", "the upload", 1)) from None
        with lock:
            row = softmax(predict_logits(model, image[None]).astype(np.float64))[0]
            target = int(row.argmax())
            answer: dict[str, Any] = {
                "digit": classes[target],
                "probabilities": [float(p) for p in row],
                "classes": classes,
                "model": name,
            }
            if explain:
                answer["input"] = _png_data_url(image)
                answer["saliency"] = _png_data_url(saliency(model, image, target), colour=True)
        answer["elapsed_ms"] = (time.perf_counter() - started) * 1000
        return answer

    @app.exception_handler(BadUpload)
    async def bad_upload(request: Request, error: BadUpload) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=error.status)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        return PAGE

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/model")
    async def model_info() -> dict[str, Any]:
        return {"name": name, "architecture": model.spec, "metadata": model.metadata}

    @app.post("/api/predict")
    async def predict_upload(request: Request, explain: bool = False) -> dict[str, Any]:
        body = await _read_body(request, max_upload_bytes)
        if not body:
            raise BadUpload(400, "the request has no body; send a photo in the field 'image'")
        content = _image_field(body, request.headers.get("content-type", ""))
        return await run_in_threadpool(predict, content, explain)

    return app


def serve(model: Module, name: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``create_app(model)`` with uvicorn until Ctrl-C."""
    import uvicorn

    uvicorn.run(create_app(model, name), host=host, port=port, log_level="info")


PAGE = (Path(__file__).with_name("page.html")).read_text(encoding="utf-8")
