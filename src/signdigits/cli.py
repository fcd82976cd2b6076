"""The ``signdigits`` command: one thin function per subcommand over the library.

Errors a user can fix (``SignDigitsError``, bad flags) end with one line on stderr
and exit code 2; anything else is a bug in signdigits and shows its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from signdigits import __version__
from signdigits.errors import InvalidArgumentError, SignDigitsError

app = typer.Typer(
    help="Deep learning from scratch on the Sign Language Digits dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Find, download and check the dataset.", no_args_is_help=True)
app.add_typer(data_app, name="data")

DataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="The dataset: its zip archive, extracted folder, or a folder with the Kaggle "
        "X.npy and Y.npy. Default: $SIGNDIGITS_DATA, then the cache, then a download.",
        show_default=False,
    ),
]
LookDataOption = Annotated[
    Path | None,
    typer.Option(
        "--data",
        help="The dataset: its zip archive, extracted folder, or a folder with the Kaggle "
        "X.npy and Y.npy. Default: $SIGNDIGITS_DATA, then the cache (never downloads).",
        show_default=False,
    ),
]
QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Print only the results: no steps, no progress bars."),
]
ThreadsOption = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="Threads for the engine's kernels. Default: $SIGNDIGITS_NUM_THREADS, else the "
        "CPUs this process may use.",
        show_default=False,
    ),
]


def _use_threads(count: int | None) -> None:
    """Apply ``--threads`` (or check ``$SIGNDIGITS_NUM_THREADS``) before any work."""
    from signdigits.autograd import threads

    threads.set_num_threads(count)


def _version(value: bool) -> None:
    if value:
        print(f"signdigits {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Deep learning from scratch on the Sign Language Digits dataset."""


@data_app.command("info")
def data_info(data: LookDataOption = None, quiet: QuietOption = False) -> None:
    """Where the dataset is and how many images each digit has (it only looks: no download)."""
    from signdigits.data import load_dataset

    dataset = load_dataset(data, download=False, show_progress=not quiet)
    print(f"source: {dataset.source.kind} (from {dataset.source.origin})")
    print(f"path:   {dataset.source.path}")
    print(f"images: {len(dataset)}")
    print("digit:  " + " ".join(f"{digit:>3}" for digit in range(10)))
    print("count:  " + " ".join(f"{count:>3}" for count in dataset.counts()))
    if dataset.names is not None:
        from signdigits.data.label_errors import known_label_errors

        for error in known_label_errors():
            print(
                f"filed under the wrong digit: {error.name} shows a {error.shows}, not a "
                f"{error.label} (`signdigits train` leaves it out of training and validation)"
            )


