"""`signdigits predict` on people's own photos: every image mode, EXIF orientation, folders
with broken files, decompression bombs, and no model at all."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from signdigits.data import SignDigits
from signdigits.data.preprocess import preprocess_image
from signdigits.io import load_model
from signdigits.predict import predict_images
from signdigits.training import LAST_MODEL, predict_logits
from tests.conftest import png_declaring

PHOTO = "3/IMG_1124.JPG"  # any photo of the dataset


@pytest.fixture(scope="module")
def photo(image_names: list[str], image_bytes) -> Image.Image:
    name = PHOTO if PHOTO in image_names else image_names[0]
    image = Image.open(io.BytesIO(image_bytes(name)))
    image.load()
    return image


def save(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def variants(photo: Image.Image, folder: Path) -> dict[str, Path]:
    """The same photo in the modes and forms people's files come in."""
    rgb = photo.convert("RGB")
    gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
    bordered = Image.new("RGBA", (rgb.width + 40, rgb.height + 40), (0, 0, 0, 0))
    bordered.paste(rgb, (20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer turns the stored pixels 90° clockwise
    return {
        "RGB JPEG": save(rgb, folder / "rgb.jpg", quality=95),
        "RGB PNG": save(rgb, folder / "rgb.png"),
        "RGBA PNG, transparent border": save(bordered, folder / "rgba.png"),
        "palette PNG": save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), folder / "p.png"),
        "grayscale PNG": save(rgb.convert("L"), folder / "l.png"),
        "16-bit PNG": save(Image.fromarray(gray.astype(np.uint16)), folder / "i16.png"),
        "upscaled 300×300": save(rgb.resize((300, 300)), folder / "big.png"),
        "EXIF-rotated JPEG": save(
            rgb.transpose(Image.Transpose.ROTATE_90), folder / "exif.jpg", exif=exif, quality=95
        ),
    }


LOSSLESS = {"RGB PNG", "grayscale PNG", "16-bit PNG"}
"""Forms that keep the photo's gray values exactly (the others are close: JPEG, a palette
of 256 colours, resampling, a border)."""


def test_every_mode_is_read_as_the_same_picture(model_file, photo, tmp_path) -> None:
    model = load_model(model_file)
    files = variants(photo, tmp_path)
    original = save(photo.convert("RGB"), tmp_path / "o.png")
    expected_input = preprocess_image(original)
    expected = predict_images(model, [original])[0]

    results = predict_images(model, list(files.values()), top=3)

    for (kind, path), result in zip(files.items(), results, strict=True):
        assert result.error is None, (kind, result.error)
        assert next(d for d, _ in result.top) == result.digit
        assert np.diff([p for _, p in result.top]).max() <= 0, "top is not in descending order"
        seen = preprocess_image(path)
        if kind in LOSSLESS:
            np.testing.assert_allclose(seen, expected_input, atol=1 / 255, err_msg=kind)
            assert result.digit == expected.digit, kind
        elif kind != "RGBA PNG, transparent border":  # a different framing of the photo
            assert np.abs(seen - expected_input).mean() < 0.03, kind


def test_the_transparent_border_is_white_paper_not_black(photo, tmp_path) -> None:
    """Transparency is laid on white, like the light background of the dataset's photos:
    after x = 1 − v/255 the border is dark (0), as the background is."""
    image = preprocess_image(variants(photo, tmp_path)["RGBA PNG, transparent border"])
    assert image[0].max() < 0.05 and image[:, 0].max() < 0.05


def test_a_dataset_photo_gets_the_models_prediction_on_its_decoded_image(
    model_file, dataset: SignDigits, image_names, image_bytes, tmp_path
) -> None:
    """The same preprocessing as training: a photo of the dataset, given as a file, is
    predicted exactly as its decoded row."""
    model = load_model(model_file)
    names = image_names[::300]
    paths = []
    for i, name in enumerate(names):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(image_bytes(name))
    results = predict_images(model, paths)
    decoded = np.stack([preprocess_image(image_bytes(name)) for name in names])
    probabilities = predict_logits(model, decoded)
    assert [r.digit for r in results] == [
        int(model.spec["classes"][i]) for i in probabilities.argmax(1)
    ]


def photo_folder(photo: Image.Image, tmp_path: Path) -> Path:
    """A folder with a good photo ``a.jpg`` and a broken file ``b.jpg``."""
    folder = tmp_path / "photos"
    folder.mkdir()
    save(photo.convert("RGB"), folder / "a.jpg")
    (folder / "b.jpg").write_bytes(b"not an image at all")
    return folder


