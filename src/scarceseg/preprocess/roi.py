"""Region of interest, intensity window and a square network grid for two-phase (Chan-Vese) segmentation.

A two-phase energy splits whatever it is given into its two most distinct intensity classes. On a whole
MR slice those are the head and the air; to make it look for a lesion (or an organ) every method of
paper 003's experiment — the ACWE ConvNet and scikit-image's ``chan_vese`` / ``morphological_chan_vese``
— sees the same prepared input, made by :func:`prepare` from one 2D channel:

1. **Region of interest** (:func:`roi_mask`), chosen without labels:

   * ``"brain"`` (LGG FLAIR): :func:`scarceseg.preprocess.head.head_mask` (Otsu, holes filled,
     largest component) minus a rim of ``rim`` (10 %) of its equivalent radius
     (:func:`scarceseg.preprocess.head.inner_region`), the rule of the multi-Otsu and k-means baselines:
     it leaves out the scalp fat, which is as bright as a lesion on these slices.
   * ``"centre"`` (LA 2018): the central box covering ``centre_fraction`` (70 %) of each axis. The UA-MT
     volumes are already cropped around the left atrium; the central box drops most of the aorta,
     ventricles and chest wall that are as bright as the atrial blood pool.
   * ``"none"``: the whole image.

2. **Intensity window** on the ROI's own statistics, mapped to ``[0, 1]`` and clipped:

   * ``"median"``: ROI median -> 0, ROI 99th percentile -> 1. For a *hyperintense* target (FLAIR
     lesion): everything darker than the typical tissue (CSF, grey matter) becomes one flat dark class,
     so the two phases are "hyperintense" and "the rest".
   * ``"percentile"``: ROI 1st percentile -> 0, 99th -> 1 (a plain robust min-max).

   Pixels outside the ROI are set to the window's value of the ROI median (0 for ``"median"``).

3. **Grid**: the bounding box of the ROI is cut out and resized (bilinear, anti-aliased) to
   ``size x size``, the square grid the ConvNet is trained on; the ROI is resized with it.

:func:`to_image_grid` maps scores on that grid back to the image: bilinear up-sampling into the box,
``> 0`` is foreground, and nothing outside the ROI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROIS = ("brain", "centre", "none")
WINDOWS = ("median", "percentile")
MIN_ROI_PIXELS = 16  # a smaller ROI (a blank slice) falls back to the whole image


@dataclass
class RoiInput:
    """One image prepared for the two-phase methods.

    Attributes
    ----------
    x : ndarray of float32, shape (S, S)
        Windowed intensities in [0, 1] on the network grid.
    roi : ndarray of bool, shape (S, S)
        The region of interest on the grid.
    box : tuple of int
        ``(y0, y1, x0, x1)``: the part of the image the grid covers.
    full_roi : ndarray of bool, shape (Y, X)
        The region of interest on the image.
    window : tuple of float
        ``(low, high)`` intensities mapped to 0 and 1.
    """

    x: np.ndarray
    roi: np.ndarray
    box: tuple[int, int, int, int]
    full_roi: np.ndarray
    window: tuple[float, float]

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(Y, X)`` of the original image."""
        return tuple(self.full_roi.shape)  # type: ignore[return-value]


