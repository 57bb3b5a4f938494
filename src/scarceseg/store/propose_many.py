"""Propose candidates for many inputs at once (``scarceseg propose``): folders, files, resuming, a summary.

Every input is opened first, without decoding (so the total is known and finished cases are skipped
before any work), then each case is loaded, proposed and written with :func:`~scarceseg.store.proposals.
save_proposal`. Problems are collected, one line per file, and logged with their cause.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scarceseg.cluster.propose import BYTES_PER_PIXEL, CHANNEL_MODES, propose_case
from scarceseg.cluster.udc import UDCConfig
from scarceseg.errors import InputError, ScarcesegError
from scarceseg.io.case import Case
from scarceseg.store.proposals import PROPOSALS, is_finished, read_index, save_proposal

logger = logging.getLogger(__name__)


@dataclass
class _Work:
    """One case to propose, before loading: its id, where it comes from, and how to load it."""

    case_id: str
    where: str
    load: Callable[[], Case]


def _collect(path: Path, layout: str | None, skipped: list[tuple[str, str, str]], notes: list[str]) -> list[_Work]:
    """The cases of one input (a data set folder in any layout, a plain folder of images, a DICOM series
    folder, or a file), without loading them. Inputs that cannot be opened are appended to ``skipped``."""
    from scarceseg.datasets import open_dataset
    from scarceseg.io import read_image, stem_of

    if not path.exists():
        skipped.append((path.name, str(path), "no such file or folder"))
        return []
    if path.is_file():
        return [_Work(stem_of(path), str(path), lambda: read_image(path))]
    try:
        ds = open_dataset(path, layout=layout)
    except ScarcesegError as exc:
        skipped.append((path.name, str(path), getattr(exc, "reason", str(exc))))
        return []
    notes.extend(f"{path}: {note}" for note in ds.notes)
    return [_Work(e.case_id, str(e.images[0]), functools.partial(ds.load, e.case_id)) for e in ds.entries]


def propose_inputs(
    inputs: list[Path],
    workdir: str | Path,
    config: UDCConfig | str | None = None,
    channels: str = "flair",
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = print,
    force: bool = False,
) -> dict:
    """Propose candidates for every case of every input and write them into ``workdir``.

    Parameters
    ----------
    inputs : list of Path
        Data set folders (any layout :func:`scarceseg.datasets.open_dataset` knows, plain folders of image
        files included), DICOM series folders, or single image files.
    workdir : Path
        Created when the first case is written (not at all when no case can be read). Only
        ``proposals/`` entries of the cases proposed are written.
    config : UDCConfig or {"fast", "faithful"}, optional
        Default: fast.
    channels : {"flair", "all"}
    seed : int
    layout : str, optional
        Force a data set layout for folder inputs.
    progress : bool
        Report progress on stderr (:func:`scarceseg.progress.track`: a bar with total and ETA on a terminal,
        a plain line every few seconds otherwise).
    echo : callable, optional
        Where the summary, one line per skipped input and the notes are printed (None: silent).
    force : bool
        Propose again cases already proposed with the same config, channels and seed (default: keep them,
        so a rerun after an interruption resumes).

    Returns
    -------
    dict
        ``workdir``, ``proposed`` (case ids), ``kept`` (finished before, not redone), ``skipped``
        (``[file_or_case, path, reason]``), ``notes``, ``seconds`` (per proposed case), ``median_seconds``,
        ``candidates`` (count per case). Unreadable files, 3D cases and repeated case ids are skipped and
        listed; the others are still proposed.

    Raises
    ------
    InputError
        No input holds a readable case (after the skipped inputs were echoed); nothing is created.
    """
    from scarceseg.io.limits import check_method_memory, header_plane
    from scarceseg.progress import track

    if channels not in CHANNEL_MODES:
        raise InputError(None, f"--channels must be one of {CHANNEL_MODES}, got {channels!r}")
    cfg = UDCConfig.preset(config)
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(workdir, "WORKDIR exists and is not a folder")
    skipped: list[tuple[str, str, str]] = []
    notes: list[str] = []
    proposed: list[str] = []
    kept: list[str] = []
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    origin: dict[str, str] = {}

    work = [item for path in inputs for item in _collect(Path(path), layout, skipped, notes)]
    index = read_index(workdir) if workdir.is_dir() else {}
    wanted = json.loads(json.dumps(asdict(cfg)))  # as saved in index.json (tuples become lists)
    todo = []
    for item in work:
        if item.case_id in origin:
            skipped.append((Path(item.where).name, item.where,
                            f"same case id {item.case_id!r} as {origin[item.case_id]} (proposed once)"))
        elif not force and is_finished(index, workdir, item.case_id, wanted, channels, seed):
            kept.append(item.case_id)
        else:
            todo.append(item)
        origin.setdefault(item.case_id, item.where)

    for item in track(todo, description="proposing", enabled=progress):
        try:
            plane = header_plane(Path(item.where)) if Path(item.where).is_file() else None
            if plane is not None:  # refuse a picture too large to propose before decoding it
                check_method_memory(item.where, plane, BYTES_PER_PIXEL, "proposing candidates")
            case = item.load()
            problem = case.meta.get("label_problem")
            if problem is not None:
                notes.append(f"mask ignored for {item.case_id} (the image is proposed unlabelled): "
                             f"{problem[0]}: {problem[1]}")
            proposal = propose_case(case, cfg, channels=channels, seed=seed)
            save_proposal(proposal, workdir)
        except ScarcesegError as exc:
            where = str(getattr(exc, "path", None) or item.where)
            skipped.append((Path(where).name, where, getattr(exc, "reason", str(exc))))
            logger.warning("skipped %s: %s", item.case_id, exc, exc_info=exc)
            continue
        proposed.append(item.case_id)
        seconds[item.case_id] = round(proposal.seconds, 4)
        counts[item.case_id] = len(proposal.candidates)

    summary = {
        "workdir": str(workdir),
        "proposed": proposed,
        "kept": kept,
        "skipped": [list(s) for s in skipped],
        "notes": notes,
        "seconds": seconds,
        "median_seconds": float(np.median(list(seconds.values()))) if seconds else 0.0,
        "candidates": counts,
    }
    if not proposed and not kept and len(skipped) == 1:  # the one case there is cannot be used: one line
        raise InputError(skipped[0][1], skipped[0][2])
    if echo is not None:
        for name, where, reason in skipped:
            echo(f"  skipped {name}: {where}: {reason}")
        for note in notes:
            echo(f"  note: {note}")
    if not proposed and not kept:
        shown = ", ".join(str(p) for p in inputs[:3]) + (" ..." if len(inputs) > 3 else "")
        raise InputError(None, f"no readable 2D case in {shown}; nothing was written")
    if echo is not None:
        again = f"; kept {len(kept)} finished before (--force redoes them)" if kept else ""
        echo(
            f"proposed {len(proposed)} case(s) into {workdir / PROPOSALS} "
            f"(median {summary['median_seconds']:.2f} s per case){again}; skipped {len(skipped)}"
        )
    return summary