def test_a_folder_with_broken_files_predicts_the_others_and_exits_2(
    invoke_cli, model_file, photo, tmp_path
) -> None:
    folder = photo_folder(photo, tmp_path)
    (folder / "c.png").write_bytes(png_declaring(40_000, 40_000))
    good = save(photo.convert("RGB"), folder / "d.png")
    (folder / ".hidden.jpg").write_bytes(b"ignored")

    run = invoke_cli("predict", model_file, folder)

    assert run.returncode == 2
    printed = run.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in printed] == [str(folder / "a.jpg"), str(good)]
    errors = run.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in run.stderr
    assert "b.jpg is not a readable image" in errors[0]
    assert "c.png" in errors[1] and "decompression bomb" in errors[1]


def test_json_lists_every_image_with_its_digit_or_its_error(
    invoke_cli, model_file, photo, tmp_path
) -> None:
    good = save(photo.convert("RGB"), tmp_path / "a.png")
    broken = tmp_path / "b.png"
    broken.write_bytes(b"\x89PNG broken")
    run = invoke_cli("predict", model_file, good, broken, "--json", "--top", "10")
    results = json.loads(run.stdout)
    assert run.returncode == 2
    assert results[0]["image"] == str(good) and len(results[0]["top"]) == 10
    assert abs(sum(t["probability"] for t in results[0]["top"]) - 1) < 1e-9
    assert results[1]["image"] == str(broken) and "not a readable image" in results[1]["error"]


def test_without_a_model_it_uses_the_last_one_trained_or_says_how_to_make_one(
    invoke_cli, model_file, photo, tmp_path, monkeypatch
) -> None:
    image = save(photo.convert("RGB"), tmp_path / "a.png")
    cache = tmp_path / "cache"
    monkeypatch.setenv("SIGNDIGITS_CACHE", str(cache))
    line = invoke_cli("predict", image).error_line()
    assert "none trained yet" in line and "signdigits train" in line

    cache.mkdir()
    (cache / LAST_MODEL).write_bytes(model_file.read_bytes())
    run = invoke_cli("predict", image)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{image}: ")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--top", "0"), "Invalid value for '--top'"),
        ((), "give one or more images"),
    ],
)
def test_bad_arguments_end_in_one_line(invoke_cli, model_file, args, says) -> None:
    assert says in invoke_cli("predict", model_file, *args).error_line()


def test_a_bad_model_file_is_refused_before_any_image(invoke_cli, photo, tmp_path) -> None:
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(b"not safetensors")
    image = save(photo.convert("RGB"), tmp_path / "a.png")
    line = invoke_cli("predict", fake, image).error_line()
    assert str(fake) in line and "not a signdigits model file" in line


# --- what the network looks at ----------------------------------------------------------------


def test_saliency_of_softmax_regression_is_the_weight_row(model_file, dataset: SignDigits) -> None:
    """For z = W x + b, ∂z_c/∂x = W_c: the saliency without noise is |W_c| as an image."""
    from signdigits.explain import saliency

    model = load_model(model_file)
    weight = dict(model.state_dict())["1.weight"]
    for target in (0, 7):
        found = saliency(model, dataset.images[0], target, samples=1, noise=0)
        np.testing.assert_allclose(found, np.abs(weight[target]).reshape(64, 64), rtol=1e-6)


def test_occlusion_is_the_drop_in_probability(model_file, dataset: SignDigits) -> None:
    from signdigits.explain import occlusion
    from signdigits.training import softmax

    model = load_model(model_file)
    image = dataset.images[100]
    drop = occlusion(model, image, target=3, patch=16)
    assert drop.shape == (4, 4)
    hidden = image.copy()
    hidden[16:32, 32:48] = 0
    before, after = softmax(predict_logits(model, np.stack([image, hidden])).astype(np.float64))[
        :, 3
    ]
    assert drop[1, 2] == pytest.approx(before - after, abs=1e-9)
    blank = np.zeros_like(image)
    assert np.all(occlusion(model, blank, target=3) == 0), "hiding nothing changes nothing"


def test_explain_writes_one_picture_per_readable_image(
    invoke_cli, model_file, photo, tmp_path
) -> None:
    folder = photo_folder(photo, tmp_path)
    save(photo.convert("L"), folder / "c.png")

    run = invoke_cli("predict", model_file, folder, "--explain", tmp_path / "why")

    assert run.returncode == 2  # b.jpg
    pictures = sorted((tmp_path / "why").iterdir())
    assert [p.name for p in pictures] == ["001-a.png", "003-c.png"]
    for picture in pictures:
        with Image.open(picture) as image:
            assert image.format == "PNG" and image.width > 600
    (tmp_path / "a file").write_text("")
    line = invoke_cli(
        "predict", model_file, folder / "a.jpg", "--explain", tmp_path / "a file"
    ).error_line()
    assert "is a file" in line


def test_predict_with_nothing_says_what_it_needs(invoke_cli) -> None:
    line = invoke_cli("predict").error_line()
    assert "IMAGE" in line and "signdigits predict --help" in line
