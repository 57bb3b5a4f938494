"""Paper 001's patches: sampling in the target region, cutting, the stride grid and sub-patch projection.

1. **Patches** (section 2.3): ``n_s`` random patches whose centre voxel lies in the target region (the
   paper thresholds the intensity; we take a mask), standardised by the mean and SD of all patch voxels
   (:func:`sample_centres`, :func:`extract_patches`).
2. **Segmentation** (section 2.5): patches on a grid of stride ``s`` (:func:`grid_centres`), and each
   ``s^d`` sub-patch centred in a patch gets the patch's label (:func:`project_labels`).

Everything here works for 2D ``(Y, X)`` and 3D ``(Z, Y, X)`` arrays alike.
"""

from __future__ import annotations

import math

import numpy as np


# ---- patches ---------------------------------------------------------------------------------------------
def sample_centres(region: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct voxels of ``region`` drawn uniformly (all of them when the region is smaller).

    Parameters
    ----------
    region : ndarray, shape (Y, X) or (Z, Y, X), bool
    n : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n, ndim), int64
        Voxel coordinates, sorted in raster order.
    """
    flat = np.flatnonzero(np.asarray(region, dtype=bool))
    if flat.size == 0:
        raise ValueError("the region is empty: no patch centre to sample")
    pick = flat if flat.size <= n else np.sort(rng.choice(flat, size=n, replace=False))
    return np.stack(np.unravel_index(pick, region.shape), axis=1).astype(np.int64)


def fill_outside(image: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``image`` with every voxel outside ``region`` replaced by the value of the nearest region voxel.

    Patches that cross the region's edge then see the tissue continued instead of the background (e.g.
    the constant value outside a skull-stripped brain); without it every patch on the edge looks alike
    and the edge becomes a cluster of its own.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
    region : ndarray of the same shape, bool, not empty

    Returns
    -------
    ndarray, same shape, float32
    """
    from scipy import ndimage

    region = np.asarray(region, dtype=bool)
    image = np.asarray(image, dtype=np.float32)
    if region.all():
        return image.copy()
    idx = ndimage.distance_transform_edt(~region, return_distances=False, return_indices=True)
    return image[tuple(idx)]


def pad_for_patches(image: np.ndarray, patch: int) -> np.ndarray:
    """``image`` padded by ``patch // 2`` on every side (edge values), so any voxel can be a patch centre."""
    return np.pad(np.asarray(image, dtype=np.float32), patch // 2, mode="edge")


def extract_patches(padded: np.ndarray, centres: np.ndarray, patch: int) -> np.ndarray:
    """Cut ``patch``-sided patches centred on ``centres`` out of an image padded by :func:`pad_for_patches`.

    Parameters
    ----------
    padded : ndarray, shape (Y + 2h, X + 2h) or (Z + 2h, Y + 2h, X + 2h), ``h = patch // 2``
    centres : ndarray, shape (N, ndim), int
        Centres in the *unpadded* image's coordinates. For an even ``patch`` the centre is the voxel just
        after the middle.
    patch : int

    Returns
    -------
    ndarray, shape (N, patch, patch) or (N, patch, patch, patch), float32
    """
    centres = np.asarray(centres, dtype=np.int64)
    ndim = padded.ndim
    offsets = np.stack(np.meshgrid(*([np.arange(patch)] * ndim), indexing="ij"), axis=-1).reshape(-1, ndim)
    # centre c in the unpadded image is c + h in the padded one; the patch starts at c + h - h = c
    idx = centres[:, None, :] + offsets[None, :, :]  # (N, patch^d, ndim)
    return padded[tuple(idx[..., d] for d in range(ndim))].reshape((len(centres),) + (patch,) * ndim)


def grid_centres(region: np.ndarray, stride: int) -> np.ndarray:
    """Centres of the ``stride``-sided sub-patches that tile the image and touch ``region``.

    The tiles start at 0 along every axis; tile ``t`` covers ``[t*s, (t+1)*s)`` and its centre is
    ``t*s + s//2`` (clipped to the image for a partial last tile). Tiles without a region voxel are left out.

    Parameters
    ----------
    region : ndarray, shape (Y, X) or (Z, Y, X), bool
    stride : int
        ``s`` (paper 001: 5).

    Returns
    -------
    ndarray, shape (N, ndim), int64
    """
    region = np.asarray(region, dtype=bool)
    s = int(stride)
    if s < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    tiles = tuple(math.ceil(n / s) for n in region.shape)
    padded = np.zeros(tuple(t * s for t in tiles), dtype=bool)
    padded[tuple(slice(0, n) for n in region.shape)] = region
    blocks = padded.reshape(sum(((t, s) for t in tiles), ())).any(axis=tuple(range(1, 2 * region.ndim, 2)))
    t_idx = np.argwhere(blocks)
    centres = t_idx * s + s // 2
    return np.minimum(centres, np.asarray(region.shape) - 1).astype(np.int64)


def project_labels(labels: np.ndarray, centres: np.ndarray, shape: tuple[int, ...], stride: int,
                   region: np.ndarray | None = None) -> np.ndarray:
    """Paint each ``stride``-sided sub-patch with its patch's label (paper 001, section 2.5, Figure 3).

    Parameters
    ----------
    labels : ndarray, shape (N,), int
        One label per centre (e.g. ``1..K``).
    centres : ndarray, shape (N, ndim), int
        From :func:`grid_centres` with the same ``stride``.
    shape : tuple of int
        Spatial shape of the output.
    stride : int
    region : ndarray of ``shape``, bool, optional
        Voxels outside it are set to 0.

    Returns
    -------
    ndarray of ``shape``, int32
        0 where no sub-patch (or outside ``region``).
    """
    s = int(stride)
    out = np.zeros(shape, dtype=np.int32)
    tiles = np.asarray(centres, dtype=np.int64) // s
    ndim = len(shape)
    offsets = np.stack(np.meshgrid(*([np.arange(s)] * ndim), indexing="ij"), axis=-1).reshape(-1, ndim)
    vox = tiles[:, None, :] * s + offsets[None]  # (N, s^d, ndim)
    inside = np.all(vox < np.asarray(shape), axis=-1)
    vals = np.broadcast_to(np.asarray(labels, dtype=np.int32)[:, None], inside.shape)
    out[tuple(vox[inside][:, d] for d in range(ndim))] = vals[inside]
    if region is not None:
        out[~np.asarray(region, dtype=bool)] = 0
    return out
