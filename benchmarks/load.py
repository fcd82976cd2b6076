"""How does `signdigits serve` hold up under load, and what does one prediction cost?

Run:  .venv/bin/python benchmarks/load.py MODEL [--clients 200] [--seconds 30] [--image PATH]
      [--port 0] [--threads N] [--repeat 200] [--sequential 50] [--max-requests 100000]
      [--timeout 60] [--shared-pool]

MODEL is a model file from `signdigits train`. The script starts the server itself
(``python -m signdigits serve MODEL --host 127.0.0.1 --port N``; ``--port 0``, the
default, takes a free port), waits for ``GET /healthz``, measures, and stops the server at
the end, also after an error or Ctrl-C. All traffic goes to 127.0.0.1 (httpx with
``trust_env=False``, so no proxy variable sends it elsewhere).

The photos are real dataset photos, read through the library's own data access (the
dataset that ``SIGNDIGITS_DATA`` or the cache names): the first photo of each of the
model's digits, client i sending photo i mod K; or the one photo ``--image``. The digit
expected for each photo is the model's own answer computed once in this process (the same
preprocessing and forward as the server's).

1. Load: ``--clients`` concurrent clients (asyncio; each its own ``httpx.AsyncClient`` and
   keep-alive connection, so as many connections as clients; with ``--shared-pool``, one
   AsyncClient whose pool holds as many connections as clients) each POST their photo to
   ``/api/predict`` in a loop until ``--seconds`` have passed, or ``--max-requests``
   requests have been sent in all; each request has a ``--timeout``, and the whole phase a
   hard time limit. Printed: the requests, the throughput (answers per second of the
   phase, from its start until the last answer), the latency of each request (from
   sending it to its whole answer, queueing in the server included) at p50/p95/p99, the
   server's own ``elapsed_ms`` (preprocessing, waiting for the model's lock and the
   forward pass) at p50/p99, the CPU seconds the server and this client used, the server's
   resident memory (and its peak), the machine's load average, and the errors: any answer
   other than 200, any exception (a timeout, a refused or reset connection) and any 200
   answer whose digit is not the expected one. There must be none: the script exits with
   1 otherwise (also for an error in part 2 or 3).
2. One request alone: the HTTP round trip of one request with no other traffic (the
   median of ``--sequential`` requests sent one after another on one connection).
3. One prediction in-process, without HTTP, ours beside PyTorch: the preprocessed 64×64
   image through the model in evaluation mode without a graph, to the probabilities
   (ours: ``predict_logits`` and ``softmax``, the server's own path; PyTorch: the
   ``torch.nn`` network the model's spec describes, with the same weights, ``eval()``,
   ``torch.no_grad()``, ``torch.softmax``), both on ``--threads`` threads (default: the
   CPUs this process may use), the median of ``--repeat`` single calls timed in turn
   (ours, PyTorch, ours, …), and the ratio ours / PyTorch (below 1: we are faster); the
   fastest call of each beside it, the figure least touched by other work on the machine.
   Both must give the same probabilities (the largest difference is printed; over 1e-4
   is an error). The preprocessing of the photo (ours only) is shown beside it.

The client runs on the same machine as the server and takes CPU from it: on a few cores
the throughput is that of the pair, and the CPU seconds say who used what. That is why
each client has its own AsyncClient by default: httpcore's shared pool costs CPU
quadratic in its size for each request (measured at 200 connections, 2 cores: 9–13 ms of
client CPU per request against 3 ms, as much as the server's whole work, and half the
throughput), and a pooled connection left idle past uvicorn's 5 s keep-alive can be
closed just as it is reused (a ReadError now and then). ``--shared-pool`` measures that
layout anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from signdigits.autograd import threads as engine_threads
from signdigits.data.dataset import find_source
from signdigits.data.preprocess import preprocess_image
from signdigits.data.sources import read_image_files
from signdigits.io import load_model
from signdigits.models import as_model_input
from signdigits.nn import Module
from signdigits.training import predict_logits, softmax

HOST = "127.0.0.1"
BOUNDARY = "signdigits-load-benchmark"
PROBABILITY_TOLERANCE = 1e-4
SETTLE = 0.02  # s of rest before each in-process timing, so one side's idle threads sleep
STARTUP_SECONDS = 120.0  # the longest wait for /healthz


@dataclass
class Photo:
    name: str
    content: bytes
    label: int | None  # the dataset's digit for it, None for --image
    expected: int = -1  # the model's digit for it, computed in this process
    body: bytes = b""  # the multipart/form-data body with the field "image"


@dataclass
class Results:
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, 200 answers only
    server_ms: list[float] = field(default_factory=list)  # the answers' elapsed_ms
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        self.examples.setdefault(kind, detail[:300])


# -- the photos and the expected digits -----------------------------------------------------


def multipart_body(name: str, content: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="image"; filename="{Path(name).name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def load_photos(image: str | None, classes: list[int]) -> list[Photo]:
    """``--image``, or the first photo (by file name) of each of the model's digits."""
    if image is not None:
        return [Photo(image, Path(image).read_bytes(), None)]
    source = find_source(download=False)
    if source.kind == "kaggle":
        sys.exit("the Kaggle arrays have no photos: give one with --image")
    files = read_image_files(source)
    photos = []
    for digit in classes:
        names = sorted(name for name in files if name.split("/")[0] == str(digit))
        if names:
            photos.append(Photo(names[0], files[names[0]], digit))
    if not photos:
        sys.exit(f"no photos of the digits {classes} in {source.path}")
    return photos


