"""Layout ``brats``: one folder per case holding one NIfTI (or NRRD/MHA) file per MR sequence.

Files are recognised by the words in their names (case-insensitive, split at non-letters/digits):

==========  ==========================================================================
role        name contains
==========  ==========================================================================
FLAIR       ``flair`` or the word ``t2f`` (BraTS 2023)
T1          the word ``t1``, ``t1n`` or ``t1w``
T1c         a word ``t1c``, ``t1ce``, ``t1gd`` or ``t1post``
T2          the word ``t2`` or ``t2w``
label       ``OTMultiClass``, or a word ``seg``, ``ot``, ``label``, ``labels``, ``gt``, ``truth``
ignored     ``brainmask`` (an air threshold, not an annotation), ``weightmap``
==========  ==========================================================================

A case folder is any folder (the root included) directly holding a FLAIR file.

* Channels are stacked in the fixed order **FLAIR, T1, T1c, T2** (FLAIR first, as the methods use
  it), keeping the sequences that *every* case has (the others are named in ``Dataset.notes``);
  ``modalities=("FLAIR", "T1c")`` chooses them (a case missing one is skipped).
* case id = folder name; patient id = folder name, with a time-point suffix removed only where the
  naming makes it obvious: ``brats_2013_pat0001_1`` -> ``brats_2013_pat0001`` (BRATS 2013/2015
  ``brats_<src>_pat<NNNN>_<tp>``) and ``BraTS-GLI-00000-000`` -> ``BraTS-GLI-00000`` (BraTS 2023).
* The label keeps its values (BraTS: 0 background, 1 necrosis, 2 edema, 3 non-enhancing,
  4 enhancing); whole tumour = ``Case.target`` (label > 0). Float-stored label maps become integers.
* A folder without a label file, where others have one, is skipped ("no label"); with no label
  anywhere the set is unlabelled.
"""

from __future__ import annotations

import re
from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import list_files, load_stacked, natural_key
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

#: Channel order of the ``brats`` layout.
MODALITY_ORDER = ("FLAIR", "T1", "T1c", "T2")

_LABEL_WORDS = {"seg", "ot", "label", "labels", "gt", "truth", "groundtruth", "otmulticlass"}
_TIMEPOINT = (
    re.compile(r"^(brats_[a-z0-9]+_pat\d+)_\d+$", re.IGNORECASE),
    re.compile(r"^(brats-[a-z]+-\d{5})-\d{3}$", re.IGNORECASE),
)


def classify(path: Path) -> str | None:
    """Role of a file from its name: a modality of :data:`MODALITY_ORDER`, ``"label"``, ``"ignore"`` or None."""
    name = stem_of(path).lower()
    words = set(re.split(r"[^a-z0-9]+", name))
    if "brainmask" in name or "weightmap" in name:
        return "ignore"
    if "otmulticlass" in name or words & _LABEL_WORDS:
        return "label"
    if "flair" in name or "t2f" in words:
        return "FLAIR"
    if words & {"t1c", "t1ce", "t1gd", "t1post"}:
        return "T1c"
    if words & {"t1", "t1n", "t1w"}:
        return "T1"
    if words & {"t2", "t2w"}:
        return "T2"
    return None


def patient_of(case_id: str) -> str:
    """Patient id of a BraTS case folder name (time-point suffix removed when obvious)."""
    for pattern in _TIMEPOINT:
        match = pattern.match(case_id)
        if match:
            return match.group(1)
    return case_id


def _case_folders(root: Path) -> list[Path]:
    folders = {p.parent for p in list_files(root, recursive=True) if classify(p) == "FLAIR"}
    return sorted(folders, key=lambda p: natural_key(str(p)))


def detect(root: Path) -> bool:
    """True when some folder below ``root`` (or ``root``) holds a FLAIR volume."""
    return bool(_case_folders(root))


def scan(root: Path, modalities: tuple[str, ...] | list[str] | None = None) -> tuple[list[Entry], list[str]]:
    """One entry per case folder.

    Parameters
    ----------
    modalities : sequence of str, optional
        Channels to stack, from :data:`MODALITY_ORDER` (default: those every case has).
    """
    notes: list[str] = []
    found = []
    for folder in _case_folders(root):
        roles: dict[str, list[Path]] = {}
        for path in list_files(folder):
            role = classify(path)
            if role is not None and role != "ignore":
                roles.setdefault(role, []).append(path)
        found.append((folder, roles))
    if modalities is None:
        common = set(MODALITY_ORDER)
        for _, roles in found:
            common &= roles.keys()
        chosen = tuple(m for m in MODALITY_ORDER if m in common)
        dropped = sorted({m for _, r in found for m in r if m in MODALITY_ORDER} - common)
        if dropped:
            notes.append(f"sequences not in every case left out: {', '.join(dropped)}")
    else:
        by_lower = {m.lower(): m for m in MODALITY_ORDER}
        unknown = [m for m in modalities if m.lower() not in by_lower]
        if unknown:
            raise InputError(root, f"unknown modalities {unknown}; the brats layout knows {MODALITY_ORDER}")
        chosen = tuple(by_lower[m.lower()] for m in modalities)
    any_label = any("label" in roles for _, roles in found)
    entries = []
    for folder, roles in found:
        problem = None
        missing = [m for m in chosen if m not in roles]
        several = [m for m in (*chosen, "label") if len(roles.get(m, [])) > 1]
        if missing:
            problem = f"no {', '.join(missing)} file in this case folder"
        elif several:
            names = ", ".join(p.name for m in several for p in roles[m])
            problem = f"several files for {', '.join(several)} ({names}); keep one"
        elif any_label and "label" not in roles:
            problem = "no label file (OTMultiClass / *seg* / *OT* / *label*) in this case folder"
        label = roles["label"][0] if len(roles.get("label", [])) == 1 else None
        images = tuple(roles[m][0] for m in chosen if m in roles)
        entries.append(
            Entry(
                case_id=folder.name,
                patient_id=patient_of(folder.name),
                images=images or (folder,),
                label=label,
                info={"channel_names": chosen},
                problem=problem,
            )
        )
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(C, Z, Y, X)`` with channels named after the sequences; label ``(Z, Y, X)``."""
    return load_stacked(entry)
