"""Layout ``pairs``: ``images/`` + ``masks/`` (or ``labels/``) matched by file stem.

Any supported ending, 2D or 3D, and the two folders may use different endings. The mask of
``images/<stem>.<ext>`` is ``masks/<stem>.<ext2>`` or ``masks/<stem>_mask.<ext2>``.

* case id = stem; patient id = case id, or the group ``patient`` (else group 1) of
  ``patient_regex`` matched against the case id (e.g. ``r"^(.+)_\\d+$"`` for ``<patient>_<slice>``);
* an image without a mask is an unlabelled case (a note lists them when others have masks); a mask
  of the wrong shape is reported (``Dataset.label_problems``) and the image still loads, unlabelled.
"""

from __future__ import annotations

from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import list_files, load_single, masks_by_stem, missing_mask_notes, patient_from_regex
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

MASK_FOLDERS = ("masks", "labels")


def _mask_folder(root: Path) -> Path | None:
    for name in MASK_FOLDERS:
        if (root / name).is_dir():
            return root / name
    return None


def detect(root: Path) -> bool:
    """True when ``root`` holds ``images/`` and ``masks/`` (or ``labels/``) with readable files."""
    mask_dir = _mask_folder(root)
    return mask_dir is not None and bool(list_files(root / "images"))


def scan(root: Path, patient_regex: str | None = None) -> tuple[list[Entry], list[str]]:
    """One entry per file of ``images/``.

    Parameters
    ----------
    patient_regex : str, optional
        Regular expression that extracts the patient id from the case id.
    """
    mask_dir = _mask_folder(root)
    masks = masks_by_stem(mask_dir)
    entries = []
    used: set[str] = set()
    seen: dict[str, Path] = {}
    for path in list_files(root / "images"):
        stem = stem_of(path)
        if stem in seen:
            raise InputError(path, f"two images for case {stem!r}: {seen[stem]} and {path}")
        seen[stem] = path
        key = stem if stem in masks else f"{stem}_mask"
        mask = masks.get(key)
        if mask is not None:
            used.add(key)
        entries.append(
            Entry(
                case_id=stem,
                patient_id=patient_from_regex(stem, patient_regex),
                images=(path,),
                label=mask,
            )
        )
    notes = missing_mask_notes(seen, {stem for stem in seen if stem in masks or f"{stem}_mask" in masks})
    orphans = sorted(masks.keys() - used)
    if orphans:
        notes.append(f"{len(orphans)} masks have no image: {', '.join(orphans[:5])}")
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(C, Y, X)`` or ``(C, Z, Y, X)``; label of the same spatial shape."""
    return load_single(entry)
