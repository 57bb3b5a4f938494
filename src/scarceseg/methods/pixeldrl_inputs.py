"""PixelDRL-MG's inputs: a raw slice normalised and resized to the agents' grid, masks at that grid, and the
seeded augmentation and batching of training (:mod:`scarceseg.methods.pixeldrl`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.preprocess.intensity import normalise


def prepare_image(image: np.ndarray, size: int, normalisation: str = "percentile") -> np.ndarray:
    """Normalise each channel and resize (area) to ``size`` x ``size``: (C, Y, X) -> (C, size, size) float32."""
    x = normalise(np.asarray(image, dtype=np.float32), normalisation)
    t = torch.from_numpy(np.ascontiguousarray(x))[None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="area")
    return t[0].numpy().astype(np.float32)


def prepare_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a binary mask (Y, X) to (size, size): area average > 0.5."""
    t = torch.from_numpy((np.asarray(mask) != 0).astype(np.float32))[None, None]
    if t.shape[-2:] != (size, size):
        t = F.interpolate(t, size=(size, size), mode="area")
    return t[0, 0].numpy() > 0.5


def augment_batch(x: np.ndarray, g: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded flips and quarter turns of (B, C, S, S) images and (B, S, S) masks."""
    xs, gs = [], []
    for xi, gi in zip(x, g, strict=True):
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        xi, gi = np.rot90(xi, k, axes=(1, 2)), np.rot90(gi, k)
        if flip:
            xi, gi = xi[:, :, ::-1], gi[:, ::-1]
        xs.append(np.ascontiguousarray(xi))
        gs.append(np.ascontiguousarray(gi))
    return np.stack(xs), np.stack(gs)


def flip_batch(x: tuple[np.ndarray, np.ndarray], g: np.ndarray, rng: np.random.Generator
                ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Seeded left-right / up-down flips of prior inputs ``(embedding (B, E, h, w), extra (B, K, S, S))`` and
    masks (B, S, S); the embedding is flipped on its own grid, like the few-shot learner's augmentation."""
    es, xs, gs = [], [], []
    for e, xi, gi in zip(*x, g, strict=True):
        fy, fx = (bool(v) for v in rng.integers(2, size=2))
        if fx:
            e, xi, gi = e[..., ::-1], xi[..., ::-1], gi[..., ::-1]
        if fy:
            e, xi, gi = e[..., ::-1, :], xi[..., ::-1, :], gi[::-1]
        es.append(np.ascontiguousarray(e))
        xs.append(np.ascontiguousarray(xi))
        gs.append(np.ascontiguousarray(gi))
    return (np.stack(es), np.stack(xs)), np.stack(gs)


def take(x, idx):
    """Rows ``idx`` of an input batch (each array of a prior input tuple)."""
    return tuple(a[idx] for a in x) if isinstance(x, tuple) else x[idx]


def to_torch(x, device):
    """An input batch as float32 tensor(s) on ``device``."""
    if isinstance(x, tuple):
        return tuple(to_torch(a, device) for a in x)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)


def grid_of(x):
    """The tensor whose (B, ..., S, S) shape, dtype and device the agents' state takes: the image, or for prior
    inputs the ``extra`` channels at the agents' grid."""
    return x[-1] if isinstance(x, tuple) else x
