"""Overlap metrics of two binary masks (Dice, IoU, precision, sensitivity) and NMI of two label maps.

Counts are voxel counts: with a uniform voxel size they do not depend on the spacing. The
empty-mask policy is the one written in :mod:`scarceseg.metrics`.

References
----------
.. [1] A. A. Taha and A. Hanbury, "Metrics for evaluating 3D medical image segmentation: analysis,
   selection, and tool", BMC Medical Imaging 15:29, 2015.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from scarceseg.errors import ShapeMismatchError
from scarceseg.metrics._common import check_pair, warn_undefined


class Counts(NamedTuple):
    """Voxel counts of a prediction against a ground truth."""

    tp: int
    fp: int
    fn: int

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp

    @property
    def n_gt(self) -> int:
        return self.tp + self.fn


def confusion_counts(pred: ArrayLike, gt: ArrayLike) -> Counts:
    """True positives, false positives and false negatives of ``pred`` against ``gt``.

    Parameters
    ----------
    pred, gt : array_like
        Masks of the same shape, any number of axes; non-zero is foreground.

    Returns
    -------
    Counts
        ``(tp, fp, fn)`` as Python ints.
    """
    p, g = check_pair(pred, gt, spatial=False)
    tp = int(np.count_nonzero(p & g))
    return Counts(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(g)) - tp)


def _ratio(num: int, den: int, both_empty: float) -> float:
    return both_empty if den == 0 else num / den


def dice_from_counts(c: Counts) -> float:
    """Dice ``2 TP / (2 TP + FP + FN)``; 1.0 when both masks are empty."""
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, 1.0)


def iou_from_counts(c: Counts) -> float:
    """IoU ``TP / (TP + FP + FN)``; 1.0 when both masks are empty."""
    return _ratio(c.tp, c.tp + c.fp + c.fn, 1.0)


def ppv_from_counts(c: Counts) -> float:
    """Precision ``TP / (TP + FP)``; 1.0 when both are empty, NaN when only the prediction is (no warning)."""
    if c.n_pred == 0:
        return 1.0 if c.n_gt == 0 else float("nan")
    return c.tp / c.n_pred


def sensitivity_from_counts(c: Counts) -> float:
    """Recall ``TP / (TP + FN)``; 1.0 when both are empty, NaN when only the truth is (no warning)."""
    if c.n_gt == 0:
        return 1.0 if c.n_pred == 0 else float("nan")
    return c.tp / c.n_gt


def dice(pred: ArrayLike, gt: ArrayLike) -> float:
    """Sørensen-Dice coefficient ``2 |P ∩ G| / (|P| + |G|)``.

    Parameters
    ----------
    pred, gt : array_like
        Prediction and ground truth of the same shape, ``(Y, X)`` or ``(Z, Y, X)`` (any shape works);
        non-zero is foreground.

    Returns
    -------
    float
        In [0, 1]. Both empty: 1.0; exactly one empty: 0.0.

    References
    ----------
    .. [1] L. R. Dice, "Measures of the amount of ecologic association between species", Ecology
       26(3):297-302, 1945.
    .. [2] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    return dice_from_counts(confusion_counts(pred, gt))


def iou(pred: ArrayLike, gt: ArrayLike) -> float:
    """Jaccard index (intersection over union) ``|P ∩ G| / |P ∪ G|``.

    Parameters
    ----------
    pred, gt : array_like
        Masks of the same shape; non-zero is foreground.

    Returns
    -------
    float
        In [0, 1]. Both empty: 1.0; exactly one empty: 0.0.

    References
    ----------
    .. [1] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    return iou_from_counts(confusion_counts(pred, gt))


def ppv(pred: ArrayLike, gt: ArrayLike) -> float:
    """Positive predictive value (precision) ``|P ∩ G| / |P|``.

    Parameters
    ----------
    pred, gt : array_like
        Masks of the same shape; non-zero is foreground.

    Returns
    -------
    float
        In [0, 1]. Both empty: 1.0. Empty prediction with a non-empty truth: NaN (0/0, undefined)
        and an :class:`~scarceseg.metrics.EmptyMaskWarning`. Empty truth with a non-empty
        prediction: 0.0 (every predicted voxel is a false positive).

    References
    ----------
    .. [1] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    c = confusion_counts(pred, gt)
    value = ppv_from_counts(c)
    if np.isnan(value):
        warn_undefined(["ppv"], "prediction")
    return value


def sensitivity(pred: ArrayLike, gt: ArrayLike) -> float:
    """Sensitivity (recall, true positive rate) ``|P ∩ G| / |G|``.

    Parameters
    ----------
    pred, gt : array_like
        Masks of the same shape; non-zero is foreground.

    Returns
    -------
    float
        In [0, 1]. Both empty: 1.0. Empty truth with a non-empty prediction: NaN (0/0, undefined)
        and an :class:`~scarceseg.metrics.EmptyMaskWarning`. Empty prediction with a non-empty
        truth: 0.0 (every true voxel is missed).

    References
    ----------
    .. [1] A. A. Taha and A. Hanbury, BMC Medical Imaging 15:29, 2015.
    """
    c = confusion_counts(pred, gt)
    value = sensitivity_from_counts(c)
    if np.isnan(value):
        warn_undefined(["sensitivity"], "ground truth")
    return value


def nmi(labels_a: ArrayLike, labels_b: ArrayLike) -> float:
    """Normalized mutual information of two label maps of the same shape.

    ``NMI = I(A; B) / ((H(A) + H(B)) / 2)``: scikit-learn's ``normalized_mutual_info_score`` with
    ``average_method="arithmetic"`` on the flattened maps. It does not depend on the label values,
    only on the partition (a permutation of labels gives 1.0), and is symmetric.

    Parameters
    ----------
    labels_a, labels_b : array_like
        Integer label maps of the same shape, e.g. ``(Y, X)`` cluster maps.

    Returns
    -------
    float
        In [0, 1]. When both maps hold a single label each, scikit-learn returns 1.0 (identical
        partitions); when only one does, 0.0.

    References
    ----------
    .. [1] A. Strehl and J. Ghosh, "Cluster ensembles - a knowledge reuse framework for combining
       multiple partitions", JMLR 3:583-617, 2002.
    .. [2] N. X. Vinh, J. Epps and J. Bailey, "Information theoretic measures for clusterings
       comparison", JMLR 11:2837-2854, 2010.
    """
    from sklearn.metrics import normalized_mutual_info_score

    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape:
        raise ShapeMismatchError(None, f"label maps differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("label maps are empty (size 0)")
    return float(normalized_mutual_info_score(a.ravel(), b.ravel(), average_method="arithmetic"))
