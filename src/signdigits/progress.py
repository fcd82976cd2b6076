"""Progress bars for long work, drawn by rich on stderr.

A bar shows only when stderr is a terminal and the caller did not ask for quiet,
so logs, pipes and tests stay clean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

T = TypeVar("T")


def _console() -> Console:
    return Console(stderr=True)


def track(items: Iterable[T], description: str, total: int, show: bool = True) -> Iterator[T]:
    """Iterate over ``items`` while a bar counts them."""
    console = _console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not (show and console.is_terminal)) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


class _DownloadBar:
    """The progress-bar interface pooch expects (``total``, ``update``, ``reset``, ``close``)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task
        self._total: int | None = None

    @property
    def total(self) -> int | None:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = value or None
        self._progress.update(self._task, total=self._total)

    def update(self, n_bytes: int) -> None:
        self._progress.advance(self._task, n_bytes)

    def reset(self) -> None:
        self._progress.reset(self._task)

    def close(self) -> None:
        self._progress.refresh()


@contextmanager
def download_bar(description: str, show: bool = True) -> Iterator[_DownloadBar | bool]:
    """A bar in bytes for a pooch download; ``False`` (no bar) when hidden."""
    console = _console()
    if not (show and console.is_terminal):
        yield False
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield _DownloadBar(progress, progress.add_task(description, total=None))
