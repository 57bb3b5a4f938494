"""HDF5 files with an ``image`` dataset and an optional ``label`` (UA-MT LA 2018, SSL4MIS ACDC).

Axis order. HDF5 does not say which axis is depth, and the two public layouts differ:

* UA-MT LA 2018 stores ``(H, W, D)`` (e.g. ``(183, 140, 88)``);
* SSL4MIS ACDC volumes store ``(D, H, W)`` (e.g. ``(10, 256, 216)``); ACDC slices are 2D ``(H, W)``.

The order is taken from, in turn: the ``axes`` argument, an ``axes`` attribute (``"HWD"`` or
``"DHW"``) on the file or the ``image`` dataset, else ``"DHW"`` when the first axis is strictly the
shortest and ``"HWD"`` otherwise (the UA-MT default). The result is ``(1, D, H, W)`` = ``(C, Z, Y, X)``.

Spacing. Taken from a ``spacing`` attribute (file or ``image`` dataset, in the stored axis order)
when present; otherwise ``1.0`` per axis with ``meta["spacing_known"] = False`` (the UA-MT files
were resampled and carry no spacing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.errors import CorruptFileError, DimensionError, InputError, ShapeMismatchError
from scarceseg.io.raw import RawImage, reason_of

H5_AXES = ("HWD", "DHW")


def read_hdf5(path: Path, axes: str | None = None) -> RawImage:
    """Read ``image`` (and ``label`` when present) from an HDF5 file.

    Parameters
    ----------
    path : Path
    axes : {"HWD", "DHW"}, optional
        Stored order of a 3D ``image``; see the module docstring for the default.

    Returns
    -------
    RawImage
        ``array`` ``(1, Y, X)`` for a 2D image or ``(1, Z, Y, X)`` for 3D; ``label`` spatial shape or None.
    """
    import h5py

    image = label = None
    attrs: dict = {}
    try:
        with h5py.File(path, "r") as f:
            keys = sorted(f.keys())
            if "image" in f:
                image = f["image"][()]
                label = f["label"][()] if "label" in f else None
                attrs = {**dict(f.attrs), **dict(f["image"].attrs)}
    except Exception as exc:  # h5py raises OSError / KeyError / RuntimeError on broken files
        raise CorruptFileError(path, f"cannot decode HDF5 ({reason_of(exc)})") from exc
    if image is None:
        raise InputError(path, f"HDF5 file has no 'image' dataset (it has {', '.join(keys) or 'nothing'})")
    stored = str(image.dtype)
    if image.ndim == 2:
        order = "HW"
    elif image.ndim == 3:
        order = _axes_3d(path, image.shape, axes, attrs.get("axes"))
    else:
        raise DimensionError(path, f"HDF5 'image' of shape {image.shape} is neither 2D nor 3D")
    perm = [order.index(a) for a in "DHW" if a in order]
    array = np.ascontiguousarray(np.transpose(image, perm))[None]
    if label is not None:
        if label.shape != image.shape:
            raise ShapeMismatchError(
                path, f"HDF5 'label' shape {label.shape} differs from 'image' shape {image.shape}"
            )
        label = np.ascontiguousarray(np.transpose(label, perm))
    spacing_attr = attrs.get("spacing")
    if spacing_attr is not None and len(np.ravel(spacing_attr)) == image.ndim:
        stored_spacing = [float(s) for s in np.ravel(spacing_attr)]
        spacing = tuple(stored_spacing[i] for i in perm)
        known = True
    else:
        spacing = (1.0,) * image.ndim
        known = False
    meta = {"format": "hdf5", "dtype": stored, "spacing_known": known, "h5_axes": order}
    return RawImage(array=array, spacing=spacing, label=label, meta=meta)


def _axes_3d(path: Path, shape: tuple[int, ...], axes: str | None, attr) -> str:
    for source in (axes, attr):
        if source is None:
            continue
        if isinstance(source, bytes):
            source = source.decode()
        value = str(source).upper()
        if value not in H5_AXES:
            raise InputError(path, f"HDF5 axes must be one of {', '.join(H5_AXES)}, got {source!r}")
        return value
    return "DHW" if shape[0] < min(shape[1:]) else "HWD"
