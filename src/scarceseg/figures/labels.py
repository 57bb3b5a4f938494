"""Figures for label maps: three orthogonal slices with labels coloured (paper 001, Figure 5), NMI vs K (Figure 4).

matplotlib is drawn on an Agg canvas (no pyplot), as in :mod:`scarceseg.figures.overlays`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from scarceseg.figures.overlays import _new_figure, _save, window

#: Colours of labels 1, 2, ... (label 0 is not drawn); the palette repeats after 10.
PALETTE = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], dtype=np.float64)


def label_rgb(image2d: np.ndarray, labels2d: np.ndarray | None, alpha: float = 0.5) -> np.ndarray:
    """Grey image with label ``l > 0`` blended in colour ``PALETTE[(l - 1) % 10]``.

    Parameters
    ----------
    image2d : ndarray, shape (Y, X)
    labels2d : ndarray, shape (Y, X), int, optional

    Returns
    -------
    ndarray, shape (Y, X, 3), uint8
    """
    grey = window(image2d).astype(np.float64)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    if labels2d is not None:
        labels2d = np.asarray(labels2d)
        on = labels2d > 0
        colours = PALETTE[(labels2d[on] - 1) % len(PALETTE)]
        rgb[on] = (1 - alpha) * rgb[on] + alpha * colours
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def orthogonal_slices(volume: np.ndarray, point: Sequence[int]) -> list[np.ndarray]:
    """Axial ``(Y, X)``, coronal ``(Z, X)``, sagittal ``(Z, Y)`` slices of a ``(Z, Y, X)`` array through ``point``."""
    z, y, x = (int(p) for p in point)
    return [volume[z], volume[:, y, :], volume[:, :, x]]


def centre_of(mask: np.ndarray) -> tuple[int, ...]:
    """Rounded centre of mass of a non-empty mask, else the array's centre."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return tuple(s // 2 for s in mask.shape)
    return tuple(int(round(float(c))) for c in np.argwhere(mask).mean(axis=0))


def save_label_slices(image: np.ndarray, rows: Sequence[tuple[str, np.ndarray | None]], path: str | Path,
                      point: Sequence[int] | None = None, spacing: Sequence[float] | None = None,
                      title: str | None = None, dpi: int = 100) -> Path:
    """One PNG: a row per label map, three orthogonal slices each (2D images: one panel per row).

    Parameters
    ----------
    image : ndarray, shape (Z, Y, X) or (Y, X)
    rows : sequence of (name, labels)
        ``labels`` of ``image``'s shape (0 not drawn), or None for the bare image.
    path : str or Path
    point : sequence of int, optional
        Where the slices cross; the centre of the first non-empty label map when omitted.
    spacing : sequence of float, optional
        Voxel size per axis, for the aspect ratio.
    """
    image = np.asarray(image)
    ndim = image.ndim
    if point is None:
        first = next((lab for _, lab in rows if lab is not None and np.any(lab)), None)
        point = centre_of(first > 0) if first is not None else tuple(s // 2 for s in image.shape)
    spacing = tuple(spacing) if spacing is not None else (1.0,) * ndim
    ncols = 3 if ndim == 3 else 1
    fig = _new_figure(3.2 * ncols, 3.0 * len(rows) + (0.3 if title else 0))
    axes = np.atleast_2d(fig.subplots(len(rows), ncols, squeeze=False))
    names = ("axial", "coronal", "sagittal")
    aspects = (spacing[1] / spacing[-1], spacing[0] / spacing[-1], spacing[0] / spacing[1]) if ndim == 3 else (1,)
    for r, (name, labels) in enumerate(rows):
        if ndim == 3:
            views = zip(orthogonal_slices(image, point),
                        orthogonal_slices(labels, point) if labels is not None else [None] * 3, strict=True)
        else:
            views = [(image, labels)]
        for col, (img2d, lab2d) in enumerate(views):
            ax = axes[r, col]
            ax.imshow(label_rgb(img2d, lab2d), origin="lower", aspect=aspects[col], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name} — {names[col]}" if ndim == 3 else name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path, dpi)


def save_nmi_vs_k(table: Mapping[str, Mapping[str, Mapping[int, float]]], path: str | Path,
                  title: str | None = None, dpi: int = 100) -> Path:
    """Figure 4 of paper 001: mean NMI against ``K``, one line per method, one panel per data set.

    Parameters
    ----------
    table : mapping
        ``data set -> method -> K -> mean NMI``.
    """
    sets = list(table)
    fig = _new_figure(4.0 * max(1, len(sets)), 3.4)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(sets)), squeeze=False)[0])
    markers = {"jule": "o", "kmeans": "s", "otsu": "^"}
    for ax, name in zip(axes, sets, strict=False):
        for method, by_k in table[name].items():
            ks = sorted(by_k)
            ax.plot(ks, [by_k[k] for k in ks], marker=markers.get(method, "x"), label=method)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("K (clusters)")
        ax.set_ylabel("NMI")
        ax.set_xticks(sorted({k for by_k in table[name].values() for k in by_k}))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path, dpi)
