"""The WORKDIR files of proposals: write, read and list what :mod:`scarceseg.cluster.propose` computes.

This module implements the contract of ``docs/workdir.md``:

.. code-block:: text

    WORKDIR/proposals/index.json              {case_id: {source, patient_id, config, seed, seconds, created}}
    WORKDIR/proposals/<case_id>/proposal.npz  image (C,Y,X) float32, labels (Y,X) int32, masks (K,Y,X) bool
    WORKDIR/proposals/<case_id>/candidates.json   [{index, area, centroid, bbox, source}]
    WORKDIR/proposals/<case_id>/contact_sheet.png the candidates on the image (paper 000, Figure 4)
    WORKDIR/proposals/<case_id>/labels.png        the label map in colour

Writing a proposal replaces only that case's files and its entry of ``index.json``; nothing else in
WORKDIR (``store.sqlite`` included) is ever touched.

References
----------
.. [1] Paper 000 (Stember & Shalu), sections 0.3.1-0.3.3 and Figure 4.
"""

from __future__ import annotations

import colorsys
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scarceseg.cluster.propose import Proposal
from scarceseg.errors import InputError

PROPOSALS = "proposals"
INDEX = "index.json"
FILES = ("proposal.npz", "candidates.json", "contact_sheet.png", "labels.png")


def case_dir(workdir: str | Path, case_id: str) -> Path:
    if not case_id or case_id in {".", ".."} or "/" in case_id or "\\" in case_id or "\0" in case_id:
        raise InputError(None, f"case id {case_id!r} cannot be used as a folder name")
    return Path(workdir) / PROPOSALS / case_id


def _write_atomic(path: Path, data: bytes) -> None:
    from scarceseg.io.safe_write import write_bytes

    write_bytes(path, data)  # temporary file + rename; a symlinked target is refused


def read_index(workdir: str | Path) -> dict:
    """``WORKDIR/proposals/index.json`` as a dict (empty when absent)."""
    path = Path(workdir) / PROPOSALS / INDEX
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(path, f"index of proposals does not parse as JSON ({exc})") from None


def label_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours, well apart (golden-ratio hues), the same for every call."""
    out = np.zeros((max(n, 0), 3), dtype=np.uint8)
    for k in range(n):
        hue = (k * 0.6180339887) % 1.0
        sat, val = (0.65, 0.95) if k % 2 == 0 else (0.9, 0.75)
        out[k] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)]
    return out


def save_label_png(labels: np.ndarray, path: str | Path) -> Path:
    """The label map ``(Y, X)`` as an RGB PNG, one colour per label."""
    from PIL import Image

    labels = np.asarray(labels)
    rgb = label_colours(int(labels.max()) + 1 if labels.size else 0)[labels]
    Image.fromarray(rgb).save(path)
    return Path(path)


def display_image(proposal: Proposal) -> np.ndarray:
    """The 2D image to draw candidates on: the FLAIR channel when there, else channel 0."""
    names = [str(n).lower() for n in proposal.config.get("channel_names", [])]
    index = names.index("flair") if "flair" in names else 0
    return np.asarray(proposal.image[index], dtype=np.float32)


def save_proposal(proposal: Proposal, workdir: str | Path, pictures: bool = True) -> Path:
    """Write one proposal's files and its ``index.json`` entry; returns the case's folder.

    Only ``WORKDIR/proposals/<case_id>/`` (the four files of the contract) and the case's entry of
    ``WORKDIR/proposals/index.json`` are written; other cases and ``store.sqlite`` are left alone.
    ``pictures=False`` skips ``contact_sheet.png`` and ``labels.png`` (benchmark caches that nobody looks at).
    """
    from scarceseg.figures.overlays import save_contact_sheet

    folder = case_dir(workdir, proposal.case_id)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile() as buffer:
        np.savez_compressed(
            buffer,
            image=np.asarray(proposal.image, dtype=np.float32),
            labels=np.asarray(proposal.labels, dtype=np.int32),
            masks=np.asarray(proposal.masks, dtype=bool),
        )
        buffer.seek(0)
        _write_atomic(folder / "proposal.npz", buffer.read())
    _write_atomic(folder / "candidates.json", json.dumps(proposal.candidates, indent=1).encode())
    masks = np.asarray(proposal.masks, dtype=bool)
    titles = [f"{k}: {int(mask.sum())}" for k, mask in enumerate(masks)]  # "index: area"
    if pictures:
        from scarceseg.io.safe_write import replacing

        with replacing(folder / "contact_sheet.png") as tmp:
            save_contact_sheet(display_image(proposal), list(masks), tmp, titles=titles)
        with replacing(folder / "labels.png") as tmp:
            save_label_png(proposal.labels, tmp)

    index = read_index(workdir)
    index[proposal.case_id] = {
        "source": proposal.source,
        "patient_id": proposal.patient_id,
        "config": proposal.config,
        "seed": proposal.config.get("seed"),
        "seconds": round(float(proposal.seconds), 4),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_atomic(folder.parent / INDEX, json.dumps(index, indent=1, sort_keys=True).encode())
    return folder


def load_proposal(workdir: str | Path, case_id: str) -> Proposal:
    """Read back what :func:`save_proposal` wrote.

    Raises
    ------
    InputError
        No proposal for ``case_id`` in ``workdir`` (the message says where it looked).
    """
    folder = case_dir(workdir, case_id)
    npz = folder / "proposal.npz"
    if not npz.is_file():
        raise InputError(npz, f"no proposal for case {case_id!r} (run `scarceseg propose` first)")
    with np.load(npz, allow_pickle=False) as data:
        image, labels, masks = data["image"], data["labels"], data["masks"]
    candidates = json.loads((folder / "candidates.json").read_text(encoding="utf-8"))
    entry = read_index(workdir).get(case_id, {})
    return Proposal(
        case_id=case_id,
        image=image.astype(np.float32, copy=False),
        labels=labels.astype(np.int32, copy=False),
        masks=masks.astype(bool, copy=False),
        candidates=candidates,
        config=entry.get("config", {}),
        seconds=float(entry.get("seconds", 0.0)),
        patient_id=entry.get("patient_id", ""),
        source=entry.get("source", ""),
    )


def list_proposals(workdir: str | Path) -> list[str]:
    """Case ids with a proposal in ``workdir``, sorted (index entries whose ``proposal.npz`` exists)."""
    root = Path(workdir) / PROPOSALS
    return sorted(cid for cid in read_index(workdir) if (root / cid / "proposal.npz").is_file())


def is_finished(index: dict, workdir: str | Path, case_id: str, config: dict, channels: str, seed: int) -> bool:
    """Whether ``case_id`` was proposed into ``workdir`` with the same config, channels and seed.

    The index entry is written after the case's files (each written atomically), so an entry whose
    ``proposal.npz`` and ``candidates.json`` exist marks a finished case, never a half-written one.
    """
    entry = index.get(case_id)
    folder = Path(workdir) / PROPOSALS / case_id
    if not entry or not (folder / "proposal.npz").is_file() or not (folder / "candidates.json").is_file():
        return False
    saved = entry.get("config") or {}
    same = all(saved.get(k) == v for k, v in config.items())
    return same and saved.get("seed") == seed and saved.get("input_channels") == channels
