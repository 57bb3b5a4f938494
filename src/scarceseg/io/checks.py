"""Checks shared by readers, writers and methods: dimensionality, finiteness, label maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.errors import DimensionError, InputError, NonFiniteError, ShapeMismatchError
from scarceseg.io.case import Case


def _where(case: Case) -> Path | str:
    return case.source if case.source is not None else (case.case_id or "<in-memory case>")


def require_2d(case: Case) -> Case:
    """Return ``case`` unchanged if it is 2D (image ``(C, Y, X)``), else raise.

    Raises
    ------
    DimensionError
        The case is 3D; the message names its source and shape and suggests slicing.
    """
    if case.ndim != 2:
        raise DimensionError(
            _where(case),
            f"needs a 2D image (C, Y, X) but this is a 3D volume of shape {case.shape} (Z, Y, X); "
            "serve it as 2D slices (Dataset.as_slices) or use a 3D method",
        )
    return case


def require_3d(case: Case) -> Case:
    """Return ``case`` unchanged if it is 3D (image ``(C, Z, Y, X)``), else raise.

    Raises
    ------
    DimensionError
        The case is 2D; the message names its source and shape.
    """
    if case.ndim != 3:
        raise DimensionError(
            _where(case), f"needs a 3D volume (C, Z, Y, X) but this is a 2D image of shape {case.shape}"
        )
    return case


def check_finite(array: np.ndarray, path: str | Path | None) -> None:
    """Raise :class:`NonFiniteError` if ``array`` holds NaN or infinite values.

    The message names the file and counts the bad voxels. Integer arrays pass at once.
    """
    if not np.issubdtype(array.dtype, np.floating):
        return
    finite = np.isfinite(array)
    if finite.all():
        return
    n_nan = int(np.isnan(array).sum())
    n_inf = int(array.size - finite.sum()) - n_nan
    raise NonFiniteError(
        path,
        f"{n_nan + n_inf} of {array.size} voxels are not finite ({n_nan} NaN, {n_inf} infinite)",
    )


def check_same_shape(mask_shape: tuple[int, ...], like: Case, mask_path: str | Path | None) -> None:
    """Raise :class:`ShapeMismatchError` when a mask's shape differs from ``like``'s spatial shape."""
    if tuple(mask_shape) != tuple(like.shape):
        raise ShapeMismatchError(
            mask_path,
            f"mask shape {tuple(mask_shape)} differs from the image {_where(like)} of shape {like.shape}",
        )


def smallest_int_dtype(array: np.ndarray) -> np.dtype:
    """``uint8`` when every value fits in 0..255, else ``int32`` (``int64`` beyond its range)."""
    if array.size == 0:
        return np.dtype(np.uint8)
    lo, hi = array.min(), array.max()
    if lo >= 0 and hi <= 255:
        return np.dtype(np.uint8)
    if lo >= np.iinfo(np.int32).min and hi <= np.iinfo(np.int32).max:
        return np.dtype(np.int32)
    return np.dtype(np.int64)


def to_label_map(array: np.ndarray, path: str | Path | None) -> np.ndarray:
    """Turn a stored mask array into an integer label map.

    * ``bool`` -> ``uint8`` {0, 1};
    * values exactly {0, 255} (binary masks saved for viewing) -> ``uint8`` {0, 1};
    * float arrays (e.g. BraTS ``OTMultiClass`` stored as float32) must hold integral values;
    * every other integer map keeps its values (``uint8`` when they fit, else ``int32``).

    Parameters
    ----------
    array : ndarray, any shape
    path : path of the file, for the error message

    Raises
    ------
    InputError
        The array holds non-integral or non-finite values.
    """
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(path, "mask holds NaN or infinite values; a mask must be an integer label map")
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            bad = array[rounded != array].flat[0]
            raise InputError(
                path, f"mask holds non-integer values (e.g. {float(bad):g}); a mask must be an integer label map"
            )
        array = rounded
    elif not np.issubdtype(array.dtype, np.integer):
        raise InputError(path, f"mask has unusable data type {array.dtype}")
    if array.size and array.max() == 255 and np.all((array == 0) | (array == 255)):
        return (array == 255).astype(np.uint8)
    return array.astype(smallest_int_dtype(array), copy=False)
