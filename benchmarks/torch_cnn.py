"""The default CNN's recipe trained by PyTorch on the same split: the reference beside which
``benchmarks/accuracy.py --torch`` puts the engine's accuracy.

Run:  .venv/bin/python benchmarks/torch_cnn.py [--seed 42] [--threads 2] [--data PATH]

The same everything but the engine: the split of ``signdigits train`` for the seed (known
label errors left out of training and validation, as there), its batches of 32 drawn from a
Generator of the seed, its augmentation (``AUGMENTATION["cnn"]``, in NumPy), the
architecture (``torch.nn`` with PyTorch's own initialisation), AdamW with the same weight
decay, the one-cycle schedule to the same peak over the same epochs, and the same choice
of the kept epoch: the lowest validation loss. It prints one JSON line: the seed, the test
accuracy of the kept epoch, that epoch, its validation loss and the training seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn

from signdigits.data import load_dataset
from signdigits.data.training import DataLoader, augment, choose_classes
from signdigits.models import IMAGE_SIZE, default_spec
from signdigits.training import AUGMENTATION, TrainSettings, training_split


def torch_cnn(spec: dict) -> nn.Sequential:
    """The CNN of ``spec`` (signdigits.models) in torch.nn."""
    layers: list[nn.Module] = []
    channels_in, side = 1, IMAGE_SIZE
    for channels in spec["channels"]:
        layers += [
            nn.Conv2d(channels_in, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        channels_in, side = channels, side // 2
    layers += [nn.Flatten(), nn.Dropout(spec["dropout"])]
    return nn.Sequential(*layers, nn.Linear(channels_in * side * side, len(spec["classes"])))


def train(seed: int, data: str | None) -> dict:
    settings = TrainSettings(seed=seed).resolved()
    dataset = load_dataset(data, show_progress=False)
    images, labels = choose_classes(dataset, settings.classes)
    split, _ = training_split(dataset, labels, settings)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = torch_cnn(default_spec("cnn", settings.classes))
    loader = DataLoader(
        images[split.train],
        labels[split.train],
        batch_size=settings.batch_size,
        shuffle=True,
        rng=rng,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=settings.lr, epochs=settings.epochs, steps_per_epoch=len(loader)
    )

    def scored(part: np.ndarray) -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            logits = model(torch.from_numpy(images[part][:, None]))
        model.train()
        target = torch.from_numpy(labels[part])
        loss = float(nn.functional.cross_entropy(logits, target))
        return loss, float((logits.argmax(1) == target).float().mean())

    best_loss, best_epoch, best_state = math.inf, 0, None
    started = time.perf_counter()
    for epoch in range(settings.epochs):
        for x, y in loader:
            x = augment(x, rng, AUGMENTATION["cnn"])
            loss = nn.functional.cross_entropy(
                model(torch.from_numpy(x[:, None])), torch.from_numpy(y)
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        val_loss, _ = scored(split.val)
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch + 1
            best_state = {name: value.clone() for name, value in model.state_dict().items()}
    seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    return {
        "seed": seed,
        "test_accuracy": scored(split.test)[1],
        "n_test": len(split.test),
        "best_epoch": best_epoch,
        "best_val_loss": best_loss,
        "seconds": seconds,
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(train(args.seed, args.data)), flush=True)


if __name__ == "__main__":
    main()
