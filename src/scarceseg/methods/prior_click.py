"""One click → one mask through the prior: the strategies compared by ``scarceseg bench prior-click``.

LiteMedSAM was trained with boxes and all but ignores a lone point, so a click has to become a box.
Each strategy takes the prior, a ``(Y, X)`` image and a click ``(y, x)`` and returns a
:class:`ClickResult` (probability, the box used, the low-res logits for later corrections):

* ``reboxed`` — :func:`scarceseg.prior.prompts.click_to_box` as it is: square boxes of several sizes,
  each mask's part at the click re-boxed once, the most self-consistent and best-scored kept.
* ``iou-head`` — the square boxes alone, the one the model's IoU head scores highest.
* ``point-boxes`` — as ``reboxed``, with the click also given as a positive point in every prompt.
* ``grow`` — the size comes from the image: the smoothed image is split by Otsu's threshold in a window
  around the click, the click's side's connected region is boxed (+5 px), given to the prior, re-boxed once.
* ``vote`` — the ``grow`` box and the re-boxed squares together, chosen as ``reboxed`` chooses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from scarceseg.prior.prompts import Box, box_around, box_from_mask, clamp_box, component_at

HALVES = (8, 12, 16, 24, 32, 48)  # square half-sizes tried around a click (as click_to_box)
MARGIN = 5  # pixels added around a mask's box when it is re-boxed (as the benchmark's box gesture)


@dataclass(frozen=True)
class ClickResult:
    """``prob`` ``(Y, X)``, the ``box`` finally given to the prior, its ``logits`` ``(256, 256)``, a ``score``."""

    prob: np.ndarray
    box: Box | None
    logits: np.ndarray
    score: float


def _rebox(prior, embedding, point, box, with_point: bool) -> ClickResult | None:
    """Prompt ``box``, box the part at the click again, prompt that; scored by agreement + IoU head."""
    pts = dict(points=[tuple(point)], labels=[1]) if with_point else {}
    first = prior.decode(embedding, box=box, **pts)[0]
    part = component_at(first.prob > 0.5, point)
    second_box = box_from_mask(part, MARGIN)
    if second_box is None:
        return None
    second = prior.decode(embedding, box=second_box, **pts)[0]
    mask2 = second.prob > 0.5
    if not mask2[tuple(int(v) for v in point)]:
        return None
    union = np.logical_or(part, mask2).sum()
    stability = float(np.logical_and(part, mask2).sum() / union) if union else 0.0
    return ClickResult(second.prob, second_box, second.logits, stability + second.iou)


def _best(results: Sequence[ClickResult | None], fallback: Callable[[], ClickResult]) -> ClickResult:
    kept = [r for r in results if r is not None]
    return max(kept, key=lambda r: r.score) if kept else fallback()


def _fallback(prior, embedding, point, shape) -> Callable[[], ClickResult]:
    def run() -> ClickResult:
        box = box_around(point, HALVES[len(HALVES) // 2], shape)
        out = prior.decode(embedding, box=box)[0]
        return ClickResult(out.prob, box, out.logits, out.iou)

    return run


def grow_box(image: np.ndarray, point: Sequence[int], half: int = 48, sigma: float = 1.0) -> Box | None:
    """Box (+``MARGIN``) of the click's Otsu side's connected region in a ``2 half + 1`` window, or None.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
    point : (y, x)
    """
    from skimage.filters import threshold_otsu

    y, x = (int(v) for v in point)
    y0, x0, y1, x1 = clamp_box((y - half, x - half, y + half, x + half), image.shape)
    window = ndimage.gaussian_filter(np.asarray(image, np.float32), sigma)[y0 : y1 + 1, x0 : x1 + 1]
    if float(window.max()) <= float(window.min()):
        return None
    t = threshold_otsu(window)
    side = window > t if window[y - y0, x - x0] > t else window <= t
    region = component_at(side, (y - y0, x - x0))
    if not region[y - y0, x - x0] or region.sum() > 0.6 * region.size:
        return None
    box = box_from_mask(region, 0)
    return clamp_box((box[0] + y0 - MARGIN, box[1] + x0 - MARGIN, box[2] + y0 + MARGIN, box[3] + x0 + MARGIN),
                     image.shape)


def click_to_mask(prior, image: np.ndarray, point: Sequence[int], method: str = "vote") -> ClickResult:
    """One click ``(y, x)`` on a ``(Y, X)`` image → the prior's mask, by one of :data:`CLICK_METHODS`."""
    if method not in CLICK_METHODS:
        raise ValueError(f"unknown click method {method!r}; choose one of {', '.join(CLICK_METHODS)}")
    image = np.asarray(image)
    shape = image.shape[-2:]
    embedding = prior.embed(image)
    point = tuple(int(v) for v in point)
    fallback = _fallback(prior, embedding, point, shape)
    if method == "iou-head":
        outs = []
        for half in HALVES:
            box = box_around(point, half, shape)
            out = prior.decode(embedding, box=box)[0]
            outs.append(ClickResult(out.prob, box, out.logits, out.iou))
        return _best(outs, fallback)
    if method in ("reboxed", "point-boxes"):
        return _best([_rebox(prior, embedding, point, box_around(point, h, shape), method == "point-boxes")
                      for h in HALVES], fallback)
    grown = grow_box(image if image.ndim == 2 else image.mean(axis=0), point)
    grown_result = None if grown is None else _rebox(prior, embedding, point, grown, False)
    if method == "grow":
        return grown_result if grown_result is not None else click_to_mask(prior, image, point, "reboxed")
    squares = [_rebox(prior, embedding, point, box_around(point, h, shape), False) for h in HALVES]
    return _best([grown_result, *squares], fallback)


CLICK_METHODS = ("reboxed", "iou-head", "point-boxes", "grow", "vote")  # vote last: the bench reuses grow, reboxed
