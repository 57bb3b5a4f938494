"""Candidate lesion masks from cluster label maps (paper 000, section 0.3.3), and a richer set.

* ``"paper"`` (:func:`paper_candidates`): every cluster whose area is strictly between ``min_area``
  and ``N - min_area`` pixels (the paper: 1e3 px on 240x240 images; scaled by image area here,
  :func:`scaled_min_area`). A cluster is *all* pixels of one class, wherever they are.
* ``"extended"`` (:func:`extended_candidates`, not in the paper): the paper's clusters, plus the
  connected components of each cluster, plus those components with their holes filled, plus the
  same from the label maps recorded at coarser-to-finer class counts during training (e.g. when the
  count first dropped to 50 and 35); near-duplicates (IoU above a threshold) are dropped and the
  number is capped. A lesion that shares its class with distant tissue of the same brightness is a
  component of that cluster, not the cluster itself - that is the case this set is for.

Order is deterministic: the final label map first (clusters, components, filled components), then
each recorded level in increasing class count (e.g. 35, then 50); within a group by decreasing
area, ties by label (clusters) or raster position (components). Every candidate has a ``source``
naming where it came from.

All functions are pure numpy/scipy on ``(Y, X)`` arrays.

References
----------
.. [1] Paper 000 (Stember & Shalu), section 0.3.3 "Evaluating clusters and selecting best masks".
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

PAPER_REFERENCE_SHAPE = (240, 240)


def scaled_min_area(
    shape: tuple[int, ...], min_area: int = 1000, reference_shape: tuple[int, ...] = PAPER_REFERENCE_SHAPE
) -> int:
    """``min_area`` pixels of a ``reference_shape`` image, scaled to an image of ``shape`` by area.

    >>> scaled_min_area((240, 240))
    1000
    >>> scaled_min_area((256, 256))
    1138
    """
    return int(round(min_area * float(np.prod(shape)) / float(np.prod(reference_shape))))


def size_ok(area: int, n_pixels: int, min_area: int) -> bool:
    """The paper's size filter: ``min_area < area < n_pixels - min_area``."""
    return min_area < area < n_pixels - min_area


def _by_area(masks: list[np.ndarray], keys: list[int]) -> list[int]:
    areas = [int(m.sum()) for m in masks]
    return sorted(range(len(masks)), key=lambda i: (-areas[i], keys[i]))


