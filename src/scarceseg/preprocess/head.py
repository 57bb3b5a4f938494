"""The head (or brain) of a 2D slice and its inner region: the ROI of the classical baselines and the ACWE ConvNet.

:func:`head_mask` is Otsu over the slice, holes filled, the largest connected component kept;
:func:`inner_region` leaves out a band of ``rim`` times the head's equivalent radius along its boundary (scalp
fat is as bright as a lesion on the non-skull-stripped LGG FLAIR slices). Used by
:mod:`scarceseg.cluster.classical` and :mod:`scarceseg.preprocess.roi`.
"""

from __future__ import annotations

import numpy as np

DEFAULT_RIM = 0.1  # fraction of the head's equivalent radius left out along its boundary (scalp, skull)


def check_2d(image: np.ndarray, name: str = "image") -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2D (Y, X) array, got shape {image.shape}")
    image = image.astype(np.float64, copy=False)
    if not np.isfinite(image).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return image


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool mask (ties: the lowest label); empty stays empty."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def head_mask(image: np.ndarray) -> np.ndarray:
    """The head (or brain, on skull-stripped data): Otsu threshold, holes filled, largest component.

    The Otsu threshold is taken over *all* pixels, so exact-zero padding or a noisy background both
    count as background; on MR slices it falls between the background and the tissue.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        One channel, e.g. FLAIR; any real dtype and scale.

    Returns
    -------
    ndarray, shape (Y, X), bool
        All False for a constant image.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    image = check_2d(image)
    if image.min() == image.max():
        return np.zeros(image.shape, dtype=bool)
    mask = image > threshold_otsu(image)
    return largest_component(ndimage.binary_fill_holes(mask))


def inner_region(head: np.ndarray, rim: float = DEFAULT_RIM) -> np.ndarray:
    """The head without a band of width ``rim * sqrt(head area / pi)`` along its boundary.

    On the non-skull-stripped LGG FLAIR slices the scalp fat is as bright as a lesion (brighter, often):
    left in, it takes the brightest class. A band of 10% of the head's equivalent radius is about the
    scalp and skull.

    Parameters
    ----------
    head : ndarray, shape (Y, X), bool
    rim : float
        0 returns ``head`` unchanged.

    Returns
    -------
    ndarray, shape (Y, X), bool
    """
    from scipy import ndimage

    head = np.asarray(head, dtype=bool)
    if rim <= 0 or not head.any():
        return head.copy()
    depth = ndimage.distance_transform_edt(np.pad(head, 1))[1:-1, 1:-1]
    return depth > rim * np.sqrt(head.sum() / np.pi)
