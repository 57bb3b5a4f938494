"""2D pictures: PNG and JPEG through Pillow, TIFF through tifffile + imagecodecs (LZW included).

Pixel spacing is ``1.0`` (pixel units, ``meta["spacing_known"] = False``): the DPI fields of PNG/TIFF
files are screen or print settings, not a trustworthy physical size, so they are not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.errors import CorruptFileError, UnsupportedFormatError
from scarceseg.io.raw import RawImage, reason_of

_PIL_CHANNELS = {
    "L": ("gray",),
    "LA": ("gray", "alpha"),
    "RGB": ("R", "G", "B"),
    "RGBA": ("R", "G", "B", "A"),
}


def read_raster(path: Path, fmt: str, for_mask: bool = False) -> RawImage:
    """Read a PNG, JPEG or TIFF file.

    Parameters
    ----------
    path : Path
    fmt : {"png", "jpeg", "tiff"}
    for_mask : bool
        Keep palette indices of ``P``-mode PNGs (they are the labels) instead of converting to RGB.

    Returns
    -------
    RawImage
        ``array`` of shape ``(C, Y, X)`` (or ``(C, Z, Y, X)`` for a TIFF with an explicit Z axis).
    """
    if fmt == "tiff":
        array, names, meta = _read_tiff(path)
    else:
        array, names, meta = _read_pil(path, for_mask)
    meta.update(format=fmt, dtype=str(array.dtype), spacing_known=False)
    spacing = (1.0,) * (array.ndim - 1)
    return RawImage(array=array, spacing=spacing, channel_names=names, meta=meta)


def _read_pil(path: Path, for_mask: bool) -> tuple[np.ndarray, tuple[str, ...], dict]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode == "P" and not for_mask:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "PA", "RGBX"):
                im = im.convert("RGB")
            array = np.asarray(im)
            names = _PIL_CHANNELS.get(im.mode, ())
    except Exception as exc:  # Pillow's decoders raise OSError, SyntaxError, ValueError, ...
        raise CorruptFileError(path, f"cannot decode image ({reason_of(exc)})") from exc
    if array.ndim == 2:
        array = array[None]
        names = names or ("gray",)
    elif array.ndim == 3:
        array = np.moveaxis(array, -1, 0)
    else:
        raise CorruptFileError(path, f"unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array), names, {"mode": mode}


def _read_tiff(path: Path) -> tuple[np.ndarray, tuple[str, ...], dict]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            axes = series.axes
            array = series.asarray()
            photometric = tf.pages[0].photometric
            compression = tf.pages[0].compression
    except Exception as exc:  # tifffile/imagecodecs raise TiffFileError, ValueError, RuntimeError, ...
        raise CorruptFileError(path, f"cannot decode TIFF ({reason_of(exc)})") from exc
    array, layout = _tiff_to_channels_first(path, array, axes)
    names: tuple[str, ...] = ()
    if getattr(photometric, "name", "") == "RGB" and array.shape[0] in (3, 4):
        names = ("R", "G", "B", "A")[: array.shape[0]]
    meta = {"tiff_axes": axes, "tiff_compression": getattr(compression, "name", str(compression))}
    meta["tiff_layout"] = layout
    return array, names, meta


def _tiff_to_channels_first(path: Path, array: np.ndarray, axes: str) -> tuple[np.ndarray, str]:
    """Reorder a tifffile series to ``(C, Y, X)`` / ``(C, Z, Y, X)``.

    Only axes ``Y``, ``X``, one channel axis (``S`` samples or ``C``) and ``Z`` are accepted;
    any other axis longer than 1 (``I``/``Q`` plain page stacks, ``T`` time) is refused, because a
    plain multi-page TIFF does not say whether its pages are slices or channels.
    """
    keep = [i for i, a in enumerate(axes) if a in "YX" or array.shape[i] > 1]
    array = array.reshape([array.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    unknown = [a for a in axes if a not in "YXSCZ"]
    if unknown or "Y" not in axes or "X" not in axes or ("S" in axes and "C" in axes):
        raise UnsupportedFormatError(
            path,
            f"TIFF with axes {axes!r} and shape {array.shape} is not a single 2D image (with channels) "
            "or an explicit Z volume; multi-page stacks are ambiguous (slices or channels?): "
            "save a volume as NIfTI or an ImageJ hyperstack with a Z axis",
        )
    order = [axes.index(a) for a in "SCZYX" if a in axes]
    array = np.transpose(array, order)
    layout = "".join(a for a in "SCZYX" if a in axes).replace("S", "C")
    if "S" not in axes and "C" not in axes:
        array = array[None]
    return np.ascontiguousarray(array), layout

