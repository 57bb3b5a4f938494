"""Exact metric values on tiny masks, the empty-mask policy, invalid inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from scarceseg.errors import DimensionError, ShapeMismatchError
from scarceseg.metrics import (
    STANDARD_METRICS,
    EmptyMaskWarning,
    assd,
    boundary_iou,
    boundary_region,
    boundary_width_mm,
    compute_all,
    confusion_counts,
    dice,
    hausdorff_distance,
    hd95,
    iou,
    nmi,
    ppv,
    sensitivity,
    surface_distances,
)

SQRT2 = math.sqrt(2.0)


def surfel_sizes(spacing: tuple[float, ...]) -> np.ndarray:
    """MONAI's length / area per neighbourhood code, which our surface metrics weight surfels with."""
    from monai.metrics.utils import get_code_to_measure_table

    return get_code_to_measure_table(spacing)[0].cpu().numpy()


def box(shape, *slices):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slices)] = True
    return m


# ---------------------------------------------------------------- overlap


def test_overlap_shifted_square_exact():
    gt = box((10, 10), slice(2, 5), slice(2, 5))  # 3x3
    pred = box((10, 10), slice(3, 6), slice(3, 6))  # shifted by (1, 1): 2x2 overlap
    assert confusion_counts(pred, gt) == (4, 5, 5)
    assert dice(pred, gt) == pytest.approx(4 / 9, abs=1e-15)
    assert iou(pred, gt) == pytest.approx(2 / 7, abs=1e-15)
    assert ppv(pred, gt) == pytest.approx(4 / 9, abs=1e-15)
    assert sensitivity(pred, gt) == pytest.approx(4 / 9, abs=1e-15)


def test_overlap_asymmetric_exact():
    gt = box((10, 10), slice(2, 5), slice(2, 5))  # 9 voxels
    pred = box((10, 10), slice(3, 6), slice(3, 7))  # 12 voxels, overlap rows 3-4 x cols 3-4
    assert dice(pred, gt) == pytest.approx(8 / 21, abs=1e-15)
    assert iou(pred, gt) == pytest.approx(4 / 17, abs=1e-15)
    assert ppv(pred, gt) == pytest.approx(1 / 3, abs=1e-15)
    assert sensitivity(pred, gt) == pytest.approx(4 / 9, abs=1e-15)


def test_overlap_accepts_non_bool_masks():
    gt = box((6, 6), slice(1, 3), slice(1, 3)).astype(np.uint8) * 255
    pred = gt.astype(float) * 0.7
    assert dice(pred, gt) == 1.0
    assert iou(pred.tolist(), gt.tolist()) == 1.0


# ---------------------------------------------------------------- surface distances


def test_surfel_lengths_2d_from_geometry():
    sizes = surfel_sizes((1.0, 1.0))
    assert sizes[0] == 0 and sizes[15] == 0
    half_diag = SQRT2 / 2
    for code in (1, 2, 4, 8, 7, 11, 13, 14):  # one corner in or out: a cut corner
        assert sizes[code] == pytest.approx(half_diag)
    for code in (3, 12, 5, 10):  # one side in: a straight segment
        assert sizes[code] == pytest.approx(1.0)
    for code in (6, 9):  # saddle: two cut corners
        assert sizes[code] == pytest.approx(2 * half_diag)
    aniso = surfel_sizes((2.0, 3.0))
    assert aniso[3] == pytest.approx(3.0)  # bottom row inside: horizontal segment spans x
    assert aniso[5] == pytest.approx(2.0)  # right column inside: vertical segment spans y
    assert aniso[1] == pytest.approx(0.5 * math.hypot(2.0, 3.0))


def test_surfel_areas_3d_from_geometry():
    sizes = surfel_sizes((1.0, 1.0, 1.0))
    assert sizes[0] == 0 and sizes[255] == 0
    assert sizes[1] == pytest.approx(math.sqrt(3) / 8)  # corner triangle with legs 1/2
    assert sizes[0b00001111] == pytest.approx(1.0)  # half the cube inside: a unit square
    assert sizes[0b00000011] == pytest.approx(SQRT2 / 2)  # one edge inside: 1 x sqrt(1/2) rectangle
    assert sizes[0b00010111] == pytest.approx(3 * math.sqrt(3) / 4)  # corner + 3 neighbours: regular hexagon
    assert surfel_sizes((2.0, 3.0, 5.0))[0b00001111] == pytest.approx(15.0)  # plane normal to axis 0


