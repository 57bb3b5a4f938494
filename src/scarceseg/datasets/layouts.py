"""The known folder layouts (an explicit dict) and :func:`open_dataset`, which picks one."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scarceseg.datasets import brats, dicom, files, h5, lgg, msd, pairs
from scarceseg.datasets.base import Dataset, Entry, Loader
from scarceseg.errors import InputError


@dataclass(frozen=True)
class Layout:
    """How one public data set stores its files.

    Attributes
    ----------
    name : str
    description : str
        One line for error messages and ``--help``.
    detect : callable Path -> bool
        Whether a folder looks like this layout (cheap: names only, no decoding).
    scan : callable (Path, **options) -> (list of Entry, list of str)
        Entries and notes; options are the layout's keyword arguments.
    load : callable Entry -> Case
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    scan: Callable[..., tuple[list[Entry], list[str]]]
    load: Loader


LAYOUTS: dict[str, Layout] = {
    "lgg": Layout(
        "lgg",
        "Kaggle kaggle_3m LGG: <patient>_<slice>.tif + <patient>_<slice>_mask.tif (flat, per patient, "
        "or images/ + masks/)",
        lgg.detect,
        lgg.scan,
        lgg.load,
    ),
    "brats": Layout(
        "brats",
        "BraTS: one folder per case with *flair*.nii.gz (+ T1/T1c/T2) and a label map (OTMultiClass/seg)",
        brats.detect,
        brats.scan,
        brats.load,
    ),
    "h5": Layout(
        "h5",
        "HDF5 with image/label keys (UA-MT LA 2018 cases/<id>/*.h5, ACDC flat <id>.h5)",
        h5.detect,
        h5.scan,
        h5.load,
    ),
    "msd": Layout(
        "msd",
        "Medical Segmentation Decathlon: dataset.json + imagesTr/ + labelsTr/",
        msd.detect,
        msd.scan,
        msd.load,
    ),
    "pairs": Layout(
        "pairs",
        "images/ + masks/ matched by file stem (<stem>.<ext> or <stem>_mask.<ext>)",
        pairs.detect,
        pairs.scan,
        pairs.load,
    ),
    "dicom": Layout(
        "dicom",
        "DICOM series: every folder holding .dcm files is one case (optional masks/<case_id>.*)",
        dicom.detect,
        dicom.scan,
        dicom.load,
    ),
    "files": Layout(
        "files",
        "a plain folder of images: each file (or sub-folder of .dcm files) one case, unlabelled",
        files.detect,
        files.scan,
        files.load,
    ),
}

#: Order in which :func:`detect_layout` tries the layouts: the most specific first
#: (an LGG copy in images/ + masks/ also looks like ``pairs``).
#: ``dicom`` comes before ``files``: a folder of DICOM series (and masks/) is a DICOM data set only when its
#: root holds no other images. ``files`` comes last: it matches any folder with an image in it.
DETECTION_ORDER: tuple[str, ...] = ("msd", "lgg", "pairs", "h5", "brats", "dicom", "files")


def known_layouts() -> str:
    """The layouts, one per line, for messages."""
    return "\n".join(f"  {name}: {layout.description}" for name, layout in LAYOUTS.items())


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise InputError(root, "no such folder")
    if not root.is_dir():
        raise InputError(root, "is a file, not a data set folder (use read_image for single files)")
    if not any(p for p in root.iterdir() if not p.name.startswith(".")):
        raise InputError(root, "folder is empty")
    return root


def detect_layout(root: str | Path) -> str | None:
    """Name of the first layout of :data:`DETECTION_ORDER` that ``root`` matches, or None."""
    root = _check_root(root)
    for name in DETECTION_ORDER:
        if LAYOUTS[name].detect(root):
            return name
    return None


def open_dataset(root: str | Path, layout: str | None = None, **options) -> Dataset:
    """Open a data set folder; its cases are loaded lazily.

    Parameters
    ----------
    root : str or Path
    layout : str, optional
        A key of :data:`LAYOUTS`; detected from the folder when not given.
    **options
        Layout options: ``brats``: ``modalities``; ``h5``: ``axes``; ``pairs``: ``patient_regex``.

    Returns
    -------
    Dataset

    Raises
    ------
    InputError
        The folder does not exist, is empty, matches no layout (the message lists the known ones),
        the layout is unknown, an option is not one the layout takes, or no case is found.
    """
    root = _check_root(root)
    if layout is None:
        name = detect_layout(root)
        if name is None:
            raise InputError(root, f"matches no known data set layout and holds no image scarceseg reads "
                                   f"({_listing(root)}); "
                                   f"known layouts: {'; '.join(known_layouts().split(chr(10)))}")
    else:
        name = layout.lower()
        if name not in LAYOUTS:
            raise InputError(root, f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    chosen = LAYOUTS[name]
    params = [p for p in inspect.signature(chosen.scan).parameters if p != "root"]
    unknown = sorted(set(options) - set(params))
    if unknown:
        takes = ", ".join(params) if params else "no options"
        raise InputError(root, f"layout {name!r} has no option {', '.join(unknown)} (it takes: {takes})")
    entries, notes = chosen.scan(root, **options)
    if not entries:
        raise InputError(root, f"no cases found for layout {name!r} ({chosen.description})")
    unused = unused_files(root, entries)
    if unused:
        notes.append(f"{len(unused)} file(s) match no case of layout {name!r}: {', '.join(unused)}")
    return Dataset(root, name, entries, chosen.load, notes)


def unused_files(root: Path, entries: list[Entry]) -> list[str]:
    """Names of the readable files directly in ``root`` that no entry uses (as image or label)."""
    from scarceseg.datasets.common import list_files

    used = {Path(p) for e in entries for p in (*e.images, *([e.label] if e.label is not None else []))}
    if root in used:  # the folder itself is the case (a DICOM series)
        return []
    return [p.name for p in list_files(root) if p not in used]


def _listing(root: Path, limit: int = 8) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"it holds {', '.join(names[:limit])}{more}"
