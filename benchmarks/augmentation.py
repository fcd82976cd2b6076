"""Which augmentation should the default CNN train with? Chosen on the validation part only.

Run:  .venv/bin/python benchmarks/augmentation.py [--seed 42] [--epochs 40]
      [--variants affine,cutout,noise,both] [--out runs/augmentation] [--data PATH]

Each variant trains the default CNN (its default settings, ``--epochs`` epochs) with one
augmentation recipe, then scores the best model on the run's **validation** images, clean
and under the perturbations of ``benchmarks/robustness.py`` (rotation, shift, noise, a
hidden patch). The test images are never looked at here, so the choice does not leak into
the test accuracy that ``benchmarks/accuracy.py`` reports. The recipes:

* ``affine``: rotation, scale, shift, brightness and contrast (no cutout, no noise);
* ``cutout``: affine and a hidden 16×16 square in half the images;
* ``noise``: affine and Gaussian noise of σ ≤ 0.1;
* ``both``: affine, cutout and noise (``Augmentation()``, the CNN's default);
* ``both-light``: affine, cutout in a quarter of the images and noise of σ ≤ 0.05;
* ``both-rot20``: ``both`` with rotations of ±20° instead of ±12°.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import signdigits.training as training
from robustness import INPUT_PERTURBATIONS, accuracy
from signdigits.data import load_dataset
from signdigits.data.training import Augmentation, choose_classes, split_indices
from signdigits.io import load_model

RECIPES = {
    "affine": Augmentation(cutout=0, noise=0),
    "cutout": Augmentation(noise=0),
    "noise": Augmentation(cutout=0),
    "both": Augmentation(),
    "both-light": Augmentation(cutout_fraction=0.25, noise=0.05),
    "both-rot20": Augmentation(rotation=20.0),
}
SCORED = ("rotation ±15°", "shift 10 %", "noise σ = 0.1", "hidden 16×16 patch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--variants", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("runs/augmentation"))
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    dataset = load_dataset(args.data, show_progress=False)
    images, labels = choose_classes(dataset, range(10))
    val = split_indices(labels, args.seed, training.TrainSettings.val_fraction).val
    x, y = images[val], labels[val]

    table = Table(title=f"The CNN's validation accuracy ({len(y)} images, seed {args.seed})")
    for column in ("recipe", "clean", *SCORED, "mean", "train s"):
        table.add_column(column)
    for name in args.variants.split(","):
        recipe = RECIPES[name]
        training.AUGMENTATION["cnn"] = recipe
        settings = training.TrainSettings(model="cnn", seed=args.seed, epochs=args.epochs)
        out = args.out / name
        started = time.perf_counter()
        training.train(settings, data=args.data, out=out, verbose=False)
        seconds = time.perf_counter() - started
        model = load_model(out / "model.safetensors")
        rng = np.random.default_rng(0)
        scores = [accuracy(model, x, y)]
        for perturbation in SCORED:
            perturbed, copies = INPUT_PERTURBATIONS[perturbation](x, rng)
            scores.append(accuracy(model, perturbed, np.tile(y, copies)))
        cells = [f"{100 * s:.2f}" for s in scores]
        table.add_row(name, *cells, f"{100 * np.mean(scores):.2f}", f"{seconds:.0f}")
        Console(width=120).print(f"{name}: " + " ".join(cells) + f" ({seconds:.0f} s)")
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
