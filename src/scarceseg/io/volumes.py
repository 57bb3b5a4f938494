"""3D formats: NIfTI (nibabel), NRRD/MetaImage and DICOM series (SimpleITK).

Every reader returns channels first and spatial axes ``(Z, Y, X)``: the file's own index order
``(i, j, k)`` reversed. ``affine`` maps ``(i, j, k)`` to RAS millimetres for every format, so a mask
written as NIfTI with it overlays the input; ``origin`` is that affine's translation, reversed to
``(z, y, x)`` order (RAS for ITK files too; the LPS values stay in ``meta``).
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from scarceseg.errors import CorruptFileError, DimensionError, InputError
from scarceseg.io.raw import RawImage, reason_of

#: The longest 4th NIfTI axis read as channels (see :func:`read_nifti`).
MAX_NIFTI_CHANNELS = 8
#: ITK/DICOM world coordinates are LPS; NIfTI's (and Case.affine's) are RAS.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


_itk_logger = None  # the process-wide ITK logger that writes into Python logging (kept alive here)


def _route_itk_messages() -> bool:
    """Send ITK's C++ messages to the ``scarceseg.itk`` logger (INFO) instead of stderr; False if impossible."""
    global _itk_logger
    if _itk_logger is not None:
        return True
    import SimpleITK as sitk

    base = getattr(sitk, "LoggerBase", None)
    if base is None:  # SimpleITK < 2.2
        return False

    class _ToLogging(base):
        def _log(self, text: str) -> None:
            logging.getLogger("scarceseg.itk").info("ITK: %s", " ".join(str(text).split()))

        DisplayText = DisplayErrorText = DisplayWarningText = DisplayGenericOutputText = DisplayDebugText = _log

    logger = _ToLogging()
    logger.SetAsGlobalITKLogger()
    _itk_logger = logger
    return True


@contextmanager
def quiet_itk():
    """No ITK/GDCM C++ warnings (``WARNING: In ...cxx``) on stderr while reading: they go to the log file
    (logger ``scarceseg.itk``); scarceseg reports the problem itself in one line."""
    import SimpleITK as sitk

    if _route_itk_messages():
        yield
        return
    previous = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(previous)


