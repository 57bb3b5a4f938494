"""A size guard checked before decoding: refuse images too large for this machine with one clear line.

Every reader calls :func:`check_file_size` first: it reads only the file's header (Pillow's size, tifffile's
page shape, nibabel's header shape, h5py's dataset shape, ITK's image information) and compares

* the number of values (voxels x channels) with :attr:`SizeLimit.max_voxels`, and
* the memory reading needs (the stored array plus its float32 copy) with :attr:`SizeLimit.max_megabytes`.

A DICOM series folder is not checked (its size is known only after GDCM has scanned every file, which
reading does anyway); single ``.dcm``, NRRD and MetaImage files are, through ITK's image information.

Methods that need much more memory per pixel than reading (the proposer: about 360 bytes per pixel, measured
on 512² and 1024² images) call :func:`check_method_memory` with their own estimate.

The limits come from the environment (``SCARCESEG_MAX_VOXELS``, ``SCARCESEG_MAX_MEMORY_MB``) or
:func:`set_size_limit`; the defaults (268 million values, 4096 MB) let every public data set scarceseg
reads through and stop a 10000 x 10000 RGB picture.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError

ENV_VOXELS = "SCARCESEG_MAX_VOXELS"
ENV_MEMORY = "SCARCESEG_MAX_MEMORY_MB"
DEFAULT_MAX_VOXELS = 2**28
DEFAULT_MAX_MEGABYTES = 4096.0


class ImageTooLargeError(InputError):
    """The image (or the work a method would do on it) exceeds the configured size limit."""


@dataclass(frozen=True)
class SizeLimit:
    """The largest input scarceseg decodes.

    Attributes
    ----------
    max_voxels : int
        Values of the image: spatial voxels times channels.
    max_megabytes : float
        Estimated memory of the work (reading: stored array + float32 copy), in MB (10⁶ bytes).
    """

    max_voxels: int = DEFAULT_MAX_VOXELS
    max_megabytes: float = DEFAULT_MAX_MEGABYTES

    def describe(self) -> str:
        return f"{self.max_voxels:,} values and {self.max_megabytes:g} MB"


_override: SizeLimit | None = None


def size_limit() -> SizeLimit:
    """The limit in force: :func:`set_size_limit`'s, else the environment's, else the defaults."""
    if _override is not None:
        return _override
    try:
        voxels = int(float(os.environ.get(ENV_VOXELS, DEFAULT_MAX_VOXELS)))
        megabytes = float(os.environ.get(ENV_MEMORY, DEFAULT_MAX_MEGABYTES))
    except ValueError:
        raise InputError(None, f"{ENV_VOXELS} and {ENV_MEMORY} must be numbers") from None
    return SizeLimit(voxels, megabytes)


def set_size_limit(limit: SizeLimit | None) -> None:
    """Set the limit for this process (None: back to the environment / defaults)."""
    global _override
    _override = limit


@contextmanager
def size_limit_set(limit: SizeLimit):
    """Within this block, :func:`size_limit` is ``limit``."""
    previous = _override
    set_size_limit(limit)
    try:
        yield
    finally:
        set_size_limit(previous)


def header_shape(path: Path, fmt: str) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape (all axes, channels included) and stored dtype from the file's header, without decoding pixels.

    None when the header cannot be read this way (the decoder then reports the problem) or for DICOM series.
    """
    try:
        if fmt in ("png", "jpeg"):
            from PIL import Image

            bomb_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # our limit decides, with our message; Pillow's applies when decoding
            try:
                with Image.open(path) as im:
                    width, height = im.size
                    bands = len(im.getbands())
                    dtype = np.dtype(np.uint16) if im.mode.startswith("I;16") else np.dtype(
                        np.int32 if im.mode in ("I", "F") else np.uint8)
            finally:
                Image.MAX_IMAGE_PIXELS = bomb_limit
            return (height, width, bands), dtype
        if fmt == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                return tuple(int(s) for s in series.shape), np.dtype(series.dtype)
        if fmt == "nifti":
            import nibabel as nib

            header = nib.load(str(path)).header
            return tuple(int(s) for s in header.get_data_shape()), np.dtype(header.get_data_dtype())
        if fmt == "hdf5":
            import h5py

            with h5py.File(path, "r") as f:
                if "image" not in f:
                    return None
                return tuple(int(s) for s in f["image"].shape), np.dtype(f["image"].dtype)
        if fmt in ("itk", "dicom-file"):
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            from scarceseg.io.volumes import quiet_itk

            with quiet_itk():
                reader.ReadImageInformation()
            shape = (*reader.GetSize(), reader.GetNumberOfComponents())
            return tuple(int(s) for s in shape), np.dtype(np.float32)
    except Exception:  # a broken header: the decoder gives the specific reason
        return None
    return None


def header_plane(path: Path) -> tuple[int, int] | None:
    """``(Y, X)`` of a 2D picture (PNG, JPEG, TIFF) from its header, without decoding; None otherwise."""
    from scarceseg.io.formats import RASTER_FORMATS, format_of

    try:
        fmt = format_of(path)
    except Exception:
        return None
    if fmt not in RASTER_FORMATS:
        return None
    if fmt == "tiff":
        try:
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                axes, shape = series.axes, series.shape
        except Exception:
            return None
        if "Y" not in axes or "X" not in axes:
            return None
        return int(shape[axes.index("Y")]), int(shape[axes.index("X")])
    found = header_shape(path, fmt)
    return None if found is None else (int(found[0][0]), int(found[0][1]))


def check_file_size(path: Path, fmt: str, limit: SizeLimit | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when the file's header announces an image over the limit."""
    found = header_shape(path, fmt)
    if found is None:
        return
    shape, dtype = found
    values = int(np.prod(shape, dtype=np.float64))
    megabytes = values * (dtype.itemsize + 4) / 1e6
    _check(path, shape, values, megabytes, "reading it", limit)


def check_method_memory(where: str | Path | None, shape: tuple[int, ...], bytes_per_pixel: float, what: str,
                        limit: SizeLimit | None = None) -> None:
    """Raise :class:`ImageTooLargeError` when ``what`` on an image of ``shape`` would need too much memory."""
    pixels = int(np.prod(shape, dtype=np.float64))
    _check(where, shape, None, pixels * bytes_per_pixel / 1e6, what, limit)


def _check(where, shape, values: int | None, megabytes: float, what: str, limit: SizeLimit | None) -> None:
    limit = limit or size_limit()
    dims = " x ".join(str(s) for s in shape)
    if values is not None and values > limit.max_voxels:
        raise ImageTooLargeError(
            where, f"image of {dims} ({values:,} values) is over the size limit of {limit.max_voxels:,} values "
                   f"(set {ENV_VOXELS} to change it)")
    if megabytes > limit.max_megabytes:
        raise ImageTooLargeError(
            where, f"image of {dims}: {what} would need about {megabytes:,.0f} MB, over the limit of "
                   f"{limit.max_megabytes:g} MB (set {ENV_MEMORY} to change it)")
