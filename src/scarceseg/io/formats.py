"""File endings scarceseg reads and writes, and the path checks every reader starts with."""

from __future__ import annotations

from pathlib import Path

from scarceseg.errors import CorruptFileError, InputError, UnsupportedFormatError

#: Ending (lower case, with dot) -> format name. ``.nii.gz`` is matched before ``.gz``.
FORMATS: dict[str, str] = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".nrrd": "itk",
    ".nhdr": "itk",
    ".mha": "itk",
    ".mhd": "itk",
    ".dcm": "dicom-file",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
}

#: Every ending :func:`scarceseg.io.read_image` accepts (a DICOM series is a folder, not an ending).
SUPPORTED_ENDINGS: tuple[str, ...] = tuple(FORMATS)

#: Endings :func:`scarceseg.io.write_mask` writes, with the spatial dimensionality each one takes.
MASK_WRITE_ENDINGS: dict[str, int] = {".png": 2, ".tif": 2, ".tiff": 2, ".nii": 3, ".nii.gz": 3}

#: Formats that hold 2D pictures (PNG/JPEG/TIFF).
RASTER_FORMATS = frozenset({"png", "jpeg", "tiff"})


def ending_of(path: str | Path) -> str:
    """Lower-case ending of ``path`` including the dot, ``.nii.gz`` as one ending.

    Returns ``""`` when the name has no ending.
    """
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def stem_of(path: str | Path) -> str:
    """File name without its ending (``case.nii.gz`` -> ``case``)."""
    name = Path(path).name
    ending = ending_of(path)
    return name[: len(name) - len(ending)] if ending else name


def is_supported_file(path: str | Path) -> bool:
    """Whether ``path`` has an ending that :func:`read_image` knows (no check that it exists)."""
    return ending_of(path) in FORMATS


def format_of(path: str | Path) -> str:
    """Format name for an existing ``path``: one of :data:`FORMATS`' values or ``"dicom-series"``.

    Raises
    ------
    InputError
        The path does not exist, or is an empty folder.
    UnsupportedFormatError
        The ending is not one scarceseg reads.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        if not any(path.iterdir()):
            raise InputError(path, "folder is empty")
        return "dicom-series"
    ending = ending_of(path)
    if ending not in FORMATS:
        shown = ending or "(no ending)"
        raise UnsupportedFormatError(
            path,
            f"unsupported file ending {shown!r}; scarceseg reads {', '.join(SUPPORTED_ENDINGS)} "
            "and DICOM series folders",
        )
    if path.stat().st_size == 0:
        raise CorruptFileError(path, "file is empty (0 bytes)")
    return FORMATS[ending]
