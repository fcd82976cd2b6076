"""Archives that zipfile cannot read, or should not: one DataError line each, never a traceback.

Each hostile archive is built here, in tmp_path, from scratch: a tiny zip with one
image entry, ``Dataset/0/IMG_1118.JPG``, then patched byte by byte where zipfile
cannot write the damage itself (encryption flags, compression methods, versions,
names). The bombs inflate gigabytes of zeros from a megabyte, written as raw deflate
blocks rather than compressed here. The same checks must hold for an archive given
with --data or SIGNDIGITS_DATA, found in the cache, or downloaded.
"""

from __future__ import annotations

import functools
import io
import struct
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from signdigits.cli import main
from signdigits.data import load_dataset, verify_source
from signdigits.data.cache import ARCHIVE_NAME
from signdigits.data.sources import MAX_IMAGE_BYTES, identify_source
from signdigits.errors import DataError

if TYPE_CHECKING:
    from tests.conftest import FileServer

IMAGE = "Dataset/0/IMG_1118.JPG"
"""The image entry of the tiny archives: the first image of the dataset's manifest."""

MiB = 1024 * 1024
GiB = 1024 * MiB

MEMORY_LIMIT = 64 * MiB
"""The most Python may allocate while a hostile archive is refused (tracemalloc's peak)."""


# --- Building and patching archives ---------------------------------------------------------


def tiny_archive(compress_type: int = zipfile.ZIP_DEFLATED, content: bytes | None = None) -> bytes:
    """A zip with one image entry (and a README beside it), as bytes."""
    content = content if content is not None else bytes(range(256)) * 40
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.md", b"# Sign Language Digits\n")
        archive.writestr(IMAGE, content, compress_type=compress_type)
    return buffer.getvalue()


def entry_headers(data: bytes, name: str = IMAGE) -> tuple[int, int]:
    """The offsets of ``name``'s local header and of its central directory record."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        local, position = archive.getinfo(name).header_offset, archive.start_dir
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        if data[position + 46 : position + 46 + name_length] == name.encode():
            return local, position
        position += 46 + name_length + extra_length + comment_length
    raise AssertionError(f"no central directory record for {name}")


# Field offsets in a local header (L) and in a central directory record (C).
_FIELDS = {  # name: (struct format, offset in L, offset in C)
    "version": ("<H", 4, 6),  # version needed to extract
    "flags": ("<H", 6, 8),
    "method": ("<H", 8, 10),
    "file_size": ("<I", 22, 24),  # the uncompressed size
}


def patch(data: bytes, name: str = IMAGE, **changes: int | Callable[[int], int]) -> bytes:
    """``data`` with fields of ``name``'s headers changed, in both headers alike.

    A change is a value, or a function of the old value (``flags=lambda f: f | 1``).
    """
    patched = bytearray(data)
    for header in entry_headers(data, name):
        is_central = data[header : header + 4] == b"PK\x01\x02"
        for field, change in changes.items():
            layout, local_offset, central_offset = _FIELDS[field]
            offset = header + (central_offset if is_central else local_offset)
            (old,) = struct.unpack_from(layout, patched, offset)
            struct.pack_into(layout, patched, offset, change(old) if callable(change) else change)
    return bytes(patched)


def rename(data: bytes, new_name: bytes, name: str = IMAGE) -> bytes:
    """``data`` with ``name`` replaced, in both headers, by raw bytes of the same length."""
    assert len(new_name) == len(name.encode())
    patched = bytearray(data)
    for header in entry_headers(data, name):
        is_central = data[header : header + 4] == b"PK\x01\x02"
        start = header + (46 if is_central else 30)
        patched[start : start + len(new_name)] = new_name
    return bytes(patched)


def zeros_archive(entries: dict[str, int]) -> bytes:
    """A zip whose entries (name: size) are deflated zeros, built without compressing them.

    After a full flush, deflate starts afresh, so 1 MiB of zeros compresses to the same
    1,037 bytes every time: the stream is that block repeated, then the end block. The
    archive is written field by field (zipfile would have to deflate the gigabytes).
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    end = compressor.flush()
    block_crc = {}  # CRC-32 of n MiB of zeros, computed once per size
    body, directory = bytearray(), bytearray()
    for name, size in entries.items():
        assert size % MiB == 0
        blocks = size // MiB
        if blocks not in block_crc:
            crc, zeros = 0, bytes(MiB)
            for _ in range(blocks):
                crc = zlib.crc32(zeros, crc)
            block_crc[blocks] = crc
        stream = block * blocks + end
        encoded = name.encode()
        fields = (20, 0, zipfile.ZIP_DEFLATED, 0, 0x21, block_crc[blocks], len(stream), size)
        offset = len(body)
        body += struct.pack("<4sHHHHHIII", b"PK\x03\x04", *fields)
        body += struct.pack("<HH", len(encoded), 0) + encoded + stream
        directory += struct.pack("<4sH", b"PK\x01\x02", 20) + struct.pack("<HHHHHIII", *fields)
        directory += struct.pack("<HHHHHII", len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    count = len(entries)
    footer = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(body), 0
    )
    return bytes(body + directory + footer)