def test_square_contour_length():
    gt = box((10, 10), slice(2, 5), slice(2, 5))
    sd = surface_distances(gt, gt)
    assert sd.sizes_gt.sum() == pytest.approx(8 + 2 * SQRT2)  # 8 unit sides, 4 cut corners
    assert np.all(sd.distances_gt_to_pred == 0) and np.all(sd.distances_pred_to_gt == 0)
    assert hd95(gt, gt) == 0.0 and assd(gt, gt) == 0.0


def test_hd95_shifted_square_and_anisotropy():
    gt = box((10, 12), slice(2, 5), slice(2, 5))
    pred = box((10, 12), slice(2, 5), slice(4, 7))  # shifted by 2 along x
    assert hd95(pred, gt) == pytest.approx(2.0)
    assert hd95(pred, gt, spacing=(1.0, 3.0)) == pytest.approx(6.0)  # x spacing scales the shift
    assert hd95(pred, gt, spacing=(3.0, 1.0)) == pytest.approx(2.0)  # y spacing does not
    assert hausdorff_distance(pred, gt, (1.0, 3.0), percentile=100) == pytest.approx(6.0)


def test_hd95_ignores_small_outlier_but_hausdorff_does_not():
    gt = box((40, 40), slice(2, 22), slice(2, 22))  # 20x20: contour length 76 + 2 sqrt(2)
    pred = gt.copy()
    pred[30, 30] = True  # contour 2 sqrt(2), 3.5 % of the prediction's contour
    assert hd95(pred, gt) == 0.0
    # farthest outlier corner (31, 31) to the nearest truth corner (22, 22)
    assert hausdorff_distance(pred, gt) == pytest.approx(9 * SQRT2)


def test_hd95_and_assd_concentric_squares():
    gt = box((10, 10), slice(2, 5), slice(2, 5))  # 3x3
    pred = box((10, 10), slice(1, 6), slice(1, 6))  # 5x5 around it
    # truth corners are all at distance 1; the 4 prediction corners at sqrt(2), the other 16 at 1
    assert hd95(pred, gt) == pytest.approx(SQRT2)
    expected = (28 + 2 * SQRT2) / (24 + 4 * SQRT2)  # pooled, length-weighted
    assert assd(pred, gt) == pytest.approx(expected)
    assert assd(gt, pred) == pytest.approx(expected)


def test_hd95_3d_cube_shift_anisotropic():
    gt = box((12, 12, 12), slice(3, 8), slice(3, 8), slice(3, 8))
    pred = box((12, 12, 12), slice(5, 10), slice(3, 8), slice(3, 8))  # shifted 2 slices along z
    assert hd95(pred, gt) == pytest.approx(2.0)
    assert hd95(pred, gt, spacing=(2.5, 0.7, 0.7)) == pytest.approx(5.0)
    assert hd95(pred, gt, spacing=(0.5, 3.0, 3.0)) == pytest.approx(1.0)


# ---------------------------------------------------------------- boundary IoU


def test_boundary_region_one_voxel_ring():
    m = box((10, 10), slice(2, 7), slice(2, 7))
    ring = m & ~box((10, 10), slice(3, 6), slice(3, 6))
    np.testing.assert_array_equal(boundary_region(m, 1.0), ring)
    # <= d: the ring at exactly 2 voxels belongs to the band, the centre (distance 3) does not
    np.testing.assert_array_equal(boundary_region(m, 2.0), m & ~box((10, 10), slice(4, 5), slice(4, 5)))
    np.testing.assert_array_equal(boundary_region(m, 1.999), ring)


def test_boundary_region_image_border_is_contour():
    full = np.ones((6, 7), dtype=bool)
    expected = ~box((6, 7), slice(1, 5), slice(1, 6))
    np.testing.assert_array_equal(boundary_region(full, 1.0), expected)


