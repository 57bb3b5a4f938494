"""Chan-Vese's active-contour-without-edges (ACWE) energy as a training loss, and the label loss of paper 003.

Paper 003 (Chen & Frey) trains a ConvNet ``f`` whose output ``f(g) > 0`` is the inside of the contour
by minimising the two-phase piecewise-constant Mumford-Shah energy of Chan & Vese (paper 003 eq. 2, with
``mu = 0``, ``lambda1 = lambda2 = 1``, ``nu = 0.004``)::

    L_ACWE = nu * Area(f > 0) + lambda1 * sum_{f > 0} (g - c1)^2 + lambda2 * sum_{f <= 0} (g - c2)^2

with ``c1``, ``c2`` the mean intensities inside and outside. The hard indicator ``[f > 0]`` has no
gradient, so, as Chan & Vese do for their level-set evolution, we replace it by a smooth Heaviside
``H(f)`` (:func:`heaviside`):

* ``"sigmoid"`` (default): ``H(f) = 1 / (1 + exp(-f / eps))``;
* ``"arctan"``: Chan & Vese's ``H(f) = 1/2 + arctan(f / eps) / pi``, whose heavy tails keep a gradient
  on every pixel;
* ``"clip"``: ``clip(f + 1/2, 0, 1)``, the authors' public code's ``clip(f, 0, 1)`` shifted so that
  ``H(0) = 1/2`` (no gradient outside ``[-1/2, 1/2]``).

Every variant gives ``H(0) = 1/2``, so ``H > 1/2`` exactly where ``f > 0`` (the paper's rule). The soft
energy is ``E(H) = sum H (g - c1)^2 + (1 - H)(g - c2)^2 + nu H`` with ``c1 = sum(H g) / sum(H)``,
``c2 = sum((1 - H) g) / sum(1 - H)``; for a binary ``H`` it equals eq. 2.

Two choices of ours (named in the functions below):

* **Region of interest.** Every sum runs over a region of interest ``roi`` only (paper 003 uses the
  whole image). A two-phase energy over a whole MR slice separates the head from the air; inside the
  brain it can find a hyperintense lesion (see :mod:`scarceseg.methods.acwe`).
* **Normalisation.** Each image's energy is divided by its number of ROI pixels (a mean instead of
  the paper's sum), and the batch loss is the mean over images. For one image this only rescales the
  energy (same minimiser, ``nu`` keeps its per-pixel meaning); it makes every image weigh the same
  whatever its ROI size, and the loss independent of the resolution.

The optional label loss (paper 003 eq. 3) is the active-contour loss of Chen et al. (CVPR 2019) that
the paper cites and the authors' code implements: a length term plus the region term with the fixed
constants ``c1 = 1`` (inside) and ``c2 = 0`` (outside) compared with the label ``u``::

    L_label = sum |grad H(f)| + sum H(f) (1 - u)^2 + sum (1 - H(f)) (0 - u)^2

(The formula printed as eq. 3 in paper 003 lost its first ``H`` factor; as printed it is linear in
``f`` and unbounded below.) It is normalised like ``L_ACWE``.

:func:`acwe_energy_numpy` and :func:`label_loss_numpy` are plain numpy references of both losses for
one image, used by the tests and by the benchmark to compare the energy that each method reaches.

References
----------
.. [1] T. F. Chan and L. A. Vese, "Active contours without edges", IEEE Trans. Image Process. 10(2),
   266-277, 2001.
.. [2] J. Chen and E. C. Frey, "An unsupervised learning model for medical image segmentation"
   (paper 003 in ``shared/papers``), MIDL 2020 short paper, eq. 2-3.
.. [3] X. Chen, B. M. Williams, S. R. Vallabhaneni, G. Czanner, R. Williams, Y. Zheng, "Learning
   active contour models for medical image segmentation", CVPR 2019.
"""

from __future__ import annotations

import math

import numpy as np
import torch

HEAVISIDES = ("sigmoid", "arctan", "clip")
TINY = 1e-6  # added to the phase areas so an empty phase gives c = 0 instead of 0/0
LENGTH_EPS = 1e-8  # inside the square root of the length term, as in Chen et al. 2019


