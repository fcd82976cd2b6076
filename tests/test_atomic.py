"""Files are written whole or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from signdigits.atomic import atomic_write


def test_success_replaces_the_file_with_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    with atomic_write(target, "w") as file:
        file.write("{}")
    assert target.read_text() == "{}"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "figure.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]
