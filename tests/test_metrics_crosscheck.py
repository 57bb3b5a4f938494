"""Cross-checks on random masks: Dice/IoU against MONAI, surface distances against DeepMind's package.

``surface-distance`` (DeepMind, Apache-2.0) is a test-only dependency; it is imported here and
nowhere in ``src``. Our surface metrics are built on MONAI, which returns distances in float32 and
computes its 3D area table in float32, so distances, areas, HD95 and ASSD are compared to the
float64 reference at a float32 relative tolerance (1e-6; the worst seen on 1,000 pairs was 6e-8).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from scarceseg.metrics import assd, dice, hd95, iou, surface_distances

sd_ref = pytest.importorskip("surface_distance")
torch = pytest.importorskip("torch")
monai_metrics = pytest.importorskip("monai.metrics")
lookup_tables = pytest.importorskip("surface_distance.lookup_tables")
monai_utils = pytest.importorskip("monai.metrics.utils")

F32 = 1e-6  # relative tolerance of MONAI's float32 distances and 3D areas

# the reference package still imports from scipy.ndimage.filters / .morphology
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance.*")


def blob(rng: np.random.Generator, shape: tuple[int, ...], sigma: float, fraction: float) -> np.ndarray:
    """Smooth random blobs covering about ``fraction`` of the image (realistic surfaces)."""
    field = ndimage.gaussian_filter(rng.random(shape), sigma)
    return field > np.quantile(field, 1.0 - fraction)


def noise(rng: np.random.Generator, shape: tuple[int, ...], fraction: float) -> np.ndarray:
    return rng.random(shape) < fraction


SHAPES_2D = [(32, 40), (64, 64), (17, 23)]
SHAPES_3D = [(12, 16, 20), (20, 18, 14)]


def random_pairs(ndim: int, n: int, seed: int):
    """Seeded (pred, gt, spacing) triples: blobs of varied size plus a few pure-noise masks."""
    rng = np.random.default_rng(seed)
    shapes = SHAPES_2D if ndim == 2 else SHAPES_3D
    for i in range(n):
        shape = shapes[i % len(shapes)]
        if i % 5 == 4:
            pred, gt = noise(rng, shape, rng.uniform(0.05, 0.5)), blob(rng, shape, 2.0, 0.3)
        else:
            sigma = rng.uniform(1.0, 3.0)
            gt = blob(rng, shape, sigma, rng.uniform(0.05, 0.6))
            pred = blob(rng, shape, sigma, rng.uniform(0.05, 0.6)) if i % 2 else gt ^ noise(rng, shape, 0.05)
        spacing = (1.0,) * ndim if i % 3 == 0 else tuple(rng.uniform(0.3, 3.0, ndim).round(3))
        if not (pred.any() and gt.any()):  # the reference package fails on empty masks with numpy 2
            continue
        yield pred, gt, spacing


def surfel_sizes(spacing: tuple[float, ...]) -> np.ndarray:
    """MONAI's length / area per neighbourhood code, the table our surface metrics weight with."""
    return monai_utils.get_code_to_measure_table(spacing)[0].cpu().numpy()


def test_surfel_tables_match_reference_for_all_codes():
    rng = np.random.default_rng(3)
    for spacing in [(1.0, 1.0), (0.5, 2.0), *[tuple(rng.uniform(0.1, 5.0, 2)) for _ in range(5)]]:
        ref = lookup_tables.create_table_neighbour_code_to_contour_length(spacing)
        np.testing.assert_array_equal(surfel_sizes(spacing), ref)
    for spacing in [(1.0, 1.0, 1.0), (0.5, 2.0, 3.0), *[tuple(rng.uniform(0.1, 5.0, 3)) for _ in range(10)]]:
        ref = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
        np.testing.assert_allclose(surfel_sizes(spacing), ref, rtol=F32, atol=0)


@pytest.mark.parametrize("ndim,n,seed", [(2, 80, 0), (3, 40, 1)])
def test_hd95_and_surfaces_match_deepmind(ndim, n, seed):
    checked, worst = 0, 0.0
    for pred, gt, spacing in random_pairs(ndim, n, seed):
        ref = sd_ref.compute_surface_distances(gt, pred, spacing)
        ours = surface_distances(pred, gt, spacing)
        np.testing.assert_allclose(ours.distances_gt_to_pred, ref["distances_gt_to_pred"], rtol=F32, atol=0)
        np.testing.assert_allclose(ours.distances_pred_to_gt, ref["distances_pred_to_gt"], rtol=F32, atol=0)
        np.testing.assert_allclose(ours.sizes_gt.sum(), ref["surfel_areas_gt"].sum(), rtol=F32)
        np.testing.assert_allclose(ours.sizes_pred.sum(), ref["surfel_areas_pred"].sum(), rtol=F32)
        expected = sd_ref.compute_robust_hausdorff(ref, 95)
        got = hd95(pred, gt, spacing)
        worst = max(worst, abs(got - expected) / expected)
        assert got == pytest.approx(expected, rel=F32)
        checked += 1
    assert checked >= n - 2 and worst <= F32


@pytest.mark.parametrize("ndim,seed", [(2, 10), (3, 11)])
def test_assd_is_area_weighted_pool_of_deepmind_means(ndim, seed):
    for pred, gt, spacing in random_pairs(ndim, 10, seed):
        ref = sd_ref.compute_surface_distances(gt, pred, spacing)
        m_gp, m_pg = sd_ref.compute_average_surface_distance(ref)
        a_g, a_p = ref["surfel_areas_gt"].sum(), ref["surfel_areas_pred"].sum()
        assert assd(pred, gt, spacing) == pytest.approx((a_g * m_gp + a_p * m_pg) / (a_g + a_p), rel=F32)


def _one_hot(mask: np.ndarray):
    return torch.from_numpy(mask[None, None].astype(np.float32))


@pytest.mark.parametrize("ndim,seed", [(2, 20), (3, 21)])
def test_dice_and_iou_match_monai(ndim, seed):
    rng = np.random.default_rng(seed)
    empty = np.zeros(SHAPES_2D[0] if ndim == 2 else SHAPES_3D[0], dtype=bool)
    pairs = [(p, g) for p, g, _ in random_pairs(ndim, 15, seed)]
    pairs += [(empty, empty), (empty, blob(rng, empty.shape, 2.0, 0.2)), (blob(rng, empty.shape, 2.0, 0.2), empty)]
    for pred, gt in pairs:
        y_pred, y = _one_hot(pred), _one_hot(gt)
        ref_dice = float(monai_metrics.compute_dice(y_pred, y, include_background=True, ignore_empty=False))
        ref_iou = float(monai_metrics.compute_iou(y_pred, y, include_background=True, ignore_empty=False))
        assert dice(pred, gt) == pytest.approx(ref_dice, abs=1e-6)
        assert iou(pred, gt) == pytest.approx(ref_iou, abs=1e-6)


def test_dice_metric_class_agrees():
    metric = monai_metrics.DiceMetric(include_background=True, reduction="none")
    preds, gts = zip(*[(p, g) for p, g, _ in random_pairs(2, 8, 5) if p.shape == SHAPES_2D[0]], strict=True)
    out = metric(torch.cat([_one_hot(p) for p in preds]), torch.cat([_one_hot(g) for g in gts]))
    np.testing.assert_allclose(out.numpy().ravel(), [dice(p, g) for p, g in zip(preds, gts, strict=True)], atol=1e-6)
