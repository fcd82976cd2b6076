"""Files are written whole or not at all, with the permissions ``open()`` would give them."""

from __future__ import annotations

import importlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import signdigits.atomic
from signdigits.atomic import atomic_write


def test_success_replaces_the_file_and_leaves_only_it(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "metrics.json"
    with atomic_write(target, "w", encoding="utf-8") as file:
        file.write("{}")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_the_umask_is_never_read_or_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not at import and not while writing: the umask is process-wide state, and changing
    it, even for an instant, races with every other thread that creates files."""

    def no_umask(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:#o}) was called")

    monkeypatch.setattr(os, "umask", no_umask)
    try:
        atomic = importlib.reload(signdigits.atomic)
        with atomic.atomic_write(tmp_path / "a.bin") as file:
            file.write(b"data")
    finally:
        monkeypatch.undo()
        importlib.reload(signdigits.atomic)
    assert (tmp_path / "a.bin").read_bytes() == b"data"


MODES_SCRIPT = """
import json, os, stat, sys
from pathlib import Path

set_umask = os.umask
def no_umask(mask):
    raise AssertionError(f"os.umask({mask:#o}) was called")
os.umask = no_umask  # nothing of signdigits may read or change it, importing or writing

import signdigits.cli, signdigits.data, signdigits.plots  # every module that writes files
from signdigits.atomic import atomic_write

folder = Path(sys.argv[1])
modes = {}
for umask in (0o027, 0o002, 0o077, 0o000):
    set_umask(umask)
    for mode in ("wb", "w"):
        target = folder / f"{umask:03o}-{mode}"
        target.write_bytes(b"old")  # replacing a file: the new one's mode, not the old one's
        os.chmod(target, 0o600)
        with atomic_write(target, mode) as file:
            file.write(b"new" if mode == "wb" else "new")
        modes[target.name] = stat.S_IMODE(target.stat().st_mode)
print(json.dumps(modes))
"""


def test_the_new_file_has_the_mode_open_would_give_it(tmp_path: Path) -> None:
    """0o666 less the umask, for several umasks set in a process of its own."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MODES_SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    modes = json.loads(completed.stdout)
    assert len(modes) == 8
    for name, mode in modes.items():
        umask = int(name.split("-")[0], 8)
        assert mode == 0o666 & ~umask, f"{name}: {mode:#o}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(modes)  # no temporary left


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


@pytest.mark.parametrize(
    ("mode", "open_args", "error"),
    [("q", {}, ValueError), ("w", {"encoding": "no-such-encoding"}, LookupError)],
)
def test_a_file_that_cannot_be_opened_leaves_no_temporary(
    tmp_path: Path, mode: str, open_args: dict[str, str], error: type[Exception]
) -> None:
    target = tmp_path / "metrics.json"
    target.write_bytes(b"old")
    with pytest.raises(error), atomic_write(target, mode, **open_args):
        pytest.fail("the body must not run")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_taken_temporary_name_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr(signdigits.atomic.secrets, "token_hex", lambda _: next(names))
    taken = tmp_path / ".out.bin.taken.tmp"
    taken.write_bytes(b"someone else's")
    with atomic_write(tmp_path / "out.bin") as file:
        file.write(b"ours")
    assert (tmp_path / "out.bin").read_bytes() == b"ours"
    assert taken.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.bin.taken.tmp", "out.bin"]


def test_the_target_mode_is_not_the_temporary_files_0o600(tmp_path: Path) -> None:
    """``tempfile.mkstemp`` makes 0o600 files; a written file must not keep that mode
    unless the umask asks for it (the test process's umask is whatever it is)."""
    target = tmp_path / "out.bin"
    with atomic_write(target) as file:
        file.write(b"x")
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")  # made by open(): the reference
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(probe.stat().st_mode)
