"""Which images of the dataset carry a wrong label? A cross-validated audit.

Run:  .venv/bin/python benchmarks/label_audit.py [--folds 5] [--epochs 20] [--seed 0]
      [--threshold 0.05] [--out runs/label-audit] [--data PATH]

Every image is scored by a CNN that never saw it: the 2,062 images are cut into ``--folds``
stratified folds, and for each fold the default CNN (its architecture, optimizer, schedule
and augmentation, ``--epochs`` epochs) is trained on the other folds and predicts this
one. An image whose own label gets an out-of-fold probability below ``--threshold`` is a
suspect (a label error, or a photo unlike the rest of its digit): the table lists each
with the digit the networks see, and ``OUT/suspects.png`` shows them beside typical photos
of both digits, to be judged by eye. A suspect is a question, not a verdict: only those a
person confirms belong in ``signdigits/data/label_errors.txt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from signdigits.data import load_dataset
from signdigits.data.training import DataLoader
from signdigits.models import build_model, default_spec
from signdigits.training import (
    AUGMENTATION,
    TrainSettings,
    build_optimizer,
    predict_logits,
    softmax,
    train_step,
)


def out_of_fold_probabilities(
    images: np.ndarray, labels: np.ndarray, folds: int, epochs: int, seed: int
) -> np.ndarray:
    """(N, 10): each image's class probabilities from the CNN trained without its fold."""
    from sklearn.model_selection import StratifiedKFold

    settings = TrainSettings(epochs=epochs, seed=seed).resolved()
    probabilities = np.full((len(images), 10), np.nan)
    cut = StratifiedKFold(folds, shuffle=True, random_state=seed).split(images, labels)
    for fold, (train, held_out) in enumerate(cut):
        started = time.perf_counter()
        rng = np.random.default_rng([seed, fold])
        model = build_model(default_spec("cnn", range(10)), rng)
        loader = DataLoader(images[train], labels[train], batch_size=32, shuffle=True, rng=rng)
        optimizer, schedule, every = build_optimizer(settings, model, len(loader))
        per_batch = schedule if every == "batch" else None
        model.train()
        for _ in range(epochs):
            for x, y in loader:
                train_step(model, optimizer, x, y, rng, AUGMENTATION["cnn"], per_batch)
            if schedule is not None and every == "epoch":
                schedule.step()
        probabilities[held_out] = softmax(predict_logits(model, images[held_out]))
        right = np.mean(probabilities[held_out].argmax(1) == labels[held_out])
        print(
            f"fold {fold + 1}/{folds}: {100 * right:.2f} % of {len(held_out)} held-out images, "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
    return probabilities


def contact_sheet(
    images: np.ndarray, labels: np.ndarray, suspects: list[int], seen: list[int], path: Path
) -> None:
    """Each suspect, then four photos of its label's digit and four of the digit seen."""
    from PIL import Image

    rows = []
    for index, digit in zip(suspects, seen, strict=True):
        typical = [np.flatnonzero(labels == d)[:4] for d in (labels[index], digit)]
        tiles = [images[index], np.ones_like(images[index])]
        tiles += [images[i] for i in np.concatenate(typical)]
        rows.append(np.concatenate(tiles, axis=1))
    if rows:
        Image.fromarray((np.concatenate(rows) * 255).astype(np.uint8)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=Path("runs/label-audit"))
    parser.add_argument("--data", default=None)
    args = parser.parse_args()

    dataset = load_dataset(args.data, show_progress=False)
    names = dataset.names
    if names is None:
        raise SystemExit(
            "the audit names photos by file: give the archive or the folder, not Kaggle's arrays"
        )
    probabilities = out_of_fold_probabilities(
        dataset.images, dataset.labels, args.folds, args.epochs, args.seed
    )
    own = probabilities[np.arange(len(dataset)), dataset.labels]
    suspects = [int(i) for i in np.argsort(own) if own[i] < args.threshold]
    seen = [int(probabilities[i].argmax()) for i in suspects]

    table = Table(title=f"Out-of-fold probability of the label below {args.threshold}")
    for column in ("image", "label", "seen as", "p(label)", "p(seen)"):
        table.add_column(column)
    for index, digit in zip(suspects, seen, strict=True):
        table.add_row(
            names[index],
            str(dataset.labels[index]),
            str(digit),
            f"{own[index]:.2g}",
            f"{probabilities[index, digit]:.3f}",
        )
    console = Console(highlight=False)
    console.print(table)
    accuracy = float(np.mean(probabilities.argmax(1) == dataset.labels))
    console.print(f"out-of-fold accuracy {100 * accuracy:.2f} % of {len(dataset)} images")
    args.out.mkdir(parents=True, exist_ok=True)
    contact_sheet(dataset.images, dataset.labels, suspects, seen, args.out / "suspects.png")
    report = {
        "folds": args.folds,
        "epochs": args.epochs,
        "seed": args.seed,
        "out_of_fold_accuracy": accuracy,
        "suspects": [
            {"image": names[i], "label": int(dataset.labels[i]), "seen_as": d, "p_label": own[i]}
            for i, d in zip(suspects, seen, strict=True)
        ],
    }
    (args.out / "audit.json").write_text(json.dumps(report, indent=2, default=float))
    console.print(f"wrote {args.out / 'suspects.png'} and {args.out / 'audit.json'}")


if __name__ == "__main__":
    main()
