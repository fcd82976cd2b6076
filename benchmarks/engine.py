"""How fast is the autograd engine? Two measurements, side by side in one run.

1. Overhead per operation: the time of an operation on small Tensors that record the
   graph, minus the time of the same NumPy call on the bare arrays (µs). Target ≤ 5 µs.
2. One training step's forward and backward pass, batch 32, through a
   4096→256→128→10 MLP (ReLU, cross-entropy), next to PyTorch on the CPU with the same
   number of threads. Target: ≤ 1.2 × PyTorch's time.

Run:  .venv/bin/python benchmarks/engine.py [--threads N] [--repeat R]

Times are the median of R repeats (each the mean of a timed loop), so that noise from
other work on a shared machine weighs less; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import timeit
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

from signdigits import functional as F
from signdigits.autograd import Tensor


def seconds_per_call(fn: Callable[[], object], repeat: int, min_time: float = 0.2) -> float:
    """Median over ``repeat`` rounds of the mean time of one call (autoranged loop)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(1, int(number * min_time / 0.2))
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def overhead_table(repeat: int) -> Table:
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((4, 4), dtype=np.float32)
    b_np = rng.standard_normal((4, 4), dtype=np.float32)
    a = Tensor(a_np, requires_grad=True)
    b = Tensor(b_np, requires_grad=True)
    cases = {
        "a + b": (lambda: a + b, lambda: a_np + b_np),
        "a * b": (lambda: a * b, lambda: a_np * b_np),
        "a @ b": (lambda: a @ b, lambda: a_np @ b_np),
        "exp(a)": (lambda: a.exp(), lambda: np.exp(a_np)),
        "tanh(a)": (lambda: a.tanh(), lambda: np.tanh(a_np)),
        "relu(a)": (lambda: a.relu(), lambda: np.maximum(a_np, 0)),
        "a.sum()": (lambda: a.sum(), lambda: a_np.sum()),
        "a.reshape(16)": (lambda: a.reshape(16), lambda: a_np.reshape(16)),
    }
    table = Table(title="Engine overhead per operation (4×4 float32, graph recorded)")
    for column in ("operation", "signdigits µs", "NumPy µs", "overhead µs"):
        table.add_column(column, justify="right" if column != "operation" else "left")
    overheads = []
    for name, (engine_op, numpy_op) in cases.items():
        engine = seconds_per_call(engine_op, repeat) * 1e6
        bare = seconds_per_call(numpy_op, repeat) * 1e6
        overheads.append(engine - bare)
        table.add_row(name, f"{engine:.2f}", f"{bare:.2f}", f"{engine - bare:.2f}")

    # Backward: a chain of n multiply-adds, per node, minus the NumPy work it does.
    n = 200
    x_np = rng.standard_normal(4, dtype=np.float32)

    def chain_backward() -> None:
        x = Tensor(x_np, requires_grad=True)
        y = x
        for _ in range(n):
            y = y * 1.001 + 0.5
        y.sum().backward()

    def chain_forward() -> None:
        x = Tensor(x_np, requires_grad=True)
        y = x
        for _ in range(n):
            y = y * 1.001 + 0.5

    def numpy_backward_work() -> None:
        g = np.ones_like(x_np)
        for _ in range(n):
            g = g * np.float32(1.001)  # mul's derivative; add's passes g through
            g.sum()  # a reduction per node, as the engine checks shapes

    per_node_backward = (
        seconds_per_call(chain_backward, repeat) - seconds_per_call(chain_forward, repeat)
    ) / (2 * n)
    per_node_numpy = seconds_per_call(numpy_backward_work, repeat) / (2 * n)
    overheads.append((per_node_backward - per_node_numpy) * 1e6)
    table.add_row(
        "backward, per node",
        f"{per_node_backward * 1e6:.2f}",
        f"{per_node_numpy * 1e6:.2f}",
        f"{(per_node_backward - per_node_numpy) * 1e6:.2f}",
    )
    table.caption = (
        f"mean overhead {statistics.mean(overheads):.2f} µs, "
        f"worst {max(overheads):.2f} µs (target ≤ 5)"
    )
    return table


def mlp_step_times(repeat: int, batch: int = 32) -> tuple[float, float]:
    """Seconds per forward+backward step: (signdigits, PyTorch)."""
    rng = np.random.default_rng(0)
    sizes = (4096, 256, 128, 10)
    weights = [
        (rng.standard_normal((n_out, n_in), dtype=np.float32) / np.sqrt(n_in)).astype(np.float32)
        for n_in, n_out in itertools.pairwise(sizes)
    ]
    biases = [np.zeros(n_out, dtype=np.float32) for n_out in sizes[1:]]
    x_np = rng.random((batch, sizes[0]), dtype=np.float32)
    y_np = rng.integers(0, 10, batch)

    ours = [Tensor(w, requires_grad=True) for w in weights] + [
        Tensor(b, requires_grad=True) for b in biases
    ]
    x, y = Tensor(x_np), y_np

    def our_step() -> None:
        for p in ours:
            p.grad = None
        h = F.linear(x, ours[0], ours[3]).relu()
        h = F.linear(h, ours[1], ours[4]).relu()
        F.cross_entropy(F.linear(h, ours[2], ours[5]), y).backward()

    theirs = [torch.tensor(w, requires_grad=True) for w in weights] + [
        torch.tensor(b, requires_grad=True) for b in biases
    ]
    x_t, y_t = torch.from_numpy(x_np), torch.from_numpy(y_np)

    def torch_step() -> None:
        for p in theirs:
            p.grad = None
        h = torch.nn.functional.linear(x_t, theirs[0], theirs[3]).relu()
        h = torch.nn.functional.linear(h, theirs[1], theirs[4]).relu()
        torch.nn.functional.cross_entropy(
            torch.nn.functional.linear(h, theirs[2], theirs[5]), y_t
        ).backward()

    # Same result first: the comparison is only fair if both compute the same thing.
    our_step()
    torch_step()
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-3, atol=1e-5)

    # Interleave the two so that machine noise hits both alike.
    ours_times, torch_times = [], []
    for _ in range(repeat):
        ours_times.append(seconds_per_call(our_step, 1))
        torch_times.append(seconds_per_call(torch_step, 1))
    return statistics.median(ours_times), statistics.median(torch_times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    console = Console()
    torch.set_num_threads(args.threads)
    with threadpool_limits(limits=args.threads):
        console.print(overhead_table(args.repeat))
        ours, theirs = mlp_step_times(args.repeat)
    table = Table(
        title=f"MLP 4096→256→128→10, batch 32, forward + backward, {args.threads} thread(s)"
    )
    for column in ("signdigits ms", "PyTorch ms", "ratio (ours / PyTorch)"):
        table.add_column(column, justify="right")
    table.add_row(f"{ours * 1e3:.3f}", f"{theirs * 1e3:.3f}", f"{ours / theirs:.2f}")
    table.caption = f"target ratio ≤ 1.2; torch {torch.__version__}, numpy {np.__version__}"
    console.print(table)


if __name__ == "__main__":
    main()
