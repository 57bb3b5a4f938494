"""Write files without following symbolic links: a temporary file in the same folder, then an atomic rename.

Every file scarceseg writes into a work folder (masks, proposals, models, the browser app's files) goes
through :func:`replacing` or :func:`write_bytes`:

* a target that exists as a symbolic link is refused (:class:`SymlinkRefused`), so a link planted in a
  work folder cannot redirect a write to a file elsewhere;
* the data goes to a new temporary file next to the target (created with ``O_EXCL``), which is renamed
  over the target only once it is complete. A rename replaces a link itself, never the file it points
  to, so even a link created between the check and the rename is not followed; readers never see a
  half-written file; a failed write leaves the old file as it was and no temporary file behind.

Folders above the target are the caller's business (the browser app checks that they resolve inside
its work folder).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from scarceseg.errors import InputError


class SymlinkRefused(InputError):
    """The file to write exists as a symbolic link."""


def _default_mode() -> int:
    """``0o666`` less the process umask (what ``open(path, "w")`` would have given)."""
    try:  # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def check_target(path: str | Path) -> Path:
    """``path`` if it may be written: it is not a symbolic link (a missing file is fine).

    Raises
    ------
    SymlinkRefused
        ``path`` is a symbolic link (dangling or not).
    InputError
        ``path`` exists and is not a regular file (a folder, a device, a FIFO).
    """
    path = Path(path)
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(path, f"cannot check the file before writing ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        raise SymlinkRefused(path, "is a symbolic link; refusing to write through it (remove the link)")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "exists and is not a regular file; refusing to replace it")
    return path


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same ending); on success it is renamed over ``path``.

    For writers that take a file name (Pillow, nibabel, safetensors, matplotlib): they write the
    temporary file, whose name ends like ``path`` so that format detection by ending still works.

    Raises
    ------
    SymlinkRefused
        ``path`` is a symbolic link, before or after the writing.
    """
    path = check_target(path)
    fd, name = _new_temporary(path)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        check_target(path)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` with no-follow semantics (see the module docstring); returns ``path``."""
    path = Path(path)
    with replacing(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 with no-follow semantics; returns ``path``."""
    return write_bytes(path, text.encode("utf-8"))


def refuse_symlinks(*paths: str | Path) -> None:
    """Raise :class:`SymlinkRefused` when one of ``paths`` is a symbolic link (files opened in place, e.g. SQLite)."""
    for p in paths:
        check_target(p)


def _new_temporary(path: Path) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = str(path.parent / f".{secrets.token_hex(6)}.tmp-{path.name}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise InputError(path.parent, "cannot create a temporary file here")


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)  # keep the mode of the file being replaced
    except FileNotFoundError:
        return _DEFAULT_MODE


_DEFAULT_MODE = _default_mode()
