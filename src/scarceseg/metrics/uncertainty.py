"""How unsure a model is of one predicted mask, from its probability map alone (no ground truth).

:func:`mask_uncertainty` is the mean binary entropy of the foreground probability over the pixels the model
gives at least ``band`` (default 5 %) chance of being foreground: the predicted mask and its soft surroundings.
Pixels the model is sure are background (``p < band``) are left out, so a large image with a small, sharply
drawn lesion is not called certain just because most of it is background.

* 0: every pixel in that band is 0 or 1 (a hard mask), or the band is empty (the model is sure there is
  nothing, or gives no graded output and an empty mask).
* 1: every pixel in the band is at 0.5.

A method without a graded output (its probability is its 0/1 mask) always scores 0; ``graded`` says so.
Thin or small masks score higher than large ones of the same sharpness (their boundary is a larger share of
the band).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

#: probability from which a pixel counts in the band whose entropy is averaged
BAND = 0.05


def binary_entropy(prob: ArrayLike) -> np.ndarray:
    """``-p log2 p - (1 - p) log2 (1 - p)`` per pixel, in bits (0 at p = 0 or 1, 1 at p = 0.5)."""
    p = np.clip(np.asarray(prob, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))
    return np.nan_to_num(h, nan=0.0)


def mask_uncertainty(prob: ArrayLike, mask: ArrayLike | None = None, band: float = BAND) -> dict:
    """The uncertainty of a prediction (see the module docstring).

    Parameters
    ----------
    prob : array of float, ``(Y, X)`` or ``(Z, Y, X)``
        Foreground probability in [0, 1].
    mask : array of bool, same shape, optional
        The predicted mask; its pixels are in the band whatever their probability.
    band : float
        Pixels with ``prob >= band`` are in the band.

    Returns
    -------
    dict
        ``uncertainty`` (mean entropy over the band, in [0, 1], rounded to 4 decimals), ``band_px`` (pixels in
        the band) and ``graded`` (whether any probability lies strictly between 0 and 1).
    """
    p = np.asarray(prob, dtype=np.float64)
    inside = p >= band
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != p.shape:
            raise ValueError(f"mask {m.shape} and prob {p.shape} differ in shape")
        inside |= m
    n = int(inside.sum())
    value = float(binary_entropy(p[inside]).mean()) if n else 0.0
    return {"uncertainty": round(value, 4), "band_px": n, "graded": bool(((p > 0) & (p < 1)).any())}
