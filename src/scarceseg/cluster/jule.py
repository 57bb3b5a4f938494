"""JULE for image patches: patch sampling, the recurrent forward/backward process, sub-patch projection.

Paper 001 (Moriya et al. 2018) applies JULE (Yang et al. 2016) to ``w^3`` patches of one volume:

1. **Patches** (section 2.3): ``n_s`` random patches whose centre voxel lies in the target region (the
   paper thresholds the intensity; we take a mask), standardised by the mean and SD of all patch voxels
   (:func:`sample_centres`, :func:`extract_patches`).
2. **Recurrent process** (section 2.1, JULE section 3): representations ``X = CNN(I)`` are clustered by
   graph-degree-linkage merging (forward pass, :mod:`scarceseg.cluster.gdl`) and the CNN is then
   trained with the cluster labels as targets (backward pass), period after period, until ``C``
   clusters remain; paper 001's extension (section 2.2) trains once more on the final labels
   (:func:`run_jule`).
3. **Segmentation** (section 2.5): patches on a grid of stride ``s`` (:func:`grid_centres`), their
   representations clustered by k-means, and each ``s^d`` sub-patch centred in a patch gets the patch's
   label (:func:`project_labels`).

Everything here works for 2D ``(Y, X)`` and 3D ``(Z, Y, X)`` arrays alike.

Period schedule. Each period merges ``ceil(eta * n_c)`` clusters (``eta``: JULE's unrolling rate, 0.9),
never going below ``C``. Backward pass. JULE derives a weighted triplet loss (anchor and positive from one
cluster, negative from one of its ``K_c`` nearest clusters); we use the common hinge form on cosine
similarity, ``max(0, s(a, n) - s(a, p) + margin)``, see :func:`triplet_loss`.

References
----------
.. [1] Moriya et al., "Unsupervised segmentation of 3D medical images based on clustering and deep
   representation learning", SPIE Medical Imaging 2018 (paper 001 in ``shared/papers``).
.. [2] J. Yang, D. Parikh, D. Batra, "Joint unsupervised learning of deep representations and image
   clusters", CVPR 2016.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scarceseg.cluster.gdl import GDLMerger, initial_clusters, knn_affinity


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


# ---- backward pass ---------------------------------------------------------------------------------------
def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2) -> torch.Tensor:
    """Mean of ``max(0, cos(a, n) - cos(a, p) + margin)`` over rows of unit-norm ``(B, D)`` tensors."""
    s_ap = (anchor * positive).sum(dim=1)
    s_an = (anchor * negative).sum(dim=1)
    return F.relu(s_an - s_ap + margin).mean()


def sample_triplets(labels: np.ndarray, neighbours: dict[int, np.ndarray], rng: np.random.Generator
                    ) -> np.ndarray:
    """One (anchor, positive, negative) index triple per sample, in a random order.

    The positive is another member of the anchor's cluster (the anchor itself for a singleton); the
    negative a member of one of its nearest clusters (any other cluster when it has none listed).

    Returns
    -------
    ndarray, shape (M, 3), int64
        ``M = N`` unless only one cluster exists (then 0 rows).
    """
    labels = np.asarray(labels)
    n_c = int(labels.max()) + 1
    if n_c < 2:
        return np.zeros((0, 3), dtype=np.int64)
    members = [np.flatnonzero(labels == c) for c in range(n_c)]
    anchors = rng.permutation(labels.shape[0])
    out = np.empty((anchors.size, 3), dtype=np.int64)
    for row, a in enumerate(anchors):
        c = int(labels[a])
        same = members[c]
        pos = same[rng.integers(same.size)] if same.size > 1 else a
        if same.size > 1:
            while pos == a:
                pos = same[rng.integers(same.size)]
        near = neighbours.get(c)
        if near is None or near.size == 0:
            near = np.asarray([x for x in range(n_c) if x != c])
        other = members[int(near[rng.integers(near.size)])]
        out[row] = (a, pos, other[rng.integers(other.size)])
    return out


def train_period(net: nn.Module, patches: torch.Tensor, labels: np.ndarray, neighbours: dict[int, np.ndarray],
                 epochs: int, optimizer: torch.optim.Optimizer, rng: np.random.Generator, batch_size: int = 64,
                 margin: float = 0.2) -> float:
    """Backward pass: ``epochs`` passes of triplets over all samples; returns the last epoch's mean loss."""
    net.train()
    device = next(net.parameters()).device
    last = float("nan")
    for _ in range(int(epochs)):
        triplets = sample_triplets(labels, neighbours, rng)
        if len(triplets) == 0:
            return last
        total, count = 0.0, 0
        for start in range(0, len(triplets), batch_size):
            batch = triplets[start:start + batch_size]
            uniq, inverse = np.unique(batch.ravel(), return_inverse=True)
            if uniq.size < 2:  # batch norm needs more than one sample
                continue
            emb = net(patches[torch.from_numpy(uniq)].to(device))
            inv = torch.from_numpy(inverse.reshape(batch.shape)).to(device)
            loss = triplet_loss(emb[inv[:, 0]], emb[inv[:, 1]], emb[inv[:, 2]], margin)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
            count += len(batch)
        last = total / max(count, 1)
    return last


