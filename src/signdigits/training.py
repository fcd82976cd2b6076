"""Training the models of :mod:`signdigits.models` on the chosen digits, the way
practitioners expect: mini-batches, an optimizer and a learning-rate schedule, validation
after each epoch, early stopping on the validation loss (the best model is the one kept),
and a checkpoint to resume from.

One seed makes one run: the split, the initial weights, the order of the batches, the
augmentation and the dropout masks all come from it (the last three from one Generator,
whose state is in the checkpoint), so the same ``seed`` gives the same run, bit for bit,
on the same machine with the same thread count.

**Stopping and resuming.** ``train`` writes ``checkpoint.safetensors`` in the output folder
after every epoch, atomically (a run that is killed leaves the last complete one). When
``should_stop()`` turns true (the command line sets it on Ctrl-C), training stops after the
current batch and writes a checkpoint of that exact point: the model, the optimizer's and
the schedule's state, the epoch, its order of images, the batch reached, the sums of the
epoch so far and the Generator's state (and, with ``ema``, the moving average of the
weights). ``train(resume=folder)`` goes on from it to the same final weights as a run that
was never stopped. A finished run removes its checkpoint.

**Averaged weights.** With ``ema`` (a decay d, ``--ema``), the weights validated after each
epoch, and kept when best, are a moving average a ← d·a + (1 − d)·w of the trained weights
w, updated after every batch (``average_into``); training itself goes on with w.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from signdigits import functional as F
from signdigits import optim
from signdigits.autograd import Tensor, no_grad
from signdigits.data import load_dataset
from signdigits.data.cache import cache_dir
from signdigits.data.dataset import SignDigits
from signdigits.data.label_errors import label_error_mask
from signdigits.data.training import (
    Augmentation,
    DataLoader,
    Split,
    augment,
    choose_classes,
    class_rows,
    split_indices,
)
from signdigits.errors import InvalidArgumentError, SignDigitsError, TrainingError
from signdigits.io import load_checkpoint, load_model, save_checkpoint, save_model
from signdigits.models import MODELS, as_model_input, build_model, default_spec
from signdigits.nn import Module
from signdigits.runs import write_json

CHECKPOINT = "checkpoint.safetensors"
RESULT_FILES = (
    "model.safetensors",
    "metrics.json",
    "learning_curves.png",
    "confusion_matrix.png",
    "mistakes.png",
)
LAST_MODEL = "last-model.safetensors"
"""The last trained model, kept in the cache folder for ``predict`` and ``serve``."""

AUGMENTATION: dict[str, Augmentation] = {
    "cnn": Augmentation(),
    "mlp": Augmentation(cutout=0, noise=0),
    "softmax": Augmentation(cutout=0, noise=0),
}
"""Each model's augmentation when ``augment`` is on (other models: ``Augmentation()``).
The CNN's hidden square and noise were chosen on the validation part
(``benchmarks/augmentation.py``); the linear and fully connected models, which see
pixels rather than shapes, keep the affine changes only."""

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("onecycle", "cosine", "none")

MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "cnn": {
        "epochs": 48,
        "lr": 8e-3,
        "optimizer": "adamw",
        "schedule": "onecycle",
        "augment": True,
    },
    "mlp": {
        "epochs": 60,
        "lr": 1e-3,
        "optimizer": "adamw",
        "schedule": "onecycle",
        "augment": True,
    },
    "softmax": {
        "epochs": 60,
        "lr": 1e-3,
        "optimizer": "adamw",
        "schedule": "cosine",
        "augment": True,
    },
    "logistic": {
        "epochs": 100,
        "lr": 1e-3,
        "optimizer": "adam",
        "schedule": "cosine",
        "augment": False,
    },
    "two-layer": {
        "epochs": 100,
        "lr": 1e-3,
        "optimizer": "adam",
        "schedule": "cosine",
        "augment": False,
    },
}
"""Each model's training defaults; any of them can be set on the command line."""


