"""Refiners: anything that turns (image, current probability, clicks) into a new probability.

Every refiner follows :class:`Refiner`: ``refine(image, prob, clicks, init=None, spacing=None) -> prob``
on plain numpy arrays, 2D ``(Y, X)`` or 3D ``(Z, Y, X)``; the session and the benchmark only talk to
this protocol. ``clicks`` are *all* clicks given so far (the refiner decides what to do with old ones);
``init`` is the initial probability of the sequence (the R-Net-style baseline and min-cut refine that,
not the previous output).

* :class:`MinCutRefiner` — Boykov & Jolly's interactive graph cut (PyMaxflow): unary terms from the
  initial probability, contrast-sensitive pairwise terms, clicks as hard seeds.
* :class:`IdentityRefiner` — changes nothing (the "initial" row of a table).
* trained models (:class:`scarceseg.methods.iter_mrl.IterMRL`,
  :class:`scarceseg.methods.interactive_baselines.SupervisedRefiner`) implement the protocol themselves;
  :func:`scarceseg.methods.registry.load_refiner` opens any saved one (this module knows no method above it).

References
----------
.. [1] Y. Boykov, M.-P. Jolly, "Interactive graph cuts for optimal boundary & region segmentation of
   objects in N-D images", ICCV 2001.
.. [2] Y. Boykov, V. Kolmogorov, "An experimental comparison of min-cut/max-flow algorithms for energy
   minimization in vision", IEEE TPAMI 26(9), 2004.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from scarceseg.interactive.clicks import Click


@runtime_checkable
class Refiner(Protocol):
    """What the session and the benchmark need from a refinement method."""

    name: str

    def refine(
        self,
        image: np.ndarray,
        prob: np.ndarray,
        clicks: Sequence[Click],
        init: np.ndarray | None = None,
        spacing: Sequence[float] | None = None,
    ) -> np.ndarray:
        """One refinement step.

        Parameters
        ----------
        image : ndarray, shape (Y, X) or (Z, Y, X)
            One raw channel (refiners normalise it themselves).
        prob : ndarray of float, same shape
            Current object probability in [0, 1].
        clicks : sequence of Click
            All clicks so far.
        init : ndarray, optional
            Initial probability of the sequence (defaults to ``prob``).
        spacing : sequence of float, optional

        Returns
        -------
        ndarray of float32, same shape, in [0, 1]
        """
        ...


def zscore(image: np.ndarray) -> np.ndarray:
    """``(image - mean) / std`` of one channel as float32 (std 0 -> 1)."""
    image = np.asarray(image, dtype=np.float32)
    std = float(image.std())
    return (image - float(image.mean())) / (std if std > 0 else 1.0)


def check_inputs(image: np.ndarray, prob: np.ndarray, clicks: Sequence[Click]) -> None:
    """Raise ValueError when shapes disagree or a click lies outside the image."""
    image, prob = np.asarray(image), np.asarray(prob)
    if image.ndim not in (2, 3):
        raise ValueError(f"image must be (Y, X) or (Z, Y, X), got shape {image.shape}")
    if prob.shape != image.shape:
        raise ValueError(f"probability {prob.shape} and image {image.shape} differ in shape")
    for c in clicks:
        if len(c.position) != image.ndim or any(not 0 <= v < n for v, n in zip(c.position, image.shape, strict=True)):
            raise ValueError(f"click at {c.position} is outside an image of shape {image.shape}")


@dataclass
class IdentityRefiner:
    """Returns the probability unchanged."""

    name: str = "initial"

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        return np.asarray(prob, dtype=np.float32).copy()


def seed_masks(shape: tuple[int, ...], clicks: Sequence[Click], radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Object and background seed masks: a ball of ``radius`` voxels around each click.

    Returns
    -------
    fg, bg : ndarray of bool, shape ``shape``
        A voxel claimed by both keeps the *later* click's label.
    """
    fg = np.zeros(shape, dtype=bool)
    bg = np.zeros(shape, dtype=bool)
    r = int(np.floor(radius))
    for c in clicks:
        lo = [max(0, p - r) for p in c.position]
        hi = [min(n, p + r + 1) for p, n in zip(c.position, shape, strict=True)]
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        ball = sum((g - p) ** 2 for g, p in zip(grids, c.position, strict=True)) <= radius * radius
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        (fg if c.positive else bg)[sl] |= ball
        (bg if c.positive else fg)[sl] &= ~ball
    return fg, bg


@dataclass
class MinCutRefiner:
    """Interactive graph cut (Boykov & Jolly 2001) on the 4/6-connected grid, solved with PyMaxflow.

    Energy: ``sum_p D_p(l_p) + lam * sum_{p~q} w_pq [l_p != l_q]`` with ``D_p(obj) = -log p``,
    ``D_p(bg) = -log(1 - p)`` (``p`` the *initial* probability clipped to ``[eps, 1 - eps]``) and
    ``w_pq = exp(-beta (I_p - I_q)^2) / |p - q|``, ``beta = 1 / (2 mean((I_p - I_q)^2))`` (GrabCut's
    choice). Clicks become hard seeds: a ball of ``seed_radius`` voxels is forced to its label.

    Parameters
    ----------
    lam : float
        Weight of the smoothness term.
    seed_radius : float
        Radius of the seed ball around each click, in voxels.
    eps : float
        Probabilities are clipped to ``[eps, 1 - eps]``: a network's near-0/1 outputs would otherwise make
        the unary terms so large that nothing but the seeds could change (our choice).
    """

    lam: float = 2.0
    seed_radius: float = 2.0
    eps: float = 0.05
    name: str = "mincut"

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        import maxflow

        check_inputs(image, prob, clicks)
        im = zscore(image).astype(np.float64)
        p = np.clip(np.asarray(prob if init is None else init, dtype=np.float64), self.eps, 1.0 - self.eps)
        spacing = tuple(spacing) if spacing is not None else (1.0,) * im.ndim
        diffs = [np.diff(im, axis=a) for a in range(im.ndim)]
        mean_sq = np.mean(np.concatenate([(d * d).ravel() for d in diffs]))
        beta = 1.0 / (2.0 * mean_sq) if mean_sq > 0 else 0.0
        g = maxflow.Graph[float]()
        ids = g.add_grid_nodes(im.shape)
        for a, d in enumerate(diffs):
            w = np.zeros(im.shape)
            sl = tuple(slice(0, -1) if k == a else slice(None) for k in range(im.ndim))
            w[sl] = self.lam * np.exp(-beta * d * d) / spacing[a]
            structure = np.zeros((3,) * im.ndim)
            structure[tuple(2 if k == a else 1 for k in range(im.ndim))] = 1
            g.add_grid_edges(ids, weights=w, structure=structure, symmetric=True)
        # source side = object: the source capacity is paid when a voxel ends on the sink (background) side
        to_source = -np.log(1.0 - p)
        to_sink = -np.log(p)
        fg, bg = seed_masks(im.shape, clicks, self.seed_radius)
        big = 1e9
        to_source[fg], to_sink[fg] = big, 0.0
        to_source[bg], to_sink[bg] = 0.0, big
        g.add_grid_tedges(ids, to_source, to_sink)
        g.maxflow()
        return (~g.get_grid_segments(ids)).astype(np.float32)
