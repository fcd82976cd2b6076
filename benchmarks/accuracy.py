"""Do the trained models reach their targets? Each run end to end through `signdigits train`.

Run:  .venv/bin/python benchmarks/accuracy.py [--models cnn,mlp,softmax,two-layer]
      [--seeds 42,1,2,3] [--out runs/accuracy] [--data PATH] [--torch]

Every run is a fresh `signdigits train` process with the model's default settings, timed
by wall clock from start to exit (loading the data, training, scoring, writing the files).
The CNN runs once per seed; the other models with the first seed. Beside the softmax
model, scikit-learn's ``LogisticRegression`` is fitted on the same split (the same
training part, the same 413 test images), as the reference the target is set against.

Targets (from the issue): cnn ≥ 99.0 % with each seed and ≥ 99.3 % on average, each run
within 10 minutes; mlp ≥ 85 %; softmax ≥ 75 %; two-layer (signs 0 and 1) ≥ 93 %.
The table, with the date and the machine's CPU count, goes in the README.

``--torch`` also trains the CNN's recipe with PyTorch on each seed's split
(``benchmarks/torch_cnn.py``: the same split, batches, augmentation, optimizer, schedule
and choice of the kept epoch; only the engine differs) and prints the two side by side:
whether a target missed is the engine's doing or the recipe's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

TARGETS = {"cnn": 0.99, "mlp": 0.85, "softmax": 0.75, "two-layer": 0.93, "logistic": None}
CNN_MEAN_TARGET = 0.993
WALL_LIMIT_SECONDS = 600
CLASSES = {"two-layer": "0,1", "logistic": "0,1"}


def run_training(
    model: str, seed: int, out: Path, data: str | None, flags: list[str] | None = None
) -> dict:
    """One `signdigits train` process (with ``flags`` added); its metrics and its wall-clock
    time."""
    args = [sys.executable, "-m", "signdigits", "train", "--model", model, "--seed", str(seed)]
    args += ["--out", str(out), "--quiet", "--classes", CLASSES.get(model, "all"), *(flags or [])]
    if data:
        args += ["--data", data]
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{model} seed {seed} failed ({done.returncode}): {done.stderr.strip()}")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"model": model, "seed": seed, "wall": wall, **metrics}


def run_torch(seed: int, data: str | None) -> dict:
    """``benchmarks/torch_cnn.py`` for ``seed``, in its own process: its JSON line."""
    args = [sys.executable, str(Path(__file__).with_name("torch_cnn.py")), "--seed", str(seed)]
    done = subprocess.run(args + (["--data", data] if data else []), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"PyTorch seed {seed} failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_val_loss(result: dict) -> float:
    """The validation loss of the epoch the run kept (the lowest of its epochs)."""
    loss = result["history"][result["best_epoch"] - 1]["val_loss"]
    return float("nan") if loss is None else loss


def sklearn_reference(seed: int, data: str | None) -> float:
    """scikit-learn's LogisticRegression on the ten-digit split of ``seed``: test accuracy."""
    from sklearn.linear_model import LogisticRegression

    from signdigits.data import load_dataset
    from signdigits.data.training import choose_classes
    from signdigits.training import TrainSettings, training_split

    dataset = load_dataset(data, show_progress=False)
    images, labels = choose_classes(dataset, range(10))
    split, _ = training_split(dataset, labels, TrainSettings(model="softmax", seed=seed).resolved())
    train = np.concatenate([split.train, split.val])  # the training part, less label errors
    flat = images.reshape(len(images), -1)
    model = LogisticRegression(max_iter=1000, random_state=seed)
    model.fit(flat[train], labels[train])
    return float(model.score(flat[split.test], labels[split.test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cnn,mlp,softmax,two-layer")
    parser.add_argument("--seeds", default="42,1,2,3")
    parser.add_argument("--out", type=Path, default=Path("runs/accuracy"))
    parser.add_argument("--data", default=None)
    parser.add_argument(
        "--train-flags",
        default="",
        help="more flags for every `signdigits train`, to compare a recipe, e.g. '--ema 0.995'",
    )
    parser.add_argument(
        "--torch", action="store_true", help="train the CNN's recipe with PyTorch beside it"
    )
    args = parser.parse_args()
    flags = shlex.split(args.train_flags)
    models = args.models.split(",")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    console = Console(width=120)
    console.print(
        f"{time.strftime('%Y-%m-%d')}, {len(os.sched_getaffinity(0))} CPUs usable; "
        f"models {models}, seeds {seeds}"
    )
    results = []
    for model in models:
        for seed in seeds if model == "cnn" else seeds[:1]:
            out = args.out / f"{model}-seed{seed}"
            if out.exists():
                subprocess.run(["rm", "-rf", str(out)], check=True)
            result = run_training(model, seed, out, args.data, flags)
            results.append(result)
            console.print(
                f"{model} seed {seed}: {100 * result['test_accuracy']:.2f} % "
                f"({result['epochs']} epochs, {result['seconds']:.0f} s training, "
                f"{result['wall']:.0f} s wall; best validation loss "
                f"{best_val_loss(result):.4f} at epoch {result['best_epoch']})"
            )
    for model in models:  # the validation part's verdict, to compare recipes without the test
        losses = [best_val_loss(r) for r in results if r["model"] == model]
        console.print(
            f"{model}: mean best validation loss {statistics.mean(losses):.4f} over "
            f"{len(losses)} run(s){' with ' + args.train_flags if flags else ''}"
        )
    reference = sklearn_reference(seeds[0], args.data) if "softmax" in models else None

    table = Table(
        title="Test accuracy, each run through `signdigits train` with its defaults"
        + (f" and {args.train_flags}" if flags else "")
    )
    for column in ("model", "seed", "test accuracy", "epochs", "training s", "wall s", "target"):
        table.add_column(column)
    verdicts = []
    for result in results:
        target = TARGETS.get(result["model"])
        accuracy = result["test_accuracy"]
        met = target is None or accuracy >= target
        fast = result["model"] != "cnn" or result["wall"] <= WALL_LIMIT_SECONDS
        verdicts.append(met and fast)
        table.add_row(
            result["model"],
            str(result["seed"]),
            f"{100 * accuracy:.2f} % ({round(accuracy * result['n_test'])}/{result['n_test']})",
            str(result["epochs"]),
            f"{result['seconds']:.0f}",
            f"{result['wall']:.0f}",
            ("—" if target is None else f"≥ {100 * target:.1f} %")
            + ("" if met and fast else " — not met"),
        )
    console.print(table)
    cnn = [r["test_accuracy"] for r in results if r["model"] == "cnn"]
    if cnn:
        mean = statistics.mean(cnn)
        verdicts.append(mean >= CNN_MEAN_TARGET or len(cnn) < 4)
        slowest = max(r["wall"] for r in results if r["model"] == "cnn")
        console.print(
            f"cnn mean over seeds {seeds}: {100 * mean:.2f} % "
            f"(target ≥ {100 * CNN_MEAN_TARGET:.1f} % over four seeds); "
            f"slowest run {slowest:.0f} s wall (limit {WALL_LIMIT_SECONDS} s)"
        )
    if reference is not None:
        console.print(
            f"scikit-learn LogisticRegression on the same split (seed {seeds[0]}): "
            f"{100 * reference:.2f} %"
        )
    torch_runs = []
    if args.torch and cnn:
        torch_runs = [run_torch(r["seed"], args.data) for r in results if r["model"] == "cnn"]
        ours = [r for r in results if r["model"] == "cnn"]
        side = Table(title=f"The CNN's recipe, signdigits beside PyTorch {torch_runs[0]['torch']}")
        for column in ("seed", "signdigits", "PyTorch", "kept epochs", "training s", "time ratio"):
            side.add_column(column)
        for mine, theirs in zip(ours, torch_runs, strict=True):
            side.add_row(
                str(mine["seed"]),
                f"{100 * mine['test_accuracy']:.2f} %",
                f"{100 * theirs['test_accuracy']:.2f} %",
                f"{mine['best_epoch']} / {theirs['best_epoch']}",
                f"{mine['seconds']:.0f} / {theirs['seconds']:.0f}",
                f"{mine['seconds'] / theirs['seconds']:.2f}",
            )
        console.print(side)
        console.print(
            f"mean: signdigits {100 * statistics.mean(r['test_accuracy'] for r in ours):.2f} %, "
            f"PyTorch {100 * statistics.mean(r['test_accuracy'] for r in torch_runs):.2f} %"
        )
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "runs": results,
        "sklearn_logistic": reference,
        "torch": torch_runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print("all targets met" if all(verdicts) else "some targets not met")


if __name__ == "__main__":
    main()