@dataclass
class TrainSettings:
    """What ``signdigits train`` takes; ``None`` means the model's default."""

    model: str = "cnn"
    classes: Sequence[int] = tuple(range(10))
    epochs: int | None = None
    batch_size: int = 32
    lr: float | None = None
    optimizer: str | None = None
    schedule: str | None = None
    seed: int = 42
    val_fraction: float = 0.1
    patience: int | None = None
    augment: bool | None = None
    weight_decay: float = 1e-4
    ema: float = 0.0
    keep_label_errors: bool = False

    def resolved(self) -> TrainSettings:
        """A copy with every default filled in from ``MODEL_DEFAULTS``, checked."""
        if self.model not in MODELS:
            raise InvalidArgumentError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}"
            )
        defaults = MODEL_DEFAULTS[self.model]
        values = asdict(self)
        for key, value in defaults.items():
            if values[key] is None:
                values[key] = value
        if values["patience"] is None:  # by default the schedule runs to its end
            values["patience"] = values["epochs"]
        values["classes"] = [int(c) for c in values["classes"]]
        settings = TrainSettings(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        classes = list(self.classes)
        if (
            len(set(classes)) != len(classes)
            or len(classes) < 2
            or not all(0 <= c <= 9 for c in classes)
        ):
            raise InvalidArgumentError(
                f"--classes must name two or more different digits 0–9, got {classes}"
            )
        if self.model in ("logistic", "two-layer") and len(classes) != 2:
            raise InvalidArgumentError(
                f"the {self.model} model tells two signs apart: give --classes 0,1 (or any two)"
            )
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(
                    f"--{name.replace('_', '-')} must be a whole number ≥ 1, got {value}"
                )
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise InvalidArgumentError(f"--lr must be a number > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidArgumentError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise InvalidArgumentError(
                f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if not (
            isinstance(self.weight_decay, int | float)
            and math.isfinite(self.weight_decay)
            and self.weight_decay >= 0
        ):
            raise InvalidArgumentError(
                f"--weight-decay must be a number ≥ 0, got {self.weight_decay}"
            )
        if not (isinstance(self.ema, int | float) and 0 <= self.ema < 1):
            raise InvalidArgumentError(f"--ema must be a decay in [0, 1), got {self.ema}")
        if not 0 <= self.val_fraction < 0.5:
            raise InvalidArgumentError(
                f"--val-fraction must be in [0, 0.5), got {self.val_fraction}"
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**32
        ):
            raise InvalidArgumentError(
                f"--seed must be a whole number from 0 to 2³² − 1, got {self.seed}"
            )


class TrainingInterrupted(Exception):
    """Training stopped on request (Ctrl-C) after a batch; its checkpoint is at ``path``."""

    def __init__(self, path: Path, epoch: int, batch: int) -> None:
        super().__init__(f"stopped in epoch {epoch} after batch {batch}")
        self.path, self.epoch, self.batch = path, epoch, batch


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


@dataclass
class _Run:
    """Everything that changes as training goes on, and that a checkpoint keeps."""

    epoch: int = 0  # the epoch under way (0-based)
    batch: int = 0  # the next batch of that epoch
    order: np.ndarray | None = None  # that epoch's order of images
    loss_sum: float = 0.0  # over the epoch's batches so far: Σ loss·batch size
    correct: int = 0
    seen: int = 0
    epoch_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = -1
    best_state: dict[str, np.ndarray] | None = None
    waited: int = 0  # epochs since the validation loss last improved
    seconds: float = 0.0  # training time so far, all sessions


def train_step(
    model: Module,
    optimizer: optim.Optimizer,
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    augmentation: Augmentation | None = None,
    batch_schedule: Any = None,
) -> tuple[float, np.ndarray]:
    """One step of training on a batch: the images augmented (when ``augmentation`` is
    given, drawn from ``rng``), the forward pass, the cross-entropy loss, its backward pass,
    the optimizer's step, and ``batch_schedule.step()`` (a learning-rate schedule that moves
    every batch, when given). Returns the loss and the logits (N, K)."""
    if augmentation is not None:
        images = augment(images, rng, augmentation)
    logits = model(Tensor(as_model_input(images, model.spec)))
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if batch_schedule is not None:
        batch_schedule.step()
    return float(loss.data), logits.data


def average_into(
    averaged: dict[str, np.ndarray], current: dict[str, np.ndarray], decay: float, step: int
) -> None:
    """One step of the exponential moving average of a model's state (its weights and its
    batch-norm statistics), in place: a ← d·a + (1 − d)·w, with the decay warming up as
    d = min(decay, (1 + step)/(10 + step)) so that the first steps' average is not held
    back by the initial weights; arrays that are not floats (counts) are copied."""
    d = min(decay, (1 + step) / (10 + step))
    for name, value in current.items():
        target = averaged[name]
        if target.dtype.kind == "f":
            target *= d
            target += (1 - d) * value
        else:
            target[...] = value


def build_optimizer(
    settings: TrainSettings, model: Module, steps_per_epoch: int
) -> tuple[Any, Any, str]:
    """The optimizer, the schedule (or None) and when it steps (``"batch"`` or ``"epoch"``)."""
    params = list(model.named_parameters())
    if settings.optimizer == "sgd":
        optimizer = optim.SGD(
            params, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay
        )
    elif settings.optimizer == "adam":
        optimizer = optim.Adam(params, lr=settings.lr, weight_decay=settings.weight_decay)
    else:
        optimizer = optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.schedule == "onecycle":
        schedule = optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=settings.lr, epochs=settings.epochs, steps_per_epoch=steps_per_epoch
        )
        return optimizer, schedule, "batch"
    if settings.schedule == "cosine":
        return (
            optimizer,
            optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs),
            "epoch",
        )
    return optimizer, None, "epoch"


