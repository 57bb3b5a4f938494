"""Layout ``dicom``: DICOM series, one case per folder that holds ``.dcm`` files.

* ``root/*.dcm``: the folder is one series, one case (case id = the folder name);
* ``root/<case>/*.dcm``, or deeper as TCIA stores them (``<patient>/<study>/<series>/*.dcm``): every folder
  that directly holds ``.dcm`` files is one case; case id = its path below ``root`` joined with ``_``;
  patient id = its first folder below ``root`` (so splits keep a patient's series together);
* masks, optional: ``masks/<case_id>.<ext>`` (or ``labels/``), any ending :func:`~scarceseg.io.read_mask` reads,
  on the series' grid. A series without a mask is an unlabelled case (a note names them when others have one).

Only files ending in ``.dcm`` are looked for (DICOM files without an ending: give the series folder itself
to :func:`~scarceseg.io.read_image`). A folder with several series is a case that fails to load with a
message naming them. Masks written for these cases can be DICOM SEG (``segment --format dicom-seg``).
"""

from __future__ import annotations

from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import is_hidden, list_files, load_single, masks_by_stem, missing_mask_notes, natural_key
from scarceseg.io.case import Case
from scarceseg.io.formats import is_supported_file

MASK_FOLDERS = ("masks", "labels")
_DCM = ".dcm"


def _walk(root: Path) -> tuple[list[Path], list[Path]]:
    """Folders at or below ``root`` (hidden and mask folders left out) that directly hold a ``.dcm`` file, and
    those that hold other image files (which this layout does not read)."""
    series: list[Path] = []
    others: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        has_dcm = has_other = False
        try:
            children = list(folder.iterdir())
        except OSError:
            continue
        for child in children:
            if is_hidden(child) or child.is_symlink():
                continue
            if child.is_dir():
                if not (folder == root and child.name in MASK_FOLDERS):
                    stack.append(child)
            elif child.name.lower().endswith(_DCM):
                has_dcm = True
            elif is_supported_file(child):
                has_other = True
        if has_dcm:
            series.append(folder)
        elif has_other:
            others.append(folder)
    key = lambda p: natural_key(str(p))  # noqa: E731
    return sorted(series, key=key), sorted(others, key=key)


def _series_folders(root: Path) -> list[Path]:
    return _walk(root)[0]


def detect(root: Path) -> bool:
    """True when ``root`` or a folder below it holds ``.dcm`` files and ``root`` holds no other image files.

    A stray ``.dcm`` among PNGs or NIfTIs does not turn a folder of images into a DICOM data set.
    """
    if any(not p.name.lower().endswith(_DCM) for p in list_files(root)):
        return False
    return bool(_series_folders(root))


def _case_id(root: Path, folder: Path) -> str:
    parts = folder.relative_to(root).parts
    return "_".join(parts) if parts else root.name


def scan(root: Path) -> tuple[list[Entry], list[str]]:
    """One entry per series folder, with its mask from ``masks/`` when there is one."""
    mask_dir = next((root / n for n in MASK_FOLDERS if (root / n).is_dir()), None)
    masks = masks_by_stem(mask_dir)
    series, others = _walk(root)
    entries = []
    for folder in series:
        case_id = _case_id(root, folder)
        parts = folder.relative_to(root).parts
        mask = masks.get(case_id)
        entries.append(Entry(case_id=case_id, patient_id=parts[0] if parts else case_id, images=(folder,),
                             label=mask))
    notes = missing_mask_notes({e.case_id: e.images[0] for e in entries}, {e.case_id for e in entries if e.label})
    notes += [f"{folder.relative_to(root)}/ holds images that are not DICOM series and are not read"
             for folder in others]
    orphans = sorted(masks.keys() - {e.case_id for e in entries})
    if orphans:
        notes.append(f"{len(orphans)} masks have no series: {', '.join(orphans[:5])}")
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(C, Z, Y, X)`` (``(C, Y, X)`` for a one-file series); ``meta["dicom_files"]`` lists the slices' files."""
    return load_single(entry)