@data_app.command("fetch")
def data_fetch(
    from_path: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A copy of the dataset's zip archive to import into the cache instead of "
            "downloading it. Default: $SIGNDIGITS_DATA, if it names an archive.",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Download the dataset into the cache folder, or import a copy (kept only once verified)."""
    from signdigits.data import fetch_dataset

    fetched = fetch_dataset(from_path, show_progress=not quiet)
    source = fetched.source
    replacing = f", replacing a damaged one ({fetched.replaced})" if fetched.replaced else ""
    if fetched.action == "found":
        print(f"already there: {fetched.path} ({fetched.images} images verified)")
    elif fetched.action == "downloaded":
        print(f"downloaded {fetched.path} ({fetched.images} images verified){replacing}")
    elif fetched.action == "imported" and source is not None:
        print(
            f"imported {source.path} (from {source.origin}) into the cache as {fetched.path} "
            f"({fetched.images} images verified){replacing}; later runs find it there"
        )
    elif source is not None:  # a folder or the Kaggle pair, used where it is
        what = "the Kaggle arrays" if source.kind == "kaggle" else "the extracted folder"
        print(
            f"SIGNDIGITS_DATA points at {what} {source.path} ({fetched.images} images "
            "checked), which is used where it is: nothing was copied into the cache (only "
            "the zip archive goes there; unset SIGNDIGITS_DATA to download it)"
        )


@data_app.command("verify")
def data_verify(data: LookDataOption = None, quiet: QuietOption = False) -> None:
    """Check every image of the dataset against the manifest of SHA-256 checksums.

    It checks the copy there is and downloads nothing: `signdigits data fetch` verifies
    whatever it puts into the cache before keeping it.
    """
    from signdigits.data import find_source, verify_source

    source = find_source(data, download=False, show_progress=not quiet)
    count = verify_source(source)
    what = "images match the manifest" if source.kind != "kaggle" else "Kaggle arrays are valid"
    print(f"ok: {count} {what} ({source.kind} {source.path})")


class TutorialPart(str, Enum):
    """The parts of the tutorial that ``signdigits tutorial --part`` runs."""

    one = "1"
    two = "2"


TUTORIAL_OUT = {
    TutorialPart.one: Path("runs/tutorial"),
    TutorialPart.two: Path("runs/tutorial-part2"),
}
"""Each part's default results folder."""


@app.command()
def tutorial(
    data: DataOption = None,
    part: Annotated[
        TutorialPart,
        typer.Option(
            "--part",
            help="1: logistic regression from scratch, beside scikit-learn. 2: neural "
            "networks: the two-layer network by hand, then the L-layer network on "
            "signdigits.nn scored by 3-fold cross-validation, then every model of both "
            "parts in one table.",
        ),
    ] = TutorialPart.one,
    lr: Annotated[
        float,
        typer.Option(
            "--lr", help="Learning rate α of gradient descent (part 2: the two-layer network's)."
        ),
    ] = 0.01,
    iterations: Annotated[
        int | None,
        typer.Option(
            "--iterations",
            help="Number of gradient-descent iterations. Default: 150 in part 1, 2,500 for "
            "part 2's two-layer network.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="random_state of the train/test split (part 2: and of every model's "
            "random numbers).",
        ),
    ] = 42,
    test_size: Annotated[
        float, typer.Option("--test-size", help="Fraction of the images held out for testing.")
    ] = 0.15,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the figures and metrics. Default: runs/tutorial (part 1), "
            "runs/tutorial-part2 (part 2).",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOption = False,
    threads: ThreadsOption = None,
) -> None:
    """The tutorial: logistic regression from scratch on the signs 0 and 1, beside scikit-learn
    (part 1), then neural networks (part 2)."""
    from signdigits import tutorial as steps

    if part is TutorialPart.two or threads is not None:  # part 1 uses no engine kernels
        _use_threads(threads)
    run = steps.run_tutorial if part is TutorialPart.one else steps.run_tutorial_part2
    if iterations is None:
        iterations = 150 if part is TutorialPart.one else steps.TWO_LAYER_ITERATIONS
    run(
        data,
        learning_rate=lr,
        iterations=iterations,
        seed=seed,
        test_size=test_size,
        out=out if out is not None else TUTORIAL_OUT[part],
        show_progress=not quiet,
        verbose=not quiet,
    )


class GraphExample(str, Enum):
    """The graphs ``signdigits graph`` draws."""

    hypot = "hypot"
    logistic = "logistic"
    two_layer = "two-layer"


@app.command()
def graph(
    example: Annotated[
        GraphExample,
        typer.Option(
            "--example",
            help="hypot: c = √(a² + b²); logistic: the tutorial's logistic regression; "
            "two-layer: the two-layer network of part 2 (3 tanh units).",
        ),
    ] = GraphExample.hypot,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The picture: .png, .svg, .pdf or .dot. Default: runs/graphs/EXAMPLE.png.",
            show_default=False,
        ),
    ] = None,
    data: DataOption = None,
    quiet: QuietOption = False,
) -> None:
    """Draw a computational graph with its values and gradients after one backward pass."""
    import numpy as np

    from signdigits import graph as graphs

    out = out or Path("runs/graphs") / f"{example.value}.png"
    if example is GraphExample.hypot:
        output = graphs.hypot_example()
        title = "c = √(a² + b²)"
    else:
        from signdigits.data import load_dataset
        from signdigits.tutorial import load_zeros_and_ones, split_flatten_transpose

        X, Y = load_zeros_and_ones(load_dataset(data, show_progress=not quiet))
        x_train, y_train, _, _ = split_flatten_transpose(X, Y)
        if example is GraphExample.logistic:
            output = graphs.logistic_example(x_train, y_train)
            title = "Logistic regression, first iteration (348 training images)"
        else:
            output = graphs.two_layer_example(x_train, y_train, np.random.default_rng(42))
            title = "Two-layer network: 3 tanh units, then a sigmoid unit"
    print(f"wrote {graphs.render(output, out, title=title)}")