def predict_logits(model: Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's logits (N, K) for images (N, 64, 64), in evaluation mode, no graph."""
    was_training = model.training
    model.eval()
    outputs = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            batch = as_model_input(images[start : start + batch_size], model.spec)
            outputs.append(model(Tensor(batch)).data)
    model.train(was_training)
    if not outputs:
        return np.empty((0, len(model.spec["classes"])), np.float32)
    return np.concatenate(outputs)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def loss_and_accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of logits against class indices."""
    if len(labels) == 0:
        return math.nan, math.nan
    loss = float(F.cross_entropy(Tensor(logits.astype(np.float64)), labels).data)
    return loss, float(np.mean(logits.argmax(axis=1) == labels))


def classification_report(
    labels: np.ndarray, predicted: np.ndarray, classes: Sequence[int]
) -> dict[str, Any]:
    """Accuracy, per-class precision and recall, and the confusion matrix (rows: true
    class, columns: predicted), by scikit-learn."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    indices = list(range(len(classes)))
    precision, recall, _, support = precision_recall_fscore_support(
        labels, predicted, labels=indices, zero_division=0
    )
    return {
        "accuracy": float(np.mean(labels == predicted)) if len(labels) else math.nan,
        "per_class": {
            str(digit): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "support": int(support[i]),
            }
            for i, digit in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, predicted, labels=indices).tolist(),
    }


def check_out_folder(out: Path, resume: bool) -> None:
    """Refuse an output folder that would mix two runs: before any training."""
    option = "--resume" if resume else "--out"
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"{option} {out} is a file; give a folder")
    if not out.exists():
        if resume:
            raise InvalidArgumentError(
                f"--resume {out} does not exist; give a stopped run's folder"
            )
        return
    names = {path.name for path in out.iterdir()}
    if resume:
        if CHECKPOINT not in names:
            finished = (
                " (the run finished: its model is model.safetensors)"
                if "model.safetensors" in names
                else ""
            )
            raise InvalidArgumentError(f"{out} has no {CHECKPOINT} to resume from{finished}")
        return
    if CHECKPOINT in names:
        raise InvalidArgumentError(
            f"{out} holds an unfinished run; resume it with `signdigits train --resume {out}`, "
            "or give another --out"
        )
    others = names - set(RESULT_FILES)
    if others:
        raise InvalidArgumentError(
            f"--out {out} holds other files ({', '.join(sorted(others)[:3])}); give a new folder "
            "or one with an earlier run's results only"
        )