def test_boundary_region_anisotropic():
    m = box((10, 10), slice(2, 7), slice(2, 7))
    band = boundary_region(m, 1.0, spacing=(1.0, 2.0))  # only the y neighbours are 1 mm away
    expected = box((10, 10), slice(2, 7), slice(2, 7)) & ~box((10, 10), slice(3, 6), slice(0, 10))
    np.testing.assert_array_equal(band, expected)


def test_boundary_iou_exact_and_configurable_d():
    gt = box((10, 10), slice(2, 7), slice(2, 7))
    pred = box((10, 10), slice(2, 7), slice(3, 8))  # shifted by 1 along x
    # d = 1: rings of 16; they share 4 + 4 voxels of the top and bottom rows
    assert boundary_iou(pred, gt, dilation_mm=1.0) == pytest.approx(8 / 24)
    # d = 2 (<=): all but each centre; 20 shared voxels minus the two centres
    assert boundary_iou(pred, gt, dilation_mm=2.0) == pytest.approx(18 / 30)
    assert boundary_iou(pred, gt, dilation_mm=1.5) == pytest.approx(8 / 24)
    # default: 0.02 x diagonal (0.28 voxel) is raised to one voxel
    assert boundary_width_mm((10, 10)) == pytest.approx(1.0)
    assert boundary_iou(pred, gt) == pytest.approx(8 / 24)
    assert boundary_width_mm((10, 10), dilation_ratio=0.15) == pytest.approx(0.15 * math.sqrt(200))
    assert boundary_iou(pred, gt, dilation_ratio=0.15) == pytest.approx(18 / 30)
    # the diagonal is in mm and is that of the whole image
    assert boundary_width_mm((100, 50), spacing=(0.5, 2.0)) == pytest.approx(0.02 * math.hypot(50, 100))
    assert boundary_iou(gt, gt) == 1.0


def test_boundary_iou_diagonal_uses_full_image_not_crop():
    small = box((10, 10), slice(2, 7), slice(2, 7))
    big = np.zeros((200, 200), dtype=bool)
    big[:10, :10] = small
    shifted = np.zeros((200, 200), dtype=bool)
    shifted[:10, 1:11] = small
    # diagonal 282.8 -> d = 5.66: every voxel of both 5x5 squares is in the band, plain IoU
    assert boundary_iou(shifted, big) == pytest.approx(20 / 30)


# ---------------------------------------------------------------- NMI


def test_nmi_permuted_labels_and_shape():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, size=(16, 16))
    perm = np.array([2, 0, 3, 1])
    assert nmi(a, perm[a]) == pytest.approx(1.0)
    assert nmi(a, perm[a]) == pytest.approx(nmi(perm[a], a))
    b = rng.integers(0, 4, size=(16, 16))
    assert nmi(a, b) < 0.1
    with pytest.raises(ShapeMismatchError):
        nmi(a, b[:8])


# ---------------------------------------------------------------- empty-mask policy

EMPTY = np.zeros((8, 8), dtype=bool)
SOME = box((8, 8), slice(2, 5), slice(2, 5))
NAN = float("nan")

# metric -> (both empty, prediction empty only, ground truth empty only)
POLICY = {
    "dice": (1.0, 0.0, 0.0),
    "iou": (1.0, 0.0, 0.0),
    "ppv": (1.0, NAN, 0.0),
    "sensitivity": (1.0, 0.0, NAN),
    "boundary_iou": (1.0, 0.0, 0.0),
    "hd95": (0.0, NAN, NAN),
    "assd": (0.0, NAN, NAN),
}
FUNCS = {
    "dice": dice,
    "iou": iou,
    "ppv": ppv,
    "sensitivity": sensitivity,
    "boundary_iou": boundary_iou,
    "hd95": hd95,
    "assd": assd,
}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("metric", sorted(POLICY))
@pytest.mark.parametrize("case", [0, 1, 2], ids=["both_empty", "pred_empty", "gt_empty"])
def test_empty_mask_policy(metric, case):
    pred, gt = [(EMPTY, EMPTY), (EMPTY, SOME), (SOME, EMPTY)][case]
    expected = POLICY[metric][case]
    if math.isnan(expected):
        with pytest.warns(EmptyMaskWarning, match=metric):
            value = FUNCS[metric](pred, gt)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value = FUNCS[metric](pred, gt)
    assert _same(value, expected)


