"""The results folder of a run (``--out``) and its ``metrics.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from signdigits.atomic import atomic_write
from signdigits.errors import InvalidArgumentError


def prepare_out_dir(out: str | os.PathLike[str]) -> Path:
    """Create the results folder, or raise a clear error when it cannot be one."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidArgumentError(f"--out {path} is a file, not a folder; choose another --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InvalidArgumentError(
            f"cannot create the results folder {path} ({error.strerror}); choose another --out"
        ) from None
    return path


def write_json(path: Path, content: dict[str, Any]) -> Path:
    """Write ``content`` as indented JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as file:
        json.dump(content, file, indent=2)
        file.write("\n")
    return path
