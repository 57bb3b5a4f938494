"""Corrective refiners on the pretrained prior, each with a locality guarantee.

All follow :class:`scarceseg.interactive.refiners.Refiner`: ``refine(image, prob, clicks, init=None,
spacing=None) -> prob`` on ``(Y, X)`` slices, or on ``(Z, Y, X)`` volumes where only the slices of the
newest clicks are refined.

* :class:`PriorPromptRefiner` (``prior``) — re-prompts LiteMedSAM with the box of the initial mask, every
  click as a point (positive 1, negative 0) and its own previous low-resolution logits as the mask prompt.
* :class:`PriorMinCutRefiner` (``prior-mincut``) — Boykov-Jolly graph cut whose unary terms are the
  prior's probabilities (``init``, the prior's output after the first gesture) instead of a flat 0.6/0.4,
  clicks as hard seeds.
* :class:`PriorIterMRLRefiner` (``prior-itermrl``) — paper 002's IteR-MRL started from the prior's
  probability map; it needs a trained IteR-MRL model folder (``scarceseg bench itermrl`` writes one).

**Locality** (:func:`localise`). Whatever the underlying method proposes, only the change asked for by
the newest click(s) is kept: a positive click may only *add* object, a negative click may only *remove*
it, and only inside the connected region of that change which holds the click, within a reach of three
times the click's distance to the current boundary (at least 6, at most 48 pixels; :func:`reach`).
Everything else keeps its previous probability exactly. The click's own pixel (a disk of
``seed_radius``) always takes the click's label, so every click changes something. This is what keeps one
positive click from shrinking a mask and one negative click from emptying it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from scarceseg.errors import InputError
from scarceseg.interactive.clicks import Click
from scarceseg.interactive.refiners import MinCutRefiner, check_inputs

THRESHOLD = 0.5


# ---- locality -------------------------------------------------------------------------------------
def newest_clicks(clicks: Sequence[Click]) -> list[Click]:
    """The clicks of the highest step; with every step equal (e.g. all 0), only the last click."""
    if not clicks:
        return []
    top = max(c.step for c in clicks)
    newest = [c for c in clicks if c.step == top]
    return newest if len(newest) < len(clicks) or top > 0 else [clicks[-1]]


def disk(shape: tuple[int, int], centre: Sequence[int], radius: float) -> np.ndarray:
    """Bool ``(Y, X)`` disk of ``radius`` pixels around ``centre`` ``(y, x)``."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - int(centre[0])) ** 2 + (xx - int(centre[1])) ** 2 <= float(radius) ** 2


def allowed_change(prev: np.ndarray, new: np.ndarray, click: Click, radius: float) -> np.ndarray:
    """Pixels a click may flip: the connected change of its sign that holds it, within ``radius`` of it.

    Parameters
    ----------
    prev, new : ndarray of bool, shape (Y, X)
        Mask before and the mask a method proposes after the click.
    click : Click
        2D click; positive: only additions (``new & ~prev``), negative: only removals (``prev & ~new``).
    radius : float
        Pixels farther than this from the click never change.

    Returns
    -------
    ndarray of bool, shape (Y, X)
    """
    change = (new & ~prev) if click.positive else (prev & ~new)
    change &= disk(prev.shape, click.position, radius)
    if not change[click.position]:
        return np.zeros_like(change)
    labels, _ = ndimage.label(change)
    return labels == labels[click.position]


def reach(prev_mask: np.ndarray, click: Click, radius: float, scale: float, min_radius: float) -> float:
    """How far a click may change the mask: ``scale`` times its distance to the current boundary.

    A positive click's distance to the mask (a negative one's to the outside) is the depth of the error
    it corrects as the click sees it, so the reach grows with the error; it is clipped to
    ``[min_radius, radius]``.
    """
    other = ~prev_mask if not click.positive else prev_mask
    if not other.any():
        return float(radius)
    # distance from the click to the nearest pixel of the other label
    ys, xs = np.nonzero(other)
    d = float(np.sqrt(np.min((ys - click.position[0]) ** 2 + (xs - click.position[1]) ** 2)))
    return float(np.clip(scale * d, min_radius, radius))


