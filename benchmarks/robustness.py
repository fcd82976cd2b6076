"""How robust is a trained model? Its test accuracy under perturbations, beside the clean one.

Run:  .venv/bin/python benchmarks/robustness.py MODEL [--data PATH]

MODEL is a model file from `signdigits train` (the default CNN of seed 42, for the README).
The test images are the ones its training run held out, made again from the seed in the
file. Perturbations of the 64×64 inputs: rotation by ±15° and ±25° (each image both ways),
zoom to 80 %, a shift of 10 % of the width (each image left and right), Gaussian blur
(σ = 1 px), Gaussian noise (σ = 0.1, clipped to [0, 1]) and a hidden 16×16 patch (at a
random place). Perturbations of the original photos, then the one preprocessing: JPEG
quality 30, darker and brighter lighting (gamma 2 and 0.5 on the 0..1 values), upscaled to
300×300, RGBA with a transparent border, and EXIF-rotated (the pixels turned, the
orientation tag saying so). Random choices come from a fixed seed.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from scipy.ndimage import gaussian_filter

from signdigits.data import load_dataset
from signdigits.data.preprocess import preprocess_image
from signdigits.data.sources import read_image_files
from signdigits.data.training import affine_warp, choose_classes, split_indices
from signdigits.io import load_model
from signdigits.training import predict_logits

TARGETS = {  # from the issue: ≥ 95 % under these, ≥ 90 % under noise and the hidden patch
    "rotation ±15°": 0.95,
    "zoom to 80 %": 0.95,
    "shift 10 %": 0.95,
    "blur σ = 1 px": 0.95,
    "noise σ = 0.1": 0.90,
    "hidden 16×16 patch": 0.90,
    "JPEG quality 30": 0.95,
    "darker (gamma 2)": 0.95,
    "brighter (gamma 0.5)": 0.95,
}


def accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predict_logits(model, images.astype(np.float32)).argmax(axis=1) == labels))


def both_ways(warp: Callable[[np.ndarray, float], np.ndarray], amount: float):
    def perturb(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        return np.concatenate([warp(images, amount), warp(images, -amount)]), 2

    return perturb


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
    n = len(images)
    return affine_warp(images, np.full(n, degrees), np.ones(n), np.zeros((n, 2)))


def shift_columns(images: np.ndarray, fraction: float) -> np.ndarray:
    n, _, width = images.shape
    return affine_warp(images, np.zeros(n), np.ones(n), np.tile([0.0, fraction * width], (n, 1)))


def hide_patch(images: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    hidden = images.copy()
    for image, (row, col) in zip(hidden, rng.integers(0, 64 - 16, (len(images), 2)), strict=True):
        image[row : row + 16, col : col + 16] = 0
    return hidden, 1


INPUT_PERTURBATIONS: dict[str, Callable] = {
    "rotation ±15°": both_ways(rotate, 15),
    "rotation ±25°": both_ways(rotate, 25),
    "zoom to 80 %": lambda x, rng: (
        affine_warp(x, np.zeros(len(x)), np.full(len(x), 0.8), np.zeros((len(x), 2))),
        1,
    ),
    "shift 10 %": both_ways(shift_columns, 0.1),
    "blur σ = 1 px": lambda x, rng: (gaussian_filter(x, sigma=(0, 1, 1)), 1),
    "noise σ = 0.1": lambda x, rng: (np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1), 1),
    "hidden 16×16 patch": hide_patch,
}


def photo_variant(kind: str, data: bytes) -> bytes | Image.Image:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    if kind == "JPEG quality 30":
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=30)
        return out.getvalue()
    if kind in ("darker (gamma 2)", "brighter (gamma 0.5)"):
        gamma = 2.0 if kind.startswith("darker") else 0.5
        values = (np.asarray(image, dtype=np.float32) / 255) ** gamma
        return Image.fromarray((values * 255).round().astype(np.uint8))
    if kind == "upscaled to 300×300":
        return image.resize((300, 300), Image.Resampling.BICUBIC)
    if kind == "RGBA, transparent border":
        bordered = Image.new("RGBA", (image.width + 40, image.height + 40), (0, 0, 0, 0))
        bordered.paste(image, (20, 20))
        return bordered
    if kind == "EXIF-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6
        out = io.BytesIO()
        image.transpose(Image.Transpose.ROTATE_90).save(out, format="JPEG", quality=95, exif=exif)
        return out.getvalue()
    raise ValueError(kind)


PHOTO_PERTURBATIONS = (
    "JPEG quality 30",
    "darker (gamma 2)",
    "brighter (gamma 0.5)",
    "upscaled to 300×300",
    "RGBA, transparent border",
    "EXIF-rotated",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    model = load_model(args.model)
    classes = model.spec["classes"]
    dataset = load_dataset(args.data, show_progress=False)
    images, labels = choose_classes(dataset, classes)
    test = split_indices(labels, model.metadata["seed"], 0.0).test
    x, y = images[test], labels[test]
    clean = accuracy(model, x, y)
    rng = np.random.default_rng(0)
    rows = [("clean", clean, len(y))]
    for name, perturb in INPUT_PERTURBATIONS.items():
        perturbed, copies = perturb(x, rng)
        rows.append((name, accuracy(model, perturbed, np.tile(y, copies)), len(y) * copies))

    # The photos of the test images, in the order of the dataset's (sorted) file names.
    files = read_image_files(dataset.source) if dataset.source.kind != "kaggle" else None
    if files is None:
        print("the Kaggle arrays have no photos: the photo perturbations are left out")
    else:
        names = sorted(files, key=lambda name: (int(name.split("/")[0]), name))
        chosen = [name for name in names if int(name.split("/")[0]) in classes]
        photos = [files[chosen[i]] for i in test]
        for kind in PHOTO_PERTURBATIONS:
            inputs = np.stack([preprocess_image(photo_variant(kind, photo)) for photo in photos])
            rows.append((kind, accuracy(model, inputs, y), len(y)))

    table = Table(title=f"Robustness of {args.model} on its {len(y)} test images")
    for column in ("perturbation", "accuracy", "drop", "target"):
        table.add_column(column)
    met = True
    for name, value, count in rows:
        target = TARGETS.get(name)
        ok = target is None or value >= target
        met &= ok
        table.add_row(
            name,
            f"{100 * value:.2f} % of {count}",
            "" if name == "clean" else f"{100 * (clean - value):+.2f}",
            ("" if target is None else f"≥ {100 * target:.0f} %") + ("" if ok else " — not met"),
        )
    console = Console(width=110)
    console.print(table)
    verdict = "all targets met" if met else "some targets not met"
    console.print(f"{verdict}; {time.perf_counter() - started:.0f} s")
    sys.exit(0)


if __name__ == "__main__":
    main()