# ---- smooth Heaviside ----------------------------------------------------------------------------
def heaviside(f: torch.Tensor, kind: str = "sigmoid", eps: float = 1.0) -> torch.Tensor:
    """Smooth Heaviside of network scores: ``H(f)`` in ``[0, 1]`` with ``H(0) = 1/2``.

    Parameters
    ----------
    f : Tensor, any shape
        Scores; ``f > 0`` is inside (foreground).
    kind : {"sigmoid", "arctan", "clip"}
        See the module docstring. ``"clip"`` ignores ``eps``.
    eps : float
        Width of the transition (``> 0``).

    Returns
    -------
    Tensor, same shape as ``f``
    """
    if kind == "sigmoid":
        return torch.sigmoid(f / eps)
    if kind == "arctan":
        return 0.5 + torch.atan(f / eps) / math.pi
    if kind == "clip":
        return torch.clamp(f + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown Heaviside {kind!r}; choose one of {HEAVISIDES}")


def heaviside_numpy(f: np.ndarray, kind: str = "sigmoid", eps: float = 1.0) -> np.ndarray:
    """numpy twin of :func:`heaviside` (float64)."""
    f = np.asarray(f, dtype=np.float64)
    if kind == "sigmoid":
        return 0.5 * (1.0 + np.tanh(f / (2.0 * eps)))
    if kind == "arctan":
        return 0.5 + np.arctan(f / eps) / np.pi
    if kind == "clip":
        return np.clip(f + 0.5, 0.0, 1.0)
    raise ValueError(f"unknown Heaviside {kind!r}; choose one of {HEAVISIDES}")


# ---- torch losses --------------------------------------------------------------------------------
def _as_b1yx(x: torch.Tensor, name: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be (B, 1, Y, X) or (B, Y, X), got shape {tuple(x.shape)}")
    return x


def _roi_like(roi: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if roi is None:
        return torch.ones_like(ref)
    roi = _as_b1yx(roi, "roi").to(dtype=ref.dtype)
    if roi.shape != ref.shape:
        raise ValueError(f"roi shape {tuple(roi.shape)} differs from {tuple(ref.shape)}")
    return roi


def length_term(h: torch.Tensor, roi: torch.Tensor) -> torch.Tensor:
    """Per-image ``sum sqrt(dx^2 + dy^2 + 1e-8)`` of ``h`` over pixels whose forward neighbours are in the ROI.

    Parameters
    ----------
    h, roi : Tensor, shape (B, 1, Y, X)

    Returns
    -------
    Tensor, shape (B,)
    """
    dy = h[:, :, 1:, :-1] - h[:, :, :-1, :-1]
    dx = h[:, :, :-1, 1:] - h[:, :, :-1, :-1]
    inside = roi[:, :, :-1, :-1] * roi[:, :, 1:, :-1] * roi[:, :, :-1, 1:]
    return (torch.sqrt(dx * dx + dy * dy + LENGTH_EPS) * inside).flatten(1).sum(1)


def acwe_terms(
    scores: torch.Tensor,
    image: torch.Tensor,
    roi: torch.Tensor | None = None,
    nu: float = 0.004,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    mu: float = 0.0,
    kind: str = "sigmoid",
    eps: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Per-image pieces of the soft ACWE energy (sums over the ROI, not normalised).

    Parameters
    ----------
    scores : Tensor, shape (B, 1, Y, X) or (B, Y, X)
        Network output ``f``.
    image : Tensor, same shape
        Intensities ``g`` (paper 003: scaled to [0, 1], so that ``nu`` means what it says).
    roi : Tensor of bool or float, same shape, optional
        Pixels the energy is summed over (default: all).
    nu, lambda1, lambda2, mu : float
        Weights of area, inside fit, outside fit and length (paper 003: 0.004, 1, 1, 0).
    kind, eps :
        Smooth Heaviside, see :func:`heaviside`.

    Returns
    -------
    dict of Tensor, each shape (B,)
        ``energy``, ``fit_in``, ``fit_out``, ``area`` (sum of ``H``), ``length``, ``c1``, ``c2``,
        ``n_roi``.
    """
    f = _as_b1yx(scores, "scores")
    g = _as_b1yx(image, "image").to(dtype=f.dtype)
    if g.shape != f.shape:
        raise ValueError(f"image shape {tuple(g.shape)} differs from scores shape {tuple(f.shape)}")
    w = _roi_like(roi, f)
    h = heaviside(f, kind, eps) * w
    o = w - h  # outside weight, zero outside the ROI
    area_in = h.flatten(1).sum(1)
    area_out = o.flatten(1).sum(1)
    c1 = (h * g).flatten(1).sum(1) / (area_in + TINY)
    c2 = (o * g).flatten(1).sum(1) / (area_out + TINY)
    fit_in = (h * (g - c1.view(-1, 1, 1, 1)) ** 2).flatten(1).sum(1)
    fit_out = (o * (g - c2.view(-1, 1, 1, 1)) ** 2).flatten(1).sum(1)
    length = length_term(h, w) if mu else torch.zeros_like(area_in)
    energy = lambda1 * fit_in + lambda2 * fit_out + nu * area_in + mu * length
    return {"energy": energy, "fit_in": fit_in, "fit_out": fit_out, "area": area_in, "length": length,
            "c1": c1, "c2": c2, "n_roi": w.flatten(1).sum(1)}


def acwe_loss(
    scores: torch.Tensor,
    image: torch.Tensor,
    roi: torch.Tensor | None = None,
    nu: float = 0.004,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    mu: float = 0.0,
    kind: str = "sigmoid",
    eps: float = 1.0,
) -> torch.Tensor:
    """Paper 003 eq. 2 with a smooth Heaviside: mean over the batch of each image's energy per ROI pixel.

    Parameters are those of :func:`acwe_terms`.

    Returns
    -------
    Tensor, scalar
    """
    terms = acwe_terms(scores, image, roi, nu=nu, lambda1=lambda1, lambda2=lambda2, mu=mu, kind=kind, eps=eps)
    return (terms["energy"] / terms["n_roi"].clamp_min(1.0)).mean()


def label_loss(
    scores: torch.Tensor,
    target: torch.Tensor,
    roi: torch.Tensor | None = None,
    kind: str = "sigmoid",
    eps: float = 1.0,
    length_weight: float = 1.0,
) -> torch.Tensor:
    """Paper 003 eq. 3 (Chen et al. 2019's active-contour loss), per ROI pixel, mean over the batch.

    Parameters
    ----------
    scores : Tensor, shape (B, 1, Y, X) or (B, Y, X)
    target : Tensor, same shape
        Binary label ``u`` (1 = foreground).
    roi : Tensor, same shape, optional
    kind, eps :
        Smooth Heaviside, see :func:`heaviside`.
    length_weight : float
        Weight of ``sum |grad H|`` (1 in Chen et al. and in the authors' code).

    Returns
    -------
    Tensor, scalar
    """
    f = _as_b1yx(scores, "scores")
    u = _as_b1yx(target, "target").to(dtype=f.dtype)
    if u.shape != f.shape:
        raise ValueError(f"target shape {tuple(u.shape)} differs from scores shape {tuple(f.shape)}")
    w = _roi_like(roi, f)
    h = heaviside(f, kind, eps)
    region = (w * (h * (1.0 - u) ** 2 + (1.0 - h) * u**2)).flatten(1).sum(1)
    total = region + length_weight * length_term(h * w, w) if length_weight else region
    return (total / w.flatten(1).sum(1).clamp_min(1.0)).mean()


# ---- numpy references (one image) ----------------------------------------------------------------
def _check_pair(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must be (Y, X) of one shape, got {a.shape} and {b.shape}")
    return a, b


def _length_numpy(h: np.ndarray, w: np.ndarray) -> float:
    dy = h[1:, :-1] - h[:-1, :-1]
    dx = h[:-1, 1:] - h[:-1, :-1]
    inside = w[:-1, :-1] * w[1:, :-1] * w[:-1, 1:]
    return float((np.sqrt(dx * dx + dy * dy + LENGTH_EPS) * inside).sum())


def acwe_energy_numpy(
    h: np.ndarray,
    image: np.ndarray,
    roi: np.ndarray | None = None,
    nu: float = 0.004,
    lambda1: float = 1.0,
    lambda2: float = 1.0,
    mu: float = 0.0,
    normalise: bool = False,
) -> float:
    """ACWE energy of one image for an inside map ``h`` (binary mask or soft ``H(f)``).

    Parameters
    ----------
    h : ndarray, shape (Y, X)
        Inside indicator in [0, 1] (a bool mask gives the paper's hard eq. 2).
    image : ndarray, shape (Y, X)
    roi : ndarray of bool, shape (Y, X), optional
        Pixels summed over (default: all).
    nu, lambda1, lambda2, mu : float
        As in :func:`acwe_terms`.
    normalise : bool
        Divide by the number of ROI pixels (what :func:`acwe_loss` reports); False gives eq. 2's sum.

    Returns
    -------
    float
    """
    h, g = _check_pair(h, image, ("h", "image"))
    w = np.ones_like(g) if roi is None else np.asarray(roi, dtype=np.float64)
    if w.shape != g.shape:
        raise ValueError(f"roi shape {w.shape} differs from image shape {g.shape}")
    h = h * w
    o = w - h
    c1 = float((h * g).sum() / (h.sum() + TINY))
    c2 = float((o * g).sum() / (o.sum() + TINY))
    energy = (lambda1 * (h * (g - c1) ** 2).sum() + lambda2 * (o * (g - c2) ** 2).sum() + nu * h.sum())
    if mu:
        energy += mu * _length_numpy(h, w)
    return float(energy / max(w.sum(), 1.0)) if normalise else float(energy)


def label_loss_numpy(h: np.ndarray, target: np.ndarray, roi: np.ndarray | None = None,
                     length_weight: float = 1.0, normalise: bool = False) -> float:
    """:func:`label_loss` of one image for an inside map ``h`` in [0, 1] and a binary ``target``."""
    h, u = _check_pair(h, target, ("h", "target"))
    w = np.ones_like(u) if roi is None else np.asarray(roi, dtype=np.float64)
    total = float((w * (h * (1.0 - u) ** 2 + (1.0 - h) * u**2)).sum())
    if length_weight:
        total += length_weight * _length_numpy(h * w, w)
    return total / max(w.sum(), 1.0) if normalise else total


# ---- classical baselines on the same input -------------------------------------------------------
CLASSICAL = ("chan_vese", "morphological_chan_vese")
#: scikit-image's defaults for ``chan_vese`` (mu is its length weight; it has no area term).
CHAN_VESE_PARAMS = {"mu": 0.25, "lambda1": 1.0, "lambda2": 1.0, "tol": 1e-3, "max_num_iter": 500, "dt": 0.5,
                    "init_level_set": "checkerboard"}
#: ``morphological_chan_vese`` (Marquez-Neila et al. 2014): 100 iterations of the morphological operators.
MORPH_CHAN_VESE_PARAMS = {"num_iter": 100, "init_level_set": "checkerboard", "smoothing": 1, "lambda1": 1.0,
                          "lambda2": 1.0}


def pick_phase(mask: np.ndarray, image: np.ndarray, roi: np.ndarray | None = None,
               foreground: str = "bright") -> np.ndarray:
    """Of the two phases ``mask`` and ``~mask`` (inside ``roi``), the one with the brighter (or darker) mean.

    Parameters
    ----------
    mask : ndarray of bool, shape (Y, X)
    image : ndarray, shape (Y, X)
    roi : ndarray of bool, shape (Y, X), optional
    foreground : {"bright", "dark"}

    Returns
    -------
    ndarray of bool, shape (Y, X)
        The chosen phase, restricted to ``roi``; a phase that is empty inside the ROI is never chosen
        when the other is not.
    """
    if foreground not in ("bright", "dark"):
        raise ValueError(f"foreground must be 'bright' or 'dark', got {foreground!r}")
    mask = np.asarray(mask, dtype=bool)
    image = np.asarray(image, dtype=np.float64)
    roi = np.ones(mask.shape, dtype=bool) if roi is None else np.asarray(roi, dtype=bool)
    inside, outside = mask & roi, ~mask & roi
    if not inside.any() or not outside.any():
        return inside if inside.any() else outside
    brighter_inside = image[inside].mean() >= image[outside].mean()
    return inside if brighter_inside == (foreground == "bright") else outside


def classical_acwe(x: np.ndarray, roi: np.ndarray | None = None, method: str = "chan_vese",
                   foreground: str = "bright", **params) -> np.ndarray:
    """scikit-image's Chan-Vese (or its morphological variant) on one prepared image, foreground by brightness.

    The two phases of a level-set segmentation have no meaning of their own (which one is "inside"
    depends on the initial level set), so the foreground is the phase with the brighter mean inside the
    ROI (:func:`pick_phase`), the same rule as for the unsupervised ConvNet.

    Parameters
    ----------
    x : ndarray, shape (Y, X)
        Prepared intensities (:func:`scarceseg.preprocess.roi.prepare`).
    roi : ndarray of bool, shape (Y, X), optional
        The result is restricted to it.
    method : {"chan_vese", "morphological_chan_vese"}
    foreground : {"bright", "dark"}
    **params
        Override :data:`CHAN_VESE_PARAMS` / :data:`MORPH_CHAN_VESE_PARAMS`.

    Returns
    -------
    ndarray of bool, shape (Y, X)
    """
    from skimage.segmentation import chan_vese, morphological_chan_vese

    x = np.asarray(x, dtype=np.float64)
    if method == "chan_vese":
        seg = chan_vese(x, **{**CHAN_VESE_PARAMS, **params})
    elif method == "morphological_chan_vese":
        kw = {**MORPH_CHAN_VESE_PARAMS, **params}
        seg = morphological_chan_vese(x, kw.pop("num_iter"), **kw).astype(bool)
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {CLASSICAL}")
    return pick_phase(seg, x, roi, foreground)
