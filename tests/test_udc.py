"""UDC clustering (SLIC + clustering CNN) and candidate masks, on tiny synthetic images."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from scarceseg.cluster import candidates as cand
from scarceseg.cluster.propose import make_candidates
from scarceseg.cluster.udc import UDCConfig, normalise, superpixels, udc_cluster
from scarceseg.errors import InputError

# A small configuration: same algorithm, small enough for a unit test.
SMALL = dict(
    n_segments=200, channels=16, target_clusters=6, levels=(10, 8), max_iters=60, threads=1, reference_shape=(64, 64)
)


def lesion_image(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc (radius size/6) on a textured background of two tissues; (1, Y, X), mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size * 0.4) ** 2 + (xx - size * 0.6) ** 2 <= (size / 6) ** 2
    image = 0.3 + 0.1 * (xx > size / 2) + 0.04 * np.sin(yy / 2.0) * np.cos(xx / 3.0)
    image = image + 0.02 * rng.standard_normal((size, size))
    image[disc] = 0.9 + 0.02 * rng.standard_normal(int(disc.sum()))
    return image[None].astype(np.float32) * 255, disc


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


# ---- candidates.py: exact masks on hand-made label maps ---------------------------------------------
def test_scaled_min_area():
    assert cand.scaled_min_area((240, 240)) == 1000
    assert cand.scaled_min_area((256, 256)) == 1138
    assert cand.scaled_min_area((120, 120)) == 250
    assert cand.scaled_min_area((10, 10), 1000, (10, 10)) == 1000


def test_size_filter_is_strict_on_both_ends():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[0:2, :] = 1  # 20 px
    labels[2:5, :] = 2  # 30 px
    labels[5, :3] = 3  # 3 px
    # label 0 has 47 px
    masks = cand.cluster_masks(labels, min_area=20)  # keep 20 < area < 80
    assert len(masks) == 2
    np.testing.assert_array_equal(masks[0], labels == 0)  # largest first
    np.testing.assert_array_equal(masks[1], labels == 2)
    assert cand.size_ok(21, 100, 20) and not cand.size_ok(20, 100, 20) and not cand.size_ok(80, 100, 20)
    assert cand.size_ok(79, 100, 20)


def test_paper_candidates_are_whole_clusters_components_split_them():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[1:4, 1:4] = 1  # 3x3 square
    labels[6:9, 6:9] = 1  # another 3x3 square of the same cluster
    masks, sources = cand.paper_candidates(labels, min_area=5)
    assert sources == ["cluster", "cluster"]
    np.testing.assert_array_equal(masks[0], labels == 0)
    np.testing.assert_array_equal(masks[1], labels == 1)

    comps = cand.component_masks(labels, min_area=5)
    expected_a = np.zeros((10, 10), bool)
    expected_a[1:4, 1:4] = True
    expected_b = np.zeros((10, 10), bool)
    expected_b[6:9, 6:9] = True
    assert len(comps) == 3  # background (82 px), then the squares in raster order
    np.testing.assert_array_equal(comps[0], labels == 0)
    np.testing.assert_array_equal(comps[1], expected_a)
    np.testing.assert_array_equal(comps[2], expected_b)


def test_fill_holes_and_extended_set():
    labels = np.zeros((12, 12), dtype=np.int32)
    labels[2:9, 2:9] = 1
    labels[4:7, 4:7] = 2  # a hole in cluster 1
    ring = labels == 1
    filled = cand.fill_holes(ring)
    expected = np.zeros((12, 12), bool)
    expected[2:9, 2:9] = True
    np.testing.assert_array_equal(filled, expected)

    masks, sources = cand.extended_candidates(labels, {}, min_area=5, dedupe_iou=0.95)
    # clusters (0: 95 px, 1: 40 px, 2: 9 px), their components are the same masks (deduped),
    # then the filled ring (49 px)
    assert sources == ["cluster", "cluster", "cluster", "filled component"]
    np.testing.assert_array_equal(masks[3], expected)


def test_extended_levels_dedupe_and_cap():
    labels = np.zeros((10, 10), dtype=np.int32)
    labels[:, 5:] = 1
    coarse = labels.copy()
    finer = labels.copy()
    finer[0:3, 0:3] = 2
    masks, sources = cand.extended_candidates(labels, {35: finer, 50: coarse}, min_area=5)
    # the final map's two halves; level 35 adds the rest of the left half (41 px) and the 3x3 corner;
    # its components and level 50 only repeat masks already there and are deduped away
    assert sources == ["cluster", "cluster", "level:35 cluster", "level:35 cluster"]
    np.testing.assert_array_equal(masks[2], finer == 0)
    np.testing.assert_array_equal(masks[3], finer == 2)
    capped, _ = cand.extended_candidates(labels, {35: finer}, min_area=5, max_candidates=2)
    assert len(capped) == 2


def test_describe_candidates_bbox_and_centroid():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 3:7] = True
    (info,) = cand.describe_candidates([mask], ["cluster"])
    assert info == {"index": 0, "area": 12, "centroid": [3.0, 4.5], "bbox": [2, 3, 5, 7], "source": "cluster"}


# ---- udc.py ----------------------------------------------------------------------------------------
def test_config_presets_and_paper_defaults():
    paper = UDCConfig.faithful()
    assert (paper.n_segments, paper.compactness, paper.channels, paper.layers) == (10_000, 100.0, 100, 3)
    assert (paper.lr, paper.momentum, paper.target_clusters, paper.min_area) == (0.1, 0.9, 25, 1000)
    assert paper.candidates == "paper"
    fast = UDCConfig.fast()
    assert fast.candidates == "extended" and fast.scale < 1
    assert UDCConfig.from_dict(asdict(fast)) == fast
    with pytest.raises(ValueError):
        UDCConfig(candidates="nope")
    assert UDCConfig.preset("faithful") == paper and UDCConfig.preset(None) == fast
    with pytest.raises(InputError, match="slow"):
        UDCConfig.preset("slow")


def test_normalise_and_superpixels():
    image, _ = lesion_image(32)
    x = normalise(image)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0
    assert not normalise(np.ones((1, 4, 4))).any()
    sp = superpixels(x, n_segments=16, compactness=100)
    assert sp.shape == (32, 32) and sp.min() == 0
    assert set(np.unique(sp)) == set(range(sp.max() + 1))


@pytest.mark.parametrize("mode", ["paper", "extended"])
def test_lesion_is_a_candidate(mode):
    image, disc = lesion_image(64)
    cfg = UDCConfig(**SMALL, candidates=mode, min_area=40)
    result = udc_cluster(image, cfg, seed=0)
    assert result.labels.shape == (64, 64) and result.labels.dtype == np.int32
    assert result.n_clusters <= cfg.target_clusters and result.reached
    masks, sources = make_candidates(result.labels, result.levels, cfg)
    assert masks.dtype == bool and masks.shape[1:] == (64, 64) and len(sources) == len(masks)
    assert max(dice(m, disc) for m in masks) > 0.9


def test_same_seed_same_labels_and_global_state_untouched():
    image, _ = lesion_image(48)
    cfg = UDCConfig(**SMALL)
    before = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    a = udc_cluster(image, cfg, seed=3)
    b = udc_cluster(image, cfg, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.levels.keys() == b.levels.keys()
    for level in a.levels:
        np.testing.assert_array_equal(a.levels[level], b.levels[level])
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.get_num_threads() == threads


def test_levels_above_and_below_the_target():
    image, _ = lesion_image(64)
    cfg = UDCConfig(**{**SMALL, "levels": (10, 4)})
    result = udc_cluster(image, cfg, seed=0)
    assert result.reached and result.n_clusters <= 6  # labels stay the map at target_clusters
    assert set(result.levels) == {10, 4}
    assert int(result.levels[10].max()) + 1 <= 10 and int(result.levels[4].max()) + 1 <= 4


def test_downsampled_cnn_returns_full_resolution_labels():
    image, disc = lesion_image(128)
    cfg = UDCConfig(**SMALL, scale=0.5, candidates="extended", min_area=40)
    result = udc_cluster(image, cfg, seed=0)
    assert result.labels.shape == (128, 128) and result.superpixels.shape == (64, 64)
    masks, _ = make_candidates(result.labels, result.levels, cfg)
    assert max(dice(m, disc) for m in masks) > 0.9


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2D"):
        udc_cluster(np.zeros((1, 4, 8, 8), np.float32), UDCConfig(**SMALL))
