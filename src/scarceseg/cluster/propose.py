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
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from scarceseg.cluster import candidates as cand
from scarceseg.cluster.udc import UDCConfig, normalise, udc_cluster
from scarceseg.errors import DimensionError, InputError, ScarcesegError
from scarceseg.io.case import Case

CHANNEL_MODES = ("flair", "all")
PROPOSALS = "proposals"
INDEX = "index.json"
FILES = ("proposal.npz", "candidates.json", "contact_sheet.png", "labels.png")


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
    """
    if case.ndim != 2:
        raise DimensionError(
            case.source or case.case_id or None,
            f"propose works on 2D images; this case is 3D with shape {case.shape} "
            "(slice the volume first, e.g. Dataset.as_slices())",
        )
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        save_contact_sheet(display_image(proposal), list(masks), folder / "contact_sheet.png", titles=titles)
        save_label_png(proposal.labels, folder / "labels.png")

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


# ---- many inputs -----------------------------------------------------------------------------------
def _iter_input(
    path: Path, layout: str | None, skipped: list[tuple[str, str, str]], warned: list[tuple[str, str, str]]
) -> Iterator[Case]:
    """Cases of one input: a data set folder, a DICOM series folder, a folder of images, or a file.

    Cases that fail to load are appended to ``skipped``; a data set's own skips (which it already
    warned about) go to ``warned``.
    """
    from scarceseg.io import is_supported_file, read_image

    if path.is_dir():
        try:
            from scarceseg.datasets import open_dataset
        except ImportError:  # pragma: no cover - the data set module is part of the package
            from scarceseg.datasets.layouts import open_dataset
        try:
            ds = open_dataset(path, layout=layout)
        except ScarcesegError as exc:
            if layout is not None:
                skipped.append((path.name, str(path), getattr(exc, "reason", str(exc))))
                return
            loose = sorted(p for p in path.iterdir() if p.is_file() and is_supported_file(p))
            if loose:  # a plain folder of images: each one a case
                for file in loose:
                    yield from _iter_input(file, None, skipped, warned)
                return
            try:  # a DICOM series folder
                yield read_image(path)
            except ScarcesegError:
                skipped.append((path.name, str(path), getattr(exc, "reason", str(exc))))
            return
        yield from ds.iter_cases()  # warns about each case it skips
        warned.extend(ds.skipped)
        return
    try:
        yield read_image(path)
    except ScarcesegError as exc:
        skipped.append((path.name, str(path), getattr(exc, "reason", str(exc))))


def propose_inputs(
    inputs: list[Path],
    workdir: str | Path,
    config: UDCConfig | str | None = None,
    channels: str = "flair",
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
) -> dict:
    """Propose candidates for every case of every input and write them into ``workdir``.

    Parameters
    ----------
    inputs : list of Path
        Data set folders (any layout :func:`scarceseg.datasets.open_dataset` knows), folders of
        image files, DICOM series folders, or single image files.
    workdir : Path
        Created when missing. Only ``proposals/`` entries of the cases proposed are written.
    config : UDCConfig or {"fast", "faithful"}, optional
        Default: fast.
    channels : {"flair", "all"}
    seed : int
    layout : str, optional
        Force a data set layout for folder inputs.
    progress : bool
        Rich progress bar on stderr.
    echo : callable, optional
        Where the one-line summary and the skipped inputs are printed (None: silent).

    Returns
    -------
    dict
        ``workdir``, ``proposed`` (case ids), ``skipped`` (``[case_or_file, path, reason]``),
        ``seconds`` (per proposed case), ``median_seconds``, ``candidates`` (count per case).
        Unreadable files, 3D cases and repeated case ids are skipped with a warning; the others
        are still proposed.
    """
    from scarceseg.progress import track

    if channels not in CHANNEL_MODES:
        raise InputError(None, f"--channels must be one of {CHANNEL_MODES}, got {channels!r}")
    cfg = UDCConfig.preset(config)
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(workdir, "WORKDIR exists and is not a folder")
    workdir.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str, str]] = []
    warned: list[tuple[str, str, str]] = []
    proposed: list[str] = []
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    origin: dict[str, str] = {}

    def cases() -> Iterator[Case]:
        for item in inputs:
            item = Path(item)
            if not item.exists():
                skipped.append((item.name, str(item), "no such file or folder"))
                continue
            yield from _iter_input(item, layout, skipped, warned)

    for case in track(cases(), description="proposing", enabled=progress):
        where = str(case.source or case.case_id)
        if case.case_id in origin:
            skipped.append((case.case_id, where, f"same case id as {origin[case.case_id]} (proposed once)"))
            continue
        try:
            proposal = propose_case(case, cfg, channels=channels, seed=seed)
            save_proposal(proposal, workdir)
        except ScarcesegError as exc:
            skipped.append((case.case_id, where, getattr(exc, "reason", str(exc))))
            continue
        origin[case.case_id] = where
        proposed.append(case.case_id)
        seconds[case.case_id] = round(proposal.seconds, 4)
        counts[case.case_id] = len(proposal.candidates)

    for name, where, reason in skipped:
        warnings.warn(f"skipped {name}: {where}: {reason}", stacklevel=2)
    skipped = warned + skipped
    summary = {
        "workdir": str(workdir),
        "proposed": proposed,
        "skipped": [list(s) for s in skipped],
        "seconds": seconds,
        "median_seconds": float(np.median(list(seconds.values()))) if seconds else 0.0,
        "candidates": counts,
    }
    if echo is not None:
        echo(
            f"proposed {len(proposed)} case(s) into {workdir / PROPOSALS} "
            f"(median {summary['median_seconds']:.2f} s per case); skipped {len(skipped)}"
        )
        for name, where, reason in skipped:
            echo(f"  skipped {name}: {where}: {reason}")
    return summary
