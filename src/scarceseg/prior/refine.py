"""A corrective refiner on top of the prior: re-prompt LiteMedSAM with box + clicks + the previous mask.

This is the browser app's and the CLI's default refiner until a measured one replaces it by name
(``"prior"``; see :func:`scarceseg.methods.prompted.resolve_refiner`). It follows the
:class:`~scarceseg.interactive.refiners.Refiner` protocol, so sessions, undo/redo and replay treat it as any
other refiner.

One step:

1. the box is the initial mask's bounding box (+``margin``), grown to hold every positive click;
2. the prior decodes box + every click (label 1 / 0) + the current probability as its low-resolution
   mask prompt;
3. *locality*: only changes that lie within ``radius`` of the newest click and belong to a changed region
   touching it are taken; the rest of the mask stays exactly as it was;
4. every click's seed disc (``seed_radius``) is forced to its label, so a click is never ignored.

For a volume, each slice holding a click of the newest step is refined in 2D; other slices stay unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from scarceseg.interactive.clicks import Click
from scarceseg.interactive.refiners import check_inputs, seed_masks
from scarceseg.prior.model import INPUT_SIZE, LOWRES_SIZE, Embedding, LiteMedSAM
from scarceseg.prior.prompts import box_from_mask, clamp_box


def lowres_logits(prob: np.ndarray, embedding: Embedding, clip: float = 0.01) -> np.ndarray:
    """A ``(Y, X)`` probability as the decoder's ``(256, 256)`` mask-prompt logits (padding = background)."""
    p = np.clip(np.asarray(prob, dtype=np.float32), clip, 1.0 - clip)
    logits = torch.from_numpy(np.log(p / (1.0 - p)))[None, None]
    new_h, new_w = (max(1, round(s * LOWRES_SIZE / INPUT_SIZE)) for s in embedding.resized_shape)
    small = F.interpolate(logits, size=(new_h, new_w), mode="bilinear", align_corners=False)
    out = torch.full((LOWRES_SIZE, LOWRES_SIZE), float(np.log(clip / (1 - clip))))
    out[:new_h, :new_w] = small[0, 0]
    return out.numpy()


@dataclass
class PriorRepromptRefiner:
    """Re-prompt the prior with box + clicks + previous mask, keeping the change local to the newest click.

    Parameters
    ----------
    prior : LiteMedSAM, optional
        Default: the process-wide prior (:func:`scarceseg.prior.get_prior`, loaded on first use).
    margin : int
        Pixels added around the initial mask's bounding box (MedSAM's box jitter is 5-20 px).
    radius_fraction, min_radius : float
        Changes are taken within ``max(min_radius, radius_fraction * longest box side)`` of the newest click.
    seed_radius : float
        Disc forced to each click's label.
    """

    prior: LiteMedSAM | None = None
    margin: int = 5
    radius_fraction: float = 0.5
    min_radius: float = 12.0
    seed_radius: float = 2.0
    name: str = "prior"

    def _model(self) -> LiteMedSAM:
        if self.prior is None:
            from scarceseg.prior.model import get_prior

            self.prior = get_prior()
        return self.prior

    def refine(self, image, prob, clicks: Sequence[Click], init=None, spacing=None) -> np.ndarray:
        image = np.asarray(image)
        prob = np.asarray(prob, dtype=np.float32)
        check_inputs(image, prob, clicks)
        if not clicks:
            return prob.copy()
        init = prob if init is None else np.asarray(init, dtype=np.float32)
        if image.ndim == 2:
            return self.refine_2d(image, prob, clicks, init)
        newest = max(c.step for c in clicks)
        out = prob.copy()
        for z in sorted({c.position[0] for c in clicks if c.step == newest} | {clicks[-1].position[0]}):
            on_slice = [Click(c.position[1:], c.positive, c.step) for c in clicks if c.position[0] == z]
            out[z] = self.refine_2d(image[z], prob[z], on_slice, init[z])
        return out

    def refine_2d(self, image: np.ndarray, prob: np.ndarray, clicks: Sequence[Click], init: np.ndarray) -> np.ndarray:
        """One step on a 2D image ``(Y, X)``; ``clicks`` are ``(y, x)``, the last one the newest."""
        shape = prob.shape
        current = prob > 0.5
        box = box_from_mask(init > 0.5, self.margin) or box_from_mask(current, self.margin)
        positives = [c.position for c in clicks if c.positive]
        if positives:
            ys = [p[0] for p in positives] + ([box[0], box[2]] if box else [])
            xs = [p[1] for p in positives] + ([box[1], box[3]] if box else [])
            pad = 0 if box else self.margin
            box = clamp_box((min(ys) - pad, min(xs) - pad, max(ys) + pad, max(xs) + pad), shape)
        out = prob.copy()
        if box is not None:
            model = self._model()
            embedding = model.embed(image)
            decoded = model.decode(embedding, box=box, points=[c.position for c in clicks],
                                   labels=[1 if c.positive else 0 for c in clicks],
                                   mask_logits=lowres_logits(prob, embedding))[0].prob
            newest = clicks[-1].position
            side = max(box[2] - box[0], box[3] - box[1]) + 1
            radius = max(self.min_radius, self.radius_fraction * side)
            yy, xx = np.ogrid[: shape[0], : shape[1]]
            near = (yy - newest[0]) ** 2 + (xx - newest[1]) ** 2 <= radius * radius
            changed = ((decoded > 0.5) != current) & near
            labels, count = ndimage.label(changed)
            if count:
                touch = np.zeros(shape, dtype=bool)
                touch[max(0, newest[0] - 3): newest[0] + 4, max(0, newest[1] - 3): newest[1] + 4] = True
                keep = np.isin(labels, np.unique(labels[touch & changed]))
                out[keep] = decoded[keep]
        fg, bg = seed_masks(shape, clicks, self.seed_radius)
        out[fg] = np.maximum(out[fg], 0.99)
        out[bg] = np.minimum(out[bg], 0.01)
        return out.astype(np.float32)
