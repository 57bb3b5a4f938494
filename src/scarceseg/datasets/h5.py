"""Layout ``h5``: HDF5 files with ``image`` and ``label`` (UA-MT LA 2018, SSL4MIS ACDC).

Two arrangements, looked for in ``root/cases/`` when it exists, else in ``root``:

* ``<id>/<anything>.h5`` — one file per folder (UA-MT: ``<id>/mri_norm2.h5``): case id = folder name;
* flat ``<id>.h5`` files (ACDC ``patient001_frame01.h5``): case id = file stem.

Folders holding several HDF5 files (e.g. SSL4MIS ``slices/``) are not cases; they are named in
``Dataset.notes`` (open such a folder as a data set of its own). Patient id = case id, except
ACDC-like names ``patientNNN_...`` -> ``patientNNN`` (both frames of one patient stay together).
Axis order and spacing: see :mod:`scarceseg.io.hdf5` (``axes="HWD"`` / ``"DHW"`` overrides the guess).
"""

from __future__ import annotations

import re
from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import list_files, load_single, natural_key
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

_H5 = (".h5", ".hdf5")
_ACDC = re.compile(r"^(patient\d+)_", re.IGNORECASE)


def _base(root: Path) -> Path:
    return root / "cases" if (root / "cases").is_dir() else root


def _find(root: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    base = _base(root)
    found = [(stem_of(p), p) for p in list_files(base, endings=_H5)]
    notes = []
    subfolders = sorted((d for d in base.iterdir() if d.is_dir() and not d.name.startswith(".")),
                        key=lambda d: natural_key(d.name)) if base.is_dir() else []
    for folder in subfolders:
        files = list_files(folder, endings=_H5)
        if len(files) == 1:
            found.append((folder.name, files[0]))
        elif len(files) > 1:
            notes.append(f"{folder} holds {len(files)} HDF5 files and is not read as one case")
    return found, notes


def patient_of(case_id: str) -> str:
    """``patient001_frame01`` -> ``patient001``; any other id is its own patient."""
    match = _ACDC.match(case_id)
    return match.group(1) if match else case_id


def detect(root: Path) -> bool:
    """True when ``root`` (or ``root/cases``) holds HDF5 files, flat or one per subfolder, and no other images.

    A folder of other images with a stray ``.h5`` among them is not an HDF5 data set (it is read as the
    ``files`` layout, the HDF5 file one case among the others).
    """
    found, _ = _find(root)
    others = [p for p in list_files(_base(root)) if not p.name.lower().endswith(_H5)]
    return bool(found) and not others


def scan(root: Path, axes: str | None = None) -> tuple[list[Entry], list[str]]:
    """One entry per HDF5 file.

    Parameters
    ----------
    axes : {"HWD", "DHW"}, optional
        Stored axis order of 3D images (default: guessed per file, see :mod:`scarceseg.io.hdf5`).
    """
    found, notes = _find(root)
    entries = [
        Entry(
            case_id=case_id,
            patient_id=patient_of(case_id),
            images=(path,),
            label=path,
            info={"read_options": {"h5_axes": axes}},
        )
        for case_id, path in sorted(found, key=lambda item: natural_key(item[0]))
    ]
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(1, Z, Y, X)`` (or ``(1, Y, X)`` for 2D files), label from the same file if present."""
    return load_single(entry)
