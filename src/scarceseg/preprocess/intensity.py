"""Robust intensity normalisation: percentile scaling to [0, 1] and z-score inside a mask.

Every function works per channel on a channels-first array ``(C, Y, X)`` or ``(C, Z, Y, X)`` and
returns a new ``float32`` array of the same shape. Statistics are computed over a *reference region*:
by default the voxels that are not background (:func:`foreground_mask`), so the large zero-valued
air around a brain does not pull the percentiles or the mean towards zero.

Constant channels (no spread inside the region, e.g. a missing sequence stored as zeros) map to
``0`` instead of dividing by zero.
"""

from __future__ import annotations

import numpy as np


def foreground_mask(image: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Voxels where any channel exceeds ``threshold`` (the non-background region).

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
    threshold : float
        Background intensity (``0`` for skull-stripped or zero-padded MR slices).

    Returns
    -------
    ndarray of bool, spatial shape ``(Y, X)`` or ``(Z, Y, X)``
        When no voxel exceeds the threshold the whole image is returned as foreground, so the
        statistics are still defined.
    """
    fg = np.any(np.asarray(image) > threshold, axis=0)
    if not fg.any():
        fg = np.ones(fg.shape, dtype=bool)
    return fg


def _region(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if image.ndim < 3:
        raise ValueError(f"image must be channels-first (C, Y, X) or (C, Z, Y, X), got shape {image.shape}")
    region = foreground_mask(image) if mask is None else np.asarray(mask, dtype=bool)
    if region.shape != image.shape[1:]:
        raise ValueError(f"mask shape {region.shape} differs from image spatial shape {image.shape[1:]}")
    if not region.any():
        raise ValueError("mask selects no voxel: cannot compute normalisation statistics")
    return region


def percentile_scale(
    image: np.ndarray,
    low: float = 1.0,
    high: float = 99.0,
    mask: np.ndarray | None = None,
    clip: bool = True,
) -> np.ndarray:
    """Map the ``low``-th..``high``-th percentile of each channel linearly onto ``[0, 1]``.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
    low, high : float
        Percentiles (0..100) computed inside ``mask``; ``low < high``.
    mask : ndarray of bool, spatial shape, optional
        Reference region; defaults to :func:`foreground_mask` of ``image``.
    clip : bool
        Clip the result to ``[0, 1]`` (so outliers above the high percentile saturate).

    Returns
    -------
    ndarray of float32, same shape as ``image``
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"need 0 <= low < high <= 100, got low={low}, high={high}")
    image = np.asarray(image, dtype=np.float32)
    region = _region(image, mask)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        lo, hi = np.percentile(image[c][region], [low, high])
        if hi - lo <= 1e-12:
            out[c] = 0.0
            continue
        out[c] = (image[c] - lo) / (hi - lo)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def zscore(image: np.ndarray, mask: np.ndarray | None = None, outside: float | None = None) -> np.ndarray:
    """Subtract the mean and divide by the standard deviation of each channel inside ``mask``.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
    mask : ndarray of bool, spatial shape, optional
        Reference region; defaults to :func:`foreground_mask` of ``image``.
    outside : float or None
        When given, voxels outside the region are set to this value (e.g. ``0.0``).

    Returns
    -------
    ndarray of float32, same shape as ``image``
    """
    image = np.asarray(image, dtype=np.float32)
    region = _region(image, mask)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        values = image[c][region].astype(np.float64)
        mean, std = values.mean(), values.std()
        out[c] = 0.0 if std <= 1e-12 else (image[c] - mean) / std
        if outside is not None:
            out[c][~region] = outside
    return out


NORMALISERS = {"percentile": percentile_scale, "zscore": zscore}


def normalise(image: np.ndarray, method: str = "percentile") -> np.ndarray:
    """Normalise with a named method and its default settings.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X) or (C, Z, Y, X)
    method : {"percentile", "zscore"}

    Returns
    -------
    ndarray of float32, same shape as ``image``
    """
    try:
        fn = NORMALISERS[method]
    except KeyError:
        raise ValueError(f"unknown normalisation {method!r}; choose one of {sorted(NORMALISERS)}") from None
    return fn(image)
