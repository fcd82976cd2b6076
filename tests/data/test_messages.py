"""What a message about a bad copy of the dataset says to do depends on whose copy it is,
and reads as one sentence in each case: the user's own (--data, SIGNDIGITS_DATA,
--from), the cache's, or a download. An extra image used to read "...; remove it, or
nothing was kept in the cache; try again, ..." for a download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from signdigits.data.download import _download_hint
from signdigits.data.manifest import Hint, load_manifest, verify_images
from signdigits.data.sources import hint_for
from signdigits.errors import DataError

from .test_download import folder_contents

if TYPE_CHECKING:
    from tests.conftest import CliRun, FileServer

EXTRA = "3/IMG_EXTRA.JPG"
PROBLEM = f"the dataset at WHERE has image Dataset/{EXTRA} that is not part of the dataset; "

WHAT_TO_DO = {
    "--data": "remove it, or give --data a complete copy of the dataset, or download one with "
    "`signdigits data fetch` and leave --data out",
    "SIGNDIGITS_DATA": "remove it, or point SIGNDIGITS_DATA at a complete copy of the dataset, "
    "or unset it and download one with `signdigits data fetch`",
    "--from": "nothing was kept in the cache: remove it, or give --from a complete copy of the "
    "dataset's zip archive, or download it with `signdigits data fetch`",
    "cache": "download a fresh copy with `signdigits data fetch`",
    "download": "nothing was kept in the cache: try again, or set SIGNDIGITS_DATA_URL to a "
    "mirror of the dataset's archive",
}


def hint(context: str) -> Hint:
    if context == "download":
        return _download_hint()
    return hint_for(context, not_kept=context == "--from")


def refusal(extra: list[str], context: str) -> str:
    images = dict.fromkeys(load_manifest(), b"") | dict.fromkeys(extra, b"")
    with pytest.raises(DataError) as raised:
        verify_images(images, where="WHERE", hint=hint(context))
    return str(raised.value)


@pytest.mark.parametrize("context", WHAT_TO_DO)
def test_an_extra_image_reads_as_one_sentence_whoever_holds_the_copy(
    context: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNDIGITS_DATA_URL", raising=False)

    assert refusal([EXTRA], context) == PROBLEM + WHAT_TO_DO[context]


def test_several_extra_images_are_them() -> None:
    message = refusal([EXTRA, "4/IMG_EXTRA.JPG"], "--data")

    assert f"Dataset/{EXTRA} and 1 more that are not part of the dataset; remove them, or " in (
        message
    )


def test_a_download_with_an_extra_image_says_nothing_was_kept(
    dataset_copy: Callable[..., Path],
    http_server: FileServer,
    download_env: Path,
    invoke_cli: Callable[..., CliRun],
) -> None:
    url = http_server.serve("extra-image.zip", dataset_copy({EXTRA: b"a stray file"}))

    line = invoke_cli("data", "fetch", "-q", env={"SIGNDIGITS_DATA_URL": url}).error_line()

    assert line == (
        f"signdigits: error: the dataset at {url} has image Dataset/{EXTRA} that is not part of "
        "the dataset; nothing was kept in the cache: try again, or check that "
        "SIGNDIGITS_DATA_URL serves the dataset's archive"
    )
    assert folder_contents(download_env) == []
