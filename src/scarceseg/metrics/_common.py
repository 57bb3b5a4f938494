"""Input checks and the warning shared by all metric functions."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from scarceseg.errors import DimensionError, ShapeMismatchError


class EmptyMaskWarning(UserWarning):
    """A metric is undefined because the prediction or the ground truth is empty; it returns NaN."""


def warn_undefined(names: Sequence[str], which: str, stacklevel: int = 3) -> None:
    """Warn that ``names`` are NaN because ``which`` ("prediction" or "ground truth") is empty."""
    warnings.warn(
        f"{which} is empty: {', '.join(names)} undefined, returned as NaN",
        EmptyMaskWarning,
        stacklevel=stacklevel,
    )


def as_mask(x: object, name: str) -> np.ndarray:
    """Cast an array-like to a boolean array (non-zero is foreground)."""
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == object):
        raise TypeError(f"{name} must be a numeric or boolean array, got dtype {arr.dtype}")
    return arr.astype(bool)


def check_pair(pred: object, gt: object, spatial: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cast ``pred`` and ``gt`` to boolean masks of the same shape, 2D or 3D when ``spatial``."""
    p, g = as_mask(pred, "pred"), as_mask(gt, "gt")
    if p.shape != g.shape:
        raise ShapeMismatchError(None, f"pred and gt shapes differ: {p.shape} vs {g.shape}")
    if spatial and p.ndim not in (2, 3):
        raise DimensionError(None, f"masks must be 2D (Y, X) or 3D (Z, Y, X), got shape {p.shape}")
    return p, g


def check_spacing(spacing: Sequence[float] | float | None, ndim: int) -> tuple[float, ...]:
    """Return the voxel spacing as a tuple of ``ndim`` positive floats (default all 1.0 mm)."""
    if spacing is None:
        return (1.0,) * ndim
    if np.isscalar(spacing):
        spacing = (spacing,) * ndim
    sp = tuple(float(s) for s in spacing)  # type: ignore[union-attr]
    if len(sp) != ndim:
        raise ValueError(f"spacing has {len(sp)} values {sp} but the masks have {ndim} axes")
    if not all(np.isfinite(s) and s > 0 for s in sp):
        raise ValueError(f"spacing values must be finite and positive, got {sp}")
    return sp


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Tight bounding box of the foreground as slices, or None when the mask is empty."""
    box = []
    for axis in range(mask.ndim):
        proj = np.any(mask, axis=tuple(i for i in range(mask.ndim) if i != axis))
        idx = np.flatnonzero(proj)
        if idx.size == 0:
            return None
        box.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(box)


def crop_pad(mask: np.ndarray, box: tuple[slice, ...], pad: int = 1) -> np.ndarray:
    """Crop ``mask`` to ``box`` and surround it with ``pad`` layers of background."""
    return np.pad(mask[box], pad, mode="constant", constant_values=False)