def cluster_masks(labels: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Masks of the clusters (all pixels of one label) passing the size filter, largest first.

    Parameters
    ----------
    labels : ndarray (Y, X) int
    min_area : int
        In pixels of this image (already scaled).

    Returns
    -------
    list of ndarray (Y, X) bool
        Ties in area are ordered by label value.
    """
    labels = np.asarray(labels)
    values, areas = np.unique(labels, return_counts=True)
    n = labels.size
    keep = [(int(-a), int(v)) for v, a in zip(values, areas, strict=True) if size_ok(int(a), n, min_area)]
    return [labels == v for _, v in sorted(keep)]


def component_masks(labels: np.ndarray, min_area: int, connectivity: int = 1) -> list[np.ndarray]:
    """Connected components of every cluster passing the size filter, largest first.

    Parameters
    ----------
    labels : ndarray (Y, X) int
    min_area : int
    connectivity : {1, 2}
        1: 4-neighbourhood (thin bridges split regions); 2: 8-neighbourhood.

    Returns
    -------
    list of ndarray (Y, X) bool
        Ties ordered by the component's first pixel in raster order.
    """
    from skimage.measure import label as label_components

    labels = np.asarray(labels)
    comps = label_components(labels.astype(np.int64) + 1, background=0, connectivity=connectivity)
    areas = np.bincount(comps.ravel())
    n = labels.size
    ids = [i for i in range(1, areas.size) if size_ok(int(areas[i]), n, min_area)]
    ids.sort(key=lambda i: (-int(areas[i]), i))
    return [comps == i for i in ids]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with its enclosed holes filled (4-connected background counts as outside)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    out = mask.copy()
    out[y0:y1, x0:x1] = ndimage.binary_fill_holes(mask[y0:y1, x0:x1])
    return out


def paper_candidates(labels: np.ndarray, min_area: int) -> tuple[list[np.ndarray], list[str]]:
    """Paper 000, 0.3.3: the clusters filtered by size only. Returns ``(masks, sources)``."""
    masks = cluster_masks(labels, min_area)
    return masks, ["cluster"] * len(masks)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def dedupe(
    masks: list[np.ndarray], sources: list[str], iou: float = 0.95, limit: int | None = None
) -> tuple[list[np.ndarray], list[str]]:
    """Keep masks in order, dropping any whose IoU with an already kept one exceeds ``iou``.

    Empty masks are dropped. ``limit`` stops after that many kept masks.
    """
    kept: list[np.ndarray] = []
    kept_src: list[str] = []
    info: list[tuple[int, tuple[int, int, int, int]]] = []
    for mask, src in zip(masks, sources, strict=True):
        if limit is not None and len(kept) >= limit:
            break
        area = int(mask.sum())
        if area == 0:
            continue
        box = _bbox(mask)
        duplicate = False
        for other, (o_area, o_box) in zip(kept, info, strict=True):
            if min(area, o_area) <= iou * max(area, o_area):
                continue  # IoU <= min/max area ratio: cannot exceed the threshold
            y0, x0 = max(box[0], o_box[0]), max(box[1], o_box[1])
            y1, x1 = min(box[2], o_box[2]), min(box[3], o_box[3])
            if y1 <= y0 or x1 <= x0:
                continue
            inter = int(np.count_nonzero(mask[y0:y1, x0:x1] & other[y0:y1, x0:x1]))
            if inter > iou * (area + o_area - inter):
                duplicate = True
                break
        if not duplicate:
            kept.append(mask)
            kept_src.append(src)
            info.append((area, box))
    return kept, kept_src


def extended_candidates(
    labels: np.ndarray,
    levels: dict[int, np.ndarray] | None = None,
    min_area: int = 1138,
    component_min_area: int | None = None,
    holes: bool = True,
    dedupe_iou: float = 0.95,
    max_candidates: int = 60,
    connectivity: int = 1,
) -> tuple[list[np.ndarray], list[str]]:
    """Clusters, their connected components and hole-filled components, over several levels.

    Parameters
    ----------
    labels : ndarray (Y, X) int
        The final label map (``N_cl`` classes).
    levels : dict[int, ndarray (Y, X)], optional
        Label maps recorded at other class counts; their candidates follow the final map's, from
        the smallest count to the largest, with sources ``"level:<count> cluster"`` etc.
    min_area : int
        Size floor of clusters (the paper's, in this image's pixels).
    component_min_area : int, optional
        Size floor of components and filled components (default ``min_area``).
    holes : bool
        Also offer each component with its holes filled (when that changes it).
    dedupe_iou : float
        A candidate whose IoU with an earlier one exceeds this is dropped.
    max_candidates : int
    connectivity : {1, 2}

    Returns
    -------
    masks : list of ndarray (Y, X) bool
    sources : list of str
        ``"cluster"``, ``"component"``, ``"filled component"``, prefixed ``"level:<n> "`` for levels.
    """
    labels = np.asarray(labels)
    comp_min = min_area if component_min_area is None else component_min_area
    n = labels.size
    groups = [("", labels)] + [(f"level:{lv} ", levels[lv]) for lv in sorted(levels or {})]
    masks: list[np.ndarray] = []
    sources: list[str] = []
    for prefix, lab in groups:
        clusters = cluster_masks(lab, min_area)
        comps = component_masks(lab, comp_min, connectivity)
        masks += clusters
        sources += [prefix + "cluster"] * len(clusters)
        masks += comps
        sources += [prefix + "component"] * len(comps)
        if holes:
            filled = []
            for comp in comps:
                full = fill_holes(comp)
                area = int(full.sum())
                if area > int(comp.sum()) and size_ok(area, n, comp_min):
                    filled.append(full)
            order = _by_area(filled, list(range(len(filled))))
            masks += [filled[i] for i in order]
            sources += [prefix + "filled component"] * len(filled)
    return dedupe(masks, sources, iou=dedupe_iou, limit=max_candidates)


def describe_candidates(masks: np.ndarray | list[np.ndarray], sources: list[str]) -> list[dict]:
    """One dict per candidate: ``index, area, centroid [y, x], bbox [y0, x0, y1, x1], source``.

    ``bbox`` is half-open (``mask[y0:y1, x0:x1]`` holds the whole candidate); the centroid is the
    mean pixel position, rounded to 2 decimals.
    """
    out = []
    for k, (mask, src) in enumerate(zip(masks, sources, strict=True)):
        mask = np.asarray(mask, dtype=bool)
        ys, xs = np.nonzero(mask)
        if ys.size:
            centroid = [round(float(ys.mean()), 2), round(float(xs.mean()), 2)]
            bbox = [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1]
        else:
            centroid, bbox = [float("nan"), float("nan")], [0, 0, 0, 0]
        out.append({"index": k, "area": int(ys.size), "centroid": centroid, "bbox": bbox, "source": src})
    return out


def stack(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """List of ``(Y, X)`` masks -> ``(K, Y, X)`` bool (``(0, Y, X)`` when empty)."""
    if not masks:
        return np.zeros((0, *shape), dtype=bool)
    return np.stack([np.asarray(m, dtype=bool) for m in masks])


def best_candidate(masks: np.ndarray, truth: np.ndarray, case_id: str = "") -> tuple[int, float]:
    """The candidate with the best Dice against ``truth`` (ties: the lowest index): the oracle user.

    Parameters
    ----------
    masks : ndarray (K, Y, X) bool
    truth : ndarray (Y, X) bool
    case_id : str
        Named in the errors.

    Returns
    -------
    (int, float)
        The index and its Dice (:func:`scarceseg.metrics.dice`).

    Raises
    ------
    InputError
        No candidates, or an empty truth (no candidate can be right).
    ShapeMismatchError
        ``truth`` is not of the candidates' shape.
    """
    import math

    from scarceseg.errors import InputError, ShapeMismatchError
    from scarceseg.metrics import dice

    truth = np.asarray(truth).astype(bool)
    masks = np.asarray(masks, dtype=bool)
    if truth.shape != masks.shape[1:]:
        raise ShapeMismatchError(
            None, f"truth shape {truth.shape} differs from the proposal's (Y, X) {masks.shape[1:]}"
        )
    if masks.shape[0] == 0:
        raise InputError(None, f"case {case_id!r} has no candidates")
    if not truth.any():
        raise InputError(None, f"the truth of case {case_id!r} is empty: no candidate can be right")
    best, best_d = 0, -math.inf
    for k in range(masks.shape[0]):
        d = float(dice(masks[k], truth))
        if not math.isnan(d) and d > best_d:
            best, best_d = k, d
    return best, float(best_d)
