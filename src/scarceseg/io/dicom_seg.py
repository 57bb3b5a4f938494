"""Write a mask as a DICOM Segmentation (SEG) object that references the DICOM images it was made from.

A SEG is the DICOM way to store a label map: one frame per source slice, each frame tied to its source
image (SOP Instance UID), the same Frame of Reference, position, orientation and pixel spacing, in the
same study as the source series. highdicom builds it from the source images' headers (read with pydicom,
pixel data not loaded); this module only checks that the mask really lies on those images.

The source files come from the :class:`~scarceseg.io.case.Case`: the DICOM readers record them in
``case.meta["dicom_files"]``, in the order of the image's ``Z`` axis (a single ``.dcm`` file: one entry).
A 2D axial slice of a DICOM volume (:func:`scarceseg.datasets.slices.slice_case`) uses the file of its slice.

Segments: a binary mask is one segment; a label map with values ``1..N`` gives segments ``1..N``
(every number described, present or not). Every segment is coded as SNOMED CT "Morphologically abnormal
structure" / "Lesion" unless another label is given; the algorithm is identified as scarceseg.

:func:`read_dicom_seg` reads a SEG back as a label map on the grid of the case it refers to, placing each
frame by the source image it references (never by frame order, which highdicom sorts by position), so
``evaluate`` scores SEG predictions like PNG/NIfTI ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import CorruptFileError, InputError, ShapeMismatchError
from scarceseg.io.case import Case
from scarceseg.io.checks import check_same_shape, to_label_map
from scarceseg.io.raw import reason_of
from scarceseg.io.safe_write import replacing

#: The file ending of a DICOM SEG written by scarceseg.
SEG_ENDING = ".dcm"
#: ``algorithm_type`` values: a model's output (``segment``), a mask refined with clicks (the app), drawn by hand.
ALGORITHM_TYPES = ("automatic", "semiautomatic", "manual")
#: Largest distance (mm) between a source slice's ImagePositionPatient and the case's own geometry.
POSITION_TOLERANCE_MM = 0.01
#: Most segments (label values) one SEG holds here.
MAX_SEGMENTS = 255
#: SOP Class UID of the Segmentation Storage IOD.
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def dicom_sources(case: Case) -> list[Path]:
    """The DICOM files under the case's ``Z`` slices (one file for a 2D case).

    Raises
    ------
    InputError
        The case was not read from DICOM (a DICOM SEG must reference DICOM source images).
    """
    files = case.meta.get("dicom_files")
    where = case.source or case.case_id or None
    if not files:
        fmt = case.meta.get("format", "an unknown format")
        raise InputError(where, f"was read from {fmt}, not DICOM; a DICOM SEG can only be written for "
                                "a DICOM series (or .dcm file) input")
    files = [Path(f) for f in files]
    if case.ndim == 2 and len(files) > 1:
        index = case.meta.get("slice_index")
        if case.meta.get("slice_axis") != 0 or index is None or not 0 <= int(index) < len(files):
            raise InputError(where, "a DICOM SEG of a 2D slice needs an axial slice of the DICOM volume")
        files = [files[int(index)]]
    return files


def write_dicom_seg(
    mask: np.ndarray,
    path: str | Path,
    like: Case,
    *,
    algorithm_type: str = "automatic",
    segment_labels: Sequence[str] | None = None,
    series_description: str = "scarceseg segmentation",
    series_number: int = 900,
) -> Path:
    """Write ``mask`` as a DICOM SEG referencing the DICOM images ``like`` was read from.

    Parameters
    ----------
    mask : ndarray, shape (Y, X) or (Z, Y, X)
        Boolean or integer label map on ``like``'s grid (``0`` background, ``1..N`` segments).
    path : str or Path
        The file to write (parent folders are created; written with no-follow semantics, see
        :mod:`scarceseg.io.safe_write`); by convention it ends in ``.dcm``.
    like : Case
        The case the mask was made from; read from a DICOM series or ``.dcm`` file.
    algorithm_type : {"automatic", "semiautomatic", "manual"}
        How the mask was made: a model (``segment``), a mask refined with clicks (the browser app), by hand.
    segment_labels : sequence of str, optional
        One label per segment number ``1..N``; default ``"lesion"`` (binary) or ``"label <n>"``.
    series_description : str
    series_number : int

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        ``like`` was not read from DICOM, the sources are missing or multi-frame, the mask is not a label
        map that fits, or the file cannot be written.
    ShapeMismatchError
        The mask's shape differs from ``like``'s, or the source images' rows, columns or positions differ
        from the case's geometry (the SEG would not overlay its source).
    CorruptFileError
        A source file does not decode as DICOM.
    """
    import highdicom as hd
    import pydicom
    from pydicom.sr.codedict import codes

    from scarceseg import __version__

    path = Path(path)
    if algorithm_type not in ALGORITHM_TYPES:
        raise ValueError(f"algorithm_type must be one of {ALGORITHM_TYPES}, got {algorithm_type!r}")
    mask = np.asarray(mask)
    check_same_shape(mask.shape, like, path)
    labels = to_label_map(mask, path)
    files = dicom_sources(like)
    frames = labels[None] if labels.ndim == 2 else labels
    if frames.shape[0] != len(files):
        raise InputError(path, f"the mask has {frames.shape[0]} slices but the DICOM source has {len(files)} files "
                               "(multi-frame DICOM sources are not supported for DICOM SEG)")
    n_segments = int(labels.max()) if labels.size else 0
    if (labels.size and labels.min() < 0) or n_segments > MAX_SEGMENTS:
        raise InputError(path, f"labels {labels.min()}..{labels.max()} do not fit a DICOM SEG (0..{MAX_SEGMENTS})")
    n_segments = max(n_segments, 1)  # an empty mask is still one (empty) segment
    sources = []
    for f in files:
        try:
            sources.append(pydicom.dcmread(f, stop_before_pixels=True))
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise CorruptFileError(f, f"cannot read the DICOM source of the SEG ({reason_of(exc)})") from exc
    _check_geometry(sources, files, frames.shape[1:], like, path)

    if segment_labels is None:
        segment_labels = ["lesion"] if n_segments == 1 else [f"label {i}" for i in range(1, n_segments + 1)]
    if len(segment_labels) < n_segments:
        raise ValueError(f"{n_segments} segments need {n_segments} labels, got {len(segment_labels)}")
    kind = hd.seg.SegmentAlgorithmTypeValues[algorithm_type.upper()]
    algorithm = None if kind == hd.seg.SegmentAlgorithmTypeValues.MANUAL else hd.AlgorithmIdentificationSequence(
        name="scarceseg", version=__version__, family=codes.cid7162.ArtificialIntelligence)
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i,
            segment_label=str(segment_labels[i - 1]),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion,
            algorithm_type=kind,
            algorithm_identification=algorithm,
        )
        for i in range(1, n_segments + 1)
    ]
    try:
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=frames.astype(np.uint8),
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="scarceseg",
            manufacturer_model_name="scarceseg",
            software_versions=__version__,
            device_serial_number="none",
            omit_empty_frames=False,  # one frame per source slice, also where the mask is empty
            series_description=series_description,
        )
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # highdicom's checks of the source headers
        raise InputError(files[0], f"cannot build a DICOM SEG from this source ({reason_of(exc)})") from exc
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:  # no-follow: a symlinked target is refused, the file appears whole
            seg.save_as(tmp)
    except OSError as exc:
        raise InputError(path, f"cannot write the DICOM SEG ({reason_of(exc)})") from exc
    return path


def _check_geometry(sources: list, files: list[Path], shape: tuple[int, int], like: Case, path: Path) -> None:
    """Refuse sources whose size or slice positions differ from the case's grid (the SEG would be misplaced)."""
    from scarceseg.io.volumes import LPS_TO_RAS

    for k, (ds, f) in enumerate(zip(sources, files, strict=True)):
        size = (int(getattr(ds, "Rows", -1)), int(getattr(ds, "Columns", -1)))
        if size != tuple(shape):
            raise ShapeMismatchError(path, f"the mask's slices are {shape} but {f.name} is {size} (rows, columns)")
        if like.ndim == 3 and like.affine is not None and "ImagePositionPatient" in ds:
            expected = (LPS_TO_RAS @ like.affine @ np.array([0.0, 0.0, k, 1.0]))[:3]
            found = np.asarray([float(v) for v in ds.ImagePositionPatient])
            if np.abs(found - expected).max() > POSITION_TOLERANCE_MM:
                raise ShapeMismatchError(
                    path, f"slice {k} of the mask lies at {expected.round(3).tolist()} mm but its source {f.name} "
                          f"at {found.round(3).tolist()} mm; the source files changed since the image was read")


