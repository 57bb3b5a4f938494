"""Surface-distance metrics: robust Hausdorff distance (HD95) and average symmetric surface distance.

Surfaces follow Nikolov et al. [1]_ as implemented in MONAI (``monai.metrics.utils``): the mask is
read on the grid of voxel *corners*; a corner whose ``2 x 2`` (2D) or ``2 x 2 x 2`` (3D)
neighbourhood is neither all inside nor all outside carries a surface element ("surfel") whose
contour length (2D) or surface area (3D) comes from MONAI's marching squares / marching cubes table
(:func:`monai.metrics.utils.get_mask_edges` with a spacing, which uses
:func:`~monai.metrics.utils.get_code_to_measure_table`). The distance from a surfel of one mask to
the other surface is the Euclidean distance in mm, on the corner grid, to the nearest
surfel-carrying corner of the other mask (:func:`monai.metrics.utils.get_surface_distance`).
Percentiles and means weight every surfel by its length / area, so results do not depend on how
finely a surface is sampled. What is ours: the empty-mask policy, the size-weighted percentile and
the pooled ASSD.

MONAI returns distances in float32 and computes the 3D area table in float32, so distances and
3D areas agree with DeepMind's float64 ``surface-distance`` package to about 1e-7 relative, not
bit for bit. On 1,020 seeded random 2D/3D pairs with isotropic and anisotropic spacing the largest
relative difference of HD95 or ASSD from the package was 6e-8 (no percentile moved to another
surfel); ``tests/test_metrics_crosscheck.py`` checks 1e-6. The float64 hand-written implementation
that MONAI replaced (its own marching tables and feature transform) is in the git history.

References
----------
.. [1] S. Nikolov et al., "Clinically applicable segmentation of head and neck anatomy for
   radiotherapy: deep learning algorithm development and validation study", J Med Internet Res
   23(7):e26151, 2021 (arXiv:1809.04430, 2018).
.. [2] A. A. Taha and A. Hanbury, "Metrics for evaluating 3D medical image segmentation: analysis,
   selection, and tool", BMC Medical Imaging 15:29, 2015.
.. [3] T. Heimann et al., "Comparison and evaluation of methods for liver segmentation from CT
   datasets", IEEE Trans Med Imaging 28(8):1251-1265, 2009.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from scarceseg.metrics._common import check_pair, check_spacing, warn_undefined


class SurfaceDistances(NamedTuple):
    """Surfel distances and sizes in both directions, each sorted by (distance, size).

    ``*_pred_to_gt`` are the surfels of the prediction with their distance (mm) to the truth's
    surface; sizes are contour lengths (mm, 2D) or areas (mm^2, 3D). Empty arrays for an empty mask.
    """

    distances_pred_to_gt: np.ndarray
    sizes_pred: np.ndarray
    distances_gt_to_pred: np.ndarray
    sizes_gt: np.ndarray


def _directed(
    edges_from: np.ndarray, edges_to: np.ndarray, sizes: np.ndarray, sp: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) and sizes of the surfels of one mask, sorted by distance then size."""
    s = np.asarray(sizes[edges_from], dtype=np.float64)
    if not s.size:
        return s, s
    from monai.metrics.utils import get_surface_distance  # monai takes seconds to import: only when measured

    d = np.asarray(get_surface_distance(edges_from, edges_to, "euclidean", sp), dtype=np.float64)
    order = np.lexsort((s, d))
    return d[order], s[order]


def surface_distances(pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None = None) -> SurfaceDistances:
    """Distances from every surfel of each mask to the other mask's surface.

    Parameters
    ----------
    pred, gt : array_like
        Masks of the same shape, ``(Y, X)`` or ``(Z, Y, X)``; non-zero is foreground.
    spacing : sequence of float, optional
        Voxel size per axis in mm, in array axis order (default 1.0 for every axis).

    Returns
    -------
    SurfaceDistances
        Sorted distances (mm) and surfel sizes. When one mask is empty its arrays are empty and the
        other mask's distances are ``inf``; when both are, all arrays are empty.

    Notes
    -----
    MONAI works on the joint bounding box plus one background layer, which holds every surfel of
    both masks; Euclidean distances between surfels do not depend on the crop. Distances are
    MONAI's float32 values widened to float64.

    References
    ----------
    .. [1] S. Nikolov et al., J Med Internet Res 23(7):e26151, 2021 (arXiv:1809.04430).
    """
    p, g = check_pair(pred, gt)
    sp = check_spacing(spacing, p.ndim)
    if not (p.any() or g.any()):
        empty = np.zeros(0, dtype=np.float64)
        return SurfaceDistances(empty, empty, empty, empty)
    from monai.metrics.utils import get_mask_edges

    edges_p, edges_g, sizes_p, sizes_g = get_mask_edges(p, g, crop=True, spacing=sp)
    d_pg, s_p = _directed(edges_p, edges_g, sizes_p, sp)
    d_gp, s_g = _directed(edges_g, edges_p, sizes_g, sp)
    return SurfaceDistances(d_pg, s_p, d_gp, s_g)


