"""Intensity baselines of paper 001 for any 2D or 3D image: k-means and multi-threshold Otsu in a region.

Both cluster the intensities of the voxels inside a region (a brain mask, a threshold, or the whole image)
into ``K`` classes and return a label map with 0 outside the region and ``1..K`` from the darkest to the
brightest class, so the three methods of :mod:`scarceseg.methods.jule` are compared on the same voxels
with the same ``K``.

References
----------
.. [1] N. Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9(1), 1979.
.. [2] J. MacQueen, "Some methods for classification and analysis of multivariate observations", 1967.
"""

from __future__ import annotations

import numpy as np


def _region_values(image: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float64)
    if region is None:
        region = np.ones(image.shape, dtype=bool)
    region = np.asarray(region, dtype=bool)
    if region.shape != image.shape:
        raise ValueError(f"region shape {region.shape} differs from image shape {image.shape}")
    values = image[region]
    if values.size and not np.isfinite(values).all():
        raise ValueError("image holds NaN or infinite values inside the region")
    return region, values


def foreground_region(image: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The imaged object: ``image > threshold`` (Otsu's threshold when None), holes filled, largest component.

    Paper 001 (section 2.3) keeps patches whose centre voxel passes an intensity threshold; this is that
    region, cleaned of isolated voxels.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
    threshold : float, optional

    Returns
    -------
    ndarray, same shape, bool
        Empty for a constant image without an explicit threshold.
    """
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    image = np.asarray(image, dtype=np.float64)
    if threshold is None:
        if image.min() == image.max():
            return np.zeros(image.shape, dtype=bool)
        threshold = float(threshold_otsu(image))
    mask = image > threshold
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)
    return ndimage.binary_fill_holes(mask)


def order_by_intensity(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Renumber labels ``1..K`` by the mean intensity of their voxels, darkest first (0 stays 0).

    Parameters
    ----------
    labels : ndarray, int, any shape
    image : ndarray of the same shape

    Returns
    -------
    ndarray, int32
    """
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    means = np.array([np.asarray(image)[labels == i].mean() for i in ids])
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int32)
    lut[ids[np.argsort(means, kind="stable")]] = np.arange(1, ids.size + 1, dtype=np.int32)
    return lut[labels]


def multi_otsu_volume(image: np.ndarray, k: int, region: np.ndarray | None = None, nbins: int = 256) -> np.ndarray:
    """Multi-threshold Otsu classes of the intensities inside ``region``.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
    k : int
        Number of classes (``skimage.filters.threshold_multiotsu``); fewer when the region has fewer values.
    region : ndarray, bool, optional
        Whole image when omitted.
    nbins : int
        Histogram bins of the threshold search.

    Returns
    -------
    ndarray, same shape, int32
        0 outside the region, ``1..k`` darkest to brightest.
    """
    from skimage.filters import threshold_multiotsu

    region, values = _region_values(image, region)
    out = np.zeros(region.shape, dtype=np.int32)
    if values.size == 0:
        return out
    distinct = np.unique(values)
    k = int(min(k, distinct.size))
    if k < 2:
        out[region] = 1
        return out
    if k == distinct.size:
        thresholds = (distinct[:-1] + distinct[1:]) / 2
    else:
        thresholds = threshold_multiotsu(values, classes=k, nbins=nbins)
    out[region] = np.digitize(values, thresholds).astype(np.int32) + 1
    return out


def kmeans_volume(image: np.ndarray, k: int, region: np.ndarray | None = None, seed: int = 0,
                  n_init: int = 4, max_fit: int = 200_000) -> np.ndarray:
    """k-means (k-means++ start, best of ``n_init``) on the intensities inside ``region``.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
    k : int
    region : ndarray, bool, optional
        Whole image when omitted.
    seed : int
        Seeds the subsample and ``sklearn.cluster.KMeans``.
    n_init : int
    max_fit : int
        The centres are fitted on at most this many voxels drawn at random (1D k-means converges to the
        same centres to within a fraction of a percent); every voxel then takes its nearest centre.

    Returns
    -------
    ndarray, same shape, int32
        0 outside the region, ``1..k`` by increasing centre.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    region, values = _region_values(image, region)
    out = np.zeros(region.shape, dtype=np.int32)
    if values.size == 0:
        return out
    k = int(min(k, np.unique(values).size))
    if k < 2:
        out[region] = 1
        return out
    rng = np.random.default_rng(seed)
    fit = values if values.size <= max_fit else rng.choice(values, size=max_fit, replace=False)
    with threadpool_limits(limits=1, user_api="openmp"):
        model = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(fit.reshape(-1, 1))
    centres = np.sort(model.cluster_centers_.ravel())
    bounds = (centres[:-1] + centres[1:]) / 2  # nearest centre in 1D = between midpoints
    out[region] = np.digitize(values, bounds).astype(np.int32) + 1
    return out
