"""Data of the IteR-MRL benchmark (paper 002): 2D slices split by patient / case, 3D crops around the target,
and the "corrupted truth" start that stands in for a decent automatic method.

* :func:`slices_2d` — ``{"train1", "train2", "test"}`` lists of ``(id, image, target)``. LGG-layout folders
  (TCGA-LGG FLAIR slices) are split by patient in three equal parts; BRATS folders (:func:`brats_slices`,
  FLAIR, whole tumour = label > 0) are split by *case* (volume), with four volumes one / two / one.
* :func:`crops_3d` — one crop per volume around its target (bounding box + margin), resized to a fixed
  size: BRATS FLAIR whole tumour or LA 2018 left atrium (HDF5 layout ``cases/<id>/mri_norm2.h5``).
* :func:`corrupted_init` — the truth grown or shrunk, a bite taken out at its border, a false blob added
  beside it, blurred into a probability (Dice ~0.75-0.8), in 2D or 3D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pick_round_robin(ds, ids: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Up to ``n`` case ids, round-robin over patients in a random order (spreads slices over patients)."""
    by_patient: dict[str, list[str]] = {}
    for cid in ids:
        by_patient.setdefault(ds.patient_of(cid), []).append(cid)
    queues = [list(rng.permutation(v)) for _, v in sorted(by_patient.items())]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(str(q.pop()))
    return out


def slices_2d(data: Path, seed: int, sizes: dict, echo=print) -> dict:
    """``{"train1"|"train2"|"test": [(case_id, flair (Y, X), target (Y, X))]}``, split by patient / case.

    Parameters
    ----------
    data : Path
        An LGG-layout folder or a BRATS folder.
    seed : int
    sizes : dict
        Number of slices wanted per part (``train1``, ``train2``, ``test``).
    echo : callable
    """
    from scarceseg.datasets import open_dataset, split_patients

    ds = open_dataset(data)
    if ds.layout == "brats":
        return brats_slices(ds, seed, sizes, echo)
    parts = split_patients(ds, (1 / 3, 1 / 3, 1 / 3), seed=seed)
    rng = np.random.default_rng(seed)
    out = {}
    for part, name in (("train", "train1"), ("val", "train2"), ("test", "test")):
        ids = pick_round_robin(ds, parts[part], sizes[name], rng)
        out[name] = [(cid, ds.load(cid).channel("FLAIR").astype(np.float32), ds.load_label(cid) > 0) for cid in ids]
        echo(f"  {name}: {len(ids)} slices of {len({ds.patient_of(c) for c in ids})} patients")
    return out


def brats_split(case_ids: list[str], seed: int) -> dict[str, list[str]]:
    """Cases in a seeded random order, split one quarter / half / one quarter (four volumes: 1 / 2 / 1)."""
    ids = [case_ids[i] for i in np.random.default_rng(seed).permutation(len(case_ids))]
    k = max(1, len(ids) // 4)
    return {"train1": ids[:k], "train2": ids[k : len(ids) - k], "test": ids[len(ids) - k :]}


def brats_slices(ds, seed: int, sizes: dict, echo=print, min_voxels: int = 100) -> dict:
    """BRATS volumes split by case (:func:`brats_split`); axial FLAIR slices with >= ``min_voxels`` tumour
    voxels (whole tumour, label > 0); up to ``sizes[part]`` slices per part, drawn at random."""
    groups = brats_split(list(ds.case_ids), seed)
    rng = np.random.default_rng(seed)
    out = {}
    for name, vols in groups.items():
        items = []
        for cid in vols:
            case = ds.load(cid)
            flair, target = case.channel("FLAIR"), case.target
            for z in np.flatnonzero(target.sum(axis=(1, 2)) >= min_voxels):
                items.append((f"{cid}_z{z}", flair[z].astype(np.float32), target[z]))
        pick = rng.permutation(len(items))[: sizes[name]]
        out[name] = [items[i] for i in sorted(pick)]
        echo(f"  {name}: {len(out[name])} of {len(items)} tumour slices of case(s) {vols}")
    return out


def crops_3d(data: Path, size=(32, 64, 64), margin: int = 8, max_cases: int | None = None) -> list:
    """One crop per volume: the target's bounding box plus ``margin`` voxels, resized to ``size``.

    BRATS folders give FLAIR and the whole tumour; other layouts (LA 2018 HDF5) their only channel and
    label > 0. Returns ``[(case_id, image (Z, Y, X) float32, target bool)]`` in the data set's order.
    """
    from scipy import ndimage

    from scarceseg.datasets import open_dataset

    ds = open_dataset(data)
    out = []
    for cid in list(ds.case_ids)[:max_cases]:
        case = ds.load(cid)
        target = case.target
        image = case.channel("FLAIR") if "FLAIR" in case.channel_names else case.image[0]
        idx = np.argwhere(target)
        if not len(idx):
            continue
        lo = np.maximum(idx.min(0) - margin, 0)
        hi = np.minimum(idx.max(0) + margin + 1, target.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        img, tgt = np.asarray(image[sl], np.float32), target[sl]
        zoom = [s / n for s, n in zip(size, img.shape, strict=True)]
        out.append((cid, ndimage.zoom(img, zoom, order=1).astype(np.float32),
                    ndimage.zoom(tgt.astype(np.float32), zoom, order=1) > 0.5))
    return out


def corrupted_init(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for a decent automatic method (Dice ~0.75): the truth grown or shrunk by 1-3 voxels, with a
    ball cut out at its border and a false ball added beside it, then blurred into a probability.

    Parameters
    ----------
    target : ndarray of bool, shape (Y, X) or (Z, Y, X)
    rng : numpy Generator

    Returns
    -------
    ndarray of float32, same shape, in [0, 1]
    """
    from scipy import ndimage

    target = np.asarray(target, bool)
    m = target.copy()
    if not m.any():
        return np.zeros(m.shape, np.float32)
    r = int(rng.integers(1, 4))
    m = ndimage.binary_dilation(m, iterations=r) if rng.random() < 0.5 else ndimage.binary_erosion(m, iterations=r)
    # equivalent radius of the target: a disc in 2D, a ball in 3D
    volume = float(target.sum())
    radius = max(2.0, np.sqrt(volume / np.pi) if target.ndim == 2 else (3 * volume / (4 * np.pi)) ** (1 / 3))
    grid = np.indices(m.shape)
    border = np.argwhere(target & ~ndimage.binary_erosion(target))

    def ball(frac: float) -> np.ndarray:
        c = border[rng.integers(len(border))]
        d2 = sum((g - v) ** 2 for g, v in zip(grid, c, strict=True))
        return d2 <= (frac * radius) ** 2

    m &= ~ball(0.5)
    m |= ball(0.35)
    return np.clip(ndimage.gaussian_filter(m.astype(np.float32), 1.0), 0.0, 1.0)
