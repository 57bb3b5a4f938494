"""Segment a whole data set folder with any trained model: the loop every ``segment_folder_*`` shares.

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

    Returns
    -------
    dict
        ``written``: list of mask paths; ``skipped``: list of ``(case_id, reason)`` (unreadable cases first).
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.io import write_mask
    from scarceseg.io.writers import mask_file_name

    mask_file_name("x.png", mask_format)  # an unknown format fails here, not once per case
    ds = open_dataset(data_dir, layout=layout)
    if case_ids is not None:
        ds = ds.subset(case_ids)
    out = Path(out_dir)
    written: list[str] = []
    skipped: list[tuple[str, str]] = []
    for case in ds.iter_cases(progress=progress, description=description):
        try:
            mask, name = predict_case(case)
            written.append(str(write_mask(mask, out / mask_file_name(name, mask_format), like=case)))
        except (ScarcesegError, ValueError) as exc:
            skipped.append((case.case_id, str(exc)))
    skipped = [(cid, reason) for cid, _, reason in ds.skipped] + skipped
    return {"written": written, "skipped": skipped}
