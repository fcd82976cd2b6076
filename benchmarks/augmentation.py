"""Which augmentation should the default CNN train with? Chosen on the validation part only.

Run:  .venv/bin/python benchmarks/augmentation.py [--seeds 42] [--epochs 40]
      [--variants affine,cutout,noise,both] [--out runs/augmentation] [--data PATH]
      [--reuse]

Each variant trains the default CNN (its default settings, ``--epochs`` epochs) with one
augmentation recipe on each seed's split, then scores the best model on that run's
**validation** images, clean and under the perturbations of ``benchmarks/robustness.py``
(rotation, shift, noise, a hidden patch), and reads the validation loss of the epoch it
kept. The test images are never looked at here, so the choice does not leak into the test
accuracy that ``benchmarks/accuracy.py`` reports. With several seeds, the last table
averages each recipe over them (4 × 165 validation images for 42, 1, 2, 3). ``--reuse``
scores a model already in ``OUT/RECIPE/seedS/`` instead of training it again (a run of
``benchmarks/accuracy.py`` with the same code gives the same model as the default recipe
here: copy its ``cnn-seedS`` folders there). The recipes:

* ``affine``: rotation, scale, shift, brightness and contrast (no cutout, no noise);
* ``cutout``: affine and a hidden 16×16 square in half the images;
* ``noise``: affine and Gaussian noise of σ ≤ 0.1;
* ``both``: affine, cutout and noise (``Augmentation()``, the CNN's default);
* ``both-light``: affine, cutout in a quarter of the images and noise of σ ≤ 0.05;
* ``both-rot20``: ``both`` with rotations of ±20° instead of ±12°.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

import signdigits.training as training
from robustness import INPUT_PERTURBATIONS, accuracy
from signdigits.data import load_dataset
from signdigits.data.training import Augmentation, choose_classes
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
    parser.add_argument("--seeds", default="42", help="comma-separated split seeds")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--variants", default=",".join(RECIPES))
    parser.add_argument("--out", type=Path, default=Path("runs/augmentation"))
    parser.add_argument("--data", default=None)
    parser.add_argument("--reuse", action="store_true", help="score models already trained")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]

    dataset = load_dataset(args.data, show_progress=False)
    images, labels = choose_classes(dataset, range(10))
    columns = ("clean", *SCORED, "mean", "val loss", "train s")
    averages: dict[str, list[list[float]]] = {}
    for seed in seeds:
        settings = training.TrainSettings(model="cnn", seed=seed).resolved()
        val = training.training_split(dataset, labels, settings)[0].val  # as the run's
        x, y = images[val], labels[val]
        table = Table(title=f"The CNN's validation accuracy ({len(y)} images, seed {seed})")
        for column in ("recipe", *columns):
            table.add_column(column)
        for name in args.variants.split(","):
            out = args.out / name / f"seed{seed}"
            seconds = float("nan")
            if not (args.reuse and (out / "model.safetensors").exists()):
                training.AUGMENTATION["cnn"] = RECIPES[name]
                settings = training.TrainSettings(model="cnn", seed=seed, epochs=args.epochs)
                started = time.perf_counter()
                training.train(settings, data=args.data, out=out, verbose=False)
                seconds = time.perf_counter() - started
            model = load_model(out / "model.safetensors")
            rng = np.random.default_rng(0)
            scores = [accuracy(model, x, y)]
            for perturbation in SCORED:
                perturbed, copies = INPUT_PERTURBATIONS[perturbation](x, rng)
                scores.append(accuracy(model, perturbed, np.tile(y, copies)))
            row = [100 * s for s in scores] + [100 * float(np.mean(scores))]
            row += [kept_val_loss(out), seconds]
            averages.setdefault(name, []).append(row)
            table.add_row(name, *format_row(row))
            Console(width=140).print(f"seed {seed} {name}: " + " ".join(format_row(row)))
        Console(width=140).print(table)
    if len(seeds) > 1:
        table = Table(title=f"Mean over seeds {args.seeds} (validation parts only)")
        for column in ("recipe", *columns):
            table.add_column(column)
        for name, rows in averages.items():
            table.add_row(name, *format_row(list(np.mean(rows, axis=0))))
        Console(width=140).print(table)


def kept_val_loss(out: Path) -> float:
    """The validation loss of the epoch the run kept, from its ``metrics.json``."""
    metrics = json.loads((out / "metrics.json").read_text())
    return float(metrics["history"][metrics["best_epoch"] - 1]["val_loss"])


def format_row(row: list[float]) -> list[str]:
    """Accuracies in %, the validation loss, the training seconds."""
    *percentages, loss, seconds = row
    return [f"{p:.2f}" for p in percentages] + [f"{loss:.4f}", f"{seconds:.0f}"]


if __name__ == "__main__":
    main()
