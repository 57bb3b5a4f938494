"""One pure function per metric, a collector writing per-case CSV and summary JSON, paired statistics.

Every metric takes a prediction and a ground truth of the same shape, ``(Y, X)`` or ``(Z, Y, X)``,
as any array whose non-zero voxels are the foreground, plus (for distance-based metrics) the voxel
spacing in mm per axis, in array axis order (default 1.0 mm).

Empty-mask policy
-----------------
What each metric returns when a mask is empty. "NaN" means undefined (0/0 or no surface to measure
from): the function returns ``float("nan")`` and warns with :class:`EmptyMaskWarning` (as MONAI
does for surface distances); :class:`MetricCollector` leaves NaN out of means and counts it per
metric (``n_nan`` in ``summary.json``), so averages stay meaningful and the exclusions are visible.

==============  ===========  ======================  ======================
metric          both empty   prediction empty only   ground truth empty only
==============  ===========  ======================  ======================
dice            1.0          0.0                     0.0
iou             1.0          0.0                     0.0
ppv             1.0          NaN (0/0)               0.0 (all false pos.)
sensitivity     1.0          0.0 (all missed)        NaN (0/0)
boundary_iou    1.0          0.0                     0.0
hd95            0.0          NaN                     NaN
assd            0.0          NaN                     NaN
==============  ===========  ======================  ======================

Rationale: "both empty" is a perfect answer (a correctly empty slice), so overlap scores are 1 and
distances 0. A one-sided empty case is a total miss for the symmetric overlap scores (0), but
precision without predictions, recall without a target and any distance to a missing surface are
undefined; reporting 0 or a made-up maximum distance would bias means, so they are NaN, excluded
and counted. :func:`nmi` compares label maps and has no empty case.

References
----------
.. [1] A. A. Taha and A. Hanbury, "Metrics for evaluating 3D medical image segmentation: analysis,
   selection, and tool", BMC Medical Imaging 15:29, 2015.
.. [2] B. Cheng et al., "Boundary IoU: Improving object-centric image segmentation evaluation",
   CVPR 2021.
.. [3] S. Nikolov et al., "Clinically applicable segmentation of head and neck anatomy for
   radiotherapy", J Med Internet Res 23(7):e26151, 2021 (arXiv:1809.04430, 2018).
"""

from __future__ import annotations

from scarceseg.metrics._common import EmptyMaskWarning
from scarceseg.metrics.boundary import boundary_iou, boundary_region, boundary_width_mm
from scarceseg.metrics.collector import MetricCollector
from scarceseg.metrics.overlap import Counts, confusion_counts, dice, iou, nmi, ppv, sensitivity
from scarceseg.metrics.standard import STANDARD_METRICS, compute_all
from scarceseg.metrics.stats import compare_methods, paired_comparison
from scarceseg.metrics.surface import SurfaceDistances, assd, hausdorff_distance, hd95, surface_distances

precision = ppv
recall = sensitivity
jaccard = iou

__all__ = [
    "STANDARD_METRICS",
    "Counts",
    "EmptyMaskWarning",
    "MetricCollector",
    "SurfaceDistances",
    "assd",
    "boundary_iou",
    "boundary_region",
    "boundary_width_mm",
    "compare_methods",
    "compute_all",
    "confusion_counts",
    "dice",
    "hausdorff_distance",
    "hd95",
    "iou",
    "jaccard",
    "nmi",
    "paired_comparison",
    "ppv",
    "precision",
    "recall",
    "sensitivity",
    "surface_distances",
]