@pytest.mark.parametrize("case", [0, 1, 2], ids=["both_empty", "pred_empty", "gt_empty"])
def test_compute_all_follows_policy_with_one_warning(case):
    pred, gt = [(EMPTY, EMPTY), (EMPTY, SOME), (SOME, EMPTY)][case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compute_all(pred, gt)
    assert list(out) == list(STANDARD_METRICS)
    for metric in STANDARD_METRICS:
        assert _same(out[metric], POLICY[metric][case]), metric
    assert len(caught) == (0 if case == 0 else 1)


def test_surface_distances_one_empty_gives_inf():
    sd = surface_distances(EMPTY, SOME)
    assert sd.sizes_pred.size == 0 and sd.distances_pred_to_gt.size == 0
    assert sd.sizes_gt.size > 0 and np.all(np.isinf(sd.distances_gt_to_pred))


# ---------------------------------------------------------------- compute_all and invalid inputs


def test_compute_all_matches_single_functions():
    gt = box((12, 12), slice(2, 7), slice(2, 7))
    pred = box((12, 12), slice(3, 9), slice(2, 6))
    sp = (0.5, 1.5)
    out = compute_all(pred, gt, sp, dilation_mm=1.0)
    assert out["dice"] == dice(pred, gt)
    assert out["ppv"] == ppv(pred, gt)
    assert out["sensitivity"] == sensitivity(pred, gt)
    assert out["iou"] == iou(pred, gt)
    assert out["boundary_iou"] == boundary_iou(pred, gt, sp, dilation_mm=1.0)
    assert out["hd95"] == hd95(pred, gt, sp)
    assert out["assd"] == assd(pred, gt, sp)


@pytest.mark.parametrize("func", [dice, iou, ppv, sensitivity, boundary_iou, hd95, assd, compute_all])
def test_shape_mismatch_raises(func):
    with pytest.raises(ShapeMismatchError, match="shapes"):
        func(np.zeros((4, 5), bool), np.zeros((5, 4), bool))


@pytest.mark.parametrize("func", [boundary_iou, hd95, assd, compute_all])
def test_spacing_length_and_values_checked(func):
    m = box((6, 6), slice(1, 3), slice(1, 3))
    with pytest.raises(ValueError, match="spacing has 3 values"):
        func(m, m, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        func(m, m, (1.0, -1.0))


@pytest.mark.parametrize("func", [boundary_iou, hd95, assd, compute_all])
def test_only_2d_and_3d(func):
    with pytest.raises(DimensionError):
        func(np.ones(5, bool), np.ones(5, bool))


def test_invalid_options():
    m = box((6, 6), slice(1, 3), slice(1, 3))
    with pytest.raises(ValueError, match="percentile"):
        hausdorff_distance(m, m, percentile=0)
    with pytest.raises(ValueError, match="dilation_ratio"):
        boundary_iou(m, m, dilation_ratio=-0.1)
    with pytest.raises(ValueError, match="dilation_mm"):
        boundary_iou(m, m, dilation_mm=0)
    with pytest.raises(TypeError):
        dice(np.array([["a"]]), np.array([["b"]]))


def test_bounded_band_search_equals_full_distance_transform():
    from scipy import ndimage

    from scarceseg.metrics.boundary import _band_edt, _band_window

    rng = np.random.default_rng(0)
    for i in range(150):
        ndim = 3 if i % 3 == 0 else 2
        shape = tuple(int(n) for n in rng.integers(3, 30, ndim))
        field = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.5, 3.0))
        mask = field > np.quantile(field, rng.uniform(0.1, 0.9)) if i % 5 else rng.random(shape) < 0.7
        padded = np.pad(mask, 1) if i % 4 else mask  # also lines with no background at all
        spacing = tuple(float(rng.choice([1.0, 0.5, 2.0, rng.uniform(0.2, 3.0)])) for _ in range(ndim))
        width = float(rng.choice([1.0, 2.0, SQRT2, rng.uniform(0.2, 8.0)]))
        np.testing.assert_array_equal(_band_window(padded, width, spacing), _band_edt(padded, width, spacing))