@functools.cache
def gibibyte_bomb() -> bytes:
    """An archive of 1 MB whose one image entry inflates to 1 GiB of zeros (made once)."""
    return zeros_archive({IMAGE: GiB})


@pytest.fixture
def bomb() -> bytes:
    return gibibyte_bomb()


def test_the_bomb_really_inflates_to_a_gibibyte(bomb: bytes) -> None:
    """The fixture is what it claims: a valid zip, 1 MB small, 1 GiB of zeros inside."""
    assert len(bomb) < 2 * MiB
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        (info,) = archive.infolist()
        assert info.file_size == GiB
        with archive.open(info) as entry:  # streamed, checked against the CRC at the end
            inflated = 0
            while chunk := entry.read(64 * MiB):
                inflated += len(chunk)
    assert inflated == GiB


# --- The cases -----------------------------------------------------------------------------


def encrypted(data: bytes) -> bytes:
    """The encryption flag set: zipfile then asks for a password."""
    return patch(data, flags=lambda flags: flags | 0x01)


def flipped_middle(data: bytes, name: str = IMAGE) -> bytes:
    """``data`` with 16 bytes inverted in the middle of ``name``'s compressed data."""
    local, _ = entry_headers(data, name)
    name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
    (compressed_size,) = struct.unpack_from("<I", data, local + 18)
    middle = local + 30 + name_length + extra_length + compressed_size // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


def lzma_properties_broken(data: bytes) -> bytes:
    """The LZMA properties (after a 4-byte version and size) set to an impossible value."""
    local, _ = entry_headers(data)
    name_length, extra_length = struct.unpack_from("<HH", data, local + 26)
    properties = local + 30 + name_length + extra_length + 4
    return data[:properties] + b"\xff" + data[properties + 1 :]


def duplicated(data: bytes, name: str = IMAGE) -> bytes:
    """Two entries named ``name`` (zipfile reads only the last), after those of ``data``."""
    buffer = io.BytesIO(data)
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "a") as archive:
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        if name not in archive.namelist():
            archive.writestr(name, b"the first entry of this name")
        archive.writestr(name, b"the second entry of this name")
    return buffer.getvalue()


# name: (build the archive, what the message must say besides the archive's path)
HOSTILE = {
    "zip bomb": (gibibyte_bomb, [IMAGE, "zip bomb"]),
    "encrypted entry": (lambda: encrypted(tiny_archive()), [IMAGE, "encrypted"]),
    "method 99 (AES)": (lambda: patch(tiny_archive(), method=99), [IMAGE, "method 99"]),
    "unknown method 77": (lambda: patch(tiny_archive(), method=77), [IMAGE, "method 77"]),
    "bzip2 entry": (lambda: tiny_archive(zipfile.ZIP_BZIP2), [IMAGE, "bzip2"]),
    "zip version 9.9": (lambda: patch(tiny_archive(), version=99), ["version 9.9"]),
    "name not UTF-8": (  # flagged as UTF-8, with a byte 0xFF that UTF-8 never has
        lambda: rename(
            patch(tiny_archive(), flags=lambda flags: flags | 0x800),
            IMAGE.replace("_", "\xff").encode("latin-1"),
        ),
        ["UTF-8", "IMG\\xff1118"],
    ),
    "corrupt LZMA data": (
        lambda: flipped_middle(tiny_archive(zipfile.ZIP_LZMA, bytes(range(256)) * 200)),
        [IMAGE],
    ),
    "corrupt LZMA properties": (
        lambda: lzma_properties_broken(tiny_archive(zipfile.ZIP_LZMA)),
        [IMAGE],
    ),
    "corrupt deflate data": (lambda: flipped_middle(tiny_archive()), [IMAGE]),
    "duplicate names": (lambda: duplicated(tiny_archive()), [IMAGE, "two entries"]),
    "duplicate names with a newline": (
        lambda: duplicated(tiny_archive(), "Dataset/0/IMG\n1.JPG"),
        ["two entries", "Dataset/0/IMG\\n1.JPG"],
    ),
    "patched-data flag": (
        lambda: patch(tiny_archive(), flags=lambda flags: flags | 0x20),
        [IMAGE, "patched"],
    ),
}


