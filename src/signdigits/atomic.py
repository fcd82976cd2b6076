"""Write a file all at once: a reader never sees half of it, a failure leaves no trace.

The content goes to a temporary file beside the target, which is then renamed over it
(an atomic step on POSIX and Windows). An interrupted run leaves the old file, or none.

The temporary file is created by ``os.open(name, O_CREAT | O_EXCL, 0o666)``, as
``open()`` creates any file, so the kernel applies the umask and the file gets the
permissions any other new file would get. Nothing reads or changes the umask (it is
process-wide: changing it races with every other thread that creates files) and no
``chmod`` is needed. ``tempfile.mkstemp`` is not used because it asks for mode 0o600.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_ATTEMPTS = 100


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a new, empty file with an unused name beside ``path``; return its descriptor."""
    for _ in range(_ATTEMPTS):
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(candidate, _FLAGS, 0o666), candidate
        except FileExistsError:
            continue  # the name is taken: draw another
    raise FileExistsError(f"no unused temporary name beside {path} after {_ATTEMPTS} tries")


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **open_args: Any) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, tmp_path = _create_temporary(path)
    try:
        try:
            # closefd=False: the descriptor stays ours, closed once below, even when
            # open() itself fails (a bad mode or encoding).
            with open(descriptor, mode, closefd=False, **open_args) as file:
                yield file
        finally:
            os.close(descriptor)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
