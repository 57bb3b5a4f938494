"""Read any supported file (or DICOM series folder) into a :class:`Case`; read masks as label maps.

The reader is chosen by the file ending (case-insensitive), see :data:`SUPPORTED_ENDINGS`:

==================  ======================  =========================================================
ending              library                 result
==================  ======================  =========================================================
.nii .nii.gz        nibabel                 ``(i, j, k)`` -> ``(1, Z, Y, X)``; 4D -> ``(C, Z, Y, X)``
.nrrd .nhdr         SimpleITK               ``(1 or C, Z, Y, X)``, RAS affine from direction/origin
.mha .mhd           SimpleITK               same
folder, .dcm        SimpleITK (GDCM)        a DICOM series (one slice -> 2D)
.png .jpg .jpeg     Pillow                  ``(Y, X)`` -> ``(1, Y, X)``, ``(Y, X, C)`` -> ``(C, Y, X)``
.tif .tiff          tifffile + imagecodecs  same (LZW, multi-channel); explicit Z axis -> 3D
.h5 .hdf5           h5py                    ``image`` (+ ``label``), see :mod:`scarceseg.io.hdf5`
==================  ======================  =========================================================

Every user-caused problem raises a :class:`~scarceseg.errors.ScarcesegError` whose message starts
with the path.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.checks import check_finite, check_same_shape, to_label_map
from scarceseg.io.formats import RASTER_FORMATS, format_of, stem_of
from scarceseg.io.hdf5 import read_hdf5
from scarceseg.io.limits import check_file_size
from scarceseg.io.raster import read_raster
from scarceseg.io.raw import RawImage
from scarceseg.io.volumes import read_dicom_series, read_itk, read_nifti


def read_raw(
    path: str | Path, *, for_mask: bool = False, series_id: str | None = None, h5_axes: str | None = None
) -> RawImage:
    """Decode ``path`` into a :class:`RawImage` (stored dtype, channels first), by its ending.

    Parameters
    ----------
    path : str or Path
        A file with a supported ending, or a folder holding one DICOM series.
    for_mask : bool
        Keep palette indices of palette PNGs (labels) instead of converting them to RGB.
    series_id : str, optional
        DICOM SeriesInstanceUID, when the folder holds several series.
    h5_axes : {"HWD", "DHW"}, optional
        Stored axis order of a 3D HDF5 ``image``.

    Raises
    ------
    ImageTooLargeError
        The header announces an image over :func:`scarceseg.io.limits.size_limit` (checked before decoding).
    """
    path = Path(path)
    fmt = format_of(path)
    check_file_size(path, fmt)
    if fmt == "nifti":
        return read_nifti(path)
    if fmt in ("itk", "dicom-file"):
        return read_itk(path, fmt)
    if fmt == "dicom-series":
        return read_dicom_series(path, series_id)
    if fmt == "hdf5":
        return read_hdf5(path, h5_axes)
    if fmt in RASTER_FORMATS:
        return read_raster(path, fmt, for_mask=for_mask)
    raise AssertionError(f"no reader for format {fmt}")  # FORMATS and this function disagree


def read_image(path: str | Path, *, series_id: str | None = None, h5_axes: str | None = None) -> Case:
    """Read an image file (or DICOM series folder) into a :class:`Case`.

    Parameters
    ----------
    path : str or Path
    series_id : str, optional
        DICOM SeriesInstanceUID when a folder holds several series.
    h5_axes : {"HWD", "DHW"}, optional
        Stored axis order of a 3D HDF5 ``image`` (default: guessed, see :mod:`scarceseg.io.hdf5`).

    Returns
    -------
    Case
        ``image`` float32 ``(C, Y, X)`` or ``(C, Z, Y, X)``; ``meta["dtype"]`` the stored data type,
        ``meta["format"]`` the format, ``meta["spacing_known"]`` whether spacing came from the file.
        ``case_id`` and ``patient_id`` default to the file stem (folder name for DICOM);
        ``label`` is filled only by formats that store one (HDF5 ``label``).

    Raises
    ------
    InputError
        Missing path, empty folder, folder without a DICOM series.
    UnsupportedFormatError
        Unknown ending.
    CorruptFileError
        The file does not decode (message: the file and the decoder's reason).
    NonFiniteError
        NaN or infinite intensities (message: how many voxels).
    """
    path = Path(path)
    raw = read_raw(path, series_id=series_id, h5_axes=h5_axes)
    check_finite(raw.array, path)
    image = raw.array.astype(np.float32, copy=False)
    if raw.array.dtype != np.float32:
        check_finite(image, path)  # float64 beyond the float32 range becomes inf
    label = None if raw.label is None else to_label_map(raw.label, path)
    ident = stem_of(path) if path.is_file() else path.name
    return Case(
        image=image,
        spacing=tuple(float(s) for s in raw.spacing),
        case_id=ident,
        patient_id=ident,
        label=label,
        affine=raw.affine,
        origin=raw.origin,
        source=path,
        label_source=path if label is not None else None,
        channel_names=raw.channel_names,
        meta=raw.meta,
    )


def read_mask(path: str | Path, like: Case | None = None, *, h5_axes: str | None = None) -> np.ndarray:
    """Read a mask file as an integer label map of the spatial shape.

    * PNG/TIFF masks with values {0, 255} -> ``uint8`` {0, 1}; several identical channels (the LGG
      masks are 3 identical channels) -> one; an alpha channel is ignored;
    * other integer maps keep their values (``uint8`` when they fit, else ``int32``);
    * float label maps (BraTS ``OTMultiClass``) -> integer, if every value is integral;
    * HDF5: the ``label`` dataset;
    * a DICOM SEG (``.dcm``): its segments on the grid of ``like``, the DICOM image it refers to
      (:func:`scarceseg.io.dicom_seg.read_dicom_seg`);
    * JPEG is lossy: a JPEG mask is thresholded at 128 into {0, 1}, with a warning.

    Parameters
    ----------
    path : str or Path
    like : Case, optional
        The image this mask belongs to; its spatial shape must match.

    Returns
    -------
    ndarray, shape (Y, X) or (Z, Y, X), integer dtype

    Raises
    ------
    ShapeMismatchError
        ``like`` is given and the shapes differ (message names both files and shapes).
    InputError
        Non-integral values, differing colour channels, HDF5 without ``label``.
    """
    path = Path(path)
    if format_of(path) == "dicom-file":
        from scarceseg.io.dicom_seg import is_dicom_seg, read_dicom_seg

        if is_dicom_seg(path):  # frames placed by the source image they reference (needs ``like``)
            return read_dicom_seg(path, like)
    raw = read_raw(path, for_mask=True, h5_axes=h5_axes)
    fmt = raw.meta.get("format")
    if fmt == "hdf5":
        if raw.label is None:
            raise InputError(path, "HDF5 file has no 'label' dataset to read as a mask")
        array = raw.label
    else:
        array = _one_channel(raw, path)
    if fmt == "jpeg":
        warnings.warn(f"{path}: JPEG is lossy; the mask is thresholded at 128", stacklevel=2)
        labels = (array >= 128).astype(np.uint8)
    else:
        labels = to_label_map(array, path)
    if like is not None:
        check_same_shape(labels.shape, like, path)
    return labels


def _one_channel(raw: RawImage, path: Path) -> np.ndarray:
    """The single channel of a mask ``(C, ...)``: channels must be identical (alpha ignored)."""
    array = raw.array
    if array.shape[0] in (2, 4) and raw.channel_names[-1:] in (("A",), ("alpha",)):
        array = array[:-1]
    first = array[0]
    for other in array[1:]:
        if not np.array_equal(other, first):
            raise InputError(
                path,
                f"mask has {array.shape[0]} channels that differ; a mask must be one label map "
                "(a single channel, or identical channels)",
            )
    return first