@pytest.fixture(params=list(HOSTILE), ids=list(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, list[str]]:
    """A hostile archive in tmp_path, and what its error message must name."""
    build, fragments = HOSTILE[request.param]
    path = tmp_path / "hostile" / ARCHIVE_NAME
    path.parent.mkdir()
    path.write_bytes(build())
    return path, fragments


@pytest.fixture
def memory_peak() -> Iterator[Callable[[], int]]:
    """Trace Python's allocations during the test; call it for the peak so far, in bytes."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_one_error_line(rc: int, err: str, out: str, *fragments: str) -> str:
    report = f"exit {rc}\nstdout: {out}\nstderr: {err}"
    assert rc == 2, report
    assert "Traceback" not in out + err, report
    lines = err.strip().splitlines()
    assert len(lines) == 1, report
    for fragment in fragments:
        assert fragment in lines[0], report
    return lines[0]


def test_data_verify_refuses_a_hostile_archive_in_one_line(
    hostile: tuple[Path, list[str]],
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
    memory_peak: Callable[[], int],
) -> None:
    path, fragments = hostile

    rc = main(["data", "verify", "--quiet", "--data", str(path)])

    out, err = capsys.readouterr()
    assert_one_error_line(rc, err, out, str(path), *fragments, "signdigits data fetch")
    assert memory_peak() < MEMORY_LIMIT, f"{memory_peak() / MiB:.0f} MiB allocated"
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


def test_loading_a_hostile_archive_raises_a_data_error(
    hostile: tuple[Path, list[str]], isolated_cache: Path
) -> None:
    path, fragments = hostile

    with pytest.raises(DataError) as raised:
        load_dataset(path, show_progress=False)

    for fragment in [str(path), *fragments]:
        assert fragment in str(raised.value)
    assert not isolated_cache.exists() or not any(isolated_cache.iterdir())


def test_the_tiny_archives_are_read_when_unpatched(tmp_path: Path) -> None:
    """The baseline of the cases: unpatched, each tiny archive is read, and only the
    manifest finds it wanting (an image missing), so each refusal above is the patch's."""
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA):
        path = tmp_path / f"method-{method}.zip"
        path.write_bytes(tiny_archive(method))
        with pytest.raises(DataError, match="missing image"):
            verify_source(identify_source(path, "--data"))


# --- A directory that lies -----------------------------------------------------------------


def test_a_bomb_whose_directory_says_small_is_read_within_bounds(
    bomb: bytes, tmp_path: Path, isolated_cache: Path, memory_peak: Callable[[], int]
) -> None:
    """The directory says 10 kB, the entry inflates to 1 GiB: the bounded reading stops
    long before the gigabyte (reading the entry whole would inflate all of it at once)."""
    path = tmp_path / "liar.zip"
    path.write_bytes(patch(bomb, file_size=10_000))

    with pytest.raises(DataError) as raised:
        load_dataset(path, show_progress=False)

    assert str(path) in str(raised.value) and IMAGE in str(raised.value)
    assert memory_peak() < MEMORY_LIMIT, f"{memory_peak() / MiB:.0f} MiB allocated"


def test_a_bomb_whose_directory_says_just_under_the_limit_is_read_within_bounds(
    bomb: bytes, tmp_path: Path, isolated_cache: Path, memory_peak: Callable[[], int]
) -> None:
    """The directory claims the largest size allowed; the stream stops just past it."""
    path = tmp_path / "liar.zip"
    path.write_bytes(patch(bomb, file_size=MAX_IMAGE_BYTES))

    with pytest.raises(DataError) as raised:
        load_dataset(path, show_progress=False)

    assert IMAGE in str(raised.value)
    assert memory_peak() < MEMORY_LIMIT, f"{memory_peak() / MiB:.0f} MiB allocated"


