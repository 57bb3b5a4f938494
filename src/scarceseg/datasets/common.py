"""Helpers shared by the layouts: listing files, natural order, stacking channel files."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from scarceseg.datasets.base import Entry
from scarceseg.errors import InputError, ScarcesegError, ShapeMismatchError
from scarceseg.io.case import Case
from scarceseg.io.formats import is_supported_file, stem_of
from scarceseg.io.readers import read_image, read_mask


def natural_key(text: str) -> tuple:
    """Sort key that orders ``a_2`` before ``a_10``."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


def is_hidden(path: Path) -> bool:
    """Dot files (``.DS_Store``, macOS ``._x.nii.gz`` resource forks) are never data."""
    return path.name.startswith(".")


def list_files(folder: Path, recursive: bool = False, endings: tuple[str, ...] | None = None) -> list[Path]:
    """Supported image files in ``folder`` (optionally below it), hidden files and folders left out, sorted.

    Parameters
    ----------
    endings : tuple of str, optional
        Keep only names ending like this (lower case, e.g. ``(".tif", ".tiff")``).
    """
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    out = []
    for p in found:
        if is_hidden(p) or not p.is_file() or not is_supported_file(p):
            continue
        if recursive and any(part.startswith(".") for part in p.relative_to(folder).parts[:-1]):
            continue  # inside a hidden folder (e.g. the browser app's FOLDER/.scarceseg WORKDIR)
        if endings is not None and not p.name.lower().endswith(endings):
            continue
        out.append(p)
    return sorted(out, key=lambda p: natural_key(str(p)))


def masks_by_stem(mask_dir: Path | None) -> dict[str, Path]:
    """The mask files of ``mask_dir`` by file stem (empty without a folder); two masks of one stem are an error."""
    masks: dict[str, Path] = {}
    for path in list_files(mask_dir) if mask_dir is not None else []:
        stem = stem_of(path)
        if stem in masks:
            raise InputError(path, f"two masks for {stem!r}: {masks[stem]} and {path}")
        masks[stem] = path
    return masks


def patient_from_regex(case_id: str, pattern: str | None) -> str:
    """Patient id from ``pattern``'s group ``patient`` (or group 1); the case id when it does not match."""
    if not pattern:
        return case_id
    match = re.search(pattern, case_id)
    if match is None:
        return case_id
    if "patient" in match.re.groupindex:
        return match.group("patient")
    return match.group(1) if match.re.groups else match.group(0)


def load_single(entry: Entry) -> Case:
    """Load an entry with one image file and an optional mask file; set ids and channel names.

    A mask that cannot be used (wrong shape, unreadable) does not lose the image: the case loads without a
    label and ``meta["label_problem"]`` holds ``(mask path, reason)`` (:class:`Dataset` reports it)."""
    case = read_image(entry.images[0], **entry.info.get("read_options", {}))
    label, label_source = case.label, case.label_source
    meta = {**case.meta, **entry.info.get("meta", {})}
    if entry.label is not None and entry.label != entry.images[0]:
        try:
            label, label_source = read_mask(entry.label, like=case), entry.label
        except ScarcesegError as exc:  # the image stays usable, as an unlabelled case
            meta["label_problem"] = (str(entry.label), getattr(exc, "reason", str(exc)))
    names = entry.info.get("channel_names")
    if names and len(names) != case.image.shape[0]:
        names = None
    return replace(
        case,
        case_id=entry.case_id,
        patient_id=entry.patient_id,
        label=label,
        label_source=label_source,
        channel_names=tuple(names) if names else case.channel_names,
        meta=meta,
    )


def load_stacked(entry: Entry) -> Case:
    """Load an entry whose channels are separate files (BraTS modalities, nnU-Net ``_0000`` files).

    Every file must have the spatial shape of the first; geometry comes from the first file.
    Channel names come from ``entry.info["channel_names"]`` when their number matches.
    """
    first = None
    parts = []
    for path in entry.images:
        case = read_image(path)
        if first is None:
            first = case
        elif case.shape != first.shape:
            raise ShapeMismatchError(
                path, f"shape {case.shape} differs from {first.source} of shape {first.shape} in the same case"
            )
        parts.append(case.image)
    if first is None:
        raise InputError(None, f"case {entry.case_id} has no image file")
    image = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
    label = read_mask(entry.label, like=first) if entry.label is not None else None
    names = entry.info.get("channel_names")
    if not names or len(names) != image.shape[0]:
        names = ()
    meta = {**first.meta, "channel_files": [str(p) for p in entry.images]}
    return Case(
        image=image,
        spacing=first.spacing,
        case_id=entry.case_id,
        patient_id=entry.patient_id,
        label=label,
        affine=first.affine,
        origin=first.origin,
        source=entry.images[0],
        label_source=entry.label,
        channel_names=tuple(names),
        meta=meta,
    )


def missing_mask_notes(images: dict[str, Path], labelled: set[str]) -> list[str]:
    """A note naming the images that have no mask, when others do (they are unlabelled cases)."""
    bare = sorted(set(images) - labelled, key=natural_key)
    if not bare or not labelled:
        return []
    shown = ", ".join(bare[:10]) + (f" and {len(bare) - 10} more" if len(bare) > 10 else "")
    return [f"{len(bare)} image(s) have no mask and are read as unlabelled cases: {shown}"]
