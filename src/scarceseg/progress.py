"""Progress bars for long work (rich), silent when disabled or not on a terminal."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# per-thread observer of track(): a background job (the browser app's) sees the progress of the work it runs
_observer = threading.local()


@contextmanager
def observe_progress(callback: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """Within this block (in this thread), every :func:`track` reports ``callback(description, done, total)``.

    It is called once before the first item (``done == 0``) and after each item, whether or not a bar is
    drawn. Blocks nest; the innermost observer wins.
    """
    previous = getattr(_observer, "callback", None)
    _observer.callback = callback
    try:
        yield
    finally:
        _observer.callback = previous


def _observed(items: Iterable[T], description: str, total: int | None,
              callback: Callable[[str, int, int | None], None]) -> Iterator[T]:
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    callback(description, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        callback(description, done, total)


def track(items: Iterable[T], description: str = "working", enabled: bool = True,
          total: int | None = None) -> Iterator[T]:
    """Yield ``items``, drawing a rich progress bar on stderr when ``enabled`` (see :func:`observe_progress`)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    callback = getattr(_observer, "callback", None)
    if callback is not None:
        items = _observed(items, description, total, callback)
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
