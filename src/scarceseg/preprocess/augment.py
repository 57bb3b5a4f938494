"""Seeded 2D augmentation: first *sample* the parameters with an ``rng``, then *apply* them deterministically.

The split follows TorchIO's random transforms: :func:`sample_augmentation` draws a plain ``dict`` of
numbers (JSON-serialisable, so it can be logged and replayed) and :func:`apply_augmentation` is a pure
function of ``(image, mask, params)``. :func:`augment` does both.

Operations, applied in this order:

1. spatial, to image and mask alike: flip along Y, flip along X, ``k`` quarter turns
   (:func:`numpy.rot90` on the ``(Y, X)`` axes, counter-clockwise as displayed), then a small rotation
   by ``angle`` degrees (counter-clockwise) with isotropic ``scale`` (> 1 zooms in) about the image
   centre. Flips and quarter turns move pixels exactly; the small affine is bilinear for the image
   and bilinear-then-threshold-at-0.5 for the mask, and is skipped entirely when
   ``angle == 0 and scale == 1``.
2. intensity, to the image only, per channel: gamma on the channel's own min..max range
   (the range is kept), multiplication by ``intensity_scale``, then additive Gaussian noise of
   standard deviation ``noise_std`` drawn from ``numpy.random.default_rng(noise_seed)``.

Intensity parameters assume the image has been normalised first (e.g. to ``[0, 1]`` by
:func:`scarceseg.preprocess.intensity.percentile_scale`), so ``noise_std`` is in those units.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

IDENTITY: dict = {
    "flip_y": False,
    "flip_x": False,
    "rot90": 0,
    "angle": 0.0,
    "scale": 1.0,
    "gamma": 1.0,
    "intensity_scale": 1.0,
    "noise_std": 0.0,
    "noise_seed": 0,
}
"""Parameters that leave image and mask unchanged."""


def sample_augmentation(
    rng: np.random.Generator,
    *,
    p_flip: float = 0.5,
    rot90: bool = True,
    p_affine: float = 0.5,
    max_angle: float = 15.0,
    scale_range: tuple[float, float] = (0.9, 1.1),
    p_gamma: float = 0.5,
    gamma_range: tuple[float, float] = (0.7, 1.5),
    p_intensity_scale: float = 0.5,
    intensity_scale_range: tuple[float, float] = (0.9, 1.1),
    p_noise: float = 0.5,
    max_noise_std: float = 0.05,
) -> dict:
    """Draw one set of augmentation parameters.

    Every call consumes the same number of draws from ``rng`` whatever the outcome, so the parameter
    stream of a seed does not depend on the probabilities chosen.

    Parameters
    ----------
    rng : numpy.random.Generator
    p_flip : float
        Probability of each flip (Y and X independently).
    rot90 : bool
        Draw a uniform number of quarter turns ``k`` in 0..3 (only sensible for square images,
        since odd ``k`` swaps the axes); ``k = 0`` when False.
    p_affine : float
        Probability of the small rotation + scaling.
    max_angle : float
        Rotation angle drawn uniformly in ``[-max_angle, max_angle]`` degrees.
    scale_range : (float, float)
        Isotropic scale drawn uniformly in this range.
    p_gamma : float
        Probability of a gamma change.
    gamma_range : (float, float)
        Gamma drawn log-uniformly in this range.
    p_intensity_scale : float
        Probability of a multiplicative intensity change.
    intensity_scale_range : (float, float)
        Factor drawn uniformly in this range.
    p_noise : float
        Probability of additive Gaussian noise.
    max_noise_std : float
        Noise standard deviation drawn uniformly in ``[0, max_noise_std]``.

    Returns
    -------
    dict
        Keys as in :data:`IDENTITY`; plain Python ``bool``/``int``/``float`` values.
    """
    u = rng.random(7)  # one coin per optional operation, always drawn
    k = int(rng.integers(0, 4))
    angle = float(rng.uniform(-max_angle, max_angle))
    scale = float(rng.uniform(*scale_range))
    gamma = float(np.exp(rng.uniform(np.log(gamma_range[0]), np.log(gamma_range[1]))))
    factor = float(rng.uniform(*intensity_scale_range))
    noise_std = float(rng.uniform(0.0, max_noise_std))
    noise_seed = int(rng.integers(0, 2**31 - 1))
    affine = bool(u[2] < p_affine)
    noise = bool(u[6] < p_noise)
    return {
        "flip_y": bool(u[0] < p_flip),
        "flip_x": bool(u[1] < p_flip),
        "rot90": k if rot90 else 0,
        "angle": angle if affine else 0.0,
        "scale": scale if affine else 1.0,
        "gamma": gamma if u[3] < p_gamma else 1.0,
        "intensity_scale": factor if u[4] < p_intensity_scale else 1.0,
        "noise_std": noise_std if noise else 0.0,
        "noise_seed": noise_seed if noise else 0,
    }


def _affine_matrix(angle: float, scale: float) -> np.ndarray:
    """Output->input matrix on (y, x) coordinates: counter-clockwise rotation by ``angle`` degrees, zoom ``scale``."""
    t = np.deg2rad(angle)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, s], [-s, c]]) / scale


def _warp(plane: np.ndarray, matrix: np.ndarray, cval: float) -> np.ndarray:
    centre = (np.asarray(plane.shape, dtype=np.float64) - 1.0) / 2.0
    offset = centre - matrix @ centre
    return ndimage.affine_transform(plane, matrix, offset=offset, order=1, mode="constant", cval=cval)


def apply_augmentation(
    image: np.ndarray, mask: np.ndarray | None, params: dict
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply sampled parameters to an image and its mask; deterministic.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    mask : ndarray, shape (Y, X), or None
        Binary mask (any dtype; non-zero is foreground).
    params : dict
        As returned by :func:`sample_augmentation`; missing keys take their :data:`IDENTITY` value.

    Returns
    -------
    image : ndarray of float32, shape (C, Y, X), or (C, X, Y) after an odd number of quarter turns
    mask : ndarray of bool, the image's spatial shape, or None when ``mask`` is None
    """
    p = {**IDENTITY, **params}
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"image must be (C, Y, X), got shape {image.shape}")
    if mask is not None:
        mask = np.asarray(mask) != 0
        if mask.shape != image.shape[1:]:
            raise ValueError(f"mask shape {mask.shape} differs from image spatial shape {image.shape[1:]}")

    # 1. spatial
    if p["flip_y"]:
        image = image[:, ::-1, :]
        mask = None if mask is None else mask[::-1, :]
    if p["flip_x"]:
        image = image[:, :, ::-1]
        mask = None if mask is None else mask[:, ::-1]
    k = int(p["rot90"]) % 4
    if k:
        image = np.rot90(image, k, axes=(1, 2))
        mask = None if mask is None else np.rot90(mask, k)
    if float(p["angle"]) != 0.0 or float(p["scale"]) != 1.0:
        matrix = _affine_matrix(float(p["angle"]), float(p["scale"]))
        image = np.stack([_warp(ch, matrix, float(ch.min())) for ch in image])
        if mask is not None:
            mask = _warp(mask.astype(np.float32), matrix, 0.0) >= 0.5
    image = np.ascontiguousarray(image, dtype=np.float32)
    mask = None if mask is None else np.ascontiguousarray(mask)

    # 2. intensity
    gamma = float(p["gamma"])
    if gamma != 1.0:
        lo = image.min(axis=(1, 2), keepdims=True)
        span = image.max(axis=(1, 2), keepdims=True) - lo
        safe = np.where(span > 0, span, 1.0)
        image = np.where(span > 0, lo + span * ((image - lo) / safe) ** gamma, image).astype(np.float32)
    if float(p["intensity_scale"]) != 1.0:
        image = image * np.float32(p["intensity_scale"])
    if float(p["noise_std"]) > 0.0:
        noise = np.random.default_rng(int(p["noise_seed"])).standard_normal(image.shape)
        image = (image + float(p["noise_std"]) * noise).astype(np.float32)
    return image, mask


def augment(
    image: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator, **sample_kwargs
) -> tuple[np.ndarray, np.ndarray | None]:
    """Sample parameters with ``rng`` and apply them: ``apply_augmentation(image, mask, sample_augmentation(rng))``.

    Parameters
    ----------
    image : ndarray, shape (C, Y, X)
    mask : ndarray, shape (Y, X), or None
    rng : numpy.random.Generator
    **sample_kwargs
        Passed to :func:`sample_augmentation` (probabilities and ranges).

    Returns
    -------
    image : ndarray of float32, shape (C, Y, X) (axes swapped after odd quarter turns of a non-square image)
    mask : ndarray of bool or None
    """
    return apply_augmentation(image, mask, sample_augmentation(rng, **sample_kwargs))