def test_many_entries_within_the_limit_each_are_refused_together(
    tmp_path: Path, isolated_cache: Path, memory_peak: Callable[[], int]
) -> None:
    """Twenty images of 8 MiB each: none alone too large, 160 MiB together."""
    names = {f"Dataset/{i % 10}/IMG_{i}.JPG": 8 * MiB for i in range(20)}
    path = tmp_path / "many.zip"
    path.write_bytes(zeros_archive(names))

    with pytest.raises(DataError, match="not the dataset") as raised:
        load_dataset(path, show_progress=False)

    assert str(path) in str(raised.value)
    assert memory_peak() < MEMORY_LIMIT


# --- Wherever the archive comes from -------------------------------------------------------


@pytest.mark.parametrize("case", ["zip bomb", "encrypted entry", "duplicate names"])
@pytest.mark.parametrize("origin", ["SIGNDIGITS_DATA", "cache", "download"])
def test_every_origin_of_an_archive_is_checked(
    case: str,
    origin: str,
    tmp_path: Path,
    isolated_cache: Path,
    http_server: FileServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build, fragments = HOSTILE[case]
    data = build()
    if origin == "SIGNDIGITS_DATA":
        named = tmp_path / "hostile.zip"
        named.write_bytes(data)
        monkeypatch.setenv("SIGNDIGITS_DATA", str(named))
        what_to_do = "signdigits data fetch"
    elif origin == "cache":
        isolated_cache.mkdir()
        named = isolated_cache / ARCHIVE_NAME
        named.write_bytes(data)
        what_to_do = "signdigits data fetch"
    else:
        for variable in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(variable, "127.0.0.1,localhost")
        named = http_server.serve(f"hostile-{case.replace(' ', '-')}.zip", data)
        monkeypatch.setenv("SIGNDIGITS_DATA_URL", named)
        what_to_do = "nothing was kept in the cache"

    with pytest.raises(DataError) as raised:
        load_dataset(show_progress=False)

    message = str(raised.value)
    for fragment in [str(named), *fragments, what_to_do]:
        assert fragment in message
    left = sorted(path.name for path in isolated_cache.rglob("*"))  # [] if it does not exist
    assert left == ([ARCHIVE_NAME] if origin == "cache" else [])


def test_duplicate_names_in_the_real_archive_are_refused(
    archive_members: dict[str, bytes],
    image_names: list[str],
    flip_byte: Callable[..., bytes],
    tmp_path: Path,
    isolated_cache: Path,
) -> None:
    """A corrupt copy of an image, then the good one under the same name: zipfile reads
    only the last, so the checksums pass; the archive must be refused all the same."""
    top = next(iter(archive_members)).split("/", 1)[0]
    name = f"{top}/Dataset/{image_names[100]}"
    path = tmp_path / "duplicate.zip"
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as archive:
        warnings.simplefilter("ignore")  # zipfile warns "Duplicate name"
        archive.writestr(name, flip_byte(archive_members[name]))
        for member, data in archive_members.items():
            archive.writestr(member, data)

    with pytest.raises(DataError) as raised:
        verify_source(identify_source(path, "--data"))

    assert str(path) in str(raised.value) and name in str(raised.value)


def test_an_extra_image_named_with_a_newline_is_named_on_one_line(
    archive_members: dict[str, bytes],
    tmp_path: Path,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    top = next(iter(archive_members)).split("/", 1)[0]
    path = tmp_path / "extra.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in archive_members.items():
            archive.writestr(member, data)
        archive.writestr(f"{top}/Dataset/3/IMG\nEXTRA.JPG", b"not a photo")

    rc = main(["data", "verify", "--quiet", "--data", str(path)])

    out, err = capsys.readouterr()
    assert_one_error_line(rc, err, out, str(path), "Dataset/3/IMG\\nEXTRA.JPG", "not part of")


# --- Folders -------------------------------------------------------------------------------


def test_an_image_file_far_larger_than_a_photo_is_refused_unread(
    tmp_path: Path, isolated_cache: Path, memory_peak: Callable[[], int]
) -> None:
    """A 1 GiB file (sparse: it takes no disk) where a photo of 10 kB should be."""
    image = tmp_path / "dataset" / IMAGE
    image.parent.mkdir(parents=True)
    with image.open("wb") as file:
        file.truncate(GiB)

    with pytest.raises(DataError) as raised:
        load_dataset(tmp_path / "dataset", show_progress=False)

    assert str(image) in str(raised.value) and "signdigits data fetch" in str(raised.value)
    assert memory_peak() < MEMORY_LIMIT
