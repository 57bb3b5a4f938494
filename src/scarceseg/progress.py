"""Progress reporting for long loops: a rich bar on a terminal, plain lines when piped, observers for jobs.

A low-level module (it imports nothing of scarceseg), so ``io``, ``datasets``, ``cluster`` and ``methods``
can report progress without importing ``bench``.

* On a terminal, :func:`track` draws a rich bar on stderr with ``done/total``, elapsed time and an ETA.
* When stderr is not a terminal (piped to a file or a job log), it prints one plain line such as
  ``proposing: 27/120 (22 %), 0:01:05 elapsed, about 0:03:44 left`` every ``interval`` seconds, and none
  for loops that finish sooner.
* :func:`observe_progress` lets a background job (the browser app's) see every loop it runs.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TextIO, TypeVar

T = TypeVar("T")

#: Seconds between two plain progress lines when stderr is not a terminal.
PLAIN_INTERVAL = 5.0

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


class CaseStatus:
    """What the cases in flight are doing: the latest ``(description, done, total)`` of each one's loops.

    Called, it gives the text shown beside the cohort's bar (the two most recently reported cases)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._now: dict[str, tuple[str, int, int | None, float]] = {}

    def update(self, case_id: str, description: str | None = None, done: int = 0, total: int | None = None) -> None:
        """Record a loop's progress; ``description`` None: the case's task has ended."""
        with self._lock:
            if description is None:
                self._now.pop(case_id, None)
            else:
                self._now[case_id] = (description, done, total, time.monotonic())

    def __call__(self) -> str:
        with self._lock:
            latest = sorted(self._now.items(), key=lambda kv: -kv[1][3])[:2]
        parts = []
        for case_id, (description, done, total, _) in latest:
            count = f"{done}/{total}" if total else f"{done}"
            # the count first: a narrow terminal cuts the end of the line
            parts.append(f"{case_id} {count}" if case_id in description else f"{case_id} {count} ({description})")
        return "; ".join(parts)


@contextmanager
def reporting_case(case_id: str, sink: Callable[..., None]) -> Iterator[None]:
    """Within this block, every :func:`track` loop (a volume's slices) reports ``sink(case_id, description, done,
    total)``: each loop's start and end, and its steps at most every 0.5 s; then ``sink(case_id)`` when the block
    ends, however it ends. The observer already in place (:func:`observe_progress`) still sees every step."""
    previous = getattr(_observer, "callback", None)
    last = [0.0]

    def report(description: str, done: int, total: int | None) -> None:
        if previous is not None:
            previous(description, done, total)
        now = time.monotonic()
        if done == 0 or (total is not None and done >= total) or now - last[0] >= 0.5:
            last[0] = now
            sink(case_id, description, done, total)

    try:
        with observe_progress(report):
            yield
    finally:
        sink(case_id)


def _observed(items: Iterable[T], description: str, total: int | None,
              callback: Callable[[str, int, int | None], None]) -> Iterator[T]:
    callback(description, 0, total)
    for done, item in enumerate(items, start=1):
        yield item
        callback(description, done, total)


def format_seconds(seconds: float) -> str:
    """``3725.2`` -> ``"1:02:05"``."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(description: str, done: int, total: int | None, elapsed: float) -> str:
    """One plain progress line: count, percentage and time left when the total is known."""
    if total:
        left = elapsed / done * (total - done) if done else None
        eta = f", about {format_seconds(left)} left" if left is not None else ""
        return (f"{description}: {done}/{total} ({100 * done // total} %), "
                f"{format_seconds(elapsed)} elapsed{eta}")
    return f"{description}: {done} done, {format_seconds(elapsed)} elapsed"


def _plain(items: Iterable[T], description: str, total: int | None, stream: TextIO,
           interval: float, clock: Callable[[], float], status: Callable[[], str] | None = None) -> Iterator[T]:
    start = clock()
    state = {"done": 0, "last": start}
    lock = threading.Lock()

    def maybe_print() -> None:
        with lock:
            now = clock()
            if now - state["last"] < interval:
                return
            state["last"] = now
            detail = status() if status is not None else ""
            print(progress_line(description, state["done"], total, now - start) + (f" ({detail})" if detail else ""),
                  file=stream, flush=True)

    stop = threading.Event()
    if status is not None:  # a line every interval even while one long item runs (a volume's slices)
        def tick() -> None:
            while not stop.wait(interval):
                maybe_print()
        threading.Thread(target=tick, daemon=True).start()
    try:
        for item in items:
            yield item
            with lock:
                state["done"] += 1
            maybe_print()
    finally:
        stop.set()


def _rich(items: Iterable[T], description: str, total: int | None,
          status: Callable[[], str] | None = None) -> Iterator[T]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    if status is not None:  # redrawn by rich's refresh thread, so it moves while an item is still running
        from rich.progress import ProgressColumn
        from rich.text import Text

        class StatusColumn(ProgressColumn):
            def render(self, task) -> Text:
                return Text(status(), style="dim")

        columns[1] = BarColumn(bar_width=20)  # leave room for the status on an 80-column terminal
        columns.append(StatusColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def track(items: Iterable[T], description: str = "working", enabled: bool = True, total: int | None = None,
          *, stream: TextIO | None = None, interval: float = PLAIN_INTERVAL,
          clock: Callable[[], float] = time.monotonic, status: Callable[[], str] | None = None) -> Iterator[T]:
    """Yield ``items`` while reporting progress on stderr (see the module docstring).

    Parameters
    ----------
    items : iterable
    description : str
        Text beside the bar / at the start of each plain line.
    enabled : bool
        False: report nothing (observers of :func:`observe_progress` are still called).
    total : int, optional
        Number of items; taken from ``len(items)`` when it has one. Give it for generators, so the bar
        shows ``27/120`` and an ETA rather than ``27/?``.
    stream : file, optional
        Where to report (default ``sys.stderr``); a terminal gets the bar, anything else plain lines.
    interval : float
        Seconds between plain lines.
    clock : callable
        Time source for the plain lines (tests pass a fake one).
    status : callable, optional
        ``() -> str``: what the current item is doing (e.g. ``"pat0001 45/155"``), shown after the bar and
        redrawn while the item runs; plain lines end with it in brackets.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    callback = getattr(_observer, "callback", None)
    if callback is not None:
        items = _observed(items, description, total, callback)
    if not enabled:
        yield from items
        return
    stream = sys.stderr if stream is None else stream
    is_terminal = getattr(stream, "isatty", lambda: False)()
    if is_terminal and stream is sys.stderr:
        yield from _rich(items, description, total, status)
    else:
        yield from _plain(items, description, total, stream, interval, clock, status)
