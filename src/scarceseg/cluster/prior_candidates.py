"""Candidate masks for paper 000's selector drawn by the pretrained prior (LiteMedSAM) instead of clustering.

One image embedding per slice; many cheap box prompts decoded from it, batched through the prior's mask decoder:

* **grid boxes**: square boxes on a multi-scale grid (sides ``scales`` x the image's longest side, stride
  ``(1 - overlap)`` x the side), kept only where at least ``min_foreground`` of the box lies on the body
  (the image above a low threshold), so background boxes cost nothing;
* **blob boxes**: the box (+ ``margin`` px) of every connected component of the body's brightest pixels, at
  each of the intensity ``percentiles`` (a FLAIR lesion is bright);
* every box is decoded (one mask, or the decoder's three with ``multimask``), thresholded at 0.5, masks
  smaller than ``min_area`` dropped; then **deduplicated**: in the order of the prior's predicted IoU, a
  mask whose IoU with a kept one exceeds ``dedup_iou`` is dropped, and at most ``max_candidates`` are kept.

The prior is passed in (with the embedding), so this module needs no cache of its own: the caller (the
``selector-prior`` method) gets embeddings from an :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from scarceseg.configs import ConfigDict


@dataclass
class PriorCandidateConfig(ConfigDict):
    """How the prior's candidates are prompted and pruned (our design; paper 000 clusters instead)."""

    scales: tuple[float, ...] = (0.2, 0.3)  # grid box sides, fractions of the longest image side
    overlap: float = 0.4  # grid stride = (1 - overlap) x side
    min_foreground: float = 0.8  # grid boxes with less of their area on the body are skipped
    body_threshold: float = 0.1  # body = normalised image (0.5-99.5 percentiles -> [0, 1]) above this
    percentiles: tuple[float, ...] = (85.0, 92.0, 97.0)  # blob boxes: body pixels above these percentiles
    margin: int = 4  # pixels added around every blob box
    blob_min_area: int = 15  # smaller bright components give no box
    blobs_per_level: int = 3  # the largest this many bright components of each percentile give boxes
    multimask: bool = True  # decode the decoder's three masks per box instead of its single one
    min_area: int = 15  # candidate masks smaller than this (pixels) are dropped
    dedup_iou: float = 0.8  # a mask with IoU above this with a better-scored kept mask is dropped
    max_candidates: int = 24  # at most this many candidates per slice
    batch: int = 16  # boxes decoded per decoder call

    def __post_init__(self) -> None:
        if not self.scales and not self.percentiles:
            raise ValueError("prior candidates need grid scales or blob percentiles")
        if not 0 <= self.overlap < 1 or not 0 < self.dedup_iou <= 1 or self.max_candidates < 1:
            raise ValueError(f"need 0 <= overlap < 1, 0 < dedup_iou <= 1 and max_candidates >= 1, got "
                             f"{self.overlap}, {self.dedup_iou}, {self.max_candidates}")


@dataclass
class PriorCandidates:
    """The candidates of one slice: ``masks`` ``(K, Y, X)`` bool, the prior's predicted ``iou`` ``(K,)``,
    each one's ``boxes`` ``(K, 4)`` (y0, x0, y1, x1 inclusive) and ``sources`` ("grid" / "blob"), and how many
    boxes were decoded (``n_boxes``)."""

    masks: np.ndarray
    iou: np.ndarray
    boxes: np.ndarray
    sources: list[str]
    n_boxes: int


def unit_image(image: np.ndarray) -> np.ndarray:
    """``(Y, X)`` float32 in [0, 1]: the 0.5 and 99.5 percentiles map to 0 and 1 (constant image: zeros)."""
    arr = np.nan_to_num(np.asarray(image, dtype=np.float32))
    lo, hi = np.percentile(arr, [0.5, 99.5])
    if hi - lo < 1e-8:
        return np.zeros(arr.shape, np.float32)
    return np.clip((arr - lo) / (hi - lo), 0, 1).astype(np.float32)


