"""Errors that scarceseg raises on purpose.

Every error a user can cause (bad file, bad argument, bad folder) is a :class:`ScarcesegError`;
the CLI turns it into one line on stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

from pathlib import Path


class ScarcesegError(Exception):
    """Base class of the errors the CLI reports as one clear line."""


class InputError(ScarcesegError):
    """A file or folder that cannot be used, with the path and the reason.

    Parameters
    ----------
    path : str or Path or None
        The offending file or folder.
    reason : str
        Why it cannot be used, in words a user understands.
    """

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{reason}")


class CorruptFileError(InputError):
    """The file exists and has a known ending, but its content does not decode."""


class UnsupportedFormatError(InputError):
    """No reader is registered for the file's ending."""


class ShapeMismatchError(InputError):
    """An image and its mask (or two arrays that must align) differ in shape."""


class DimensionError(InputError):
    """A 3D image was given where a 2D one is needed, or the reverse."""


class NonFiniteError(InputError):
    """The image holds NaN or infinite intensities."""
