"""Proposals: the candidate masks of one image, and the WORKDIR files that hold them.

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
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scarceseg.cluster import candidates as cand
from scarceseg.cluster.udc import UDCConfig, normalise, udc_cluster
from scarceseg.errors import DimensionError, InputError
from scarceseg.io.case import Case

CHANNEL_MODES = ("flair", "all")
PROPOSALS = "proposals"
INDEX = "index.json"
FILES = ("proposal.npz", "candidates.json", "contact_sheet.png", "labels.png")
#: Peak memory of proposing, per pixel: (812 - 532) MB / (1024² - 512²) px on grey PNGs with the fast preset
#: (``/usr/bin/time -f %M scarceseg propose`` on this machine); the size guard uses it.
BYTES_PER_PIXEL = 360.0

#: The shortest image side proposing works on (a 1 x 1 "image" has no region to propose).
MIN_SIDE = 8


@dataclass
class Proposal:
    """The candidates proposed for one 2D image.

    Attributes
    ----------
    case_id : str
    image : ndarray (C, Y, X) float32
        The image as fed to the proposer (selected channels, scaled to [0, 1]).
    labels : ndarray (Y, X) int32
        The cluster label map.
    masks : ndarray (K, Y, X) bool
        The candidates; candidate ``k`` is ``masks[k]``.
    candidates : list of dict
        ``{index, area, centroid: [y, x], bbox: [y0, x0, y1, x1] (half-open), source}`` per candidate.
    config : dict
        The :class:`UDCConfig` as a dict, plus ``seed``, ``input_channels`` (``"flair"`` or ``"all"``),
        ``channel_names`` (those fed) and ``run`` (iterations, cluster count, timings).
    seconds : float
        Wall time of :func:`propose_case`.
    patient_id : str
    source : str
        The image file the case came from, when known.
    """

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    candidates: list[dict]
    config: dict
    seconds: float
    patient_id: str = ""
    source: str = ""


def select_channels(case: Case, channels: str = "flair") -> tuple[np.ndarray, tuple[str, ...]]:
    """The channels the proposer uses: ``"flair"`` (by name, else channel 0) or ``"all"``.

    Returns
    -------
    image : ndarray (C', Y, X) float32
    names : tuple of str
    """
    if channels not in CHANNEL_MODES:
        raise InputError(None, f"channels must be one of {CHANNEL_MODES}, got {channels!r}")
    if channels == "all":
        return np.asarray(case.image, dtype=np.float32), tuple(case.channel_names)
    lowered = [n.lower() for n in case.channel_names]
    index = lowered.index("flair") if "flair" in lowered else 0
    return np.asarray(case.image[index : index + 1], dtype=np.float32), (case.channel_names[index],)


def make_candidates(
    labels: np.ndarray, levels: dict[int, np.ndarray], config: UDCConfig
) -> tuple[np.ndarray, list[str]]:
    """The candidate stack ``(K, Y, X)`` and sources for ``config.candidates``."""
    shape = labels.shape
    min_area = cand.scaled_min_area(shape, config.min_area, config.reference_shape)
    if config.candidates == "paper":
        masks, sources = cand.paper_candidates(labels, min_area)
    else:
        comp_min = None
        if config.component_min_area is not None:
            comp_min = cand.scaled_min_area(shape, config.component_min_area, config.reference_shape)
        masks, sources = cand.extended_candidates(
            labels,
            levels,
            min_area,
            component_min_area=comp_min,
            holes=config.fill_holes,
            dedupe_iou=config.dedupe_iou,
            max_candidates=config.max_candidates,
        )
    return cand.stack(masks, shape), sources


def check_propose_size(case: Case) -> None:
    """Raise :class:`~scarceseg.io.limits.ImageTooLargeError` when proposing on ``case`` would exceed the
    memory limit (:func:`scarceseg.io.limits.size_limit`), before any work is done; :class:`InputError`
    for an image too small to hold a lesion (a side under :data:`MIN_SIDE` pixels)."""
    from scarceseg.io.limits import check_method_memory

    if min(case.shape) < MIN_SIDE:
        raise InputError(case.source or case.case_id or None,
                         f"image of {' x '.join(map(str, case.shape))} pixels is too small to propose regions "
                         f"(at least {MIN_SIDE} x {MIN_SIDE})")
    check_method_memory(case.source or case.case_id or None, tuple(case.shape), BYTES_PER_PIXEL,
                        "proposing candidates")


def propose_case(case: Case, config: UDCConfig | str | None = None, channels: str = "flair", seed: int = 0) -> Proposal:
    """Cluster one 2D case and turn the clusters into candidate masks.

    Parameters
    ----------
    case : Case
        ``image`` of shape ``(C, Y, X)``.
    config : UDCConfig or {"fast", "faithful"}, optional
        Default: :meth:`UDCConfig.fast`.
    channels : {"flair", "all"}
        ``"flair"``: the channel named FLAIR (any case), else channel 0; ``"all"``: every channel.
    seed : int

    Returns
    -------
    Proposal

    Raises
    ------
    DimensionError
        The case is 3D (the method is 2D; propose slices instead).
    ImageTooLargeError
        Proposing would need more memory than the size limit allows (see :func:`check_propose_size`).
    """
    if case.ndim != 2:
        raise DimensionError(
            case.source or case.case_id or None,
            f"propose works on 2D images; this case is 3D with shape {case.shape} "
            "(slice the volume first, e.g. Dataset.as_slices())",
        )
    check_propose_size(case)
    cfg = UDCConfig.preset(config)
    start = time.perf_counter()
    image, names = select_channels(case, channels)
    image01 = normalise(image)
    result = udc_cluster(image01, cfg, seed=seed, normalised=True)
    masks, sources = make_candidates(result.labels, result.levels, cfg)
    seconds = time.perf_counter() - start
    config_dict = asdict(cfg)
    config_dict.update(
        seed=int(seed),
        input_channels=channels,
        channel_names=list(names),
        run={
            "n_iters": result.n_iters,
            "n_clusters": result.n_clusters,
            "reached": result.reached,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
        },
    )
    return Proposal(
        case_id=case.case_id,
        image=image01,
        labels=result.labels,
        masks=masks,
        candidates=cand.describe_candidates(masks, sources),
        config=config_dict,
        seconds=seconds,
        patient_id=case.patient_id,
        source="" if case.source is None else str(case.source),
    )


# ---- WORKDIR files ---------------------------------------------------------------------------------
def _case_dir(workdir: str | Path, case_id: str) -> Path:
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

    folder = _case_dir(workdir, proposal.case_id)
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
    folder = _case_dir(workdir, case_id)
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


def __getattr__(name: str):
    """``propose_inputs`` moved to :mod:`scarceseg.cluster.propose_many`; old imports keep working."""
    if name == "propose_inputs":
        from scarceseg.cluster.propose_many import propose_inputs

        return propose_inputs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
