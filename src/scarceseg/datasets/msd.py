"""Layout ``msd``: Medical Segmentation Decathlon task folders (and nnU-Net v2 raw folders).

``dataset.json`` + ``imagesTr/`` + ``labelsTr/``:

* MSD: the ``training`` list of ``dataset.json`` gives the image/label pairs (``./imagesTr/x.nii.gz``);
  multi-sequence tasks store 4D images, read as channels ``(C, Z, Y, X)``; channel names come from
  ``modality`` (``{"0": "FLAIR", "1": "T1w", ...}``), label names go to ``meta["label_names"]``;
* nnU-Net v2 (no ``training`` list): ``imagesTr/<case>_<XXXX>.nii.gz``, one file per channel
  (names from ``channel_names``), ``labelsTr/<case>.nii.gz``;
* without ``dataset.json``: files of ``imagesTr/`` paired with ``labelsTr/`` by name.

Only the training part (which has labels) is read. case id = image name without ending
(``BRATS_001``); patient id = case id (MSD does not name patients).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from scarceseg.datasets.base import Entry
from scarceseg.datasets.common import list_files, load_stacked, natural_key
from scarceseg.errors import CorruptFileError
from scarceseg.io.case import Case
from scarceseg.io.formats import stem_of

_CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def detect(root: Path) -> bool:
    """True when ``root`` holds ``imagesTr/`` and either ``dataset.json`` or ``labelsTr/``."""
    return (root / "imagesTr").is_dir() and ((root / "dataset.json").is_file() or (root / "labelsTr").is_dir())


def _read_json(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(path, f"cannot parse dataset.json ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptFileError(path, "dataset.json is not a JSON object")
    return data


def _names(mapping) -> tuple[str, ...]:
    """``{"0": "FLAIR", "1": "T1w"}`` -> ``("FLAIR", "T1w")`` (ordered by the integer key)."""
    if not isinstance(mapping, dict):
        return ()
    try:
        return tuple(str(v) for _, v in sorted(mapping.items(), key=lambda kv: int(kv[0])))
    except (TypeError, ValueError):
        return ()


def _resolve(root: Path, relative: str) -> Path:
    return root / relative.removeprefix("./")


def scan(root: Path) -> tuple[list[Entry], list[str]]:
    """One entry per training case."""
    data = _read_json(root)
    channel_names = _names(data.get("modality") or data.get("channel_names"))
    info = {"channel_names": channel_names, "label_names": data.get("labels")}
    training = data.get("training")
    if isinstance(training, list) and training:
        return _from_training_list(root, training, info), []
    return _from_folders(root, info)


def _from_training_list(root: Path, training: list, info: dict) -> list[Entry]:
    entries = []
    for item in training:
        if not isinstance(item, dict) or "image" not in item:
            raise CorruptFileError(root / "dataset.json", f"training entry without 'image': {item!r}")
        image = _resolve(root, str(item["image"]))
        label = _resolve(root, str(item["label"])) if item.get("label") else None
        problem = None
        if not image.is_file():
            problem = f"image listed in dataset.json is missing: {image}"
        elif label is not None and not label.is_file():
            problem = f"label listed in dataset.json is missing: {label}"
        case_id = stem_of(image)
        entries.append(Entry(case_id, case_id, (image,), label, info=dict(info), problem=problem))
    return entries


def _from_folders(root: Path, info: dict) -> tuple[list[Entry], list[str]]:
    labels = {stem_of(p): p for p in list_files(root / "labelsTr")}
    groups: dict[str, list[Path]] = {}
    for path in list_files(root / "imagesTr"):
        stem = stem_of(path)
        match = _CHANNEL_FILE.match(stem)
        case_id = match.group("case") if match and stem not in labels else stem
        groups.setdefault(case_id, []).append(path)
    entries = []
    for case_id in sorted(groups, key=natural_key):
        files = tuple(groups[case_id])
        label = labels.get(case_id)
        problem = None if label is not None or not labels else f"no label {case_id} in labelsTr"
        entries.append(Entry(case_id, case_id, files, label, info=dict(info), problem=problem))
    orphans = sorted(labels.keys() - groups.keys())
    notes = [f"{len(orphans)} labels have no image: {', '.join(orphans[:5])}"] if orphans else []
    return entries, notes


def load(entry: Entry) -> Case:
    """Image ``(C, Z, Y, X)`` (4D file or one file per channel), label ``(Z, Y, X)``."""
    case = load_stacked(entry)
    if entry.info.get("label_names"):
        case.meta["label_names"] = entry.info["label_names"]
    return case
