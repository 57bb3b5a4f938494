"""Seeded 2D augmentation: exact pixel moves, replay from a seed, intensity ops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarceseg.preprocess.augment import IDENTITY, apply_augmentation, augment, sample_augmentation


def _image_and_mask(shape=(8, 10)):
    image = np.zeros((2, *shape), dtype=np.float32)
    mask = np.zeros(shape, dtype=bool)
    image[0, 2, 3] = 1.0
    image[1, 2, 3] = 5.0
    mask[2, 3] = True
    return image, mask


def test_identity_leaves_everything_unchanged():
    rng = np.random.default_rng(1)
    image = rng.random((3, 16, 16), dtype=np.float32)
    mask = rng.random((16, 16)) > 0.5
    out, out_mask = apply_augmentation(image, mask, IDENTITY)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_mask, mask)
    assert out.dtype == np.float32 and out_mask.dtype == bool


def test_flip_y_moves_pixel_exactly():
    image, mask = _image_and_mask()
    out, out_mask = apply_augmentation(image, mask, {"flip_y": True})
    assert np.argwhere(out_mask).tolist() == [[5, 3]]
    assert out[0, 5, 3] == 1.0 and out[1, 5, 3] == 5.0 and out.sum() == 6.0


def test_flip_x_moves_pixel_exactly():
    image, mask = _image_and_mask()
    out, out_mask = apply_augmentation(image, mask, {"flip_x": True})
    assert np.argwhere(out_mask).tolist() == [[2, 6]]
    assert out[0, 2, 6] == 1.0 and out.sum() == 6.0


def test_quarter_turn_matches_numpy_rot90():
    image, mask = _image_and_mask((10, 10))
    out, out_mask = apply_augmentation(image, mask, {"rot90": 1})
    # counter-clockwise: (y, x) -> (X - 1 - x, y)
    assert np.argwhere(out_mask).tolist() == [[6, 2]]
    np.testing.assert_array_equal(out, np.rot90(image, 1, axes=(1, 2)))


def test_affine_quarter_turn_equals_rot90_on_mask():
    mask = np.zeros((12, 12), dtype=bool)
    mask[2:5, 3:9] = True
    image = mask[None].astype(np.float32)
    _, by_affine = apply_augmentation(image, mask, {"angle": 90.0})
    _, by_rot = apply_augmentation(image, mask, {"rot90": 1})
    np.testing.assert_array_equal(by_affine, by_rot)


def test_scale_two_doubles_a_centred_square():
    mask = np.zeros((32, 32), dtype=bool)
    mask[14:18, 14:18] = True
    _, out_mask = apply_augmentation(mask[None].astype(np.float32), mask, {"scale": 2.0})
    expected = np.zeros_like(mask)
    expected[12:20, 12:20] = True
    np.testing.assert_array_equal(out_mask, expected)


def test_gamma_keeps_channel_range_and_intensity_scale_multiplies():
    image = np.stack([np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),
                      np.linspace(2, 6, 64, dtype=np.float32).reshape(8, 8)])
    out, _ = apply_augmentation(image, None, {"gamma": 2.0})
    np.testing.assert_allclose(out.min(axis=(1, 2)), [0, 2], atol=1e-6)
    np.testing.assert_allclose(out.max(axis=(1, 2)), [1, 6], atol=1e-6)
    assert out[0, 4, 0] < image[0, 4, 0]  # gamma > 1 darkens mid-tones
    out, _ = apply_augmentation(image, None, {"intensity_scale": 0.5})
    np.testing.assert_array_equal(out, image * np.float32(0.5))


def test_noise_is_replayed_from_its_seed():
    image = np.zeros((1, 16, 16), dtype=np.float32)
    params = {"noise_std": 0.1, "noise_seed": 7}
    a, _ = apply_augmentation(image, None, params)
    b, _ = apply_augmentation(image, None, params)
    np.testing.assert_array_equal(a, b)
    assert 0.05 < a.std() < 0.15


def test_same_seed_same_output_different_seed_different():
    rng = np.random.default_rng(3)
    image = rng.random((2, 24, 24), dtype=np.float32)
    mask = np.zeros((24, 24), dtype=bool)
    mask[5:12, 8:20] = True
    a = augment(image, mask, np.random.default_rng(42))
    b = augment(image, mask, np.random.default_rng(42))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    params = [sample_augmentation(np.random.default_rng(s)) for s in range(20)]
    assert len({json.dumps(p, sort_keys=True) for p in params}) == 20


def test_sample_is_json_and_draw_count_is_independent_of_probabilities():
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    p1 = sample_augmentation(r1)
    p2 = sample_augmentation(r2, p_flip=0.0, p_affine=1.0, p_noise=0.0, rot90=False)
    assert set(p1) == set(IDENTITY)
    assert json.loads(json.dumps(p1)) == p1
    assert p2["flip_y"] is False and p2["rot90"] == 0 and p2["noise_std"] == 0.0
    assert r1.random() == r2.random()


def test_mask_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="mask shape"):
        apply_augmentation(np.zeros((1, 8, 8), np.float32), np.zeros((8, 9), bool), IDENTITY)


# ---- intensity normalisation (preprocess/intensity.py) -------------------------------------------


def test_percentile_scale_ignores_background_and_clips():
    from scarceseg.preprocess.intensity import percentile_scale

    image = np.zeros((1, 10, 10), dtype=np.float32)
    image[0, 2:8, 2:8] = np.arange(36, dtype=np.float32).reshape(6, 6) + 10  # 10..45 inside, 0 outside
    out = percentile_scale(image, low=0, high=100)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert out[0, 2, 2] == 0.0 and out[0, 7, 7] == 1.0 and out[0, 0, 0] == 0.0  # background clipped to 0
    np.testing.assert_allclose(out[0, 2, 3], 1 / 35)


def test_zscore_inside_mask_and_constant_channel():
    from scarceseg.preprocess.intensity import zscore

    image = np.stack([np.arange(16, dtype=np.float32).reshape(4, 4), np.full((4, 4), 3.0, np.float32)])
    region = np.zeros((4, 4), dtype=bool)
    region[:2] = True  # values 0..7
    out = zscore(image, mask=region, outside=0.0)
    np.testing.assert_allclose(out[0][region].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[0][region].std(), 1.0, atol=1e-6)
    assert (out[0][~region] == 0).all() and (out[1] == 0).all()
