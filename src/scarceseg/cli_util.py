"""What every CLI module shares: one-line errors for the mistakes a user can make, and a log file for details.

A user sees one line per problem. The details (Python warnings with their source lines, ITK's C++ messages,
tracebacks of unexpected errors) go to a log file, created only when something is written to it; the last
line on stderr names it. The log folder is ``$SCARCESEG_LOG_DIR``, else ``$XDG_STATE_HOME/scarceseg/logs``
(``~/.local/state/scarceseg/logs``).
"""

from __future__ import annotations

import functools
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

ENV_LOG_DIR = "SCARCESEG_LOG_DIR"


def log_dir() -> Path:
    """Where the CLI writes its log files."""
    if os.environ.get(ENV_LOG_DIR):
        return Path(os.environ[ENV_LOG_DIR])
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "scarceseg" / "logs"


class _Counting(logging.FileHandler):
    """A file handler (file created on the first record) that counts warnings and errors."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.problems = 0
        self.unwritable = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.unwritable:
            return
        if self.stream is None:
            try:
                Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
                self.stream = self._open()
            except OSError:  # no writable log folder: the details are dropped, the one-line messages remain
                self.unwritable = True
                return
        if record.levelno >= logging.WARNING:
            self.problems += 1
        super().emit(record)


@contextmanager
def command_log(name: str) -> Iterator[_Counting]:
    """Within this block, Python warnings and every logger's records (INFO and up) go to a log file."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    handler = _Counting(log_dir() / f"scarceseg-{name}-{stamp}-{os.getpid()}.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()  # every library's logger (tifffile, nibabel, ...) and py.warnings end here
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        logging.captureWarnings(True)
        try:
            yield handler
        finally:
            logging.captureWarnings(False)
            root.removeHandler(handler)
            root.setLevel(level)
            handler.close()


def _where(handler: _Counting | None) -> str:
    if handler is None or not Path(handler.baseFilename).is_file():
        return ""
    return f"details in {handler.baseFilename}"


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn scarceseg errors (and a few OS errors) into one line on stderr and exit code 1.

    Warnings and unexpected errors (with their traceback) are written to the command's log file, and a last
    line on stderr names it.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scarceseg.errors import ScarcesegError

        log = logging.getLogger("scarceseg.cli")
        with command_log(func.__name__.removesuffix("_cmd").replace("_", "-")) as handler:
            try:
                return func(*args, **kwargs)
            except ScarcesegError as exc:
                log.info("error: %s", exc)
                where = _where(handler) if handler is not None and handler.problems else ""
                if handler is not None:
                    handler.problems = 0  # the log is named on the error line itself
                typer.echo(f"error: {exc}{' (' + where + ')' if where else ''}", err=True)
                raise typer.Exit(1) from None
            except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
                log.info("error: %s", exc)
                typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                typer.echo("interrupted", err=True)
                raise typer.Exit(130) from None
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except Exception as exc:  # a bug or an unforeseen input: one line here, the traceback in the log
                log.exception("unexpected error")
                if handler is not None:
                    handler.problems = 0  # named on the error line already
                where = _where(handler)
                typer.echo(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                           f"{' (' + where + ')' if where else ''}", err=True)
                raise typer.Exit(1) from None
            finally:
                if handler is not None and handler.problems:
                    where = _where(handler)
                    if where:
                        typer.echo(f"{handler.problems} warning(s) or error(s); {where}", err=True)

    return wrapper
