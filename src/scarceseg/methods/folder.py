"""Segment a whole data set folder with any trained model: the loop every entry point shares.

:func:`segment_folder` runs any registered :class:`~scarceseg.methods.contract.Segmenter` (what
``scarceseg segment --model`` and the browser app call); :func:`segment_cases` is the loop under it.

Each method supplies ``predict_case(case) -> (mask, file name)``; this module opens the folder, runs it on every
(or the given) case, writes each mask with the case's geometry (PNG for 2D, NIfTI for 3D, by the name's
ending; a DICOM SEG with ``mask_format="dicom-seg"``) and lists the cases that could not be read or segmented
instead of stopping at the first one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import ScarcesegError
from scarceseg.io.case import Case


def segment_cases(
    data_dir: str | Path,
    out_dir: str | Path,
    predict_case: Callable[[Case], tuple[np.ndarray, str]],
    description: str = "segmenting",
    case_ids: Sequence[str] | None = None,
    layout: str | None = None,
    progress: bool = True,
    mask_format: str = "auto",
    force: bool = False,
) -> dict:
    """Run ``predict_case`` on every case of a data set and write the masks.

    Parameters
    ----------
    data_dir : str or Path
        Any folder :func:`scarceseg.datasets.open_dataset` understands.
    out_dir : str or Path
        Receives the masks, named as ``predict_case`` says.
    predict_case : callable
        ``case -> (mask, file name)``; a :class:`~scarceseg.errors.ScarcesegError` or ``ValueError`` skips the
        case with its message.
    description : str
        Progress bar label.
    case_ids : sequence of str, optional
        Only these cases (default: all).
    layout : str, optional
    progress : bool
    mask_format : {"auto", "dicom-seg"}
        ``auto`` writes the name ``predict_case`` gives; ``dicom-seg`` writes ``<case>.dcm``, a DICOM SEG that
        references the case's DICOM series (a case not read from DICOM is skipped with that reason).
    force : bool
        Segment again cases whose mask is already in ``out_dir`` (default: keep them, so a rerun resumes;
        masks are written atomically, so an existing one is complete).

    Returns
    -------
    dict
        ``written``: list of mask paths; ``kept``: case ids whose mask was there already; ``skipped``: list
        of ``(case_id, reason)`` (unreadable cases first); ``notes``: the data set's notes (files that match
        no case, images without a mask).
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.io import write_mask
    from scarceseg.io.writers import mask_file_name
    from scarceseg.progress import CaseStatus, reporting_case

    mask_file_name("x.png", mask_format)  # an unknown format fails here, not once per case
    ds = open_dataset(data_dir, layout=layout)
    if case_ids is not None:
        ds = ds.subset(case_ids)
    out = Path(out_dir)
    kept = [] if force else finished_cases(ds.case_ids, out, mask_format)
    if kept:
        ds = ds.subset([c for c in ds.case_ids if c not in set(kept)])
    written: list[str] = []
    skipped: list[tuple[str, str]] = []
    status = CaseStatus()  # beside the bar: the loops of the case being segmented (a volume's slices)
    for case in ds.iter_cases(progress=progress, description=description, status=status):
        try:
            with reporting_case(case.case_id, status.update):
                mask, name = predict_case(case)
            written.append(str(write_mask(mask, out / mask_file_name(name, mask_format), like=case)))
        except (ScarcesegError, ValueError) as exc:
            skipped.append((case.case_id, str(exc)))
    skipped = [(cid, f"{where}: {reason}") for cid, where, reason in ds.skipped] + skipped
    return {"written": written, "kept": kept, "skipped": skipped, "notes": list(ds.notes)}


#: Endings of the masks ``segment`` writes, per mask format.
MASK_ENDINGS = (".png", ".nii.gz", ".nii")
SEG_ENDINGS = (".dcm",)


def finished_cases(case_ids: Sequence[str], out_dir: str | Path, mask_format: str = "auto") -> list[str]:
    """The case ids that already have a mask in ``out_dir``: ``<case_id>.png`` / ``.nii.gz`` / ``.nii``, or
    ``<case_id>.dcm`` for ``mask_format="dicom-seg"`` (a NIfTI mask does not make a SEG run skip the case)."""
    out = Path(out_dir)
    if not out.is_dir():
        return []
    endings = SEG_ENDINGS if mask_format == "dicom-seg" else MASK_ENDINGS
    return [c for c in case_ids if any((out / f"{c}{e}").is_file() for e in endings)]


def segment_folder(
    model,
    data_dir: str | Path,
    out_dir: str | Path,
    case_ids: Sequence[str] | None = None,
    layout: str | None = None,
    progress: bool = True,
    force: bool = True,
    mask_format: str = "auto",
) -> dict:
    """Segment every (or the given) case with a :class:`~scarceseg.methods.contract.Segmenter`.

    Writes ``<case_id>.png`` (2D) or ``<case_id>.nii.gz`` (3D) per case; the model's
    :meth:`~scarceseg.methods.contract.Segmenter.after_predict` and ``finish`` hooks may add files (the
    selector's ``selection.json``, PixelDRL-MG's action maps).

    Parameters
    ----------
    model : Segmenter or str or Path
        A segmenter, or a model folder (opened with :func:`scarceseg.methods.registry.load_model`).
    force : bool
        Segment again the cases whose mask is already in ``out_dir`` (``False``: keep them, a rerun resumes).
    mask_format : {"auto", "dicom-seg"}
        ``dicom-seg`` writes ``<case_id>.dcm`` DICOM SEGs (see :func:`segment_cases`).

    Returns
    -------
    dict
        ``written``, ``skipped`` (as :func:`segment_cases`) and ``extra`` (each case's ``Prediction.extra``).
    """
    if isinstance(model, str | Path):
        from scarceseg.methods.registry import load_model

        model = load_model(model, kind="segmenter")
    from scarceseg.methods.contract import predict_case

    out = Path(out_dir)
    extra: dict[str, dict] = {}
    neighbours = None
    if getattr(model, "context_slices", 0):  # the slices around each one, from the whole folder
        from scarceseg.datasets import open_dataset
        from scarceseg.datasets.slices import NeighbourSlices

        neighbours = NeighbourSlices.of_dataset(open_dataset(data_dir, layout=layout))

    def segment_one(case: Case) -> tuple[np.ndarray, str]:
        prediction = predict_case(model, case, neighbours)
        model.after_predict(out, case, prediction)
        extra[case.case_id] = prediction.extra
        return prediction.mask, f"{case.case_id}{'.png' if case.ndim == 2 else '.nii.gz'}"

    summary = segment_cases(data_dir, out, segment_one, f"segmenting ({model.name})", case_ids, layout, progress,
                            force=force, mask_format=mask_format)
    summary["extra"] = extra
    model.finish(out, summary)
    return summary
