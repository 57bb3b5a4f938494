"""Layout ``dicom``: DICOM series, one case per folder that holds ``.dcm`` files.

* ``root/*.dcm``: the folder is one series, one case (case id = the folder name);
* ``root/<case>/*.dcm``, or deeper as TCIA stores them (``<patient>/<study>/<series>/*.dcm``): every folder
  that directly holds ``.dcm`` files is one case; case id = its path below ``root`` joined with ``_``;
  patient id = its first folder below ``root`` (so splits keep a patient's series together);
* masks, optional: ``masks/<case_id>.<ext>`` (or ``labels/``), any ending :func:`~scarceseg.io.read_mask` reads,
  on the series' grid. An image without a mask, where others have one, is skipped ("no mask"); with no mask
  at all the set is unlabelled.

Only files ending in ``.dcm`` are looked for (DICOM files without an ending: give the series folder itself
to :func:`~scarceseg.io.read_image`). A folder with several series is a case that fails to load with a
message naming them. Masks written for these cases can be DICOM SEG (``segment --format dicom-seg``).
"""

from __future__ import annotations

from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import is_hidden, list_files, load_single, missing_mask_policy, natural_key
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

MASK_FOLDERS = ("masks", "labels")
_DCM = ".dcm"


def _series_folders(root: Path) -> list[Path]:
    """Folders at or below ``root`` (hidden and mask folders left out) that directly hold a ``.dcm`` file."""
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        has_dcm = False
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
        if has_dcm:
            found.append(folder)
    return sorted(found, key=lambda p: natural_key(str(p)))


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
    masks: dict[str, Path] = {}
    for path in list_files(mask_dir) if mask_dir is not None else []:
        stem = stem_of(path)
        if stem in masks:
            raise InputError(path, f"two masks for {stem!r}: {masks[stem]} and {path}")
        masks[stem] = path
    entries = []
    for folder in _series_folders(root):
        case_id = _case_id(root, folder)
        parts = folder.relative_to(root).parts
        mask = masks.get(case_id)
        entries.append(Entry(
            case_id=case_id,
            patient_id=parts[0] if parts else case_id,
            images=(folder,),
            label=mask,
            problem=missing_mask_policy(bool(masks), mask, f"masks/{case_id}.*"),
        ))
    notes = []
    orphans = sorted(masks.keys() - {e.case_id for e in entries})
    if orphans:
        notes.append(f"{len(orphans)} masks have no series: {', '.join(orphans[:5])}")
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(C, Z, Y, X)`` (``(C, Y, X)`` for a one-file series); ``meta["dicom_files"]`` lists the slices' files."""
    return load_single(entry)
