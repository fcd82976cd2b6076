"""The dataset's manifest: the SHA-256 of each of its 2,062 images.

It was made once from the archive of ardamavi/Sign-Language-Digits-Dataset at
commit 4b09433ef9d5c60602e8805bb54b8aa2428527f8. Every archive or folder is checked
against it before use, so a missing, extra, truncated or altered image is caught
and named instead of silently changing the results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from signdigits.errors import DataError

MANIFEST_PATH = Path(__file__).with_name("manifest.sha256")


@dataclass(frozen=True)
class Hint:
    """What to do about a bad copy of the dataset: the end of an error message.

    Messages read "<what is wrong>; <hint>", one sentence whoever holds the copy.
    ``fix`` is a clause in lower case, without a final stop. ``own_copy`` marks the
    user's own copy (``--data``, ``SIGNDIGITS_DATA``, ``--from``), where removing a stray
    image is a fix too; in the cache or in a download it is not. ``not_kept`` marks a
    copy on its way into the cache (a download, an import) that was refused: the hint
    then says first that nothing was kept.
    """

    fix: str
    own_copy: bool = False
    not_kept: bool = False

    def __str__(self) -> str:
        return self.text()

    def text(self, remove: str | None = None) -> str:
        """The hint; ``remove`` ("remove it") is offered first where the copy is the user's."""
        fix = f"{remove}, or {self.fix}" if remove and self.own_copy else self.fix
        return f"nothing was kept in the cache: {fix}" if self.not_kept else fix


REDOWNLOAD_HINT = Hint("download a fresh copy with `signdigits data fetch`")
"""The hint for the archive in the cache (``signdigits data fetch`` replaces a damaged one)."""


@cache
def load_manifest() -> dict[str, str]:
    """Map each image's path inside ``Dataset/`` (such as ``0/IMG_1118.JPG``) to its SHA-256."""
    manifest = {}
    for line in MANIFEST_PATH.read_text().splitlines():
        if line and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            manifest[name] = digest
    return manifest


@cache
def digit_counts() -> tuple[int, ...]:
    """How many images of each digit, 0 to 9, the dataset has (205, 206, … 204)."""
    counts = [0] * 10
    for name in load_manifest():
        counts[int(name.split("/", 1)[0])] += 1
    return tuple(counts)


@cache
def manifest_digest() -> str:
    """SHA-256 of the manifest itself: identifies this version of the dataset."""
    return hashlib.sha256(MANIFEST_PATH.read_bytes()).hexdigest()


def shown_name(name: str) -> str:
    """A file's name for a one-line message: unprintable characters (newlines) escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def verify_images(
    images: Mapping[str, bytes], where: str, hint: Hint | str = REDOWNLOAD_HINT
) -> None:
    """Check image files against the manifest; raise ``DataError`` naming the first problem.

    ``images`` maps each path inside ``Dataset/`` to the file's bytes; ``where``
    says where they came from and ``hint`` what to do, for the message.
    """
    manifest = load_manifest()
    hint = hint if isinstance(hint, Hint) else Hint(hint)
    missing = sorted(manifest.keys() - images.keys())
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(
            f"the dataset at {where} is missing image Dataset/{missing[0]}{more}; {hint}"
        )
    extra = sorted(images.keys() - manifest.keys())
    if extra:
        more, are, them = (
            (f" and {len(extra) - 1} more", "are", "them") if len(extra) > 1 else ("", "is", "it")
        )
        raise DataError(
            f"the dataset at {where} has image Dataset/{shown_name(extra[0])}{more} that {are} "
            f"not part of the dataset; {hint.text(remove=f'remove {them}')}"
        )
    for name in sorted(images):
        if hashlib.sha256(images[name]).hexdigest() != manifest[name]:
            raise DataError(
                f"image Dataset/{name} in {where} does not match the dataset's checksum "
                f"(truncated or altered); {hint}"
            )