def ours_probabilities(model: Module, image: np.ndarray) -> np.ndarray:
    """The server's path: logits in eval mode without a graph, softmax in float64."""
    return softmax(predict_logits(model, image[None]).astype(np.float64))[0]


# -- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_server(model_path: str, port: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "signdigits", "serve", model_path]
    command += ["--host", HOST, "--port", str(port)]
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def wait_until_healthy(server: subprocess.Popen, base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {server.returncode}:\n{log_tail(log_path)}"
                )
            try:
                if http.get(f"{base}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise RuntimeError(f"no answer from {base}/healthz in {STARTUP_SECONDS:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # uvicorn shuts down gracefully on SIGTERM
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (Linux's /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float] | None:
    """Resident and peak resident memory of process ``pid``, MiB (Linux's /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    if len(values) < 2:
        return None
    return values["VmRSS"], values["VmHWM"]


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


# -- the load ---------------------------------------------------------------------------------


def check_answer(response: httpx.Response, photo: Photo, results: Results) -> bool:
    """Record an error unless ``response`` is a 200 with the expected digit."""
    if response.status_code != 200:
        results.error(f"HTTP {response.status_code}", response.text)
        return False
    try:
        answer = response.json()
        digit, elapsed = answer["digit"], float(answer["elapsed_ms"])
    except (ValueError, KeyError, TypeError) as error:
        results.error("unreadable answer", f"{error!r}: {response.text}")
        return False
    if digit != photo.expected:
        results.error("wrong digit", f"{photo.name}: {digit}, expected {photo.expected}")
        return False
    results.server_ms.append(elapsed)
    return True


async def one_client(
    http: httpx.AsyncClient,
    url: str,
    photo: Photo,
    deadline: float,
    max_requests: int,
    results: Results,
) -> None:
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    while time.monotonic() < deadline and results.sent < max_requests:
        results.sent += 1
        started = time.perf_counter()
        try:
            response = await http.post(url, content=photo.body, headers=headers)
        except (httpx.HTTPError, OSError) as error:
            results.error(type(error).__name__, repr(error))
            continue
        if check_answer(response, photo, results):
            results.latencies.append(time.perf_counter() - started)


async def load_phase(
    base: str,
    photos: list[Photo],
    clients: int,
    seconds: float,
    max_requests: int,
    timeout: float,
    shared_pool: bool = False,
) -> tuple[Results, float]:
    """Run the clients; the results and the phase's seconds (start to last answer).

    Each client has its own ``httpx.AsyncClient`` (one connection each, so ``clients``
    connections in all), unless ``shared_pool``: then one AsyncClient with a pool of
    ``clients`` connections serves them all. httpcore's pool walks all of its connections
    for each connection on every request that comes or goes (``_assign_requests_to_connections``,
    quadratic in the pool's size), which at 200 connections costs more CPU than the
    server's own work per request and takes it from the server on a small machine.
    """
    results = Results()
    url = f"{base}/api/predict"
    size = clients if shared_pool else 1
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    tls = ssl.create_default_context()  # unused (plain HTTP), but made once, not per client
    pools = [
        httpx.AsyncClient(
            trust_env=False, verify=tls, limits=limits, timeout=httpx.Timeout(timeout)
        )
        for _ in range(1 if shared_pool else clients)
    ]
    try:
        started = time.perf_counter()
        deadline = time.monotonic() + seconds
        tasks = [
            asyncio.ensure_future(
                one_client(
                    pools[i % len(pools)],
                    url,
                    photos[i % len(photos)],
                    deadline,
                    max_requests,
                    results,
                )
            )
            for i in range(clients)
        ]
        # A hard limit: each request ends within its timeout, so this is never reached
        # unless something hangs; whatever is still running then is cancelled and counted.
        done, pending = await asyncio.wait(tasks, timeout=seconds + timeout + 30)
        for task in pending:
            task.cancel()
            results.error("client still running at the hard limit", "cancelled")
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.perf_counter() - started
        for task in done:
            if task.exception() is not None:
                results.error("client failed", repr(task.exception()))
    finally:
        for pool in pools:
            await pool.aclose()
    return results, elapsed


def sequential_round_trips(base: str, photo: Photo, count: int, results: Results) -> list[float]:
    """Seconds of ``count`` requests sent one after another on one connection."""
    headers = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
    times = []
    with httpx.Client(trust_env=False, timeout=30.0) as http:
        for _ in range(count):
            started = time.perf_counter()
            try:
                response = http.post(f"{base}/api/predict", content=photo.body, headers=headers)
            except httpx.HTTPError as error:
                results.error(type(error).__name__, repr(error))
                continue
            if check_answer(response, photo, results):
                times.append(time.perf_counter() - started)
    return times


# -- the PyTorch copy ---------------------------------------------------------------------------


class TorchZeroAndLogit(torch.nn.Module):
    """signdigits.models.ZeroAndLogit: one logit z as the two logits (0, z)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(z), z], dim=1)


def torch_model(spec: dict) -> torch.nn.Sequential:
    """The torch.nn network of a model spec, layer for layer as signdigits.models builds it
    (so that the state_dict keys are the same)."""
    pixels, classes = 64 * 64, len(spec["classes"])
    kind = spec["model"]
    if kind == "logistic":
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(pixels, 1), TorchZeroAndLogit()
        )
    if kind == "two-layer":
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(pixels, spec["hidden"]),
            torch.nn.Tanh(),
            torch.nn.Linear(spec["hidden"], 1),
            TorchZeroAndLogit(),
        )
    if kind == "softmax":
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(pixels, classes))
    layers: list[torch.nn.Module] = [torch.nn.Flatten()]
    if kind == "mlp":
        width = pixels
        for size in spec["hidden"]:
            layers += [torch.nn.Linear(width, size), torch.nn.ReLU()]
            if spec["dropout"]:
                layers.append(torch.nn.Dropout(spec["dropout"]))
            width = size
        layers.append(torch.nn.Linear(width, classes))
        return torch.nn.Sequential(*layers)
    layers, channels_in, side = [], 1, 64
    for channels in spec["channels"]:
        layers += [
            torch.nn.Conv2d(channels_in, channels, 3, padding=1),
            torch.nn.BatchNorm2d(channels),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        channels_in, side = channels, side // 2
    layers += [torch.nn.Flatten(), torch.nn.Dropout(spec["dropout"])]
    layers.append(torch.nn.Linear(channels_in * side * side, classes))
    return torch.nn.Sequential(*layers)


def in_process_times(
    model: Module, photo: Photo, repeat: int
) -> tuple[list[float], list[float], list[float], float]:
    """Seconds of one prediction, ours and PyTorch's (interleaved), of the preprocessing,
    and the largest difference between the two sides' probabilities."""
    image = preprocess_image(photo.content)
    theirs = torch_model(model.spec)
    theirs.load_state_dict(
        {k: torch.from_numpy(np.array(v)) for k, v in model.state_dict().items()}
    )
    theirs.eval()
    x = torch.from_numpy(np.ascontiguousarray(as_model_input(image[None], model.spec)))

    def torch_probabilities() -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(theirs(x), dim=1)[0].numpy()

    difference = float(np.abs(ours_probabilities(model, image) - torch_probabilities()).max())
    for _ in range(5):  # warm-up
        ours_probabilities(model, image)
        torch_probabilities()
    ours, pytorch, preprocessing = [], [], []
    for _ in range(repeat):
        time.sleep(SETTLE)
        started = time.perf_counter()
        ours_probabilities(model, image)
        ours.append(time.perf_counter() - started)
        time.sleep(SETTLE)
        started = time.perf_counter()
        torch_probabilities()
        pytorch.append(time.perf_counter() - started)
    for _ in range(max(1, repeat // 4)):
        started = time.perf_counter()
        preprocess_image(photo.content)
        preprocessing.append(time.perf_counter() - started)
    return ours, pytorch, preprocessing, difference


# -- main -------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model file (.safetensors)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (200)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (30)")
    parser.add_argument("--image", default=None, help="a photo to send (default: dataset's)")
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="threads of both sides in-process (default: the CPUs this process may use)",
    )
    parser.add_argument("--repeat", type=int, default=200, help="in-process repeats (200)")
    parser.add_argument("--sequential", type=int, default=50, help="lone requests (50)")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="hard cap on the load's requests"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request (60)")
    parser.add_argument(
        "--shared-pool", action="store_true", help="one AsyncClient for all the clients"
    )
    args = parser.parse_args()
    for name in ("clients", "seconds", "repeat", "sequential", "max_requests", "timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in 0..65535")

    console = Console(width=110)
    started = time.perf_counter()
    model = load_model(args.model)
    photos = load_photos(args.image, [int(c) for c in model.spec["classes"]])
    for photo in photos:
        row = ours_probabilities(model, preprocess_image(photo.content))
        photo.expected = int(model.spec["classes"][int(row.argmax())])
        photo.body = multipart_body(photo.name, photo.content)
    console.print(
        "photos (file → label → expected, the model's answer in-process): "
        + ", ".join(
            f"{p.name} → {'?' if p.label is None else p.label} → {p.expected}" for p in photos
        )
    )

    port = args.port or free_port()
    base = f"http://{HOST}:{port}"
    lone = Results()
    with tempfile.TemporaryDirectory(prefix="signdigits-load-") as folder:
        log_path = Path(folder, "serve.log")
        with log_path.open("wb") as log:
            server = start_server(args.model, port, log)
            try:
                wait_until_healthy(server, base, log_path)
                sequential_round_trips(base, photos[0], 5, lone)  # warm-up, not counted
                server_cpu, client_cpu = cpu_seconds(server.pid), own_cpu_seconds()
                memory_before = memory_mib(server.pid)
                load_before = os.getloadavg()[0]
                results, elapsed = asyncio.run(
                    load_phase(
                        base,
                        photos,
                        args.clients,
                        args.seconds,
                        args.max_requests,
                        args.timeout,
                        args.shared_pool,
                    )
                )
                server_cpu_after, client_cpu_after = cpu_seconds(server.pid), own_cpu_seconds()
                memory_after = memory_mib(server.pid)
                time.sleep(1.0)
                round_trips = sequential_round_trips(base, photos[0], args.sequential, lone)
                if server.poll() is not None:
                    lone.error("server exited", f"exit status {server.returncode}")
            except KeyboardInterrupt:
                console.print("interrupted: the server is stopped")
                sys.exit(130)
            finally:
                stop_server(server)
        server_log = log_path.read_text(errors="replace")
    trouble = [
        line
        for line in server_log.splitlines()
        if "Traceback" in line or "ERROR" in line or "WARNING" in line
    ]

    answered = len(results.latencies)
    errors = sum(results.errors.values())
    console.print(
        f"load: {args.clients} clients × {args.seconds:g} s of POST /api/predict, "
        f"{len(photos)} photo(s), server {base}, "
        + ("one shared AsyncClient" if args.shared_pool else "one AsyncClient each")
    )
    table = Table(title="Under load")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("requests sent", f"{results.sent:,}")
    table.add_row("answered 200 with the expected digit", f"{answered:,}")
    table.add_row("throughput, req/s", f"{answered / elapsed:.1f} (over {elapsed:.1f} s)")
    if answered:
        p50, p95, p99 = np.percentile(np.array(results.latencies), [50, 95, 99])
        table.add_row("latency p50 / p95 / p99, ms", f"{ms(p50)} / {ms(p95)} / {ms(p99)}")
        table.add_row("latency max, ms", ms(max(results.latencies)))
        s50, s99 = np.percentile(np.array(results.server_ms), [50, 99])
        table.add_row("server's elapsed_ms p50 / p99", f"{s50:.1f} / {s99:.1f}")
    if server_cpu is not None and server_cpu_after is not None:
        used = server_cpu_after - server_cpu
        per = f", {used / answered * 1e3:.1f} ms per request" if answered else ""
        table.add_row("server CPU s", f"{used:.1f}{per}")
    table.add_row("client CPU s (this process)", f"{client_cpu_after - client_cpu:.1f}")
    if memory_before is not None and memory_after is not None:
        table.add_row(
            "server RSS before → after, peak, MiB",
            f"{memory_before[0]:.0f} → {memory_after[0]:.0f}, {memory_after[1]:.0f}",
        )
    table.add_row(
        "load average (1 min) before → after", f"{load_before:.1f} → {os.getloadavg()[0]:.1f}"
    )
    colour = "green" if errors == 0 else "red"
    table.add_row("errors", f"[{colour}]{errors}[/{colour}]")
    console.print(table)
    for kind, count in results.errors.most_common():
        console.print(f"  {count} × {kind}, e.g. {results.examples[kind]}")

    threads = args.threads
    torch.set_num_threads(threads)
    engine_threads.set_num_threads(threads)
    ours, pytorch, preprocessing, difference = in_process_times(model, photos[0], args.repeat)
    ours_median, torch_median = statistics.median(ours), statistics.median(pytorch)
    single = Table(
        title=f"One prediction alone ({photos[0].name}), {threads} thread(s), "
        f"torch {torch.__version__}"
    )
    for column in ("", "ours", "PyTorch", "ratio"):
        single.add_column(column, justify="left" if not column else "right")
    single.add_row(
        f"in-process: 64×64 image → probabilities, ms (median of {args.repeat})",
        f"{ours_median * 1e3:.2f}",
        f"{torch_median * 1e3:.2f}",
        f"{ours_median / torch_median:.2f}",
    )
    single.add_row(
        f"in-process: fastest of {args.repeat}, ms",
        f"{min(ours) * 1e3:.2f}",
        f"{min(pytorch) * 1e3:.2f}",
        f"{min(ours) / min(pytorch):.2f}",
    )
    bad_difference = not difference <= PROBABILITY_TOLERANCE
    colour = "red" if bad_difference else "green"
    single.add_row(
        "largest difference of the probabilities", f"[{colour}]{difference:.1e}[/{colour}]", "", ""
    )
    single.add_row(
        "preprocessing the photo, ms (median)",
        f"{statistics.median(preprocessing) * 1e3:.2f}",
        "",
        "",
    )
    lone_errors = sum(lone.errors.values())
    single.add_row(
        f"HTTP round trip, one request alone, ms (median of {len(round_trips)})",
        f"{statistics.median(round_trips) * 1e3:.2f}" if round_trips else "failed",
        "",
        "",
    )
    console.print(single)
    for kind, count in lone.errors.most_common():
        console.print(f"  lone requests: {count} × {kind}, e.g. {lone.examples[kind]}")
    if trouble:
        console.print(f"server log: {len(trouble)} line(s) of trouble, the first:")
        for line in trouble[:10]:
            console.print(f"  {line}", markup=False)
    else:
        console.print("server log: no Traceback, ERROR or WARNING line")
    failed = errors or lone_errors or bad_difference
    console.print(
        f"{'FAILED' if failed else 'passed'}: {errors + lone_errors} error(s); "
        f"run time {time.perf_counter() - started:.0f} s"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
