"""What every CLI module shares: one-line errors for the mistakes a user can make."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import typer


def friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn scarceseg errors (and a few OS errors) into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scarceseg.errors import ScarcesegError

        try:
            return func(*args, **kwargs)
        except ScarcesegError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper
