"""The command line against an unlucky or hostile user: flags that pass the parser and
would crash later, results folders that cannot take the results, odd paths, a full
standard output, Ctrl-C. Each ends in one line (exit 2, or 130 when interrupted), with
nothing half-written and earlier results kept."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from signdigits.tutorial import RESULT_FILES
from tests.conftest import CliRun

pytestmark = pytest.mark.usefixtures("dataset")  # the decoded cache is warm for every run


@pytest.fixture
def tutorial(
    dataset_source, invoke_cli: Callable[..., CliRun], tmp_path: Path
) -> Callable[..., CliRun]:
    """``tutorial(*flags)``: the tutorial on the real data, in this process."""

    def run(*flags: str | Path) -> CliRun:
        return invoke_cli("tutorial", "--data", dataset_source.path, *flags)

    return run


def _leftovers(folder: Path) -> list[str]:
    """Hidden staging folders a run may have left beside its results."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--seed", str(2**32)), "seed must be a whole number from 0 to"),
        (("--seed", "-1"), "seed must be a whole number from 0 to"),
        (("--test-size", "0.998"), "test size 0.998 cannot split 410 images"),
        (("--test-size", "0.997"), "leaves 1 training image(s), not both signs"),
        (("--lr", "1e308"), "gradient descent diverged at iteration"),
    ],
)
def test_flags_that_pass_the_parser_but_cannot_work(tutorial, tmp_path, flags, says):
    out = tmp_path / "results"
    line = tutorial(*flags, "--out", out).error_line()
    assert says in line
    assert not out.exists()  # nothing written, not even NaN into metrics.json
    assert _leftovers(tmp_path) == []


def test_paths_are_printed_as_they_are_not_as_markup(tutorial, tmp_path):
    out = tmp_path / "o-[red]y [/]"
    run = tutorial("--out", out, "--iterations", "10")
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULT_FILES)
    assert f"wrote {out / 'metrics.json'}" in run.stdout


def test_a_newline_in_a_path_stays_on_one_line(invoke_cli, tmp_path):
    line = invoke_cli("data", "info", "--data", tmp_path / "a\nb").error_line()
    assert "a\\nb" in line and "does not exist" in line


def test_quiet_prints_only_the_results_table(tutorial, tmp_path):
    run = tutorial("--quiet", "--out", tmp_path / "quiet")
    assert run.returncode == 0, run.stderr
    assert "Cost after iteration" not in run.stdout and "wrote" not in run.stdout
    assert "93.97 %" in run.stdout and "96.77 %" in run.stdout
    assert run.stderr == ""


def test_results_replace_an_earlier_run_as_one_set(tutorial, tmp_path):
    out = tmp_path / "results"
    assert tutorial("--out", out, "-q", "--iterations", "10").returncode == 0
    first = json.loads((out / "metrics.json").read_text())
    assert tutorial("--out", out, "-q", "--iterations", "20").returncode == 0
    second = json.loads((out / "metrics.json").read_text())
    assert (first["iterations"], second["iterations"]) == (10, 20)
    assert sorted(p.name for p in out.iterdir()) == sorted(RESULT_FILES)
    assert _leftovers(tmp_path) == []


def test_a_failure_while_writing_keeps_the_earlier_results(tutorial, tmp_path, monkeypatch):
    """A full disk at the third file: the earlier run's four files stay, unmixed."""
    out = tmp_path / "results"
    assert tutorial("--out", out, "-q", "--iterations", "10").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("signdigits.plots.sample_grid", disk_full)
    line = tutorial("--out", out, "-q", "--iterations", "20").error_line()
    assert f"cannot write the results to {out} (No space left on device)" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("prepare", "says"),
    [
        (lambda out: (out / "notes.txt").write_text("mine"), "holds other things"),
        (lambda out: (out / "metrics.json").mkdir(), "this run's results (metrics.json)"),
    ],
)
def test_a_results_folder_that_holds_other_things_is_refused_before_training(
    tutorial, tmp_path, prepare, says
):
    out = tmp_path / "results"
    out.mkdir()
    prepare(out)
    before = sorted(p.name for p in out.iterdir())
    started = time.perf_counter()
    line = tutorial("--out", out).error_line()
    assert says in line and str(out) in line
    assert time.perf_counter() - started < 5  # refused before the data and the training
    assert sorted(p.name for p in out.iterdir()) == before


