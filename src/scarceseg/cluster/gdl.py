"""Graph-degree-linkage agglomerative clustering (Zhang et al. 2012) with JULE's merging criterion.

The forward pass of JULE (Yang et al. 2016, section 3) merges clusters on a directed k-nearest-neighbour
graph of the current representations:

* sample affinity (GDL eq. 1): ``W[i, j] = exp(-||x_i - x_j||^2 / sigma^2)`` when ``x_j`` is one of the
  ``K_s`` nearest neighbours of ``x_i``, else 0, with ``sigma^2 = a * mean(||x_i - x_j||^2)`` over those
  pairs;
* cluster affinity (GDL eq. 5): ``A(Ca, Cb) = 1'W[a,b]W[b,a]1 / |Ca|^2 + 1'W[b,a]W[a,b]1 / |Cb|^2``;
* initial clusters: connected components of the 1-nearest-neighbour graph (GDL section 3.3);
* merging criterion (JULE eq. 5): merge the cluster ``Ci`` that maximises
  ``A(Ci, Ci^1) + lambda / (K_c - 1) * sum_{k=2..K_c} (A(Ci, Ci^1) - A(Ci, Ci^k))`` with its nearest
  neighbour ``Ci^1`` (``Ci^k``: the cluster with the k-th largest affinity to ``Ci``), i.e. prefer pairs
  that are close *and* stand out from the other neighbours.

The affinity bookkeeping is incremental: with ``M1[a, j] = sum_{i in a} W[i, j]`` and
``M2[a, j] = sum_{i in a} W[j, i]``, ``S[a, b] = sum_{j in b} M1[a, j] M2[a, j]`` is the first term's
numerator; merging ``a`` and ``b`` adds their ``M1``/``M2`` rows and ``S`` columns, and only the merged
row of ``S`` is recomputed (one pass over the samples). Each cluster's ``K_c`` best neighbours are cached
and refreshed only where the merge touched them.

References
----------
.. [1] W. Zhang, X. Wang, D. Zhao, X. Tang, "Graph degree linkage: agglomerative clustering on a directed
   graph", ECCV 2012.
.. [2] J. Yang, D. Parikh, D. Batra, "Joint unsupervised learning of deep representations and image
   clusters", CVPR 2016.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

DEAD = -1.0  # affinity entry of a merged-away cluster (and of the diagonal); true affinities are >= 0


def knn_affinity(features: np.ndarray, k: int = 20, a: float = 1.0) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Directed k-NN affinity graph ``W`` of GDL.

    Parameters
    ----------
    features : ndarray, shape (N, D)
    k : int
        Neighbours per sample ``K_s`` (JULE: 20); reduced to ``N - 1`` for tiny sets.
    a : float
        Scale of ``sigma^2`` (JULE: 1.0).

    Returns
    -------
    W : scipy.sparse.csr_matrix, shape (N, N)
        ``W[i, j] > 0`` only for the ``k`` nearest neighbours ``j`` of ``i`` (never ``i`` itself).
    nearest : ndarray, shape (N,), int
        Each sample's nearest neighbour (for :func:`initial_clusters`).
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples for a k-NN graph, got {n}")
    k = int(min(k, n - 1))
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors()  # X=None: each point's own row excluded
    d2 = dist ** 2
    sigma2 = a * float(d2.mean())
    weights = np.exp(-d2 / sigma2) if sigma2 > 0 else np.ones_like(d2)
    rows = np.repeat(np.arange(n), k)
    w = sparse.csr_matrix((weights.ravel(), (rows, idx.ravel())), shape=(n, n))
    return w, idx[:, 0]


def initial_clusters(nearest: np.ndarray) -> np.ndarray:
    """Connected components of the graph linking each sample to its nearest neighbour.

    Parameters
    ----------
    nearest : ndarray, shape (N,), int

    Returns
    -------
    ndarray, shape (N,), int64
        Cluster labels ``0..n_c-1`` numbered in order of first appearance.
    """
    from scipy.sparse.csgraph import connected_components

    n = nearest.shape[0]
    graph = sparse.csr_matrix((np.ones(n), (np.arange(n), nearest)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return compact(labels)


def compact(labels: np.ndarray) -> np.ndarray:
    """Renumber labels ``0..n-1`` in order of first appearance (deterministic)."""
    labels = np.asarray(labels)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse.ravel()].astype(np.int64)


class GDLMerger:
    """Agglomerative merging state over fixed sample affinities ``W`` and a starting labelling.

    Parameters
    ----------
    w : scipy.sparse matrix, shape (N, N)
        From :func:`knn_affinity`.
    labels : ndarray, shape (N,), int
        Current clusters (any integers; compacted).
    features : ndarray, shape (N, D)
        Used only when no two clusters have any affinity left (then the two closest centroids merge).
    k_c : int
        Neighbour clusters in the criterion (JULE: 5).
    lam : float
        ``lambda`` of the criterion (JULE: 1.0).
    """

    def __init__(self, w: sparse.spmatrix, labels: np.ndarray, features: np.ndarray, k_c: int = 5, lam: float = 1.0):
        self.labels = compact(labels)
        self.features = np.asarray(features, dtype=np.float64)
        self.k_c, self.lam = int(k_c), float(lam)
        n = self.labels.shape[0]
        nc = int(self.labels.max()) + 1
        w = sparse.csr_matrix(w, dtype=np.float64)
        p = sparse.csr_matrix((np.ones(n), (np.arange(n), self.labels)), shape=(n, nc))
        self.m1 = np.asarray((p.T @ w).todense())  # (nc, N)
        self.m2 = np.asarray((p.T @ w.T).todense())  # (nc, N)
        self.size = np.bincount(self.labels, minlength=nc).astype(np.float64)
        self.s = (sparse.csr_matrix(self.m1 * self.m2) @ p).toarray()  # (nc, nc)
        self.alive = np.ones(nc, dtype=bool)
        self.aff = self._affinity_full()
        self.top_idx = np.zeros((nc, self.k_c), dtype=np.int64)
        self.top_val = np.full((nc, self.k_c), DEAD)
        self._refresh(np.arange(nc))

    @property
    def n_clusters(self) -> int:
        return int(self.alive.sum())

    def _affinity_full(self) -> np.ndarray:
        inv = 1.0 / self.size ** 2
        aff = self.s * inv[:, None] + self.s.T * inv[None, :]
        aff[~self.alive, :] = DEAD
        aff[:, ~self.alive] = DEAD
        np.fill_diagonal(aff, DEAD)
        return aff

    def _refresh(self, rows: np.ndarray) -> None:
        """Recompute the cached ``K_c`` best neighbours (largest affinity first) of ``rows``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        k = min(self.k_c, self.aff.shape[1])
        block = self.aff[rows]
        part = np.argpartition(-block, k - 1, axis=1)[:, :k] if k < block.shape[1] else \
            np.tile(np.arange(block.shape[1]), (rows.size, 1))
        vals = np.take_along_axis(block, part, axis=1)
        order = np.lexsort((part, -vals), axis=1)  # largest affinity first, ties: lower index
        self.top_idx[rows, :k] = np.take_along_axis(part, order, axis=1)
        self.top_val[rows, :k] = np.take_along_axis(vals, order, axis=1)

    def scores(self) -> np.ndarray:
        """JULE's merging criterion per cluster, ``-inf`` for merged-away clusters, shape (n_c_total,)."""
        vals = np.maximum(self.top_val, 0.0)  # a missing neighbour has affinity 0
        best = vals[:, 0]
        if self.k_c > 1:
            score = best + self.lam / (self.k_c - 1) * (best[:, None] - vals[:, 1:]).sum(axis=1)
        else:
            score = best.copy()
        score[~self.alive] = -np.inf
        return score

    def _closest_centroids(self) -> tuple[int, int]:
        alive = np.flatnonzero(self.alive)
        cent = np.stack([self.features[self.labels == c].mean(axis=0) for c in alive])
        d = ((cent[:, None, :] - cent[None, :, :]) ** 2).sum(-1)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(int(np.argmin(d)), d.shape)
        return int(alive[i]), int(alive[j])

    def merge_once(self) -> tuple[int, int]:
        """Merge the best pair; returns ``(kept, removed)`` cluster ids (before compaction)."""
        if self.n_clusters < 2:
            raise ValueError("only one cluster is left")
        score = self.scores()
        i = int(np.argmax(score))
        j = int(self.top_idx[i, 0])
        if self.top_val[i, 0] <= 0 or not self.alive[j] or j == i:
            i, j = self._closest_centroids()
        a, b = min(i, j), max(i, j)
        self.labels[self.labels == b] = a
        self.size[a] += self.size[b]
        self.m1[a] += self.m1[b]
        self.m2[a] += self.m2[b]
        self.s[:, a] += self.s[:, b]
        self.s[a] = np.bincount(self.labels, weights=self.m1[a] * self.m2[a], minlength=self.s.shape[1])
        self.alive[b] = False
        self.m1[b] = 0.0
        self.m2[b] = 0.0
        self.aff[b, :] = DEAD
        self.aff[:, b] = DEAD
        alive = self.alive
        row = np.where(alive, self.s[a] / self.size[a] ** 2 + self.s[:, a] / self.size ** 2, DEAD)
        row[a] = DEAD
        self.aff[a, :] = row
        self.aff[:, a] = row
        touched = np.any((self.top_idx == a) | (self.top_idx == b), axis=1)
        entering = row > self.top_val[:, -1]
        rows = np.flatnonzero((touched | entering) & alive)
        self._refresh(np.union1d(rows, [a]))
        self.top_val[b] = DEAD
        return a, b

    def merge_until(self, n_clusters: int) -> np.ndarray:
        """Merge until ``n_clusters`` clusters remain; returns the compacted labels, shape (N,)."""
        while self.n_clusters > max(1, int(n_clusters)):
            self.merge_once()
        return compact(self.labels)

    def neighbour_clusters(self) -> dict[int, np.ndarray]:
        """Compacted cluster id -> ids of its up to ``K_c`` nearest clusters by affinity (best first)."""
        alive = np.flatnonzero(self.alive)
        new_id = {int(old): int(new) for new, old in enumerate(_order_of_appearance(self.labels))}
        out = {}
        for old in alive:
            ids = [new_id[int(c)] for c, v in zip(self.top_idx[old], self.top_val[old], strict=True)
                   if v >= 0 and int(c) in new_id and int(c) != old]
            out[new_id[int(old)]] = np.asarray(ids, dtype=np.int64)
        return out


def _order_of_appearance(labels: np.ndarray) -> np.ndarray:
    """The cluster ids present in ``labels``, in the order :func:`compact` numbers them."""
    ids, first = np.unique(labels, return_index=True)
    return ids[np.argsort(first)]


def gdl_cluster(features: np.ndarray, n_clusters: int, k_s: int = 20, a: float = 1.0, k_c: int = 5,
                lam: float = 1.0) -> np.ndarray:
    """Plain agglomerative clustering of ``features`` into ``n_clusters`` (JULE's forward pass, one period).

    Parameters
    ----------
    features : ndarray, shape (N, D)
    n_clusters : int
    k_s, a, k_c, lam : see :func:`knn_affinity` and :class:`GDLMerger`.

    Returns
    -------
    ndarray, shape (N,), int64
        Labels ``0..n_clusters-1`` (fewer when the 1-NN components are fewer than ``n_clusters``).
    """
    w, nearest = knn_affinity(features, k_s, a)
    merger = GDLMerger(w, initial_clusters(nearest), features, k_c=k_c, lam=lam)
    return merger.merge_until(n_clusters)