def grid_boxes(body: np.ndarray, scales, overlap: float, min_foreground: float) -> list[tuple[int, int, int, int]]:
    """Square boxes on a multi-scale grid whose area lies at least ``min_foreground`` on ``body``."""
    height, width = body.shape
    side_ref = max(height, width)
    integral = np.pad(body.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    boxes = []
    for scale in scales:
        side = max(4, int(round(scale * side_ref)))
        step = max(1, int(round(side * (1 - overlap))))
        for y0 in range(0, max(1, height - side + 1), step):
            for x0 in range(0, max(1, width - side + 1), step):
                y1, x1 = min(height, y0 + side), min(width, x0 + side)
                inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
                if inside >= min_foreground * (y1 - y0) * (x1 - x0):
                    boxes.append((y0, x0, y1 - 1, x1 - 1))
    return boxes


def blob_boxes(unit: np.ndarray, body: np.ndarray, percentiles, margin: int, min_area: int, per_level: int = 3
               ) -> list[tuple[int, int, int, int]]:
    """Boxes (+ ``margin``) of the ``per_level`` largest connected bright components of the body at each
    intensity percentile (components under ``min_area`` pixels give none)."""
    if not body.any():
        return []
    height, width = unit.shape
    boxes = []
    for level in np.percentile(unit[body], list(percentiles)):
        labels, count = ndimage.label((unit > level) & body)
        if count == 0:
            continue
        areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
        slices = ndimage.find_objects(labels)
        for k in np.argsort(-areas, kind="stable")[:per_level]:
            if areas[k] < min_area:
                break
            sl = slices[k]
            boxes.append((max(0, sl[0].start - margin), max(0, sl[1].start - margin),
                          min(height - 1, sl[0].stop - 1 + margin), min(width - 1, sl[1].stop - 1 + margin)))
    return boxes


@torch.inference_mode()
def decode_boxes(prior, embedding, boxes, multimask: bool = False, batch: int = 16
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(N, Y, X)`` and predicted IoUs ``(N,)`` of many boxes from one embedding, batched
    through the prior's torch mask decoder (``N = len(boxes)``, x3 with ``multimask``)."""
    from scarceseg.prior.model import INPUT_SIZE, LOWRES_SIZE

    net = prior.net
    s = embedding.scale
    new_h, new_w = embedding.resized_shape
    crop = (max(1, round(new_h * LOWRES_SIZE / INPUT_SIZE)), max(1, round(new_w * LOWRES_SIZE / INPUT_SIZE)))
    feats = embedding.features.float()
    probs, ious = [], []
    for i in range(0, len(boxes), batch):
        chunk = np.asarray(boxes[i : i + batch], dtype=np.float32)
        box_t = torch.from_numpy(np.stack([chunk[:, 1] * s, chunk[:, 0] * s, (chunk[:, 3] + 1) * s,
                                           (chunk[:, 2] + 1) * s], axis=1))[:, None]
        sparse, dense = net.prompt_encoder(points=None, boxes=box_t, masks=None)
        low, iou = net.mask_decoder(image_embeddings=feats, image_pe=prior.dense_pe(),
                                    sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                    multimask_output=multimask)
        low = low.reshape(-1, 1, *low.shape[-2:])[..., : crop[0], : crop[1]]
        full = F.interpolate(low, size=embedding.original_shape, mode="bilinear", align_corners=False)
        probs.append(torch.sigmoid(full)[:, 0].numpy())
        ious.append(iou.reshape(-1).numpy())
    if not probs:
        return np.zeros((0, *embedding.original_shape), np.float32), np.zeros(0, np.float32)
    return np.concatenate(probs).astype(np.float32), np.concatenate(ious).astype(np.float32)


def dedupe(masks: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Indices of the kept masks: best score first, each with IoU <= ``iou_threshold`` to every kept one."""
    flat = masks.reshape(len(masks), -1).astype(np.float32)
    areas = flat.sum(1)
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if kept:
            inter = flat[kept] @ flat[i]
            iou = inter / np.maximum(areas[kept] + areas[i] - inter, 1)
            if (iou > iou_threshold).any():
                continue
        kept.append(int(i))
        if len(kept) >= limit:
            break
    return np.asarray(kept, dtype=int)


def prior_candidates(image: np.ndarray, prior, embedding, config: PriorCandidateConfig | None = None
                     ) -> PriorCandidates:
    """The prior's candidates for one 2D ``image`` ``(Y, X)`` whose ``embedding`` the ``prior`` made.

    Returns at least one candidate when any box was decoded into a non-empty mask; a constant slice (no body)
    gives none.
    """
    cfg = config or PriorCandidateConfig()
    unit = unit_image(image)
    body = ndimage.binary_fill_holes(unit > cfg.body_threshold)
    boxes = [(b, "grid") for b in grid_boxes(body, cfg.scales, cfg.overlap, cfg.min_foreground)]
    boxes += [(b, "blob") for b in blob_boxes(unit, body, cfg.percentiles, cfg.margin, cfg.blob_min_area,
                                                     cfg.blobs_per_level)]
    seen: dict[tuple, str] = {}
    for b, src in boxes:
        seen.setdefault(tuple(int(v) for v in b), src)
    box_list = list(seen)
    shape = tuple(np.asarray(image).shape)
    empty = PriorCandidates(np.zeros((0, *shape), bool), np.zeros(0, np.float32), np.zeros((0, 4), int), [], 0)
    if not box_list:
        return empty
    probs, iou = decode_boxes(prior, embedding, box_list, cfg.multimask, cfg.batch)
    per_box = 3 if cfg.multimask else 1
    masks = probs > 0.5
    big = masks.reshape(len(masks), -1).sum(1) >= cfg.min_area
    if not big.any():
        return PriorCandidates(empty.masks, empty.iou, empty.boxes, [], len(box_list))
    index = np.flatnonzero(big)
    keep = index[dedupe(masks[index], iou[index], cfg.dedup_iou, cfg.max_candidates)]
    owner = keep // per_box
    return PriorCandidates(masks[keep], iou[keep], np.asarray([box_list[o] for o in owner], dtype=int),
                           [seen[box_list[o]] for o in owner], len(box_list))
