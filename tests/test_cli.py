"""The ``signdigits`` command: user errors end in one clear line.

Every bad input must give exit code 2, exactly one line on stderr that says what is
wrong, and no traceback. That contract is ``signdigits.cli.main``'s, so the bad inputs
run in this process (``invoke_cli``); a few runs in a process of their own (``run_cli``)
check what only a real process shows: the exit status, and nothing more on stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from signdigits import __version__

if TYPE_CHECKING:
    from signdigits.data import DataSource
    from tests.conftest import CliRun


@dataclass(frozen=True)
class BadInput:
    """A bad command line and what its error line must say.

    ``{name}`` in either stands for a file that ``bad_input_files`` writes.
    """

    args: tuple[str, ...]
    says: tuple[str, ...]


TUTORIAL = ("tutorial", "--data", "{missing}", "--out", "{root}/out")
"""The tutorial with a dataset that does not exist: a bad hyper-parameter must be named
first, before the data is looked for."""

BAD_INPUTS = {
    "no data: info only looks": BadInput(
        ("data", "info"), ("no dataset found", "{root}/empty-cache", "signdigits data fetch")
    ),
    "no data: verify only looks": BadInput(("data", "verify"), ("no dataset found",)),
    "no data, no network": BadInput(("data", "fetch", "-q"), ("could not download", "{url}")),
    "empty folder": BadInput(("data", "info", "--data", "{empty}"), ("{empty}", "neither")),
    "text file": BadInput(("data", "verify", "--data", "{text}"), ("{text}", "neither")),
    "missing path": BadInput(("data", "info", "--data", "{missing}"), ("does not exist",)),
    "image replaced by text": BadInput(
        ("data", "verify", "--data", "{text_image_zip}"), ("Dataset/{text_image}",)
    ),
    "X of the wrong shape": BadInput(
        ("data", "info", "--data", "{x_wrong_shape}"), ("X.npy", "shape")
    ),
    "Y not one-hot": BadInput(("data", "info", "--data", "{y_not_one_hot}"), ("Y.npy", "one-hot")),
    "Y of the wrong shape": BadInput(
        ("data", "verify", "--data", "{y_wrong_shape}"), ("Y.npy", "shape")
    ),
    "learning rate 0": BadInput((*TUTORIAL, "--lr", "0"), ("learning rate", "> 0")),
    "negative learning rate": BadInput((*TUTORIAL, "--lr=-0.5"), ("learning rate", "> 0")),
    "learning rate nan": BadInput((*TUTORIAL, "--lr", "nan"), ("learning rate", "finite")),
    "learning rate inf": BadInput((*TUTORIAL, "--lr", "inf"), ("learning rate", "finite")),
    "zero iterations": BadInput((*TUTORIAL, "--iterations", "0"), ("iterations", "at least 1")),
    "unknown flag": BadInput((*TUTORIAL, "--bogus"), ("--bogus",)),
    "learning rate not a number": BadInput((*TUTORIAL, "--lr", "abc"), ("--lr",)),
    "--out is a file": BadInput(
        ("tutorial", "--data", "{missing}", "--out", "{existing_file}"),
        ("{existing_file}", "is a file"),
    ),
}


@pytest.fixture(scope="module")
def bad_input_files(
    tmp_path_factory: pytest.TempPathFactory,
    image_names: list[str],
    dataset_copy: Callable[..., Path],
    save_kaggle_pair: Callable[..., Path],
    closed_port_url: str,
) -> dict[str, str]:
    """The files and addresses the bad command lines name, by placeholder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a dataset\n")
    (root / "results.txt").write_text("earlier results\n")
    text_image = image_names[100]
    images = np.random.default_rng(0).random((12, 64, 64))
    labels = np.eye(10)[np.arange(12) % 10]
    return {
        "root": str(root),
        "url": closed_port_url,
        "empty": str(root / "empty"),
        "text": str(root / "notes.txt"),
        "missing": str(root / "no-such-dataset"),
        "existing_file": str(root / "results.txt"),
        "text_image": text_image,
        "text_image_zip": str(dataset_copy({text_image: b"not a JPEG, just text\n"})),
        "x_wrong_shape": str(save_kaggle_pair(root / "x", images.reshape(12, -1), labels)),
        "y_not_one_hot": str(save_kaggle_pair(root / "y-not-one-hot", images, labels * 2)),
        "y_wrong_shape": str(save_kaggle_pair(root / "y-wrong-shape", images, labels[:, :8])),
    }


@pytest.fixture
def no_data_env(bad_input_files: dict[str, str]) -> dict[str, str | None]:
    """No dataset to be found, an empty cache and no network."""
    return {
        "SIGNDIGITS_DATA": None,
        "SIGNDIGITS_CACHE": str(Path(bad_input_files["root"]) / "empty-cache"),
        "SIGNDIGITS_DATA_URL": bad_input_files["url"],
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
    }


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_a_bad_input_ends_in_one_line_saying_what_is_wrong(
    name: str,
    bad_input_files: dict[str, str],
    no_data_env: dict[str, str | None],
    invoke_cli: Callable[..., CliRun],
) -> None:
    args = (arg.format(**bad_input_files) for arg in BAD_INPUTS[name].args)

    line = invoke_cli(*args, env=no_data_env).error_line()

    assert line.startswith("signdigits: error: ")
    for fragment in BAD_INPUTS[name].says:
        assert fragment.format(**bad_input_files) in line


def test_no_data_and_no_network_leaves_the_cache_empty(
    no_data_env: dict[str, str | None], invoke_cli: Callable[..., CliRun]
) -> None:
    invoke_cli("data", "fetch", "-q", env=no_data_env).error_line()

    cache = Path(str(no_data_env["SIGNDIGITS_CACHE"]))
    assert not cache.exists() or not any(cache.iterdir())


def test_data_verify_says_ok(dataset_source: DataSource, invoke_cli: Callable[..., CliRun]) -> None:
    run = invoke_cli("data", "verify", "--data", dataset_source.path, "--quiet")

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("ok: 2062 ")


# --- In a process of its own --------------------------------------------------------------


def test_version_in_a_process(run_cli: Callable[..., CliRun]) -> None:
    run = run_cli("--version")

    assert run.returncode == 0, run.stderr
    assert run.stdout == f"signdigits {__version__}\n"
    assert run.stderr == ""


def test_a_bad_input_in_a_process_exits_2_with_one_line(
    bad_input_files: dict[str, str], run_cli: Callable[..., CliRun]
) -> None:
    run = run_cli("data", "info", "--data", bad_input_files["missing"])

    line = run.error_line()
    assert line.startswith("signdigits: error: ")
    assert bad_input_files["missing"] in line and "does not exist" in line
    assert run.stdout == ""


def test_data_info_in_a_process_prints_the_counts_in_digit_order(
    dataset_source: DataSource,
    dataset: object,  # decoded once, so the process below finds the decoded cache
    run_cli: Callable[..., CliRun],
) -> None:
    run = run_cli("data", "info", "--data", dataset_source.path, "--quiet")

    assert run.returncode == 0, run.stderr
    assert "205 206 206 206 207 207 207 206 208 204" in run.stdout
    assert "2062" in run.stdout
    assert "filed under the wrong digit: 2/IMG_5176.JPG shows a 3, not a 2" in run.stdout
    assert "filed under the wrong digit: 3/IMG_5108.JPG shows a 7, not a 3" in run.stdout
    assert run.stderr == ""
