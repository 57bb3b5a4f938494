"""Prompts for the prior: boxes from masks and clicks, and MedSAM's slice-to-slice 3D propagation.

Boxes are ``(y0, x0, y1, x1)``, inclusive pixel indices on the image grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import ndimage

from scarceseg.errors import InputError
from scarceseg.prior.model import LiteMedSAM

Box = tuple[int, int, int, int]


def clamp_box(box: Sequence[float], shape: tuple[int, int]) -> Box:
    """``box`` clipped to the image and ordered; raises on an empty or malformed box."""
    if len(box) != 4:
        raise InputError(None, f"a box has 4 numbers (y0, x0, y1, x1), got {len(box)}")
    y0, x0, y1, x1 = (int(round(float(v))) for v in box)
    y0, y1 = sorted((y0, y1))
    x0, x1 = sorted((x0, x1))
    height, width = shape
    y0, y1 = max(0, y0), min(height - 1, y1)
    x0, x1 = max(0, x0), min(width - 1, x1)
    if y0 > y1 or x0 > x1:
        raise InputError(None, f"box {tuple(box)} lies outside the {height}x{width} image")
    return (y0, x0, y1, x1)


def box_from_mask(mask: np.ndarray, margin: int = 0) -> Box | None:
    """Bounding box of a 2D mask grown by ``margin`` pixels (clipped), or None for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    return clamp_box((ys.min() - margin, xs.min() - margin, ys.max() + margin, xs.max() + margin), mask.shape)


def box_around(point: Sequence[int], half: int, shape: tuple[int, int]) -> Box:
    """A square box of half-size ``half`` centred on ``point`` ``(y, x)``, clipped to the image."""
    y, x = (int(v) for v in point)
    return clamp_box((y - half, x - half, y + half, x + half), shape)


def component_at(mask: np.ndarray, point: Sequence[int]) -> np.ndarray:
    """The connected component of ``mask`` that holds ``point``; the largest one when none does."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    k = labels[tuple(int(v) for v in point)]
    if k == 0:
        k = int(np.argmax(np.bincount(labels.ravel())[1:])) + 1
    return labels == k


def click_to_box(
    prior: LiteMedSAM,
    image: np.ndarray,
    point: Sequence[int],
    halves: Sequence[int] = (8, 12, 16, 24, 32, 48),
    margin: int = 5,
) -> tuple[Box, np.ndarray]:
    """Turn one click into a box prompt: square boxes of several sizes around it, each mask re-boxed once.

    Each square box gives a mask; the part of it connected to the click is boxed again (+``margin``) and
    re-prompted, so that the box fits the object rather than the guess. Among the sizes, the result
    whose re-prompted mask agrees best with its first mask (IoU, the self-consistency of the prompt)
    and scores highest on the model's IoU head is kept.

    Returns
    -------
    box : (y0, x0, y1, x1)
        The chosen box.
    prob : ndarray
        ``(Y, X)`` probability from that box.
    """
    shape = np.asarray(image).shape[-2:]
    embedding = prior.embed(image)
    best = None
    for half in halves:
        first = prior.decode(embedding, box=box_around(point, half, shape))[0]
        part = component_at(first.prob > 0.5, point)
        box = box_from_mask(part, margin)
        if box is None:
            continue
        second = prior.decode(embedding, box=box)[0]
        mask2 = second.prob > 0.5
        if not mask2[tuple(int(v) for v in point)]:
            continue
        union = np.logical_or(part, mask2).sum()
        stability = float(np.logical_and(part, mask2).sum() / union) if union else 0.0
        score = stability + second.iou
        if best is None or score > best[0]:
            best = (score, box, second.prob)
    if best is None:  # nothing contained the click: the mid-size square as it is
        box = box_around(point, halves[len(halves) // 2], shape)
        return box, prior.decode(embedding, box=box)[0].prob
    return best[1], best[2]


def contrast(image: np.ndarray, mask: np.ndarray, ring: int = 5) -> float:
    """Contrast of a mask against the ring around it: ``|mean_in - mean_ring| / std_ring``."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return 0.0
    around = ndimage.binary_dilation(mask, iterations=ring) & ~mask
    if not around.any():
        return 0.0
    outside = image[around]
    return float(abs(image[mask].mean() - outside.mean()) / (outside.std() + 1e-6))


def propagate_volume(
    prior: LiteMedSAM,
    volume: np.ndarray,
    z: int,
    box: Sequence[int],
    margin: int = 5,
    min_area: int = 10,
    threshold: float = 0.5,
    min_relative_contrast: float = 0.3,
    z_range: tuple[int, int] | None = None,
    on_slice: Callable[[int], None] | None = None,
) -> np.ndarray:
    """MedSAM's 3D protocol: a box on slice ``z``, then each neighbour's box from the previous slice's mask.

    Propagation runs in both directions and stops where the mask vanishes (fewer than ``min_area``
    pixels), at the ends of ``z_range`` when one is given (MedSAM's 3D box), or where the mask stops
    standing out from its surroundings: a box always gets *some* mask from the prior, even on a slice
    with nothing in it, so a slice whose mask has less than ``min_relative_contrast`` times the first
    slice's contrast against the ring around it (:func:`contrast`) ends the propagation.

    Parameters
    ----------
    volume : ndarray
        ``(Z, Y, X)`` one channel.
    z : int
        The slice the box was drawn on.
    box : (y0, x0, y1, x1)
        Inclusive box on slice ``z``.

    Returns
    -------
    ndarray
        ``(Z, Y, X)`` float32 probabilities (0 on slices not reached).
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(None, f"propagation needs a (Z, Y, X) volume, got shape {volume.shape}")
    if not 0 <= z < volume.shape[0]:
        raise InputError(None, f"slice {z} is outside the volume's {volume.shape[0]} slices")
    lo, hi = (0, volume.shape[0] - 1) if z_range is None else (max(0, z_range[0]), min(volume.shape[0] - 1, z_range[1]))
    prob = np.zeros(volume.shape, dtype=np.float32)
    start = prior.predict(volume[z], box=clamp_box(box, volume.shape[1:])).prob
    prob[z] = start
    first_contrast = contrast(volume[z], start > threshold)
    if on_slice:
        on_slice(z)
    for step in (-1, 1):
        previous = start > threshold
        k = z + step
        while lo <= k <= hi and previous.sum() >= min_area:
            next_box = box_from_mask(previous, margin)
            out = prior.predict(volume[k], box=next_box).prob
            mask = out > threshold
            if mask.sum() < min_area:
                break
            if contrast(volume[k], mask) < min_relative_contrast * first_contrast:
                break
            prob[k] = out
            if on_slice:
                on_slice(k)
            previous = mask
            k += step
    return prob