def localise(prev: np.ndarray, proposed: np.ndarray, clicks: Sequence[Click], radius: float = 48.0,
             seed_radius: float = 2.0, scale: float | None = None, min_radius: float = 6.0) -> np.ndarray:
    """Keep only the local change each newest click asks for (see the module docstring).

    Parameters
    ----------
    prev, proposed : ndarray of float, shape (Y, X)
        Probability before the clicks and the probability a method proposes.
    clicks : sequence of Click
        The newest clicks (2D positions).
    radius, seed_radius : float
        Largest reach of a click and the disk that always takes its label, in pixels.
    scale, min_radius : float, optional
        With ``scale``, a click reaches ``scale`` times its distance to the current boundary
        (:func:`reach`), at least ``min_radius`` and at most ``radius``; without, ``radius``.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        ``prev`` everywhere except in the allowed change (``proposed`` there) and the click disks (1 or 0).
    """
    prev = np.asarray(prev, dtype=np.float32)
    proposed = np.asarray(proposed, dtype=np.float32)
    prev_mask, new_mask = prev > THRESHOLD, proposed > THRESHOLD
    out = prev.copy()
    for c in clicks:
        r = radius if scale is None else reach(prev_mask, c, radius, scale, min_radius)
        keep = allowed_change(prev_mask, new_mask, c, r)
        out[keep] = proposed[keep]
    for c in clicks:  # the click's own neighbourhood takes its label, later clicks winning
        seed = disk(prev.shape, c.position, seed_radius)
        out[seed] = 1.0 if c.positive else 0.0
    return out


def _per_slice(refine_2d, image, prob, clicks, init):
    """Run a 2D refinement on the slices of the newest clicks of a ``(Z, Y, X)`` volume."""
    out = np.asarray(prob, dtype=np.float32).copy()
    newest = newest_clicks(clicks)
    for z in sorted({c.position[0] for c in newest}):
        on_slice = [Click(c.position[1:], c.positive, c.step) for c in clicks if c.position[0] == z]
        out[z] = refine_2d(image[z], prob[z], on_slice, None if init is None else init[z])
    return out


@dataclass
class _LocalRefiner:
    """Shared frame: input checks, 3D by slice, locality around the newest clicks."""

    radius: float = 48.0  # our choice: pixels beyond this distance from a click never change
    seed_radius: float = 2.0  # our choice: the click's disk always takes its label
    scale: float | None = 3.0  # our choice: reach = 3 x the click's distance to the boundary (None: radius)
    min_radius: float = 6.0  # our choice: the smallest reach
    local: bool = True  # False: the method's raw proposal (the ablation of the benchmark)

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        check_inputs(image, prob, clicks)
        image, prob = np.asarray(image), np.asarray(prob, dtype=np.float32)
        if not clicks:
            return prob.copy()
        if image.ndim == 3:
            return _per_slice(self._refine_2d, image, prob, clicks, init)
        return self._refine_2d(image, prob, list(clicks), init)

    def _refine_2d(self, image, prob, clicks, init) -> np.ndarray:
        proposed = self.propose(image, prob, clicks, prob if init is None else np.asarray(init, np.float32))
        if not self.local:
            return np.asarray(proposed, np.float32)
        return localise(prob, proposed, newest_clicks(clicks), self.radius, self.seed_radius, self.scale,
                        self.min_radius)

    def propose(self, image: np.ndarray, prob: np.ndarray, clicks: list[Click], init: np.ndarray) -> np.ndarray:
        raise NotImplementedError


