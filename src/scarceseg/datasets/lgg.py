"""Layout ``lgg``: the Kaggle kaggle_3m LGG set (Buda et al. 2019) and copies of it.

Files are ``<patient>_<slice>.tif`` with masks ``<patient>_<slice>_mask.tif``, found anywhere below
the root, so all three ways the set is stored work:

* all files in one folder;
* one folder per patient, as Kaggle ships it (``kaggle_3m/<patient>/<files>``);
* ``images/`` + ``masks/`` (as in ``../shared/data/lgg``).

Images are 256x256x3 uint8, channels ``(pre-contrast, FLAIR, post-contrast)`` (:data:`LGG_CHANNELS`;
FLAIR is :data:`FLAIR_CHANNEL` = 1). Masks (1 or 3 identical channels, {0, 255}) become labels {0, 1}.

* case id = file stem (``TCGA_CS_4941_19960909_12``);
* patient id = the stem without its trailing ``_<slice>`` (``TCGA_CS_4941_19960909``), which is the
  Kaggle patient folder name;
* an image without its mask is an unlabelled case (``label=None``; a note lists them when other
  images have masks): new images can be labelled; a mask of the wrong shape is reported
  (``Dataset.label_problems``) and its image still loads, unlabelled.
"""

from __future__ import annotations

import re
from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import list_files, load_single, missing_mask_notes, natural_key
from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

#: Channel order of the kaggle_3m TIFFs.
LGG_CHANNELS = ("pre-contrast", "FLAIR", "post-contrast")
#: Index of the FLAIR channel in :data:`LGG_CHANNELS`.
FLAIR_CHANNEL = 1

_TIFF = (".tif", ".tiff")
_SLICE = re.compile(r"^(?P<patient>.+)_(?P<slice>\d+)$")
_MASK_SUFFIX = "_mask"


def _split(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """Image stem -> path and image stem -> mask path, for every TIFF below ``root``."""
    images: dict[str, Path] = {}
    masks: dict[str, Path] = {}
    for path in list_files(root, recursive=True, endings=_TIFF):
        stem = stem_of(path)
        is_mask = stem.lower().endswith(_MASK_SUFFIX)
        key = stem[: -len(_MASK_SUFFIX)] if is_mask else stem
        table = masks if is_mask else images
        if key in table:
            raise InputError(path, f"two files for case {key!r}: {table[key]} and {path}")
        table[key] = path
    return images, masks


def detect(root: Path) -> bool:
    """True when some ``<name>_<n>.tif`` has its ``<name>_<n>_mask.tif`` below ``root``."""
    try:
        images, masks = _split(root)
    except InputError:
        return True  # LGG-like, but with a duplicate: let scan report it
    return any(_SLICE.match(stem) for stem in images.keys() & masks.keys())


def scan(root: Path) -> tuple[list[Entry], list[str]]:
    """Entries in (patient, slice number) order; notes list masks that have no image."""
    images, masks = _split(root)
    entries = []
    for stem in images:
        match = _SLICE.match(stem)
        patient = match.group("patient") if match else stem
        slice_no = int(match.group("slice")) if match else None
        mask = masks.get(stem)
        entries.append(
            Entry(
                case_id=stem,
                patient_id=patient,
                images=(images[stem],),
                label=mask,
                info={"meta": {"slice": slice_no}},
            )
        )
    entries.sort(key=lambda e: (natural_key(e.patient_id), e.info["meta"]["slice"] or 0, e.case_id))
    notes = missing_mask_notes(images, set(images) & set(masks))
    orphans = sorted(masks.keys() - images.keys(), key=natural_key)
    if orphans:
        notes.append(f"{len(orphans)} masks have no image: {', '.join(orphans[:5])}")
    return entries, notes


def load(entry: Entry) -> Case:
    """One slice: image ``(3, 256, 256)`` named :data:`LGG_CHANNELS`, label ``(256, 256)`` {0, 1}."""
    case = load_single(entry)
    if case.image.shape[0] == len(LGG_CHANNELS):
        case.channel_names = LGG_CHANNELS
    return case
