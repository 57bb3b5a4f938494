"""Figures for reports: mask overlays, overlay contact sheets, candidate sheets, box plots.

Colours everywhere, from the Okabe-Ito palette so that colour-blind readers can tell them apart: truth
vermillion, prediction blue, overlap yellow (they also differ in lightness, so they survive greyscale).
Masks are drawn as a semi-transparent fill with a solid one-pixel outline, so both the extent and the edge read at a
glance. matplotlib is imported inside the functions and drawn on an Agg canvas directly (no pyplot,
no global backend switch), so importing this module is instant and safe in threads and servers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

TRUTH_RGB = (213, 94, 0)  # Okabe-Ito vermillion
PRED_RGB = (0, 114, 178)  # Okabe-Ito blue
OVERLAP_RGB = (240, 228, 66)  # Okabe-Ito yellow


def window(image2d: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Robust grey-level window: percentiles ``low``..``high`` of the finite pixels mapped to 0..255.

    Parameters
    ----------
    image2d : ndarray, shape (Y, X)

    Returns
    -------
    ndarray, shape (Y, X), uint8
        All zeros for a constant image; non-finite pixels become 0.
    """
    image = np.asarray(image2d, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image2d must be (Y, X), got shape {image.shape}")
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(image[finite], [low, high])
    if hi <= lo:
        lo, hi = float(image[finite].min()), float(image[finite].max())
    if hi <= lo:
        return np.zeros(image.shape, dtype=np.uint8)
    scaled = np.clip((np.where(finite, image, lo) - lo) / (hi - lo), 0, 1)
    return np.rint(scaled * 255).astype(np.uint8)


def _mask(mask: np.ndarray | None, shape: tuple[int, ...], name: str) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    mask = np.asarray(mask)
    if mask.shape != shape:
        raise ValueError(f"{name} shape {mask.shape} differs from image shape {shape}")
    return mask.astype(bool)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (the image border counts as outside)."""
    from scipy import ndimage

    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def overlay_rgb(image2d: np.ndarray, truth: np.ndarray | None = None, pred: np.ndarray | None = None,
                alpha: float = 0.45, outline: bool = True) -> np.ndarray:
    """Grey image with truth vermillion, prediction blue and their overlap yellow (Okabe-Ito).

    Every masked pixel gets the colour of its category (truth only, prediction only, both) blended
    over the grey with opacity ``alpha``; with ``outline`` the pixels on the edge of either mask get
    that colour at full opacity.

    Parameters
    ----------
    image2d : ndarray, shape (Y, X)
        Windowed with :func:`window` (1st-99th percentile).
    truth, pred : ndarray, shape (Y, X), optional
        Masks (non-zero = in).
    alpha : float
        Fill opacity in ``[0, 1]``.
    outline : bool
        Draw mask edges at full opacity.

    Returns
    -------
    ndarray, shape (Y, X, 3), uint8
    """
    grey = window(image2d).astype(np.float64)
    shape = grey.shape
    truth_m = _mask(truth, shape, "truth")
    pred_m = _mask(pred, shape, "pred")
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    edge = (_outline(truth_m) | _outline(pred_m)) if outline else np.zeros(shape, dtype=bool)
    for region, colour in ((truth_m & ~pred_m, TRUTH_RGB), (pred_m & ~truth_m, PRED_RGB),
                           (truth_m & pred_m, OVERLAP_RGB)):
        colour_arr = np.asarray(colour, dtype=np.float64)
        fill = region & ~edge
        rgb[fill] = (1 - alpha) * rgb[fill] + alpha * colour_arr
        rgb[region & edge] = colour_arr
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _legend(fig, entries: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=np.asarray(rgb) / 255, edgecolor="black", label=label) for label, rgb in entries]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)


def save_overlay_grid(items: Sequence[tuple[str, np.ndarray, np.ndarray | None, np.ndarray | None]],
                      path: str | Path, ncols: int = 5, title: str | None = None, dpi: int = 100) -> Path:
    """One PNG contact sheet of overlays, a titled panel per item and a colour legend.

    Parameters
    ----------
    items : sequence of (title, image2d, truth, pred)
        ``image2d`` of shape (Y, X); ``truth``/``pred`` masks of the same shape or ``None``.
        Panel titles are free text, e.g. ``"case_07\\nDice 0.81"``.
    path : str or Path
        PNG file; parent folders are created.
    ncols : int
        Panels per row.
    title : str, optional
        Title over the sheet.
    dpi : int

    Returns
    -------
    Path
        ``path``.
    """
    items = list(items)
    if not items:
        raise ValueError("save_overlay_grid needs at least one item")
    ncols = max(1, min(ncols, len(items)))
    nrows = -(-len(items) // ncols)
    fig = _new_figure(2.6 * ncols, 2.9 * nrows + (0.4 if title else 0.0) + 0.4)
    for i, (panel_title, image2d, truth, pred) in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        ax.imshow(overlay_rgb(image2d, truth, pred), interpolation="nearest")
        ax.set_title(str(panel_title), fontsize=8)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    _legend(fig, [("truth", TRUTH_RGB), ("prediction", PRED_RGB), ("overlap", OVERLAP_RGB)])
    return _save(fig, path, dpi)


def save_contact_sheet(image2d: np.ndarray, masks: Sequence[np.ndarray], path: str | Path,
                       titles: Sequence[str] | None = None, ncols: int | None = None,
                       max_panel: int | None = None) -> Path:
    """The image, then one panel per candidate mask drawn over it (blue), e.g. proposals to pick from.

    Drawn with Pillow straight from :func:`overlay_rgb` panels (a few ms per candidate; matplotlib took
    seconds for a 60-candidate sheet), each panel with its title in a strip above it.

    Parameters
    ----------
    image2d : ndarray, shape (Y, X)
    masks : sequence of ndarray, each shape (Y, X)
    path : str or Path
        PNG file; parent folders are created.
    titles : sequence of str, optional
        One per mask; ``"candidate 1"``... by default.
    ncols : int, optional
        Panels per row; about square by default.
    max_panel : int, optional
        Panels are shrunk (nearest neighbour, integer factor) until their longer side is at most this;
        default 256 px for up to 16 candidates, else 128 px.

    Returns
    -------
    Path
        ``path``.
    """
    from PIL import Image, ImageDraw

    masks = list(masks)
    if titles is None:
        titles = [f"candidate {i + 1}" for i in range(len(masks))]
    titles = list(titles)
    if len(titles) != len(masks):
        raise ValueError(f"got {len(titles)} titles for {len(masks)} masks")
    image2d = np.asarray(image2d)
    n = len(masks) + 1
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = -(-n // ncols)
    max_panel = max_panel or (256 if len(masks) <= 16 else 128)
    step = max(1, int(np.ceil(max(image2d.shape) / max_panel)))
    small = window(image2d)[::step, ::step]  # windowed once on the full image, then shrunk
    panels = [("image", overlay_rgb(small))] + [(str(t), overlay_rgb(small, pred=np.asarray(m)[::step, ::step]))
                                                for t, m in zip(titles, masks, strict=True)]
    h, w = panels[0][1].shape[:2]
    strip, gap = 12, 2
    width = max(w, 60)
    sheet = Image.new("RGB", (ncols * (width + gap), nrows * (h + strip + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, rgb) in enumerate(panels):
        x0, y0 = (i % ncols) * (width + gap), (i // ncols) * (h + strip + gap)
        sheet.paste(Image.fromarray(rgb), (x0, y0 + strip))
        draw.text((x0 + 1, y0), title, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, compress_level=1)
    return path


def save_boxplot(values_by_method: Mapping[str, Sequence[float] | np.ndarray], path: str | Path, ylabel: str,
                 title: str | None = None, dpi: int = 100) -> Path:
    """Box plot of one metric per method, with the individual values drawn over the boxes.

    Parameters
    ----------
    values_by_method : mapping of str to array-like, each shape (N_method,)
        Non-finite values (e.g. HD95 of an empty mask) are left out; the count drawn is under each name.
    path : str or Path
        PNG file; parent folders are created.
    ylabel : str
        Metric name and unit, e.g. ``"Dice"`` or ``"HD95 (mm)"``.
    title : str, optional
    dpi : int

    Returns
    -------
    Path
        ``path``.
    """
    if not values_by_method:
        raise ValueError("save_boxplot needs at least one method")
    names = list(values_by_method)
    data = []
    for name in names:
        values = np.asarray(values_by_method[name], dtype=np.float64).ravel()
        data.append(values[np.isfinite(values)])
    fig = _new_figure(max(3.0, 1.2 * len(names) + 1.5), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    positions = np.arange(1, len(names) + 1)
    ax.boxplot([d if d.size else [np.nan] for d in data], positions=positions, widths=0.6, showfliers=False)
    for pos, values in zip(positions, data, strict=True):
        # evenly spread points (deterministic, no random jitter) so equal values stay visible
        offsets = np.linspace(-0.15, 0.15, values.size) if values.size > 1 else np.zeros(values.size)
        ax.scatter(pos + offsets, values, s=8, alpha=0.6, color="tab:blue", zorder=3)
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{name}\n(n={d.size})" for name, d in zip(names, data, strict=True)], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path, dpi)
