"""How fast does an exported model run under onnxruntime, next to signdigits itself?

Run:  .venv/bin/python benchmarks/onnx_latency.py MODEL.safetensors [--threads N]
      [--repeat R] [--data PATH]

The model is exported with ``signdigits.io.export_onnx`` to a temporary file. Both
engines then predict one preprocessed test image at a time (the latency a user of
``signdigits predict`` or of the web page waits for), and the whole test split in one
batch, with the same number of threads (signdigits' ``set_num_threads`` and BLAS through
threadpoolctl; onnxruntime's intra-op threads). Times are the median of R interleaved
repeats, each the mean of a timed loop, so that noise from other work hits both alike.

Last, the outputs: the largest absolute difference of the probabilities on the test split
(the model's own digits and seed, as ``signdigits evaluate`` makes it) and the number of
images whose predicted digit differs (both should be 0 within 1e-5).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from signdigits.autograd import Tensor, no_grad, threads
from signdigits.data import load_dataset
from signdigits.data.training import choose_classes, split_indices
from signdigits.io import export_onnx, load_model
from signdigits.models import as_model_input
from signdigits.training import predict_logits, softmax


def seconds_per_call(fn: Callable[[], object], min_time: float = 0.2) -> float:
    """The mean time of one call over an autoranged loop of about ``min_time`` seconds (or
    of the one call that takes longer)."""
    timer = timeit.Timer(fn)
    number, taken = timer.autorange()
    if taken >= min_time and number == 1:
        return taken
    number = max(1, int(number * min_time / 0.2))
    return timer.timeit(number) / number


def interleaved(cases: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """The median over ``repeat`` rounds of each case's time, the cases taking turns."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up: first-call allocations, lazy initialisations
    for _ in range(repeat):
        for name, fn in cases.items():
            times[name].append(seconds_per_call(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="a model file from `signdigits train`")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()

    model = load_model(args.model)
    spec = model.spec
    images, labels = choose_classes(load_dataset(args.data, show_progress=False), spec["classes"])
    test = split_indices(labels, model.metadata["seed"], 0.0).test
    test_images, test_labels = images[test], labels[test]

    threads.set_num_threads(args.threads)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / "model.onnx")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    one_ours = Tensor(as_model_input(test_images[:1], spec))
    one_theirs = {"images": test_images[:1, None]}
    all_theirs = {"images": test_images[:, None]}

    def ours_one() -> None:
        with no_grad():
            model(one_ours)

    with threadpool_limits(limits=args.threads):
        single = interleaved(
            {"ours": ours_one, "onnxruntime": lambda: session.run(None, one_theirs)},
            args.repeat,
        )
        batch = interleaved(
            {
                "ours": lambda: predict_logits(model, test_images, batch_size=len(test_images)),
                "onnxruntime": lambda: session.run(None, all_theirs),
            },
            max(3, args.repeat // 2),
        )
        ours_probabilities = softmax(predict_logits(model, test_images).astype(np.float64))
        _, theirs_probabilities = session.run(None, all_theirs)

    table = Table(
        title=f"{spec['model']} ({args.model}), {args.threads} thread(s), "
        f"median of {args.repeat} interleaved repeats"
    )
    for column in ("", "signdigits ms", "onnxruntime ms", "ours / onnxruntime"):
        table.add_column(column, justify="right" if column else "left")
    for name, times in (
        ("one image", single),
        (f"{len(test_images)} images, one batch", batch),
    ):
        ours, theirs = times["ours"], times["onnxruntime"]
        table.add_row(name, f"{ours * 1e3:.3f}", f"{theirs * 1e3:.3f}", f"{ours / theirs:.2f}")
    difference = float(np.abs(theirs_probabilities - ours_probabilities).max())
    ours_digits = ours_probabilities.argmax(axis=1)
    theirs_digits = theirs_probabilities.argmax(axis=1)
    table.caption = (
        f"on the {len(test_images)} test images: max |Δ probability| {difference:.2e}, "
        f"{int(np.sum(ours_digits != theirs_digits))} predicted digits differ; accuracy "
        f"{100 * np.mean(ours_digits == test_labels):.2f} % (ours), "
        f"{100 * np.mean(theirs_digits == test_labels):.2f} % (onnxruntime); "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}"
    )
    Console().print(table)


if __name__ == "__main__":
    main()