def _weighted_percentile(distances: np.ndarray, sizes: np.ndarray, percentile: float) -> float:
    """Smallest sorted distance whose cumulative size fraction reaches ``percentile`` / 100."""
    cum = np.cumsum(sizes) / np.sum(sizes)
    idx = int(np.searchsorted(cum, percentile / 100.0))
    return float(distances[min(idx, len(distances) - 1)])


def _with_policy(pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None, name: str, measure) -> float:
    """``measure(surface_distances(...))`` under the empty-mask policy: 0.0 when both masks are empty, NaN
    with an :class:`~scarceseg.metrics.EmptyMaskWarning` (pointing at the metric's caller) when one is."""
    sd = surface_distances(pred, gt, spacing)
    n_p, n_g = len(sd.sizes_pred), len(sd.sizes_gt)
    if n_p and n_g:
        return measure(sd)
    if not n_p and not n_g:
        return 0.0
    warn_undefined([name], "prediction" if not n_p else "ground truth", stacklevel=4)
    return float("nan")


def hausdorff_from_distances(sd: SurfaceDistances, percentile: float = 95.0) -> float:
    """Robust Hausdorff distance from precomputed :class:`SurfaceDistances` (no empty-mask warning)."""
    n_p, n_g = len(sd.sizes_pred), len(sd.sizes_gt)
    if not (n_p and n_g):
        return 0.0 if not (n_p or n_g) else float("nan")
    return max(
        _weighted_percentile(sd.distances_gt_to_pred, sd.sizes_gt, percentile),
        _weighted_percentile(sd.distances_pred_to_gt, sd.sizes_pred, percentile),
    )


def assd_from_distances(sd: SurfaceDistances) -> float:
    """Average symmetric surface distance from precomputed :class:`SurfaceDistances` (no warning)."""
    n_p, n_g = len(sd.sizes_pred), len(sd.sizes_gt)
    if not (n_p and n_g):
        return 0.0 if not (n_p or n_g) else float("nan")
    total = np.sum(sd.distances_pred_to_gt * sd.sizes_pred) + np.sum(sd.distances_gt_to_pred * sd.sizes_gt)
    return float(total / (np.sum(sd.sizes_pred) + np.sum(sd.sizes_gt)))


def hausdorff_distance(
    pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None = None, percentile: float = 100.0
) -> float:
    """Symmetric (robust) Hausdorff distance between the surfaces of two masks, in mm.

    The larger of the two directed ``percentile``-th percentiles of surfel distances, each surfel
    weighted by its length (2D) or area (3D): the directed percentile is the smallest distance
    ``t`` such that surfels at distance ``<= t`` make up at least ``percentile`` % of the surface
    (cumulative fraction found with ``searchsorted``, as in [1]_). ``percentile=100`` is the
    classic Hausdorff distance on the surfel grid.

    Parameters
    ----------
    pred, gt, spacing
        As :func:`surface_distances`: masks of one shape, 2D or 3D, and the voxel size in mm per axis.
    percentile : float
        In (0, 100].

    Returns
    -------
    float
        Distance in mm. Both empty: 0.0. Exactly one empty: NaN with an
        :class:`~scarceseg.metrics.EmptyMaskWarning`.

    References
    ----------
    .. [1] S. Nikolov et al., J Med Internet Res 23(7):e26151, 2021 (arXiv:1809.04430).
    .. [2] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    name = "hd95" if percentile == 95 else f"hausdorff (percentile {percentile:g})"
    return _with_policy(pred, gt, spacing, name, lambda sd: hausdorff_from_distances(sd, percentile))


def hd95(pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None = None) -> float:
    """95th-percentile Hausdorff distance (HD95) between the surfaces of two masks, in mm.

    ``max(P95(d(gt -> pred)), P95(d(pred -> gt)))`` over surfels weighted by length / area, as in
    DeepMind's ``surface_distance.compute_robust_hausdorff(..., 95)``: :func:`hausdorff_distance` with
    ``percentile=95``, whose parameters, return value and empty-mask policy it shares.
    """
    return _with_policy(pred, gt, spacing, "hd95", lambda sd: hausdorff_from_distances(sd, 95.0))


def assd(pred: ArrayLike, gt: ArrayLike, spacing: Sequence[float] | None = None) -> float:
    """Average symmetric surface distance (ASSD) between two masks, in mm.

    The mean distance over the surfels of **both** surfaces pooled, each weighted by its length
    (2D) or area (3D)::

        ASSD = (sum_p s_p d(p, G) + sum_g s_g d(g, P)) / (sum_p s_p + sum_g s_g)

    In terms of DeepMind's ``compute_average_surface_distance``, which returns the two directed
    means ``(m_gt_to_pred, m_pred_to_gt)``, this is their mean weighted by the two surface sizes
    ``(A_gt * m_gt_to_pred + A_pred * m_pred_to_gt) / (A_gt + A_pred)``, not their plain average.
    The pooled form is the usual ASSD definition [2]_ with surfel weights instead of voxel counts.

    Parameters, return value and empty-mask policy as :func:`hausdorff_distance`.

    References
    ----------
    .. [1] S. Nikolov et al., J Med Internet Res 23(7):e26151, 2021 (arXiv:1809.04430).
    .. [2] T. Heimann et al., IEEE Trans Med Imaging 28(8):1251-1265, 2009.
    .. [3] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    return _with_policy(pred, gt, spacing, "assd", assd_from_distances)
