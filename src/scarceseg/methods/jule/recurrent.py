"""JULE's recurrent process on image patches: forward pass (merging), backward pass (triplets), periods.

Paper 001 (Moriya et al. 2018) applies JULE (Yang et al. 2016) to ``w^3`` patches of one volume
(section 2.1, JULE section 3): representations ``X = CNN(I)`` are clustered by graph-degree-linkage
merging (forward pass, :mod:`scarceseg.cluster.gdl`) and the CNN is then trained with the cluster labels
as targets (backward pass), period after period, until ``C`` clusters remain; paper 001's extension
(section 2.2) trains once more on the final labels (:func:`run_jule`).

Period schedule. Each period merges ``ceil(eta * n_c)`` clusters (``eta``: JULE's unrolling rate, 0.9),
never going below ``C``. Backward pass. JULE derives a weighted triplet loss (anchor and positive from one
cluster, negative from one of its ``K_c`` nearest clusters); we use the common hinge form on cosine
similarity, ``max(0, s(a, n) - s(a, p) + margin)``, see :func:`triplet_loss`. References: see
:mod:`scarceseg.methods.jule`.
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
