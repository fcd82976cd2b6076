"""``signdigits tutorial --part 2`` on the real data: its printed steps, its table, its files.

Part 2 runs twice for the module, in this process: once whole with its steps printed
(about 20 s on 2 cores), once with ``--quiet`` and 300 iterations of the two-layer network
instead of 2,500 (about 8 s). Every test reads those two runs; the second also shows that a
run is deterministic: every number but the two-layer network's, whose run with the seed
42 is pinned exactly in tests/test_tutorial_part2.py. Bad flags, which end before any work,
go through ``invoke_cli``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image
from sklearn.model_selection import StratifiedKFold

from signdigits import plots, tutorial
from signdigits.cli import main
from signdigits.data import SignDigits
from signdigits.data.sources import DataSource
from tests.conftest import CliRun

PART1_KEYS = {
    "model",
    "classes",
    "train_accuracy",
    "test_accuracy",
    "n_train",
    "n_test",
    "seconds",
    "seed",
}
"""The keys of part 1's metrics.json, which part 2's has too (DESIGN.md's contract)."""

QUICK = 300
"""The two-layer network's iterations in the ``--quiet`` run."""

MODELS = list(tutorial.MODEL_NAMES)
"""The models of both parts, as ``metrics["models"]`` names them, in the table's order."""


def _run(args: list[str], figures: dict[str, dict[str, Any]]) -> CliRun:
    """``cli.main(args)`` in this process with its output captured, recording the title and
    labels of each figure it saves (``figures[file name]``)."""
    save = plots.save_figure

    def recording(figure: Figure, path: Path, fit_to_content: bool = False) -> Path:
        figures[path.name] = {
            "title": figure.get_suptitle(),
            "axes titles": [axes.get_title() for axes in figure.axes],
            "axes labels": [axes.get_ylabel() for axes in figure.axes],
        }
        return save(figure, path, fit_to_content)

    stdout, stderr = io.StringIO(), io.StringIO()
    with (
        pytest.MonkeyPatch.context() as patch,
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        patch.setenv("COLUMNS", "200")
        patch.setattr(plots, "save_figure", recording)
        returncode = main(args)
    run = CliRun(tuple(args), returncode, stdout.getvalue(), stderr.getvalue())
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def part2(
    dataset: SignDigits,  # decoded once, so that the runs find the decoded cache
    dataset_source: DataSource,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Part 2 with its defaults, printed step by step; then with ``--quiet`` and a shorter
    two-layer network (300 iterations), to keep the suite fast."""
    root = tmp_path_factory.mktemp("part2")
    runs: dict[str, Any] = {}
    for name, flags in (("verbose", []), ("quiet", ["--quiet", "--iterations", str(QUICK)])):
        out = root / name
        figures: dict[str, dict[str, Any]] = {}
        args = ["tutorial", "--part", "2", "--data", str(dataset_source.path), "--out", str(out)]
        run = _run([*args, *flags], figures)
        metrics = json.loads((out / "metrics.json").read_text())
        runs[name] = {"run": run, "out": out, "figures": figures, "metrics": metrics}
    return runs


@pytest.fixture(scope="module")
def printed(part2: dict[str, Any]) -> str:
    return part2["verbose"]["run"].stdout


@pytest.fixture(scope="module")
def metrics(part2: dict[str, Any]) -> dict[str, Any]:
    return part2["verbose"]["metrics"]


def _section(stdout: str, start: str, end: str) -> str:
    """The printed lines from the heading that contains ``start`` to the one with ``end``."""
    return stdout.split(start, 1)[1].split(end, 1)[0]


def printed_folds(stdout: str) -> list[tuple[float, int, int, int]]:
    """(accuracy in %, right, tested, trained) for each printed fold."""
    found = re.findall(
        r"fold \d: accuracy ([0-9.]+) % \((\d+) of (\d+) right; trained on the other (\d+)\)",
        stdout,
    )
    return [(float(a), int(r), int(n), int(t)) for a, r, n, t in found]


# --- What it prints ------------------------------------------------------------------------


def test_it_prints_the_data_and_the_split_as_part_1(printed: str) -> None:
    for line in (
        "X shape: (410, 64, 64)",
        "Y shape: (410, 1)",
        "x train: (4096, 348)",
        "x test: (4096, 62)",
        "y train: (1, 348)",
        "y test: (1, 62)",
        "Dataset/1/IMG_5992.JPG, is left out",
    ):
        assert line in printed


def test_it_prints_every_step_in_order(printed: str) -> None:
    headings = [
        "1. The data: the signs 0 and 1",
        "2. Train/test split (test_size=0.15, random_state=42)",
        "3. A two-layer network: 3 tanh units, then a sigmoid unit",
        "4. Gradient descent (learning rate 0.01, 2500 iterations)",
        "5. Predict (1 where A2 > 0.5) and accuracy",
        "6. The L-layer network, on signdigits.nn: 4096 → 8 → 4 → 1",
        "7. 3-fold cross-validation on the 348 training images (scikit-learn's "
        "cross_val_score, cv=3)",
        "8. The L-layer network on all 348 training images, then the 62 test images",
        "9. Every model of both parts, on the same split",
        "Files",
    ]
    positions = [printed.index(heading) for heading in headings]
    assert positions == sorted(positions)


def test_the_two_layer_network_prints_its_cost_every_100_iterations(
    printed: str, metrics: dict[str, Any]
) -> None:
    costs = {
        int(i): float(c) for i, c in re.findall(r"Cost after iteration (\d+): ([0-9.]+)", printed)
    }
    assert list(costs) == list(range(0, 2500, 100))
    assert (np.diff(list(costs.values())) < 0).all()
    assert metrics["models"]["two_layer_neural_network"]["final_cost"] < costs[2400]
    for line in ("weight1: (3, 4096)", "bias1: (3, 1)", "weight2: (1, 3)", "bias2: (1, 1)"):
        assert line in printed
    assert "the full cross-entropy, computed stably from Z2" in printed
    step_5 = _section(printed, "5. Predict", "6. The L-layer")
    assert "train accuracy: 99.71 %" in step_5  # 347 of 348, as tests/test_tutorial_part2 pins
    assert "test accuracy: 100.00 %" in step_5


def test_the_l_layer_network_says_how_it_is_built(printed: str) -> None:
    step_6 = _section(printed, "6. The L-layer", "7. 3-fold")
    for words in (
        "ReLU, ReLU, sigmoid",
        "32,817 parameters",  # 4096·8 + 8 + 8·4 + 4 + 4·1 + 1
        "uniform in ±0.05",
        "Adam (learning rate 0.001, β = 0.9, 0.999, ε = 1e-07)",
        "binary_cross_entropy_with_logits",
        "100 epochs of mini-batches of 32, shuffled each epoch",
    ):
        assert words in step_6


def test_the_folds_are_scikit_learns_and_the_mean_and_std_agree_with_them(
    printed: str, metrics: dict[str, Any], dataset: SignDigits
) -> None:
    folds = printed_folds(printed)
    block = metrics["models"]["l_layer_neural_network"]
    X, Y = tutorial.load_zeros_and_ones(dataset)
    x_train, y_train, _, _ = tutorial.split_flatten_transpose(X, Y)
    labels = y_train.ravel()
    splits = list(StratifiedKFold(3).split(x_train.T, labels))  # what cv=3 means for a classifier

    assert len(folds) == 3
    for (percent, right, tested, trained), score, (train_rows, test_rows) in zip(
        folds, block["cv_accuracies"], splits, strict=True
    ):
        assert (tested, trained) == (len(test_rows), len(train_rows))
        assert score == right / tested
        assert percent == round(100 * score, 2)
    assert sum(tested for _, _, tested, _ in folds) == 348

    scores = np.array(block["cv_accuracies"])
    assert block["cv_mean"] == pytest.approx(scores.mean(), abs=1e-15)
    assert block["cv_std"] == pytest.approx(scores.std(), abs=1e-15)  # NumPy's std, ddof=0
    assert f"mean accuracy: {100 * scores.mean():.2f} %" in printed
    assert f"standard deviation: {100 * scores.std():.2f} %" in printed
    assert 'printed it labelled "variance"' in printed
    assert "variance:" not in printed
    assert block["cv_mean"] > 0.9

    # Fold 1 again, by hand: the same estimator fitted on the same rows gives the same score.
    train_rows, test_rows = splits[0]
    model = tutorial.build_classifier(42).fit(x_train.T[train_rows], labels[train_rows])
    assert model.score(x_train.T[test_rows], labels[test_rows]) == block["cv_accuracies"][0]


def test_the_l_layer_network_on_the_test_images(printed: str, metrics: dict[str, Any]) -> None:
    step_8 = _section(printed, "8. The L-layer network on all", "9. Every model")
    block = metrics["models"]["l_layer_neural_network"]
    assert f"train accuracy: {100 * block['train_accuracy']:.2f} %" in step_8
    assert f"test accuracy: {100 * block['test_accuracy']:.2f} %" in step_8
    assert "loss after epoch 100:" in step_8
    assert block["test_accuracy"] >= 60 / 62


# --- The table -----------------------------------------------------------------------------


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The table's rows by model label: the cells after the label."""
    rows = {}
    for line in stdout.splitlines():
        for label in tutorial.MODEL_NAMES.values():
            if line.strip().startswith(label):  # cells are separated by two spaces or more
                cells = re.split(r"\s{2,}", line.strip()[len(label) :].strip())
                if len(cells) == 4:
                    rows[label] = cells
    return rows


@pytest.mark.parametrize("which", ["verbose", "quiet"])
def test_the_table_has_every_model_of_both_parts(part2: dict[str, Any], which: str) -> None:
    run, metrics = part2[which]["run"], part2[which]["metrics"]
    rows = table_rows(run.stdout)
    assert list(rows) == list(tutorial.MODEL_NAMES.values())
    for key, label in tutorial.MODEL_NAMES.items():
        model = metrics["models"][key]
        train, test, cv, seconds = rows[label]
        assert train == f"{100 * model['train_accuracy']:.2f} %"
        assert test == f"{100 * model['test_accuracy']:.2f} %"
        assert float(seconds.split()[0]) == pytest.approx(model["seconds"], abs=1e-3)
        if key == "l_layer_neural_network":
            assert cv == f"{100 * model['cv_mean']:.2f} ± {100 * model['cv_std']:.2f} %"
        else:
            assert cv == "—"
    assert rows[tutorial.MODEL_NAMES["logistic_regression"]][:2] == ["93.97 %", "96.77 %"]


def test_quiet_prints_only_the_table(part2: dict[str, Any]) -> None:
    run = part2["quiet"]["run"]
    assert run.stderr == ""
    for absent in ("1. The data", "Cost after iteration", "fold 1", "wrote", "X shape"):
        assert absent not in run.stdout
    assert len(table_rows(run.stdout)) == 5
    assert sorted(p.name for p in part2["quiet"]["out"].iterdir()) == sorted(
        tutorial.PART2_RESULT_FILES
    )


# --- The files -----------------------------------------------------------------------------


def test_metrics_json(metrics: dict[str, Any], printed: str, part2: dict[str, Any]) -> None:
    assert set(metrics) >= PART1_KEYS
    assert metrics["model"] == "l_layer_neural_network"
    assert metrics["classes"] == [0, 1]
    assert (metrics["n_train"], metrics["n_test"], metrics["seed"]) == (348, 62, 42)
    assert list(metrics["models"]) == MODELS
    l_layer = metrics["models"]["l_layer_neural_network"]
    assert metrics["train_accuracy"] == l_layer["train_accuracy"]
    assert metrics["test_accuracy"] == l_layer["test_accuracy"]
    assert metrics["seconds"] == l_layer["seconds"] > 0
    for name, model in metrics["models"].items():
        for key, n in (("train_accuracy", 348), ("test_accuracy", 62)):
            accuracy = model[key]
            assert 0 <= accuracy <= 1, (name, key)  # fractions, not percentages
            assert accuracy * n == pytest.approx(round(accuracy * n), abs=1e-9), (name, key)
        assert model["seconds"] > 0
    logistic = metrics["models"]["logistic_regression"]
    assert (logistic["train_accuracy"], logistic["test_accuracy"]) == (327 / 348, 60 / 62)
    two_layer = metrics["models"]["two_layer_neural_network"]
    assert (two_layer["train_accuracy"], two_layer["test_accuracy"]) == (347 / 348, 1.0)
    assert (two_layer["learning_rate"], two_layer["iterations"]) == (0.01, 2500)
    assert {k: l_layer[k] for k in ("layer_sizes", "activation", "init", "eps", "epochs")} == {
        "layer_sizes": [4096, 8, 4, 1],
        "activation": "relu",
        "init": "uniform",
        "eps": 1e-7,
        "epochs": 100,
    }
    assert metrics["models"]["sklearn_mlp"]["hidden_layer_sizes"] == [8, 4]
    out = part2["verbose"]["out"]
    for name in tutorial.PART2_RESULT_FILES:
        assert f"wrote {out / name}" in printed


@pytest.mark.parametrize("name", ["cost_curve.png", "hidden_units.png"])
def test_the_figures_are_real_pngs(part2: dict[str, Any], name: str) -> None:
    with Image.open(part2["verbose"]["out"] / name) as image:
        image.verify()
    with Image.open(part2["verbose"]["out"] / name) as image:
        assert image.format == "PNG"
        assert min(image.size) > 300 and image.width <= 1200
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50


def test_the_figures_titles(part2: dict[str, Any], metrics: dict[str, Any]) -> None:
    figures = part2["verbose"]["figures"]
    assert sorted(figures) == ["cost_curve.png", "hidden_units.png"]
    cost = figures["cost_curve.png"]
    assert cost["title"] == (
        "The two-layer network (3 tanh units): gradient descent, learning rate 0.01, "
        "2500 iterations"
    )
    hidden = figures["hidden_units.png"]
    assert hidden["title"] == plots.HIDDEN_UNITS_TITLE
    titles = [t for t in hidden["axes titles"] if t]
    assert [t.split("\n")[0] for t in titles[:3]] == [f"hidden unit {k}" for k in (1, 2, 3)]
    assert all("output weight" in t for t in titles[:3])
    assert titles[3:] == [f"unit {k}: what training changed" for k in (1, 2, 3)]
    assert plots.HIDDEN_UNITS_COLOURS in hidden["axes labels"]
    assert plots.HIDDEN_UNITS_CHANGE_COLOURS in hidden["axes labels"]


def test_hidden_units_shows_positive_weights_red_and_negative_blue(tmp_path: Path) -> None:
    weights = np.zeros((3, 4096))
    weights[:, :2048], weights[:, 2048:] = 1.0, -1.0
    figure = plots.hidden_units_figure(weights, output_weights=[1.0, -2.0, 0.5])
    assert [axes.get_title() for axes in figure.axes[:3]] == [
        "hidden unit 1\noutput weight +1.00",
        "hidden unit 2\noutput weight −2.00",
        "hidden unit 3\noutput weight +0.50",
    ]
    (bar,) = [axes for axes in figure.axes if axes.get_ylabel()]
    assert bar.get_ylabel() == plots.HIDDEN_UNITS_COLOURS
    path = plots.save_figure(figure, tmp_path / "units.png")
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    red = pixels[..., 0] > pixels[..., 2] + 60  # the deepest red of RdBu_r is (103, 0, 31)
    blue = pixels[..., 2] > pixels[..., 0] + 60
    assert red.sum() > 30_000 and blue.sum() > 30_000  # half of each 64×64 panel, enlarged


def test_two_runs_give_the_same_numbers(part2: dict[str, Any]) -> None:
    def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
        """Every number but the times, and but the two-layer network's (300 iterations in
        the quiet run)."""
        models = {
            name: {key: value for key, value in model.items() if "seconds" not in key}
            for name, model in metrics["models"].items()
            if name != "two_layer_neural_network"
        }
        return {**{k: v for k, v in metrics.items() if k != "seconds"}, "models": models}

    first, second = part2["verbose"]["metrics"], part2["quiet"]["metrics"]
    assert numbers(first) == numbers(second)
    assert (
        first["models"]["l_layer_neural_network"]["cv_accuracies"]
        == (second["models"]["l_layer_neural_network"]["cv_accuracies"])
    )
    assert second["models"]["two_layer_neural_network"]["iterations"] == QUICK


# --- The command line ----------------------------------------------------------------------


def test_part_3_is_refused_naming_the_parts(
    invoke_cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    line = invoke_cli("tutorial", "--part", "3", "--out", tmp_path / "out").error_line()
    assert "--part" in line and "'1'" in line and "'2'" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--seed", "-1"), "seed must be a whole number from 0 to"),
        (("--lr", "0"), "learning rate must be > 0"),
        (("--iterations", "0"), "number of iterations must be at least 1"),
        (("--test-size", "1.5"), "test size must be a fraction in (0, 1)"),
    ],
)
def test_bad_flags_end_in_one_line_before_any_work(
    invoke_cli: Callable[..., CliRun], tmp_path: Path, flags: tuple[str, ...], says: str
) -> None:
    missing = tmp_path / "no-such-dataset.zip"  # never read: the flags are checked first
    out = tmp_path / "out"
    line = invoke_cli("tutorial", "--part", "2", "--data", missing, "--out", out, *flags)
    assert says in line.error_line()
    assert not out.exists()


def test_out_that_is_a_file_ends_in_one_line(
    invoke_cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    line = invoke_cli("tutorial", "--part", "2", "--out", blocker).error_line()
    assert "is a file, not a folder" in line
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize(
    ("flags", "function", "out", "iterations"),
    [
        ((), "run_tutorial", "runs/tutorial", 150),
        (("--part", "1"), "run_tutorial", "runs/tutorial", 150),
        (("--part", "2"), "run_tutorial_part2", "runs/tutorial-part2", 2500),
        (("--part", "2", "--iterations", "30"), "run_tutorial_part2", "runs/tutorial-part2", 30),
    ],
)
def test_each_part_has_its_defaults(
    invoke_cli: Callable[..., CliRun],
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    function: str,
    out: str,
    iterations: int,
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []
    for name in ("run_tutorial", "run_tutorial_part2"):
        monkeypatch.setattr(
            tutorial, name, lambda *args, name=name, **kwargs: calls.append((name, kwargs))
        )
    assert invoke_cli("tutorial", *flags).returncode == 0
    ((called, kwargs),) = calls
    assert called == function
    assert (kwargs["out"], kwargs["iterations"]) == (Path(out), iterations)
    assert (kwargs["learning_rate"], kwargs["seed"], kwargs["test_size"]) == (0.01, 42, 0.15)
