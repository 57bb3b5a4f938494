"""Classical baselines on tiny synthetic images with exact expected masks."""

from __future__ import annotations

import numpy as np
import pytest

from scarceseg.cluster.classical import (
    clean_lesion,
    head_mask,
    inner_region,
    kmeans_labels,
    kmeans_lesion,
    multi_otsu_labels,
    multi_otsu_lesion,
)


def _disc(size: int = 64, radius: float = 20.0) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    return np.hypot(yy - c, xx - c) <= radius


def _square(size: int = 64, y0: int = 27, x0: int = 27, side: int = 10) -> np.ndarray:
    out = np.zeros((size, size), dtype=bool)
    out[y0:y0 + side, x0:x0 + side] = True
    return out


def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A disc 'head' of diameter 40 (value 1) on zero background with a 10x10 bright square (value 3)."""
    head, lesion = _disc(), _square()
    image = np.where(lesion, 3.0, np.where(head, 1.0, 0.0))
    return image, head, lesion


def test_head_mask_is_the_disc():
    image, head, _ = _phantom()
    assert np.array_equal(head_mask(image), head)


def test_head_mask_fills_the_skull_and_keeps_the_largest_part():
    yy, xx = np.mgrid[:64, :64]
    r = np.hypot(yy - 31.5, xx - 31.5)
    image = np.where(r <= 15, 1.0, 0.0) + np.where((r > 18) & (r <= 20), 2.0, 0.0)  # brain, dark skull, scalp
    image[2:4, 2:4] = 2.0  # a speck outside the head
    assert np.array_equal(head_mask(image), r <= 20)


def test_head_mask_constant_image_is_empty():
    assert not head_mask(np.full((8, 8), 5.0)).any()


@pytest.mark.parametrize("segment", [multi_otsu_lesion, kmeans_lesion])
def test_bright_square_comes_back_exactly(segment):
    image, _, lesion = _phantom()
    assert np.array_equal(segment(image), lesion)


@pytest.mark.parametrize("segment", [multi_otsu_lesion, kmeans_lesion])
def test_bright_square_with_four_tissue_levels(segment):
    # dark 'ventricle', two tissue grey levels, bright lesion: 4 distinct values for 3 classes
    image, head, lesion = _phantom()
    image = np.where(head & ~lesion, 1.0, image)
    image[head & (np.arange(64)[None, :] < 32) & ~lesion] = 0.8
    image[20:24, 40:46] = 0.2
    assert np.array_equal(segment(image), lesion)


@pytest.mark.parametrize("segment", [multi_otsu_lesion, kmeans_lesion])
def test_bright_scalp_is_left_out(segment):
    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 47.5, xx - 47.5)
    lesion = _square(96, 40, 40, 8)
    image = np.where(r <= 34, 1.0, 0.0) + np.where((r > 38) & (r <= 42), 4.0, 0.0)  # scalp brighter than lesion
    image[lesion] = 2.5
    assert np.array_equal(segment(image), lesion)
    assert not np.array_equal(segment(image, rim=0.0), lesion)  # without the rim the scalp wins


def test_label_maps_order_classes_dark_to_bright():
    image, head, lesion = _phantom()
    for labels in (multi_otsu_labels(image), kmeans_labels(image, seed=3)):
        assert labels.dtype == np.int32
        assert np.array_equal(labels == 0, ~head)
        assert np.array_equal(labels == 2, lesion)
        assert np.array_equal(labels == 1, head & ~lesion)


def test_kmeans_same_seed_same_result(rng):
    image, head, _ = _phantom()
    noisy = image + 0.3 * rng.standard_normal(image.shape) * head
    a = kmeans_labels(noisy, k=4, seed=7)
    b = kmeans_labels(noisy, k=4, seed=7)
    assert np.array_equal(a, b)
    assert np.array_equal(kmeans_lesion(noisy, seed=7), kmeans_lesion(noisy, seed=7))
    assert set(np.unique(a)) == {0, 1, 2, 3, 4}


def test_given_head_is_used_and_checked():
    image, head, lesion = _phantom()
    assert np.array_equal(multi_otsu_lesion(image, head=head), lesion)
    assert not multi_otsu_lesion(image, head=np.zeros_like(head)).any()
    with pytest.raises(ValueError, match="head mask shape"):
        kmeans_lesion(image, head=head[:10])


def test_single_intensity_gives_empty_lesion():
    head = _disc()
    image = head.astype(float)
    assert not multi_otsu_lesion(image).any()
    assert not kmeans_lesion(image).any()


def test_clean_lesion_keeps_largest_and_fills_holes():
    candidate = _square(32, 4, 4, 8) | _square(32, 20, 20, 3)
    candidate[7, 7] = False  # a hole
    assert np.array_equal(clean_lesion(candidate), _square(32, 4, 4, 8))


def test_inner_region_rim():
    head = _disc(64, 20)
    assert np.array_equal(inner_region(head, 0.0), head)
    inner = inner_region(head, 0.25)  # 5 px band
    assert inner.sum() < head.sum() and (inner <= head).all()
    assert inner[31, 31] and not inner[31, 13]


def test_rejects_non_2d():
    with pytest.raises(ValueError, match="2D"):
        multi_otsu_lesion(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="NaN"):
        head_mask(np.full((4, 4), np.nan))
