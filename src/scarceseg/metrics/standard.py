"""The standard metric set computed in one call (overlap counts and surfaces computed once)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from numpy.typing import ArrayLike

from scarceseg.metrics._common import check_pair, check_spacing, warn_undefined
from scarceseg.metrics.boundary import boundary_iou
from scarceseg.metrics.overlap import (
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
    ppv_from_counts,
    sensitivity_from_counts,
)
from scarceseg.metrics.surface import assd_from_distances, hausdorff_from_distances, surface_distances

#: Names and order of the metrics returned by :func:`compute_all` (and the collector's columns).
STANDARD_METRICS: tuple[str, ...] = ("dice", "ppv", "sensitivity", "iou", "boundary_iou", "hd95", "assd")


def compute_all(
    pred: ArrayLike,
    gt: ArrayLike,
    spacing: Sequence[float] | None = None,
    *,
    dilation_ratio: float = 0.02,
    dilation_mm: float | None = None,
) -> dict[str, float]:
    """Dice, PPV, sensitivity, IoU, boundary IoU, HD95 and ASSD of one prediction.

    Parameters
    ----------
    pred, gt : array_like
        Prediction and ground truth of the same shape, ``(Y, X)`` or ``(Z, Y, X)``; non-zero is
        foreground.
    spacing : sequence of float, optional
        Voxel size per axis in mm, in array axis order (default 1.0 for every axis).
    dilation_ratio, dilation_mm : float
        Boundary band width for :func:`~scarceseg.metrics.boundary_iou`.

    Returns
    -------
    dict of str to float
        Keys :data:`STANDARD_METRICS`, in that order; HD95 and ASSD in mm. Values follow the
        empty-mask policy of :mod:`scarceseg.metrics`; one
        :class:`~scarceseg.metrics.EmptyMaskWarning` lists the metrics that came back NaN.

    Raises
    ------
    scarceseg.errors.ShapeMismatchError
        When ``pred`` and ``gt`` differ in shape.
    scarceseg.errors.DimensionError
        When the masks are not 2D or 3D.
    ValueError
        When ``spacing`` does not have one positive value per axis.

    References
    ----------
    .. [1] A. A. Taha and A. Hanbury, "Metrics for evaluating 3D medical image segmentation:
       analysis, selection, and tool", BMC Medical Imaging 15:29, 2015.
    .. [2] B. Cheng et al., "Boundary IoU: Improving object-centric image segmentation evaluation",
       CVPR 2021.
    .. [3] S. Nikolov et al., J Med Internet Res 23(7):e26151, 2021 (arXiv:1809.04430).
    """
    p, g = check_pair(pred, gt)
    sp = check_spacing(spacing, p.ndim)
    c = confusion_counts(p, g)
    sd = surface_distances(p, g, sp)
    out = {
        "dice": dice_from_counts(c),
        "ppv": ppv_from_counts(c),
        "sensitivity": sensitivity_from_counts(c),
        "iou": iou_from_counts(c),
        "boundary_iou": boundary_iou(p, g, sp, dilation_ratio=dilation_ratio, dilation_mm=dilation_mm),
        "hd95": hausdorff_from_distances(sd, 95.0),
        "assd": assd_from_distances(sd),
    }
    undefined = [k for k, v in out.items() if math.isnan(v)]
    if undefined:
        warn_undefined(undefined, "prediction" if c.n_pred == 0 else "ground truth")
    return out
