"""The results folder of a run (``--out``) and its ``metrics.json``.

A run's files are one set: the figures and ``metrics.json`` of the same run. So they are
written into a new hidden folder beside ``--out`` and swapped in only when all are written.
An interrupted or failed run leaves the previous results as they were, never a mix of two
runs, and a folder that cannot be written is found before any training starts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from signdigits.atomic import atomic_write
from signdigits.errors import InvalidArgumentError


def _new_folder_beside(path: Path, tag: str) -> Path:
    """Create an empty hidden folder with an unused name next to ``path``.

    ``os.mkdir`` with mode 0o777 lets the umask decide its permissions, as for any new
    folder (``tempfile.mkdtemp`` would make it private, and the results with it).
    """
    for _ in range(100):
        candidate = path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")
        try:
            candidate.mkdir(0o777)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"no unused folder name beside {path}")


def _why(error: OSError) -> str:
    return error.strerror or str(error)


class ResultsFolder:
    """``with ResultsFolder(out, names) as folder:`` write the run's files into ``folder``;
    when the block ends without an error they replace ``out`` as a whole.

    On entry, before any work, ``out`` is checked: it must be a folder or not exist, and
    hold nothing but files of the same names (an earlier run's results), so that replacing
    it loses nothing of the user's. The staging folder is created then, which proves that
    the place can be written.
    """

    def __init__(self, out: str | os.PathLike[str], names: Collection[str]) -> None:
        self.path = Path(out)
        self.names = frozenset(names)
        self.staging: Path | None = None

    def __enter__(self) -> Path:
        path = self.path
        try:
            if path.exists() and not path.is_dir():
                raise InvalidArgumentError(
                    f"--out {path} is a file, not a folder; choose another --out"
                )
            if path.is_dir():
                others = sorted(
                    entry.name
                    for entry in path.iterdir()
                    if entry.name not in self.names or not entry.is_file()
                )
                if others:
                    shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
                    raise InvalidArgumentError(
                        f"--out {path} holds other things than this run's results ({shown}); "
                        "choose a new or empty folder for --out"
                    )
                if not os.access(path, os.W_OK):
                    raise InvalidArgumentError(
                        f"--out {path} is read-only; choose a folder you can write to"
                    )
            path.parent.mkdir(parents=True, exist_ok=True)
            self.staging = _new_folder_beside(path, "partial")
        except OSError as error:
            raise InvalidArgumentError(
                f"cannot write the results to {path} ({_why(error)}); choose another --out"
            ) from None
        return self.staging

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        staging, self.staging = self.staging, None
        if staging is None:
            return
        if error is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return
        try:
            self._swap_in(staging)
        except OSError as failure:
            shutil.rmtree(staging, ignore_errors=True)
            raise InvalidArgumentError(
                f"cannot put the results in {self.path} ({_why(failure)}); nothing there was "
                "changed"
            ) from None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around the writing of the result files: a failure (a full disk) is the user's to
        fix, said in one line; the earlier results stay as they were."""
        try:
            yield
        except OSError as error:
            raise InvalidArgumentError(
                f"cannot write the results to {self.path} ({_why(error)}); nothing there was "
                "changed"
            ) from None

    def _swap_in(self, staging: Path) -> None:
        """Replace ``out`` by ``staging``: two renames, the old results removed last."""
        if not self.path.exists():
            staging.rename(self.path)
            return
        previous = _new_folder_beside(self.path, "previous")
        previous.rmdir()  # only its unused name is needed
        self.path.rename(previous)
        try:
            staging.rename(self.path)
        except OSError:
            previous.rename(self.path)  # put the earlier results back
            raise
        shutil.rmtree(previous, ignore_errors=True)


def write_json(path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as indented JSON, atomically (NaN or infinity is a bug: not JSON)."""
    with atomic_write(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2, allow_nan=False)
        file.write("\n")
    return path