# ---- re-prompting the prior -------------------------------------------------------------------------
def _prob_to_lowres_logits(prob: np.ndarray, embedding) -> np.ndarray:
    """A ``(256, 256)`` mask prompt from a probability map on the original grid (clipped logits)."""
    from scarceseg.prior.model import LOWRES_SIZE

    new_h, new_w = embedding.resized_shape
    zoom = (new_h / prob.shape[0], new_w / prob.shape[1])
    small = np.clip(ndimage.zoom(np.asarray(prob, np.float32), zoom, order=1), 1e-4, 1 - 1e-4)
    logits = np.full((LOWRES_SIZE, LOWRES_SIZE), -10.0, dtype=np.float32)
    h, w = min(small.shape[0], LOWRES_SIZE), min(small.shape[1], LOWRES_SIZE)
    logits[:h, :w] = np.clip(np.log(small / (1 - small)), -10, 10)[:h, :w]
    return logits


@dataclass
class PriorPromptRefiner(_LocalRefiner):
    """Re-prompt LiteMedSAM with box + clicks as points + its previous low-res logits, then localise.

    The box is the bounding box of the initial mask (``init > 0.5``, else ``prob``) grown by ``margin``
    and by any positive click outside it. The logits of each output are kept (keyed by the content of
    the probability this refiner returned), so the next call on that probability feeds them back as the
    mask prompt; for a probability it did not produce, the prompt is that probability's clipped logits.

    Parameters
    ----------
    prior : LiteMedSAM, optional
        Defaults to the process-wide prior (:func:`scarceseg.prior.get_prior`) on first use.
    """

    prior: Any = None
    margin: int = 5  # as the benchmark's box gesture: truth box + 5 px
    use_logits: bool = True
    name: str = "prior"
    memory: int = 64
    _logits: OrderedDict = field(default_factory=OrderedDict, init=False, repr=False)

    def _prior(self):
        if self.prior is None:
            from scarceseg.prior import get_prior

            self.prior = get_prior()
        return self.prior

    def remember(self, prob: np.ndarray, logits: np.ndarray) -> None:
        """Keep ``logits`` (256x256) as the mask prompt for a later call whose ``prob`` is this array."""
        from scarceseg.prior.model import image_key

        self._logits[image_key(np.asarray(prob, np.float32))] = np.asarray(logits, np.float32)
        while len(self._logits) > self.memory:
            self._logits.popitem(last=False)

    def _box(self, prob, init, clicks):
        from scarceseg.prior.prompts import box_from_mask, clamp_box

        box = box_from_mask(init > THRESHOLD, self.margin) or box_from_mask(prob > THRESHOLD, self.margin)
        ys = [c.position[0] for c in clicks if c.positive]
        xs = [c.position[1] for c in clicks if c.positive]
        if box is None and not ys:
            return None
        m = 0 if box is not None else self.margin
        if box is not None:
            ys, xs = ys + [box[0], box[2]], xs + [box[1], box[3]]
        return clamp_box((min(ys) - m, min(xs) - m, max(ys) + m, max(xs) + m), prob.shape)

    def decode(self, image, prob, clicks, init):
        """The prior's raw output for these prompts (before locality)."""
        from scarceseg.prior.model import image_key

        prior = self._prior()
        embedding = prior.embed(image)
        logits = None
        if self.use_logits:
            logits = self._logits.get(image_key(np.asarray(prob, np.float32)))
            if logits is None:
                logits = _prob_to_lowres_logits(prob, embedding)
        return prior.decode(embedding, box=self._box(prob, init, clicks), points=[c.position for c in clicks],
                            labels=[int(c.positive) for c in clicks], mask_logits=logits)[0]

    def propose(self, image, prob, clicks, init):
        return self.decode(image, prob, clicks, init).prob

    def _refine_2d(self, image, prob, clicks, init) -> np.ndarray:
        out = self.decode(image, prob, clicks, prob if init is None else np.asarray(init, np.float32))
        result = (localise(prob, out.prob, newest_clicks(clicks), self.radius, self.seed_radius, self.scale,
                           self.min_radius) if self.local
                  else out.prob)
        if self.use_logits:
            self.remember(result, out.logits)
        return result


