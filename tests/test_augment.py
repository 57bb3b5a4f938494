"""Seeded 2D/3D augmentation: exact pixel moves, alignment under the affine, replay of recorded parameters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarceseg.preprocess.augment import IDENTITY, ONLY_3D, apply_augmentation, augment, sample_augmentation


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


# ---- 3D, replay, alignment -------------------------------------------------------------------------

#: Every operation on (flip_z and the tilts only in 3D).
ALL_ON_2D = {"flip_y": True, "flip_x": False, "rot90": 3, "angle": 11.0, "scale": 1.07, "gamma": 1.3,
             "intensity_scale": 0.95, "noise_std": 0.03, "noise_seed": 12345}
ALL_ON_3D = {**ALL_ON_2D, "flip_z": True, "angle_zy": -6.0, "angle_zx": 4.5}
NO_CHANGE = {"p_flip": 0.0, "rot90": False, "p_affine": 0.0, "p_gamma": 0.0, "p_intensity_scale": 0.0, "p_noise": 0.0}


def _volume_and_mask(shape=(6, 8, 10)):
    image = np.zeros((2, *shape), dtype=np.float32)
    mask = np.zeros(shape, dtype=bool)
    image[0, 1, 2, 3] = 1.0
    image[1, 1, 2, 3] = 5.0
    mask[1, 2, 3] = True
    return image, mask


def _disk(shape, centre, radius):
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True)) <= radius**2


def test_identity_leaves_a_volume_unchanged_and_zero_probabilities_give_identity():
    rng = np.random.default_rng(2)
    image = rng.random((2, 5, 12, 9), dtype=np.float32)
    mask = rng.random((5, 12, 9)) > 0.5
    out, out_mask = apply_augmentation(image, mask, IDENTITY)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_mask, mask)
    assert out.dtype == np.float32 and out_mask.dtype == bool
    for ndim in (2, 3):
        assert sample_augmentation(np.random.default_rng(0), ndim=ndim, **NO_CHANGE) == IDENTITY


@pytest.mark.parametrize("shape", [(2, 24, 24), (2, 10, 24, 24)])
def test_recorded_params_replay_bit_for_bit_after_json(shape):
    rng = np.random.default_rng(4)
    image = rng.random(shape, dtype=np.float32)
    mask = _disk(shape[1:], [n / 2 - 1 for n in shape[1:]], 4)
    params = ALL_ON_2D if len(shape) == 3 else ALL_ON_3D
    a, a_mask = apply_augmentation(image, mask, params)
    b, b_mask = apply_augmentation(image, mask, json.loads(json.dumps(params)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a_mask, b_mask)
    assert a.shape == image.shape and not np.array_equal(a, image) and not np.array_equal(a_mask, mask)


def test_same_seed_same_params_and_volume():
    rng = np.random.default_rng(6)
    image = rng.random((1, 8, 16, 16), dtype=np.float32)
    mask = _disk((8, 16, 16), (4, 7, 9), 3)
    p1 = sample_augmentation(np.random.default_rng(9), ndim=3, max_tilt=10.0)
    p2 = sample_augmentation(np.random.default_rng(9), ndim=3, max_tilt=10.0)
    assert p1 == p2 and json.loads(json.dumps(p1)) == p1 and set(p1) == set(IDENTITY)
    a = augment(image, mask, np.random.default_rng(9), max_tilt=10.0)
    b = apply_augmentation(image, mask, p1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_a_3d_draw_extends_the_2d_draw():
    p2 = sample_augmentation(np.random.default_rng(5))
    p3 = sample_augmentation(np.random.default_rng(5), ndim=3)
    assert all(p2[key] == p3[key] for key in IDENTITY if key not in ONLY_3D)
    assert all(p2[key] == IDENTITY[key] for key in ONLY_3D)
    assert p3["angle_zy"] == p3["angle_zx"] == 0.0  # max_tilt is 0 by default: in-plane rotation only
    with pytest.raises(ValueError, match="ndim"):
        sample_augmentation(np.random.default_rng(5), ndim=4)


@pytest.mark.parametrize(("key", "expected"), [("flip_z", [4, 2, 3]), ("flip_y", [1, 5, 3]), ("flip_x", [1, 2, 6])])
def test_3d_flips_move_a_voxel_exactly(key, expected):
    image, mask = _volume_and_mask()
    out, out_mask = apply_augmentation(image, mask, {key: True})
    assert np.argwhere(out_mask).tolist() == [expected]
    assert out[(0, *expected)] == 1.0 and out[(1, *expected)] == 5.0 and out.sum() == 6.0


def test_3d_quarter_turn_is_in_the_yx_plane():
    image, mask = _volume_and_mask((6, 10, 10))
    out, out_mask = apply_augmentation(image, mask, {"rot90": 1})
    # counter-clockwise in (Y, X), Z untouched: (z, y, x) -> (z, X - 1 - x, y)
    assert np.argwhere(out_mask).tolist() == [[1, 6, 2]]
    assert out[0, 1, 6, 2] == 1.0 and out[1, 1, 6, 2] == 5.0
    np.testing.assert_array_equal(out, np.rot90(image, 1, axes=(2, 3)))
    out, out_mask = apply_augmentation(image[:, :, :, :7], mask[:, :, :7], {"rot90": 1})
    assert out.shape == (2, 6, 7, 10) and out_mask.shape == (6, 7, 10)  # Y and X swap


@pytest.mark.parametrize(("key", "axes"), [("angle", (1, 2)), ("angle_zy", (0, 1)), ("angle_zx", (0, 2))])
def test_3d_right_angles_turn_like_rot90_in_their_plane(key, axes):
    mask = np.zeros((12, 12, 12), dtype=bool)
    mask[2:5, 3:9, 4:6] = True
    _, out_mask = apply_augmentation(mask[None].astype(np.float32), mask, {key: 90.0})
    np.testing.assert_array_equal(out_mask, np.rot90(mask, 1, axes=axes))


def _rotated(point, centre, angle, scale):
    """Where the small affine sends ``point`` of the (Y, X) plane."""
    t = np.deg2rad(angle)
    dy, dx = np.subtract(point, centre)
    return centre[0] + scale * (dy * np.cos(t) - dx * np.sin(t)), centre[1] + scale * (dy * np.sin(t) + dx * np.cos(t))


def test_affine_keeps_a_bright_disk_and_its_mask_aligned_2d():
    mask = _disk((40, 40), (12.0, 25.0), 5)
    image = np.stack([0.1 + 0.8 * mask, 2.0 + 3.0 * mask]).astype(np.float32)
    out, out_mask = apply_augmentation(image, mask, {"angle": 20.0, "scale": 1.15})
    bright = np.argwhere(out[0] > 0.5).mean(axis=0)
    centroid = np.argwhere(out_mask).mean(axis=0)
    assert np.abs(bright - centroid).max() < 1.0
    np.testing.assert_allclose(centroid, _rotated((12.0, 25.0), (19.5, 19.5), 20.0, 1.15), atol=1.0)
    assert out_mask.dtype == bool and 0.8 < out_mask.sum() / (mask.sum() * 1.15**2) < 1.2
    # the outside is filled with each channel's minimum
    assert out[0, 0, 0] == np.float32(0.1) and out[1, 0, 0] == 2.0


def test_affine_keeps_a_bright_ball_and_its_mask_aligned_3d():
    mask = _disk((20, 32, 32), (8.0, 10.0, 21.0), 4)
    image = (0.2 + 0.7 * mask)[None].astype(np.float32)
    params = {"angle": -14.0, "angle_zy": 8.0, "angle_zx": -5.0, "scale": 0.9}
    out, out_mask = apply_augmentation(image, mask, params)
    bright = np.argwhere(out[0] > 0.55).mean(axis=0)
    centroid = np.argwhere(out_mask).mean(axis=0)
    assert np.abs(bright - centroid).max() < 1.0
    assert set(np.unique(out_mask)) == {False, True} and out_mask.dtype == bool
    in_plane = apply_augmentation(image, mask, {"angle": -14.0, "scale": 0.9})[1]
    centroid = np.argwhere(in_plane).mean(axis=0)
    assert abs(centroid[0] - 8.0) < 1.0
    np.testing.assert_allclose(centroid[1:], _rotated((10.0, 21.0), (15.5, 15.5), -14.0, 0.9), atol=1.0)


@pytest.mark.parametrize("shape", [(1, 20, 20), (1, 8, 20, 20)])
def test_mask_stays_binary_and_intensity_ops_leave_it_alone(shape):
    rng = np.random.default_rng(8)
    image = rng.random(shape, dtype=np.float32)
    mask = (_disk(shape[1:], [n / 2 for n in shape[1:]], 3) * 255).astype(np.uint8)
    for seed in range(5):
        _, out_mask = augment(image, mask, np.random.default_rng(seed), max_tilt=10.0)
        assert out_mask.dtype == bool and out_mask.shape == mask.shape and out_mask.any()
    intensity = {"gamma": 0.8, "intensity_scale": 1.1, "noise_std": 0.05, "noise_seed": 3}
    out, out_mask = apply_augmentation(image, mask, intensity)
    np.testing.assert_array_equal(out_mask, mask != 0)
    assert not np.array_equal(out, image)


def test_gamma_keeps_each_channel_range_in_3d():
    image = np.stack([np.linspace(0, 1, 128, dtype=np.float32).reshape(2, 8, 8),
                      np.linspace(-3, 6, 128, dtype=np.float32).reshape(2, 8, 8)])
    out, _ = apply_augmentation(image, None, {"gamma": 0.6})
    np.testing.assert_allclose(out.min(axis=(1, 2, 3)), [0, -3], atol=1e-6)
    np.testing.assert_allclose(out.max(axis=(1, 2, 3)), [1, 6], atol=1e-5)
    assert out[0, 1, 0, 0] > image[0, 1, 0, 0]  # gamma < 1 brightens mid-tones


def test_apply_leaves_the_global_generators_alone():
    import torch

    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()  # noqa: NPY002 (the legacy one)
    image = np.random.default_rng(0).random((1, 16, 16), dtype=np.float32)
    apply_augmentation(image, image[0] > 0.5, {**ALL_ON_2D, "rot90": 0})
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_bad_params_and_shapes_are_errors():
    with pytest.raises(ValueError, match="3D"):
        apply_augmentation(np.zeros((1, 8, 8), np.float32), None, {"flip_z": True})
    with pytest.raises(ValueError, match="unknown"):
        apply_augmentation(np.zeros((1, 8, 8), np.float32), None, {"angel": 3.0})
    with pytest.raises(ValueError, match="image must be"):
        apply_augmentation(np.zeros((8, 8), np.float32), None, IDENTITY)
    with pytest.raises(ValueError, match="mask shape"):
        apply_augmentation(np.zeros((1, 4, 8, 8), np.float32), np.zeros((4, 8, 9), bool), IDENTITY)


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
