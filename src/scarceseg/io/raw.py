"""What a format reader hands to :func:`read_image` / :func:`read_mask` before conversion."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawImage:
    """A decoded file, still in its stored data type.

    Parameters
    ----------
    array : ndarray, shape (C, Y, X) or (C, Z, Y, X)
        Channels first, spatial axes in scarceseg order, stored dtype.
    spacing : tuple of float
        One entry per spatial axis, same order.
    origin : tuple of float or None
    affine : ndarray (4, 4) or None
        Voxel-to-world (RAS, mm) of the file's own index order (the spatial axes reversed).
    channel_names : tuple of str
    label : ndarray or None
        A label stored in the same file (HDF5 ``label``), spatial shape, stored dtype.
    meta : dict
        ``format``, ``dtype``, ``spacing_known`` and format-specific entries.
    """

    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...] | None = None
    affine: np.ndarray | None = None
    channel_names: tuple[str, ...] = ()
    label: np.ndarray | None = None
    meta: dict = field(default_factory=dict)


def reason_of(exc: BaseException, limit: int = 300) -> str:
    """One line from an exception for an error message: its text, or its type name when empty."""
    text = " ".join(str(exc).split())
    return text[:limit] or type(exc).__name__