# ---- Min-Cut on the prior's probabilities -----------------------------------------------------------
@dataclass
class PriorMinCutRefiner(_LocalRefiner):
    """Boykov-Jolly Min-Cut with the prior's probabilities as unary terms, clicks as hard seeds, localised.

    The unary terms come from ``init`` (the prior's output after the first gesture) and, where earlier
    clicks already changed the mask, from the current ``prob``: ``max`` of the two inside the current mask,
    ``min`` outside, so earlier corrections are not undone by the cut. ``eps`` is smaller than the app's
    Min-Cut (0.05), since the prior's probabilities are calibrated better than a candidate's 0.6/0.4.
    """

    lam: float = 2.0  # as interactive.refiners.MinCutRefiner
    eps: float = 0.02  # our choice
    name: str = "prior-mincut"

    def propose(self, image, prob, clicks, init):
        mask = prob > THRESHOLD
        unary = np.where(mask, np.maximum(init, prob), np.minimum(init, prob)).astype(np.float32)
        cut = MinCutRefiner(lam=self.lam, seed_radius=self.seed_radius, eps=self.eps)
        return cut.refine(image, unary, clicks, init=unary)


# ---- IteR-MRL from the prior ------------------------------------------------------------------------
ITERMRL_ENV = "SCARCESEG_ITERMRL_MODEL"


@dataclass
class PriorIterMRLRefiner(_LocalRefiner):
    """Paper 002's IteR-MRL, started from the prior's probability map, localised.

    Parameters
    ----------
    model : str or IterMRL, optional
        A trained IteR-MRL model folder (``config.json`` format ``scarceseg.iter_mrl``) or a loaded model;
        defaults to the folder named by the environment variable ``SCARCESEG_ITERMRL_MODEL``.

    Raises
    ------
    InputError
        On first use, when no model is given.
    """

    model: Any = None
    name: str = "prior-itermrl"

    def _model(self):
        if self.model is None:
            self.model = os.environ.get(ITERMRL_ENV) or None
        if self.model is None:
            raise InputError(None, "prior-itermrl needs a trained IteR-MRL model: train one with "
                             f"`scarceseg bench itermrl` and pass its folder (or set {ITERMRL_ENV})")
        if isinstance(self.model, (str, os.PathLike)):
            from scarceseg.methods.registry import load_refiner

            self.model = load_refiner(self.model)
        return self.model

    def propose(self, image, prob, clicks, init):
        return self._model().refine(image, prob, clicks, init=init)


SOFT_EPS = 0.35  # our choice: between the app's flat Min-Cut (0.4 / 0.6) and prior-mincut's 0.02

# name -> class, constructed without arguments (or with ``prior=``); one line each in a registry
PRIOR_REFINERS: dict[str, type] = {
    "prior": PriorPromptRefiner,
    "prior-mincut": PriorMinCutRefiner,
    "prior-itermrl": PriorIterMRLRefiner,
}


def make_refiner(name: str, prior: Any = None, **options: Any):
    """A prior refiner by name (:data:`PRIOR_REFINERS`); ``<name>-global`` is the same without locality,
    ``<name>-fixed`` the same with a fixed reach (``radius``, 48 px) instead of one scaled by the click's depth;
    ``prior-mincut-soft`` is prior-mincut with unaries clipped to ``[SOFT_EPS, 1 - SOFT_EPS]`` (near the app's
    flat 0.4 / 0.6, but in the prior's order).

    Raises
    ------
    KeyError
        For a name that is not a prior refiner.
    """
    base, local = (name[: -len("-global")], False) if name.endswith("-global") else (name, True)
    if base.endswith("-fixed"):  # a fixed reach (radius) instead of one scaled by the click's depth
        base, options["scale"] = base[: -len("-fixed")], None
    if base == "prior-mincut-soft":  # softer unaries: the prior's probabilities clipped to [0.35, 0.65]
        base, options["eps"] = "prior-mincut", SOFT_EPS
    if base not in PRIOR_REFINERS:
        raise KeyError(f"unknown prior refiner {name!r}; known: {', '.join(PRIOR_REFINERS)} (or with -global)")
    if base == "prior" and prior is not None:
        options["prior"] = prior
    refiner = PRIOR_REFINERS[base](local=local, **options)
    refiner.name = name
    return refiner
