"""The README's Python examples run and print what the README says they print."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import zipfile
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def _block(containing: str) -> str:
    (block,) = [b for b in BLOCKS if containing in b]
    return block


def _run(code: str) -> str:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    return output.getvalue()


def test_every_python_example_is_checked_here():
    checked = [
        "c = (a**2 + b**2).sqrt()",
        "t.load_zeros_and_ones",
        "mine = preprocess_image(",
        "ort.InferenceSession(",
        "for step in",
        "for epoch in",
    ]
    assert sorted(checked) == sorted(c for c in checked for b in BLOCKS if c in b)
    assert len(BLOCKS) == len(checked) + 1  # and the gradcheck session, a doctest


def test_the_hypot_graph():
    assert _run(_block("c = (a**2 + b**2).sqrt()")).split() == ["5.0", "0.6", "0.8"]


@pytest.mark.usefixtures("dataset")
def test_the_tutorial_as_a_library(dataset_source, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_DATA", str(dataset_source.path))
    train, test = map(float, _run(_block("t.load_zeros_and_ones")).split())
    assert (train, test) == (327 / 348, 60 / 62)


@pytest.mark.usefixtures("dataset")
def test_the_dataset_and_your_own_photo(dataset_archive, monkeypatch, tmp_path):
    monkeypatch.setenv("SIGNDIGITS_DATA", str(dataset_archive))
    with zipfile.ZipFile(dataset_archive) as archive:
        photo = next(n for n in archive.namelist() if n.upper().endswith(".JPG"))
        (tmp_path / "my_hand.jpg").write_bytes(archive.read(photo))
    monkeypatch.chdir(tmp_path)
    code = _block("mine = preprocess_image(") + "\nprint(mine.shape, mine.dtype, mine.min() >= 0)\n"
    lines = _run(code).splitlines()
    assert lines[0] == "(2062, 64, 64) [205, 206, 206, 206, 207, 207, 207, 206, 208, 204]"
    assert lines[1] == "(64, 64) float32 True"


@pytest.mark.usefixtures("dataset")
def test_the_exported_model_runs_under_onnxruntime(
    model_file, image_bytes, image_names, tmp_path, monkeypatch
):
    from signdigits.io import export_onnx, load_model
    from signdigits.predict import predict_images

    (tmp_path / "my_hand.jpg").write_bytes(image_bytes(image_names[0]))
    model = load_model(model_file)
    export_onnx(model, tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    digit, percent = _run(_block("ort.InferenceSession(")).split()
    (ours,) = predict_images(model, [tmp_path / "my_hand.jpg"])
    assert (int(digit), percent) == (ours.digit, f"{ours.probability:.1%}")


@pytest.mark.usefixtures("dataset")
def test_the_training_loop_learns_what_the_readme_says(dataset_source, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_DATA", str(dataset_source.path))
    (line,) = _run(_block("for step in")).splitlines()
    accuracy = float(re.fullmatch(r"test accuracy (\d+\.\d)%", line).group(1))
    assert 60 <= accuracy <= 72  # "about 66 %"


def test_the_gradcheck_session():
    (session,) = re.findall(r"```python\n(>>> .*?)```", README.read_text(encoding="utf-8"), re.S)
    # The size and place of a 1e-11 rounding error may differ between machines' BLAS.
    session = re.sub(r"worst error \S+ at input \d+, index \([^)]*\)", "worst error ...", session)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(session, {}, "README gradcheck", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.usefixtures("dataset")
def test_the_network_with_nn_and_optim_learns_what_the_readme_says(dataset_source, monkeypatch):
    monkeypatch.setenv("SIGNDIGITS_DATA", str(dataset_source.path))
    (line,) = _run(_block("for epoch in")).splitlines()
    accuracy = float(re.fullmatch(r"test accuracy (\d+\.\d)%", line).group(1))
    assert 70 <= accuracy <= 80  # "about 75 %"
