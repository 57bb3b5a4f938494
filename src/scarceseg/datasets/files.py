"""Layout ``files``: a plain folder of images, each file one unlabelled case (the layout tried last).

* every supported file directly in the folder is a case (case id = file stem), of any format,
  HDF5 included; hidden files are ignored;
* a sub-folder holding ``.dcm`` files is one case, a DICOM series (case id = the sub-folder's name);
* a folder whose only images are ``.dcm`` files is itself one DICOM series (one case).

A case has a label only when its file stores one (HDF5 ``label``). Other sub-folders are not read.
"""

from __future__ import annotations

from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import is_hidden, list_files, load_single, natural_key
from scarceseg.io.case import Case
from scarceseg.io.formats import ending_of, stem_of


def _dicom_folders(root: Path) -> list[Path]:
    return sorted((d for d in root.iterdir() if d.is_dir() and not is_hidden(d)
                   and any(ending_of(f) == ".dcm" for f in d.iterdir() if f.is_file())),
                  key=lambda d: natural_key(d.name))


def detect(root: Path) -> bool:
    """True when ``root`` holds a supported file or a sub-folder of ``.dcm`` files."""
    return bool(list_files(root)) or bool(_dicom_folders(root))


def scan(root: Path) -> tuple[list[Entry], list[str]]:
    """One entry per file (and per DICOM sub-folder), in natural order of the names."""
    files = list_files(root)
    if files and all(ending_of(p) == ".dcm" for p in files):
        return [Entry(case_id=root.name, patient_id=root.name, images=(root,))], []
    found = [(stem_of(p), p) for p in files] + [(d.name, d) for d in _dicom_folders(root)]
    stems = [cid for cid, _ in found]
    entries = []
    for cid, path in sorted(found, key=lambda item: natural_key(item[0])):
        if stems.count(cid) > 1:  # a.png and a.tif: both are cases, named by their whole file name
            cid = path.name
        entries.append(Entry(case_id=cid, patient_id=cid, images=(path,), label=None))
    dicom = set(_dicom_folders(root))
    notes = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not is_hidden(d) and d not in dicom):
        inside = list_files(sub, recursive=True)
        if inside:
            notes.append(f"sub-folder {sub.name}/ holds {len(inside)} image(s) that are not read "
                         "(open it as a folder of its own)")
    return entries, notes


def load(entry: Entry) -> Case:
    """The image (and a label stored in the same file)."""
    return load_single(entry)