def is_dicom_seg(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM file of the Segmentation Storage class (reads only its header)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (OSError, pydicom.errors.InvalidDicomError):
        return False
    return str(getattr(ds, "SOPClassUID", "")) == SEG_SOP_CLASS


def read_dicom_seg(path: str | Path, like: Case | None) -> np.ndarray:
    """A DICOM SEG as a label map on the grid of ``like``, the case read from the images it references.

    Each frame goes to the slice whose source image (SOP Instance UID) it references, with its segment
    number as the label (where binary segments overlap, the higher number wins).

    Parameters
    ----------
    path : str or Path
    like : Case
        Read from the DICOM series (or file) the SEG refers to.

    Returns
    -------
    ndarray, shape like ``like.shape``, uint8

    Raises
    ------
    InputError
        No ``like``, ``like`` not read from DICOM, a frame referencing an image outside it, or a SEG that
        is not binary (fractional SEGs are not read).
    CorruptFileError
        The file does not decode.
    """
    import pydicom

    path = Path(path)
    if like is None:
        raise InputError(path, "a DICOM SEG is read as a mask only together with the DICOM image it refers to")
    files = dicom_sources(like)
    try:
        seg = pydicom.dcmread(path)
        kind = str(getattr(seg, "SegmentationType", ""))
        pixels = seg.pixel_array if kind == "BINARY" else None
    except (OSError, ValueError, AttributeError, pydicom.errors.InvalidDicomError) as exc:
        raise CorruptFileError(path, f"cannot decode the DICOM SEG ({reason_of(exc)})") from exc
    if pixels is None:
        raise InputError(path, f"only BINARY DICOM SEGs are read as masks, this one is {kind or 'of no type'}")
    n_frames = int(getattr(seg, "NumberOfFrames", 1))
    pixels = pixels.reshape(n_frames, int(seg.Rows), int(seg.Columns))
    slice_of = {}
    for k, f in enumerate(files):
        try:
            slice_of[str(pydicom.dcmread(f, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                         .SOPInstanceUID)] = k
        except (OSError, AttributeError, pydicom.errors.InvalidDicomError) as exc:
            raise CorruptFileError(f, f"cannot read the DICOM source of the SEG ({reason_of(exc)})") from exc
    out = np.zeros((len(files), *pixels.shape[1:]), dtype=np.uint8)
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else None
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        try:  # a functional group is per frame, or shared by all frames (one segment: its number is shared)
            groups = [g for g in (item, shared) if g is not None]
            ident = next(g for g in groups if "SegmentIdentificationSequence" in g).SegmentIdentificationSequence
            derived = next(g for g in groups if "DerivationImageSequence" in g).DerivationImageSequence
            number = int(ident[0].ReferencedSegmentNumber)
            sop = str(derived[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        except (StopIteration, AttributeError, IndexError) as exc:
            raise InputError(path, "a SEG frame names no segment or no source image") from exc
        if sop not in slice_of:
            raise InputError(path, f"a frame refers to image {sop}, which is not in {like.source or like.case_id}")
        k = slice_of[sop]
        out[k] = np.where(frame > 0, np.maximum(out[k], number), out[k])
    labels = out[0] if like.ndim == 2 else out
    check_same_shape(labels.shape, like, path)
    return labels