def test_out_under_a_file(tutorial, invoke_cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    line = tutorial("--out", blocker / "results").error_line()
    assert f"cannot write the results to {blocker / 'results'}" in line
    line = invoke_cli("graph", "--out", blocker / "hypot.png").error_line()
    assert f"cannot write the graph to {blocker / 'hypot.png'}" in line


def _command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "signdigits.cli", *(str(a) for a in args)]


def test_a_full_standard_output_is_one_line_not_a_traceback(dataset_source):
    with open("/dev/full", "w") as full:
        completed = subprocess.run(
            _command("data", "info", "--data", dataset_source.path, "-q"),
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 2
    assert completed.stderr.strip() == (
        "signdigits: error: cannot write the output (No space left on device)"
    )


def test_ctrl_c_says_what_was_kept_and_exits_130(dataset_source, tmp_path):
    out = tmp_path / "results"
    process = subprocess.Popen(
        _command("tutorial", "--data", dataset_source.path, "--out", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # interrupt once training has started
        if "Gradient descent" in line:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("signdigits: interrupted; nothing was half")
    assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_a_results_folder_that_cannot_be_written_is_refused_before_training(
    dataset_source, tmp_path
):
    """Read-only places, for real even as root (see tests/data/without_privileges.py)."""
    from tests.data.without_privileges import folder_of_mode, run_without_privileges

    with folder_of_mode(tmp_path / "read-only-parent", 0o555) as parent:
        out = parent / "results"
        run = run_without_privileges(
            parent, "tutorial", "--data", dataset_source.path, "--out", out
        )
        line = run.error_line()
        assert f"cannot write the results to {out} (Permission denied)" in line
        assert not out.exists()
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    earlier.chmod(0o555)
    try:
        run = run_without_privileges(
            earlier, "tutorial", "--data", dataset_source.path, "--out", earlier
        )
        assert f"--out {earlier} is read-only" in run.error_line()
        assert (earlier / "metrics.json").read_text() == "{}"
    finally:
        earlier.chmod(0o755)


@pytest.fixture
def default_threads():
    """Put the engine's thread count back to its default after the test."""
    from signdigits.autograd import threads

    yield
    threads.set_num_threads(None)


@pytest.mark.parametrize(
    ("flags", "env", "says"),
    [
        (("--threads", "0"), {}, "Invalid value for '--threads'"),
        (("--threads", "two"), {}, "Invalid value for '--threads'"),
        (("--part", "2"), {"SIGNDIGITS_NUM_THREADS": "abc"}, "SIGNDIGITS_NUM_THREADS must be"),
        (("--part", "2"), {"SIGNDIGITS_NUM_THREADS": "0"}, "SIGNDIGITS_NUM_THREADS must be"),
    ],
)
def test_a_bad_thread_count_stops_before_any_work(
    invoke_cli, dataset_source, tmp_path, default_threads, flags, env, says
):
    out = tmp_path / "results"
    run = invoke_cli("tutorial", "--data", dataset_source.path, "--out", out, *flags, env=env)
    assert says in run.error_line()
    assert not out.exists()


def test_the_threads_flag_wins_over_the_environment(
    invoke_cli, dataset_source, tmp_path, default_threads
):
    from signdigits.autograd import threads

    run = invoke_cli(
        "tutorial",
        "--data",
        dataset_source.path,
        "--iterations",
        "10",
        "--threads",
        "3",
        "--out",
        tmp_path / "results",
        env={"SIGNDIGITS_NUM_THREADS": "0"},
    )
    assert run.returncode == 0, run.stderr
    assert threads.get_num_threads() == 3