def roi_mask(image: np.ndarray, rule: str = "brain", rim: float = 0.1, centre_fraction: float = 0.7) -> np.ndarray:
    """The region of interest of one 2D image (see the module docstring).

    Parameters
    ----------
    image : ndarray, shape (Y, X)
    rule : {"brain", "centre", "none"}
    rim : float
        ``"brain"``: fraction of the head's equivalent radius left out along its boundary.
    centre_fraction : float
        ``"centre"``: side of the central box as a fraction of each image side, in (0, 1].

    Returns
    -------
    ndarray of bool, shape (Y, X)
        Never smaller than 16 pixels: a blank image gets the whole image.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"image must be 2D (Y, X), got shape {image.shape}")
    if rule == "brain":
        from scarceseg.preprocess.head import head_mask, inner_region

        roi = inner_region(head_mask(image), rim)
    elif rule == "centre":
        if not 0 < centre_fraction <= 1:
            raise ValueError(f"centre_fraction must be in (0, 1], got {centre_fraction}")
        roi = np.zeros(image.shape, dtype=bool)
        (ny, nx) = image.shape
        hy, hx = max(1, round(ny * centre_fraction)), max(1, round(nx * centre_fraction))
        y0, x0 = (ny - hy) // 2, (nx - hx) // 2
        roi[y0 : y0 + hy, x0 : x0 + hx] = True
    elif rule == "none":
        roi = np.ones(image.shape, dtype=bool)
    else:
        raise ValueError(f"unknown ROI rule {rule!r}; choose one of {ROIS}")
    if roi.sum() < MIN_ROI_PIXELS:
        roi = np.ones(image.shape, dtype=bool)
    return roi


def window_limits(values: np.ndarray, window: str = "median") -> tuple[float, float]:
    """``(low, high)`` of the intensity window for the ROI's values (see the module docstring)."""
    values = np.asarray(values, dtype=np.float64)
    if window == "median":
        low, high = np.percentile(values, [50, 99])
    elif window == "percentile":
        low, high = np.percentile(values, [1, 99])
    else:
        raise ValueError(f"unknown window {window!r}; choose one of {WINDOWS}")
    return float(low), float(high)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def prepare(image: np.ndarray, size: int = 64, roi: str = "brain", window: str = "median", rim: float = 0.1,
            centre_fraction: float = 0.7) -> RoiInput:
    """Region of interest, window, crop and resize of one 2D image.

    Parameters
    ----------
    image : ndarray, shape (Y, X)
        One channel (e.g. FLAIR), any real dtype and scale; finite.
    size : int
        Side ``S`` of the square grid.
    roi, window, rim, centre_fraction :
        See :func:`roi_mask` and :func:`window_limits`.

    Returns
    -------
    RoiInput
    """
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"image must be 2D (Y, X), got shape {image.shape}")
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values")
    if size < 4:
        raise ValueError(f"size must be >= 4, got {size}")
    full_roi = roi_mask(image, roi, rim=rim, centre_fraction=centre_fraction)
    low, high = window_limits(image[full_roi], window)
    if high - low <= 1e-12:
        windowed = np.zeros(image.shape)
    else:
        windowed = np.clip((image - low) / (high - low), 0.0, 1.0)
        windowed[~full_roi] = np.clip((np.median(image[full_roi]) - low) / (high - low), 0.0, 1.0)
    y0, y1, x0, x1 = _box(full_roi)
    x = resize(windowed[y0:y1, x0:x1], (size, size), order=1, anti_aliasing=True, preserve_range=True)
    grid_roi = resize(full_roi[y0:y1, x0:x1].astype(np.float64), (size, size), order=1,
                      anti_aliasing=False, preserve_range=True) >= 0.5
    if not grid_roi.any():
        grid_roi[:] = True
    return RoiInput(x=x.astype(np.float32), roi=grid_roi, box=(y0, y1, x0, x1), full_roi=full_roi,
                    window=(low, high))


def to_input_grid(mask: np.ndarray, prep: RoiInput) -> np.ndarray:
    """A full-size binary mask as area fractions on the grid of ``prep`` (a soft target in [0, 1]).

    Parameters
    ----------
    mask : ndarray, shape (Y, X)
    prep : RoiInput

    Returns
    -------
    ndarray of float32, shape (S, S)
    """
    from skimage.transform import resize

    mask = np.asarray(mask)
    if mask.shape != prep.shape:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {prep.shape}")
    y0, y1, x0, x1 = prep.box
    size = prep.x.shape[0]
    soft = resize((mask[y0:y1, x0:x1] != 0).astype(np.float64), (size, size), order=1, anti_aliasing=True,
                  preserve_range=True)
    return np.clip(soft, 0.0, 1.0).astype(np.float32)


def to_image_grid(scores: np.ndarray, prep: RoiInput, threshold: float = 0.0) -> np.ndarray:
    """Scores on the grid -> a mask of the image: bilinear up-sampling into the box, ``> threshold``, ROI only.

    Parameters
    ----------
    scores : ndarray, shape (S, S)
        E.g. network scores (threshold 0), or a binary mask minus 0.5.
    prep : RoiInput
    threshold : float

    Returns
    -------
    ndarray of bool, shape (Y, X)
    """
    from skimage.transform import resize

    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != prep.x.shape:
        raise ValueError(f"scores shape {scores.shape} differs from the grid {prep.x.shape}")
    y0, y1, x0, x1 = prep.box
    up = resize(scores, (y1 - y0, x1 - x0), order=1, anti_aliasing=False, preserve_range=True)
    out = np.zeros(prep.shape, dtype=bool)
    out[y0:y1, x0:x1] = up > threshold
    return out & prep.full_roi
