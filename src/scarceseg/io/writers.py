"""Write masks: PNG/TIFF for 2D, NIfTI for 3D, DICOM SEG for DICOM input, aligned with the image they were made from."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.errors import DimensionError, InputError, UnsupportedFormatError
from scarceseg.io.case import Case
from scarceseg.io.checks import check_same_shape, smallest_int_dtype, to_label_map
from scarceseg.io.formats import MASK_WRITE_ENDINGS, ending_of, stem_of
from scarceseg.io.raw import reason_of
from scarceseg.io.safe_write import replacing

#: ``--format`` values of the commands that write masks: ``auto`` is PNG (2D) / NIfTI (3D) as the method
#: names them; ``dicom-seg`` is a DICOM SEG ``<case>.dcm`` referencing the DICOM series the case was read from.
MASK_FORMATS: tuple[str, ...] = ("auto", "dicom-seg")


def mask_file_name(name: str, mask_format: str = "auto") -> str:
    """The file name a mask named ``name`` (``<case>.png`` / ``.nii.gz``) gets in ``mask_format``."""
    if mask_format not in MASK_FORMATS:
        raise ValueError(f"mask format must be one of {', '.join(MASK_FORMATS)}, got {mask_format!r}")
    return name if mask_format == "auto" else stem_of(name) + ".dcm"


def write_mask(mask: np.ndarray, path: str | Path, like: Case | None = None) -> Path:
    """Write a label map; the ending chooses the format. Parent folders are created.

    * ``.png`` / ``.tif`` / ``.tiff`` (2D): ``uint8``; a binary mask is written as 0/255 (visible
      in any viewer, read back as {0, 1} by :func:`read_mask`); labels above 1 are written as they are
      (they must fit in 0..255).
    * ``.dcm`` (2D or 3D): a DICOM SEG referencing the DICOM images ``like`` was read from (see
      :func:`scarceseg.io.dicom_seg.write_dicom_seg`; ``like`` is required and must come from DICOM).
    * ``.nii`` / ``.nii.gz`` (3D): ``uint8`` (``int16``/``int32`` when labels need it), array
      transposed back to the file's own ``(i, j, k)`` order, affine = ``like.affine`` so the mask
      overlays the input in any viewer. Without ``like.affine`` the affine is the diagonal of the
      spacing (``like.spacing`` reversed, or 1 mm) with ``like.origin`` as translation. The
      qform/sform codes are the source's when it was a NIfTI file (``like.meta``), else 1 (scanner).

    The file is written with no-follow semantics (:mod:`scarceseg.io.safe_write`): a temporary file
    renamed over ``path``; a ``path`` that is a symbolic link is refused.

    Parameters
    ----------
    mask : ndarray, shape (Y, X) or (Z, Y, X)
        Integer or boolean label map (float arrays must hold integral values).
    path : str or Path
    like : Case, optional
        The image the mask belongs to; its spatial shape must equal ``mask.shape``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    UnsupportedFormatError
        Ending not one of :data:`MASK_WRITE_ENDINGS`.
    DimensionError
        A 3D mask for a 2D ending or the reverse.
    ShapeMismatchError
        ``mask.shape`` differs from ``like.shape``.
    InputError
        Labels that the format cannot hold, or the file cannot be written.
    SymlinkRefused
        ``path`` is a symbolic link.
    """
    path = Path(path)
    ending = ending_of(path)
    if ending == ".dcm":
        from scarceseg.io.dicom_seg import write_dicom_seg

        if like is None:
            raise InputError(path, "a DICOM SEG mask needs the DICOM image it was made from")
        return write_dicom_seg(mask, path, like)
    if ending not in MASK_WRITE_ENDINGS:
        raise UnsupportedFormatError(
            path,
            f"cannot write a mask as {ending or '(no ending)'!r}; use .png/.tif (2D), .nii/.nii.gz (3D) "
            "or .dcm (DICOM SEG, for DICOM input)",
        )
    mask = np.asarray(mask)
    wanted = MASK_WRITE_ENDINGS[ending]
    if mask.ndim != wanted:
        other = ".nii.gz" if mask.ndim == 3 else ".png"
        raise DimensionError(
            path, f"a {ending} mask must be {wanted}D but the mask has shape {mask.shape}; use {other}"
        )
    if like is not None:
        check_same_shape(mask.shape, like, path)
    labels = to_label_map(mask, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            if wanted == 2:
                _write_2d(labels, tmp, ending)
            else:
                _write_nifti(labels, tmp, like)
    except OSError as exc:
        raise InputError(path, f"cannot write the mask ({reason_of(exc)})") from exc
    return path


def _write_2d(labels: np.ndarray, path: Path, ending: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise InputError(path, f"labels {labels.min()}..{labels.max()} do not fit a {ending} mask (0..255)")
    data = labels.astype(np.uint8)
    if data.size and data.max() <= 1:
        data = data * np.uint8(255)
    if ending == ".png":
        from PIL import Image

        Image.fromarray(data).save(path)
    else:
        import tifffile

        tifffile.imwrite(path, data, compression="zlib")


def _write_nifti(labels: np.ndarray, path: Path, like: Case | None) -> None:
    import nibabel as nib

    dtype = smallest_int_dtype(labels)
    if dtype != np.uint8 and labels.min() >= np.iinfo(np.int16).min and labels.max() <= np.iinfo(np.int16).max:
        dtype = np.dtype(np.int16)
    data = np.ascontiguousarray(labels.astype(dtype).transpose(2, 1, 0))
    affine = mask_affine(like)
    qform_code, sform_code = header_codes(like)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, code=sform_code)
    img.set_qform(affine, code=qform_code)
    img.header.set_xyzt_units("mm")
    nib.save(img, str(path))


def header_codes(like: Case | None) -> tuple[int, int]:
    """The NIfTI ``(qform_code, sform_code)`` of a mask: the source file's, else ``(1, 1)`` (scanner anatomical).

    A NIfTI source keeps its own codes (e.g. 0/2: no qform, sform aligned to another scan), so the mask
    means the same to a viewer as its image. Other sources (NRRD, DICOM: scanner coordinates) get 1/1.
    """
    meta = like.meta if like is not None else {}
    if meta.get("format") == "nifti" and "qform_code" in meta and "sform_code" in meta:
        return int(meta["qform_code"]), int(meta["sform_code"])
    return 1, 1


def mask_affine(like: Case | None) -> np.ndarray:
    """The 4x4 affine a 3D mask is written with: ``like.affine``, else spacing (and origin) only."""
    if like is not None and like.affine is not None:
        return np.asarray(like.affine, dtype=np.float64)
    affine = np.eye(4)
    if like is not None:
        affine[:3, :3] = np.diag(like.spacing[::-1])
        if like.origin is not None:
            affine[:3, 3] = like.origin[::-1]
    return affine