class ModelName(str, Enum):
    """The models ``signdigits train --model`` trains."""

    cnn = "cnn"
    mlp = "mlp"
    softmax = "softmax"
    logistic = "logistic"
    two_layer = "two-layer"


class OptimizerName(str, Enum):
    adamw = "adamw"
    adam = "adam"
    sgd = "sgd"


class ScheduleName(str, Enum):
    onecycle = "onecycle"
    cosine = "cosine"
    none = "none"


def _parse_classes(text: str) -> list[int]:
    """``all`` or digits separated by commas (``0,1``), as a list of digits."""
    if text.strip().lower() == "all":
        return list(range(10))
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and len(part) == 1 for part in parts):
        raise InvalidArgumentError(
            f"--classes {text!r} is not a list of digits; give all, or digits 0–9 separated "
            "by commas such as 0,1"
        )
    return [int(part) for part in parts]


@app.command()
def train(
    model: Annotated[
        ModelName, typer.Option("--model", help="What to train (cnn: the convolutional network).")
    ] = ModelName.cnn,
    classes: Annotated[
        str, typer.Option("--classes", help="The digits to tell apart: all, or such as 0,1.")
    ] = "all",
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Default: the model's (cnn: 48).")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Learning rate (the peak of onecycle). Default: the model's."),
    ] = None,
    optimizer: Annotated[OptimizerName | None, typer.Option("--optimizer")] = None,
    schedule: Annotated[ScheduleName | None, typer.Option("--schedule")] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", help="Makes the run: the split, the weights, the batches, augmentation."
        ),
    ] = 42,
    val_fraction: Annotated[
        float,
        typer.Option("--val-fraction", help="Share of the training part kept to validate with."),
    ] = 0.1,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience",
            min=1,
            help="Stop after this many epochs without a better validation loss. Default: never "
            "before the last epoch (the best epoch's model is kept in any case).",
        ),
    ] = None,
    ema: Annotated[
        float,
        typer.Option(
            "--ema",
            help="Validate and keep a moving average of the weights, with this decay per "
            "batch (e.g. 0.999); 0: the trained weights themselves.",
        ),
    ] = 0.0,
    weight_decay: Annotated[
        float,
        typer.Option(
            "--weight-decay",
            help="Weight decay: decoupled for adamw, added to the gradient as L2 for sgd and adam.",
        ),
    ] = 1e-4,
    keep_label_errors: Annotated[
        bool,
        typer.Option(
            "--keep-label-errors",
            help="Train and validate on the photos listed as filed under the wrong digit too "
            "(by default they are left out; the test part always keeps them).",
        ),
    ] = False,
    threads: ThreadsOption = None,
    data: DataOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Folder for the results. Default: runs/MODEL-TIME.", show_default=False
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Go on with the stopped run in this folder, from its checkpoint (its settings "
            "are the run's own).",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Train a model on the dataset's digits, keep the best epoch's, and write the model file,
    its metrics and figures. Ctrl-C stops after the current batch, with a checkpoint."""
    from signdigits import training

    _use_threads(threads)
    settings = training.TrainSettings(
        model=model.value,
        classes=_parse_classes(classes),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer.value if optimizer else None,
        schedule=schedule.value if schedule else None,
        seed=seed,
        val_fraction=val_fraction,
        patience=patience,
        ema=ema,
        weight_decay=weight_decay,
        keep_label_errors=keep_label_errors,
    )
    if resume is None:
        settings.resolved()  # every bad setting is refused before any work
    with _stop_on_first_ctrl_c() as stop:
        try:
            training.train(
                settings,
                data=data,
                out=out,
                resume=resume,
                show_progress=not quiet,
                verbose=not quiet,
                should_stop=stop.is_set,
            )
        except training.TrainingInterrupted as stopped:
            folder = stopped.path.parent
            raise _Stopped(
                f"signdigits: stopped in epoch {stopped.epoch} after batch {stopped.batch}; the "
                f"checkpoint is {stopped.path}: go on with `signdigits train --resume {folder}`"
            ) from None


class _Stopped(Exception):
    """A command stopped by Ctrl-C at a point it can go on from; the message says how."""


@contextlib.contextmanager
def _stop_on_first_ctrl_c() -> Iterator[threading.Event]:
    """An event that the first Ctrl-C sets (training stops after its batch); a second one
    interrupts at once. Elsewhere than the main thread, Ctrl-C is left as it is."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def first(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@app.command()
def evaluate(
    model_file: Annotated[Path, typer.Argument(help="A model file from `signdigits train`.")],
    data: DataOption = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="The split's seed. Default: the one the model was trained with."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Score a model file on its test images: accuracy, per-class precision and recall, and
    the confusion matrix."""
    from signdigits import training

    report = training.evaluate_file(model_file, data=data, seed=seed)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    training.print_report(report, Console(highlight=False))


@app.command()
def predict(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="[MODEL.safetensors] IMAGE...: the model (default: the last one trained), "
            "then photos or folders of photos.",
            metavar="[MODEL] IMAGE...",
            show_default=False,
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="Show the K most probable digits.")] = 1,
    explain: Annotated[
        Path | None,
        typer.Option(
            "--explain",
            help="Write, per image, what the network looked at (saliency and occlusion maps) "
            "into this folder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Predict the digit of each photo: any size and mode, EXIF orientation honoured. A file
    that cannot be read is reported on its own line; the exit code is then 2."""
    from signdigits import predict as predicting

    model_path = None
    if paths and paths[0].suffix == ".safetensors":
        model_path, paths = paths[0], paths[1:]
    if not paths:
        raise InvalidArgumentError("give one or more images (or folders of images) to predict")
    model = predicting.load_model_or_last(model_path)
    results = predicting.predict_images(model, paths, top=top)
    pictures = predicting.explain_all(model, results, explain) if explain is not None else []
    if as_json:
        print(json.dumps([result.as_json() for result in results], indent=2))
    for result in results:
        if result.error is not None:
            _say(f"signdigits: error: {result.error}")
        elif not as_json:
            shown = ", ".join(f"{digit} ({100 * p:.1f} %)" for digit, p in result.top)
            print(f"{result.image}: {shown}")
    for picture in pictures:
        if not as_json:
            print(f"wrote {picture}")
    if any(result.error is not None for result in results):
        raise typer.Exit(2)


@app.command()
def export(
    model_file: Annotated[Path, typer.Argument(help="A model file from `signdigits train`.")],
    out: Annotated[
        Path, typer.Argument(help="The ONNX file to write, OUT.onnx (its folder must exist).")
    ],
) -> None:
    """Export a model file to ONNX, to run it with onnxruntime: input images (N, 1, 64, 64)
    float32, outputs logits and probabilities; its metadata says how to preprocess photos."""
    from signdigits.io import load_model
    from signdigits.onnx_export import OPSET, check_destination, export_onnx

    check_destination(out)
    if out.suffix.lower() != ".onnx":
        raise InvalidArgumentError(
            f"the ONNX file must end in .onnx, got {out} (the order is MODEL then OUT.onnx)"
        )
    model = load_model(model_file)
    written = export_onnx(model, out)
    digits = ", ".join(map(str, model.spec["classes"]))
    print(
        f"wrote {written}: {model.spec['model']} for the digits {digits}, ONNX opset {OPSET}, "
        "input images (N, 1, 64, 64) float32, outputs logits and probabilities"
    )


@app.command()
def serve(
    model_file: Annotated[
        Path | None,
        typer.Argument(help="A model file (default: the last one trained).", show_default=False),
    ] = None,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="The address to listen on; another than 127.0.0.1 opens it to others."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
) -> None:
    """Serve a web page that predicts the digit of a photo or a camera picture, and its API."""
    from signdigits import predict as predicting
    from signdigits import serve as serving

    model = predicting.load_model_or_last(model_file)
    name = str(model_file) if model_file is not None else "the last model trained"
    print(f"serving {name} on http://{host}:{port}/ (Ctrl-C stops)")
    serving.serve(model, name, host=host, port=port)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 2 user error, 130 interrupted)."""
    try:
        result = app(args=argv, prog_name="signdigits", standalone_mode=False)
    except SignDigitsError as error:
        return _fail(f"signdigits: error: {error}")
    except _Stopped as stopped:
        _say(str(stopped))
        return INTERRUPTED
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except OSError as error:
        if not _stdout_is_broken(error):
            raise
        return _fail(f"signdigits: error: cannot write the output ({error.strerror or error})")
    except Exception as error:
        if not _is_usage_error(error):
            raise
        if type(error).__name__ == "NoArgsIsHelpError":  # `signdigits data` alone: show help
            print(error.format_message())
            return 2
        context = getattr(error, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context else ""
        return _fail(f"signdigits: error: {error.format_message()}{hint}")
    if result == INTERRUPTED:  # typer's answer to Ctrl-C: it returns 130, and says nothing
        return _interrupted()
    try:
        sys.stdout.flush()
    except OSError as error:
        if not _stdout_is_broken(error):
            raise
        return _fail(f"signdigits: error: cannot write the output ({error.strerror or error})")
    return result if isinstance(result, int) else 0


INTERRUPTED = 130
"""The exit code of a command stopped by Ctrl-C (128 + SIGINT), as shells use."""


def _interrupted() -> int:
    _say(
        "signdigits: interrupted; nothing was half-written: results, downloads and the cache "
        "are kept only once complete"
    )
    return INTERRUPTED


def _one_line(message: str) -> str:
    """The message with control characters (a newline in a path) shown escaped, not obeyed."""
    return "".join(
        character if character.isprintable() else repr(character)[1:-1] for character in message
    )


def _say(message: str) -> None:
    """One line on stderr, taken as plain text (a path with ``[/]`` is not rich markup)."""
    print(_one_line(message), file=sys.stderr, flush=True)


def _fail(message: str) -> int:
    _say(message)
    return 2


def _stdout_is_broken(error: OSError) -> bool:
    """True for the error of writing standard output when it cannot take more (a full disk,
    a closed pipe): such an error names no file, unlike every file the commands open, whose
    errors become one-line messages where they happen. Standard output is then pointed at
    /dev/null, so that Python's last flush at exit does not fail a second time."""
    output_errors = (errno.ENOSPC, errno.EPIPE, errno.EIO, errno.EDQUOT, errno.EFBIG)
    if error.errno not in output_errors or error.filename is not None:
        return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return True


def _is_usage_error(error: Exception) -> bool:
    """A bad flag or value: click's UsageError, matched by its interface because typer
    vendors its own copy of click in recent releases."""
    return getattr(error, "exit_code", None) == 2 and callable(
        getattr(error, "format_message", None)
    )


if __name__ == "__main__":
    sys.exit(main())
