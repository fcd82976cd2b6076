"""Paths the user gives (``--data``, ``--from``, ``SIGNDIGITS_DATA``, ``SIGNDIGITS_CACHE``),
turned into ``Path`` objects, and the file-system errors they meet, turned into phrases.

``Path.expanduser`` raises ``RuntimeError`` for ``~nosuchuser/...`` (and for ``~`` where
there is no home folder), and ``stat`` raises for a name too long or a folder that
cannot be searched; each becomes one ``DataError`` naming the path and what to do.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from signdigits.errors import DataError


def expand_user(path: str | os.PathLike[str], origin: str) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded; ``DataError`` when it cannot be."""
    try:
        return Path(path).expanduser()
    except RuntimeError:  # no such user, or no home folder
        first = Path(path).parts[0]
        missing = (
            "the home folder cannot be determined (HOME is not set)"
            if first == "~"
            else f"there is no user named {first[1:]} on this system"
        )
        raise DataError(
            f"{path} (from {origin}) starts with {first}, but {missing}; give the full path"
        ) from None


def strerror(error: OSError) -> str:
    """An ``OSError`` as a short phrase: its ``strerror`` (such as "Permission denied")."""
    return error.strerror or str(error) or type(error).__name__


def is_denied(error: OSError) -> bool:
    """Whether the error is a permission refused (not a missing or a bad path)."""
    return error.errno in (errno.EACCES, errno.EPERM)


def is_too_long(error: OSError) -> bool:
    """Whether the error is a path, or one of its names, too long for the file system."""
    return error.errno == errno.ENAMETOOLONG