@torch.no_grad()
def embed(net: nn.Module, patches: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Representations of standardised patches ``(N, 1, w, ...)`` in eval mode -> ``(N, D)`` float64.

    Batches are moved to the network's device; the result is on the CPU.
    """
    net.eval()
    device = next(net.parameters()).device
    out = [net(patches[i:i + batch_size].to(device)).cpu().numpy() for i in range(0, patches.shape[0], batch_size)]
    return np.concatenate(out).astype(np.float64)


# ---- the recurrent process -------------------------------------------------------------------------------
@dataclass
class JuleHistory:
    """What the recurrent process did: clusters and loss per period, seconds spent."""

    clusters: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    seconds_forward: float = 0.0
    seconds_backward: float = 0.0


def run_jule(net: nn.Module, patches: torch.Tensor, n_final: int, *, eta: float = 0.9, k_s: int = 20,
             a: float = 1.0, k_c: int = 5, lam: float = 1.0, epochs: int = 20, final_epochs: int | None = None,
             lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 5e-5, batch_size: int = 64,
             margin: float = 0.2, rng: np.random.Generator, echo: Callable[[str], None] | None = None
             ) -> tuple[np.ndarray, JuleHistory]:
    """JULE's recurrent process on standardised patches; ``net`` is trained in place.

    Parameters
    ----------
    net : torch.nn.Module
        Maps ``(B, 1, w, ...)`` to unit-norm ``(B, D)`` (e.g. :class:`~scarceseg.nets.jule_cnn.JuleCNN`).
    patches : torch.Tensor, shape (N, 1, w, w) or (N, 1, w, w, w)
    n_final : int
        ``C``, the number of clusters where merging stops (paper 001: 100 or 10).
    eta : float
        Unrolling rate: each period merges ``ceil(eta * n_c)`` clusters.
    k_s, a, k_c, lam : float
        Graph and criterion parameters, see :mod:`scarceseg.cluster.gdl`.
    epochs : int
        Triplet epochs per backward pass.
    final_epochs : int, optional
        Epochs of the extra backward pass on the final labels (paper 001, section 2.2); ``epochs`` if None,
        0 to skip it.
    lr, momentum, weight_decay : float
        SGD settings of the backward passes.
    batch_size, margin : see :func:`train_period`.
    rng : numpy.random.Generator
        Draws the triplets.
    echo : callable, optional
        Receives one line per period.

    Returns
    -------
    labels : ndarray, shape (N,), int64
        The final ``C`` clusters of the training patches.
    history : JuleHistory
    """
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    history = JuleHistory()
    labels = None
    period = 0
    while True:
        t0 = time.perf_counter()
        feats = embed(net, patches)
        w, nearest = knn_affinity(feats, k_s, a)
        if labels is None:
            labels = initial_clusters(nearest)
        merger = GDLMerger(w, labels, feats, k_c=k_c, lam=lam)
        n_c = merger.n_clusters
        target = max(int(n_final), n_c - math.ceil(eta * n_c))
        labels = merger.merge_until(target)
        neighbours = merger.neighbour_clusters()
        history.seconds_forward += time.perf_counter() - t0
        history.clusters.append(int(labels.max()) + 1)
        done = int(labels.max()) + 1 <= n_final
        n_ep = (epochs if final_epochs is None else final_epochs) if done else epochs
        t0 = time.perf_counter()
        loss = train_period(net, patches, labels, neighbours, n_ep, optimizer, rng, batch_size, margin)
        history.seconds_backward += time.perf_counter() - t0
        history.losses.append(loss)
        period += 1
        if echo is not None:
            echo(f"period {period}: {n_c} -> {history.clusters[-1]} clusters, loss {loss:.4f}")
        if done:
            return labels, history