def default_out(model: str) -> Path:
    return Path("runs") / f"{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def train(
    settings: TrainSettings | None = None,
    *,
    data: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    console: Console | None = None,
    show_progress: bool = True,
    verbose: bool = True,
    should_stop: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Train a model (see the module's docstring) and write its results to ``out``; return
    the metrics. With ``resume``, go on from the checkpoint in that folder (its settings are
    the run's: ``settings`` is ignored)."""
    console = console or Console(highlight=False)
    say = console if verbose else Console(quiet=True)
    if resume is not None:
        out_path = Path(resume)
        check_out_folder(out_path, resume=True)
        saved = load_checkpoint(out_path / CHECKPOINT)
        settings = TrainSettings(**saved["settings"]).resolved()
        data = data if data is not None else saved.get("data")
    else:
        settings = (settings or TrainSettings()).resolved()
        out_path = Path(out) if out is not None else default_out(settings.model)
        check_out_folder(out_path, resume=False)
        saved = None

    dataset = load_dataset(data, show_progress=show_progress)
    images, labels = choose_classes(dataset, settings.classes)
    split, left_out = training_split(dataset, labels, settings)
    if left_out:
        say.print(
            f"left out of training and validation, as known label errors "
            f"(signdigits/data/label_errors.txt): {', '.join(left_out)}",
            markup=False,
            soft_wrap=True,
        )
    elif dataset.names is None and not settings.keep_label_errors:
        say.print(
            "the Kaggle arrays have no file names, so the known label errors "
            "(signdigits/data/label_errors.txt) cannot be found and stay in",
            markup=False,
        )
    say.print(
        f"{settings.model} on the digits {', '.join(map(str, settings.classes))}: "
        f"{len(split.train)} images to train on, {len(split.val)} to validate with, "
        f"{len(split.test)} held out for the test",
        markup=False,
    )

    rng = np.random.default_rng(settings.seed)
    spec = default_spec(settings.model, settings.classes)
    model = build_model(spec, rng)
    loader = DataLoader(
        images[split.train],
        labels[split.train],
        batch_size=settings.batch_size,
        shuffle=True,
        rng=rng,
    )
    optimizer, schedule, schedule_every = build_optimizer(settings, model, len(loader))
    run = _Run()
    # With --ema, the weights that are validated and kept are a moving average of the
    # trained ones (a steadier choice of the best epoch than the last step's weights).
    averaged = {name: a.copy() for name, a in model.state_dict().items()} if settings.ema else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        if schedule is not None:
            schedule.load_state_dict(saved["schedule"])
        rng.bit_generator.state = saved["rng"]
        run = _run_from(saved["run"])
        if averaged is not None:  # writable copies: a file's arrays may be read-only
            averaged = {name: np.array(a) for name, a in saved["averaged"].items()}
    out_path.mkdir(parents=True, exist_ok=True)

    def checkpoint() -> Path:
        return save_checkpoint(
            out_path / CHECKPOINT,
            {
                "settings": {**asdict(settings), "classes": list(settings.classes)},
                "data": None if data is None else str(data),
                "model": dict(model.state_dict()),
                "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict() if schedule is not None else None,
                "rng": rng.bit_generator.state,
                "run": _run_state(run),
                "averaged": averaged,
            },
        )

    val_images, val_labels = images[split.val], labels[split.val]
    say.print(
        f"{settings.epochs} epochs of batches of {settings.batch_size}, {settings.optimizer} "
        f"(lr {settings.lr:g}, schedule {settings.schedule}), early stopping after "
        f"{settings.patience} epochs without a better validation loss",
        markup=False,
    )
    stopped_early = False
    while run.epoch < settings.epochs and not stopped_early:
        if run.order is None:
            run.order = loader.epoch_order()
        started = time.perf_counter()
        model.train()
        with _epoch_bar(
            show_progress and verbose, console, run.epoch, settings.epochs, len(loader)
        ) as bar:
            bar.advance(run.batch)
            for x, y in loader.batches(run.order, start=run.batch):
                augmentation = AUGMENTATION.get(settings.model, Augmentation())
                value, logits = train_step(
                    model,
                    optimizer,
                    x,
                    y,
                    rng,
                    augmentation if settings.augment else None,
                    schedule if schedule_every == "batch" else None,
                )
                if not math.isfinite(value):
                    raise TrainingError(
                        f"the training loss is {value} in epoch {run.epoch + 1}: the learning rate "
                        f"{settings.lr:g} is too large; try --lr {settings.lr / 10:g}"
                    )
                if averaged is not None:
                    step = run.epoch * len(loader) + run.batch
                    average_into(averaged, model.state_dict(), settings.ema, step)
                run.loss_sum += value * len(y)
                run.correct += int(np.sum(logits.argmax(axis=1) == y))
                run.seen += len(y)
                run.batch += 1
                bar.update(loss=run.loss_sum / run.seen, accuracy=run.correct / run.seen)
                if should_stop() and run.batch < len(loader):  # else the epoch ends first
                    run.epoch_seconds += time.perf_counter() - started
                    run.seconds += time.perf_counter() - started
                    path = checkpoint()
                    raise TrainingInterrupted(path, run.epoch + 1, run.batch)
        if schedule is not None and schedule_every == "epoch":
            schedule.step()
        elapsed = time.perf_counter() - started
        run.seconds += elapsed
        trained = None
        if averaged is not None:  # validate (and keep, if best) the averaged weights
            trained = {name: a.copy() for name, a in model.state_dict().items()}
            model.load_state_dict(averaged)
        val_loss, val_accuracy = loss_and_accuracy(predict_logits(model, val_images), val_labels)
        result = EpochResult(
            epoch=run.epoch + 1,
            train_loss=run.loss_sum / max(1, run.seen),
            train_accuracy=run.correct / max(1, run.seen),
            val_loss=None if math.isnan(val_loss) else val_loss,
            val_accuracy=None if math.isnan(val_accuracy) else val_accuracy,
            lr=float(optimizer.param_groups[0]["lr"]),
            seconds=run.epoch_seconds + elapsed,
        )
        run.history.append(asdict(result))
        say.print(_epoch_line(result, settings.epochs), markup=False, soft_wrap=True)
        watched = val_loss if not math.isnan(val_loss) else result.train_loss
        if watched < run.best_loss:
            run.best_loss, run.best_epoch, run.waited = watched, run.epoch, 0
            run.best_state = {name: array.copy() for name, array in model.state_dict().items()}
        else:
            run.waited += 1
            stopped_early = run.waited >= settings.patience
        if trained is not None:
            model.load_state_dict(trained)
        run.epoch, run.batch, run.order = run.epoch + 1, 0, None
        run.loss_sum, run.correct, run.seen, run.epoch_seconds = 0.0, 0, 0, 0.0
        checkpoint()
        if should_stop() and run.epoch < settings.epochs and not stopped_early:
            raise TrainingInterrupted(out_path / CHECKPOINT, run.epoch, len(loader))
    if stopped_early:
        say.print(
            f"stopped early: no better validation loss for {settings.patience} epochs", markup=False
        )

    if run.best_state is not None:
        model.load_state_dict(run.best_state)
    model.eval()
    metrics = _results(model, settings, run, images, labels, split, left_out, out_path, say)
    (out_path / CHECKPOINT).unlink(missing_ok=True)
    _remember_last_model(out_path / "model.safetensors")
    return metrics


def training_split(
    dataset: SignDigits, labels: np.ndarray, settings: TrainSettings
) -> tuple[Split, list[str]]:
    """The run's split and the names of the known label errors it leaves out of training
    and validation (none with ``keep_label_errors``; the test part keeps them all)."""
    if settings.keep_label_errors:
        return split_indices(labels, settings.seed, settings.val_fraction), []
    chosen = class_rows(dataset, settings.classes)
    wrong = label_error_mask(dataset)[chosen]
    split = split_indices(labels, settings.seed, settings.val_fraction, leave_out=wrong)
    rows, test = np.flatnonzero(chosen), set(split.test.tolist())  # rows: in the dataset
    return split, [dataset.names[rows[i]] for i in np.flatnonzero(wrong) if i not in test]


def _results(
    model: Module,
    settings: TrainSettings,
    run: _Run,
    images: np.ndarray,
    labels: np.ndarray,
    split: Split,
    left_out: list[str],
    out: Path,
    say: Console,
) -> dict[str, Any]:
    """Score the kept model, then write the model file, the metrics and the figures."""
    from signdigits import plots

    train_logits = predict_logits(model, images[split.train])
    test_logits = predict_logits(model, images[split.test])
    test_labels = labels[split.test]
    predicted = test_logits.argmax(axis=1)
    report = classification_report(test_labels, predicted, settings.classes)
    train_loss, train_accuracy = loss_and_accuracy(train_logits, labels[split.train])
    test_loss, test_accuracy = loss_and_accuracy(test_logits, test_labels)
    best = run.history[run.best_epoch] if run.best_epoch >= 0 else {}
    metrics = {
        "model": settings.model,
        "classes": list(settings.classes),
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "val_accuracy": best.get("val_accuracy"),
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_test": len(split.test),
        "left_out": left_out,
        "seconds": run.seconds,
        "seed": settings.seed,
        "learning_rate": settings.lr,
        "iterations": sum(1 for _ in run.history)
        * math.ceil(len(split.train) / settings.batch_size),
        "final_cost": train_loss,
        "test_loss": test_loss,
        "epochs": len(run.history),
        "best_epoch": run.best_epoch + 1,
        "settings": {**asdict(settings), "classes": list(settings.classes)},
        "history": run.history,
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
    }
    save_model(
        model,
        out / "model.safetensors",
        seed=settings.seed,
        val_fraction=settings.val_fraction,
        test_accuracy=test_accuracy,
        epochs=len(run.history),
    )
    write_json(out / "metrics.json", metrics)
    plots.learning_curves(
        run.history, out / "learning_curves.png", title=f"{settings.model}, seed {settings.seed}"
    )
    plots.confusion_matrix(
        np.array(report["confusion_matrix"]),
        settings.classes,
        out / "confusion_matrix.png",
        title=f"{settings.model}: {100 * test_accuracy:.2f} % of {len(split.test)} test images",
    )
    wrong = np.flatnonzero(predicted != test_labels)
    probabilities = softmax(test_logits)
    plots.mistakes(
        images[split.test][wrong],
        [settings.classes[i] for i in test_labels[wrong]],
        [settings.classes[i] for i in predicted[wrong]],
        probabilities[wrong, predicted[wrong]],
        out / "mistakes.png",
    )
    say.print(
        f"test accuracy {100 * test_accuracy:.2f} % ({round(test_accuracy * len(split.test))} "
        f"of {len(split.test)}), best epoch {run.best_epoch + 1}, {run.seconds:.0f} s of training",
        markup=False,
    )
    for name in RESULT_FILES:
        say.print(f"wrote {out / name}", markup=False, soft_wrap=True)
    return metrics


def _remember_last_model(path: Path) -> None:
    """A copy of the model file in the cache folder, for ``predict`` and ``serve``."""
    from signdigits.atomic import atomic_write

    try:
        with atomic_write(cache_dir() / LAST_MODEL) as file, path.open("rb") as source:
            shutil.copyfileobj(source, file)
    except (OSError, SignDigitsError):  # a convenience only: the run's own file stays
        pass


def _run_state(run: _Run) -> dict[str, Any]:
    """The run's fields for the checkpoint, as they are: no copy of the kept weights."""
    state = {item.name: getattr(run, item.name) for item in fields(run)}
    state["best_loss"] = None if math.isinf(run.best_loss) else run.best_loss
    return state


def _run_from(state: dict[str, Any]) -> _Run:
    state = dict(state)
    state["best_loss"] = math.inf if state["best_loss"] is None else state["best_loss"]
    return _Run(**state)


def _epoch_line(result: EpochResult, epochs: int) -> str:
    width = len(str(epochs))
    val = (
        f"val loss {result.val_loss:.4f} acc {100 * result.val_accuracy:6.2f} %"
        if result.val_loss is not None
        else "no validation part"
    )
    return (
        f"epoch {result.epoch:>{width}}/{epochs}: train loss {result.train_loss:.4f} "
        f"acc {100 * result.train_accuracy:6.2f} % · {val} · lr {result.lr:.2e} · "
        f"{result.seconds:.1f} s"
    )


class _epoch_bar:
    """A rich progress bar over one epoch's batches, with the running loss and accuracy."""

    def __init__(self, show: bool, console: Console, epoch: int, epochs: int, batches: int) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            TextColumn(
                "{task.completed}/{task.total} · loss {task.fields[loss]:.4f} · "
                "acc {task.fields[accuracy]:.1%}"
            ),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not show or not console.is_terminal,
        )
        self.task = self.progress.add_task("train", total=batches, loss=math.nan, accuracy=0.0)

    def __enter__(self) -> _epoch_bar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def advance(self, batches: int) -> None:
        self.progress.update(self.task, completed=batches)

    def update(self, loss: float, accuracy: float) -> None:
        self.progress.update(self.task, advance=1, loss=loss, accuracy=accuracy)


def evaluate_file(
    path: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Score a model file on the test part of its digits, made again from the seed it was
    trained with (or ``seed``): the same images the training run held out."""
    model = load_model(path)
    classes = model.spec["classes"]
    seed = model.metadata["seed"] if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InvalidArgumentError(f"--seed must be a whole number from 0 to 2³² − 1, got {seed}")
    dataset = load_dataset(data, show_progress=False)
    images, labels = choose_classes(dataset, classes)
    test = split_indices(labels, seed, 0.0).test
    logits = predict_logits(model, images[test])
    loss, accuracy = loss_and_accuracy(logits, labels[test])
    report = classification_report(labels[test], logits.argmax(axis=1), classes)
    return {
        "model_file": str(path),
        "model": model.spec["model"],
        "classes": classes,
        "seed": seed,
        "n_test": len(test),
        "test_accuracy": accuracy,
        "test_loss": loss,
        "per_class": report["per_class"],
        "confusion_matrix": report["confusion_matrix"],
    }


def print_report(report: dict[str, Any], console: Console) -> None:
    """``evaluate_file``'s report as tables: per class, then the confusion matrix."""
    from rich.table import Table

    right = round(report["test_accuracy"] * report["n_test"])
    console.print(
        f"{report['model']} from {report['model_file']}: {100 * report['test_accuracy']:.2f} % "
        f"of the {report['n_test']} test images right ({right}), seed {report['seed']}, "
        f"loss {report['test_loss']:.4f}",
        markup=False,
        soft_wrap=True,
    )
    per_class = Table("digit", "precision", "recall", "test images")
    for digit, scores in report["per_class"].items():
        per_class.add_row(
            digit,
            f"{100 * scores['precision']:.1f} %",
            f"{100 * scores['recall']:.1f} %",
            str(scores["support"]),
        )
    console.print(per_class)
    matrix = Table("true ↓ predicted →", *map(str, report["classes"]))
    for digit, row in zip(report["classes"], report["confusion_matrix"], strict=True):
        matrix.add_row(str(digit), *(str(count) if count else "·" for count in row))
    console.print(matrix)