def read_nifti(path: Path) -> RawImage:
    """Read ``.nii`` / ``.nii.gz``.

    ``(i, j)`` -> ``(1, Y, X)``; ``(i, j, k)`` -> ``(1, Z, Y, X)``; ``(i, j, k, c)`` -> ``(C, Z, Y, X)``
    (4D NIfTI such as MSD BraTS stores channels last). Scaling (``scl_slope``) is applied.

    4D files: the 4th axis is read as channels, the way MSD stores its multi-sequence tasks (2 to 4
    sequences), when it has at most :data:`MAX_NIFTI_CHANNELS` entries; ``meta["channels_from"]`` says so
    and ``scarceseg info`` shows it. A longer 4th axis is a time series (fMRI, DCE, cine), which scarceseg
    does not segment: it raises :class:`DimensionError` instead of yielding dozens of "channels".
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        stored = img.get_data_dtype()
    except Exception as exc:  # nibabel, gzip and zlib raise many types on broken files
        raise CorruptFileError(path, f"cannot decode NIfTI ({reason_of(exc)})") from exc
    if data.ndim == 5 and data.shape[3] == 1:  # (i, j, k, t=1, c): vector images
        data = data[:, :, :, 0, :]
    if data.ndim not in (2, 3, 4):
        raise DimensionError(path, f"NIfTI with {data.ndim} dimensions {data.shape} is not supported")
    if data.ndim == 4 and data.shape[3] > MAX_NIFTI_CHANNELS:
        raise DimensionError(
            path, f"4D NIfTI {data.shape} has {data.shape[3]} volumes along its 4th axis; scarceseg reads the 4th "
                  f"axis as channels (MRI sequences) only up to {MAX_NIFTI_CHANNELS}: a longer one is a time "
                  "series (fMRI, DCE, cine); save the volume to segment as a 3D NIfTI")
    zooms = [_positive(z) for z in img.header.get_zooms()]
    affine = np.asarray(img.affine, dtype=np.float64)
    meta = {
        "format": "nifti",
        "dtype": str(stored),
        "spacing_known": True,
        "qform_code": int(img.header["qform_code"]),
        "sform_code": int(img.header["sform_code"]),
        "axcodes": "".join(nib.aff2axcodes(affine)),
    }
    if data.ndim == 4:
        meta["channels_from"] = "the 4th NIfTI axis"
    if data.ndim == 2:
        array = data.T[None]
        return RawImage(array=np.ascontiguousarray(array), spacing=tuple(zooms[:2][::-1]), meta=meta)
    array = data.T if data.ndim == 3 else np.transpose(data, (3, 2, 1, 0))
    if data.ndim == 3:
        array = array[None]
    origin = tuple(float(v) + 0.0 for v in affine[:3, 3][::-1])
    return RawImage(
        array=np.ascontiguousarray(array),
        spacing=tuple(zooms[:3][::-1]),
        origin=origin,
        affine=affine,
        meta=meta,
    )


def read_itk(path: Path, fmt: str = "itk") -> RawImage:
    """Read ``.nrrd`` / ``.nhdr`` / ``.mha`` / ``.mhd`` (or one ``.dcm`` file) with SimpleITK."""
    import SimpleITK as sitk

    try:
        with quiet_itk():
            img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise CorruptFileError(path, f"cannot decode {path.name} ({_itk_reason(exc)})") from exc
    raw = from_sitk(img, path)
    raw.meta["format"] = fmt
    if fmt == "dicom-file":
        raw.meta["dicom_files"] = (str(path),)  # the source a DICOM SEG refers to (io/dicom_seg.py)
        raw = _squeeze_single_slice(raw)
    return raw


def read_dicom_series(folder: Path, series_id: str | None = None) -> RawImage:
    """Read a DICOM series stored directly in ``folder``.

    Parameters
    ----------
    folder : Path
    series_id : str, optional
        The SeriesInstanceUID to read when the folder holds several series.

    Raises
    ------
    InputError
        No DICOM series in the folder, several series and no ``series_id``, or an unknown one.
    """
    with quiet_itk():
        return _read_dicom_series(folder, series_id)


def _read_dicom_series(folder: Path, series_id: str | None) -> RawImage:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    ids = list(reader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise InputError(
            folder, "folder holds no DICOM series (a folder is read as one DICOM series; give a file path)"
        )
    if series_id is None and len(ids) > 1:
        raise InputError(
            folder, f"folder holds {len(ids)} DICOM series ({', '.join(ids)}); choose one with series_id"
        )
    chosen = series_id if series_id is not None else ids[0]
    if chosen not in ids:
        raise InputError(folder, f"no DICOM series {chosen!r} here; the folder holds {', '.join(ids)}")
    files = reader.GetGDCMSeriesFileNames(str(folder), chosen)
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise CorruptFileError(folder, f"cannot decode DICOM series {chosen} ({_itk_reason(exc)})") from exc
    raw = from_sitk(img, folder)
    # dicom_files: the file of each Z slice, in the image's order (GDCM sorts them along the slice normal);
    # a DICOM SEG written for this image refers to them (io/dicom_seg.py).
    raw.meta.update(format="dicom-series", series_id=chosen, n_files=len(files), dicom_files=tuple(files))
    for key, tag in (("modality", "0008|0060"), ("series_description", "0008|103e")):
        if reader.HasMetaDataKey(0, tag):
            raw.meta[key] = reader.GetMetaData(0, tag).strip()
    if len(files) == 1:
        raw = _squeeze_single_slice(raw)
    return raw


def from_sitk(img, path: Path) -> RawImage:
    """Convert a SimpleITK image to channels-first ``(C, [Z,] Y, X)`` with a RAS affine for 3D.

    A 4D scalar image ``(T, Z, Y, X)`` becomes channels ``(C=T, Z, Y, X)``.
    """
    import SimpleITK as sitk

    dim = img.GetDimension()
    n_comp = img.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(img)
    if n_comp > 1:
        if dim == 4:
            raise DimensionError(path, "4D images with vector pixels are not supported")
        array = np.moveaxis(array, -1, 0)
    elif dim != 4:
        array = array[None]
    if dim not in (2, 3, 4):
        raise DimensionError(path, f"{dim}D images are not supported")
    n = min(dim, 3)
    spacing_ijk = [_positive(s) for s in img.GetSpacing()[:n]]
    origin_lps = [float(v) for v in img.GetOrigin()[:n]]
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)[:n, :n]
    meta = {
        "dtype": str(array.dtype),
        "spacing_known": True,
        "itk_origin_lps": tuple(origin_lps),
        "itk_direction": tuple(direction.ravel().tolist()),
    }
    if n == 2:
        return RawImage(
            array=np.ascontiguousarray(array),
            spacing=tuple(spacing_ijk[::-1]),
            origin=tuple(origin_lps[::-1]),
            meta=meta,
        )
    affine = np.eye(4)
    affine[:3, :3] = direction @ np.diag(spacing_ijk)
    affine[:3, 3] = origin_lps
    affine = LPS_TO_RAS @ affine
    return RawImage(
        array=np.ascontiguousarray(array),
        spacing=tuple(spacing_ijk[::-1]),
        origin=tuple(float(v) + 0.0 for v in affine[:3, 3][::-1]),
        affine=affine,
        meta=meta,
    )


def _squeeze_single_slice(raw: RawImage) -> RawImage:
    """A DICOM image of one slice becomes a 2D image ``(C, Y, X)`` (X-rays, single frames)."""
    if raw.array.ndim == 4 and raw.array.shape[1] == 1:
        raw.array = raw.array[:, 0]
        raw.spacing = raw.spacing[1:]
        raw.origin = None if raw.origin is None else raw.origin[1:]
        raw.affine = None
    return raw


def _positive(value: float) -> float:
    """Spacing from a header; 0 or negative (broken headers) read as its absolute value, 0 as 1."""
    value = abs(float(value))
    return value if value > 0 else 1.0



def _itk_reason(exc: BaseException) -> str:
    """The informative part of a (long, multi-line) ITK exception message.

    The ``ERROR:`` line without the object address, plus the last line when more follow it (for
    NRRD that is the specific header problem).
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    index = next((i for i, ln in enumerate(lines) if "ERROR:" in ln), None)
    if index is None:
        return lines[-1][:300]
    text = re.sub(r"\w+\(0x[0-9a-fA-F]+\):\s*", "", lines[index].split("ERROR:", 1)[1]).strip()
    if index < len(lines) - 1:
        last = re.sub(r"^\[\w+\]\s*", "", lines[-1])
        text = f"{text.rstrip(':')}: {last}"
    return text[:300]
