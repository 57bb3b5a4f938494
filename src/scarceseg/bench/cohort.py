"""Cohort jobs on :func:`~scarceseg.bench.runner.run_cohort`: ``scarceseg segment`` and ``scarceseg propose``.

The shared object of a job holds the model *folder's files* (bytes) and the data sets' light entries; each
worker writes the files to a private temporary folder and loads the model once, on its first case. A task
loads its case, runs the method exactly as the single-process functions of ``methods/`` do, and returns the
files those functions would have written (the same writers, so the same bytes).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from scarceseg.bench.runner import CaseResult, CohortItem, CohortReport, run_cohort
from scarceseg.errors import InputError, ScarcesegError

# a substring of the model's config.json "format" -> the predictor below
FORMATS = ("selector", "unet", "acwe", "pixeldrl")


def _jsonable(value: Any) -> Any:
    def default(obj: Any) -> Any:
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

    return json.loads(json.dumps(value, default=default))


def read_folder(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative POSIX path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def model_format(model_dir: Path) -> str:
    """The key of :data:`FORMATS` that the model folder's ``config.json`` names."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise InputError(model_dir, "not a model folder (no config.json)")
    try:
        fmt = str(json.loads(config_path.read_text(encoding="utf-8")).get("format", "")).lower()
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(config_path, f"unreadable model config: {exc}") from None
    found = next((key for key in FORMATS if key in fmt), None)
    if found is None:
        raise InputError(model_dir, f"unknown model format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    return found


# ---- case references: what a worker needs to load one case -------------------------------------------
@dataclass
class Sources:
    """Data sets (light entries, loaded lazily) that cohort items point into."""

    datasets: list = field(default_factory=list)

    def load(self, ref: tuple) -> Any:
        kind, where, case_id = ref
        if kind == "dataset":
            return self.datasets[where].load(case_id)
        from scarceseg.io import read_image

        return read_image(where)


def dataset_items(data: Path, layout: str | None, sources: Sources) -> list[CohortItem]:
    """One item per case of the data set folder ``data``."""
    from scarceseg.datasets import open_dataset

    ds = open_dataset(data, layout=layout)
    sources.datasets.append(ds)
    return [CohortItem(cid, ("dataset", len(sources.datasets) - 1, cid)) for cid in ds.case_ids]


def input_items(inputs: Sequence[Path], layout: str | None, sources: Sources,
                skipped: list[tuple[str, str, str]]) -> list[CohortItem]:
    """Items for ``scarceseg propose``'s inputs: data set folders, folders of images, DICOM folders, files.

    Same choices as the single-process reader; nothing is loaded here. Missing inputs and repeated case ids
    go to ``skipped`` as ``(name, where, reason)``.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.io import is_supported_file

    items: list[CohortItem] = []
    origin: dict[str, str] = {}

    def add(case_id: str, ref: tuple, where: str) -> None:
        if case_id in origin:
            skipped.append((case_id, where, f"same case id as {origin[case_id]} (proposed once)"))
            return
        origin[case_id] = where
        items.append(CohortItem(case_id, ref))

    def file_id(path: Path) -> str:
        name = path.name
        for ending in (".nii.gz", ".tar.gz"):
            if name.lower().endswith(ending):
                return name[: -len(ending)]
        return path.stem if path.is_file() else name

    for item in inputs:
        path = Path(item)
        if not path.exists():
            skipped.append((path.name, str(path), "no such file or folder"))
            continue
        if path.is_dir():
            try:
                ds = open_dataset(path, layout=layout)
            except ScarcesegError as exc:
                if layout is not None:
                    skipped.append((path.name, str(path), getattr(exc, "reason", str(exc))))
                    continue
                loose = sorted(p for p in path.iterdir() if p.is_file() and is_supported_file(p))
                for file in loose or [path]:  # a plain folder of images, else a DICOM series folder
                    add(file_id(file), ("file", str(file), None), str(file))
                continue
            sources.datasets.append(ds)
            for entry in ds.entries:
                add(entry.case_id, ("dataset", len(sources.datasets) - 1, entry.case_id),
                    str(entry.images[0]) if entry.images else str(path))
            continue
        add(file_id(path), ("file", str(path), None), str(path))
    return items


# ---- segment --------------------------------------------------------------------------------------------
@dataclass
class SegmentJob:
    """The shared object of a segmentation cohort: model files, data sets and options."""

    fmt: str
    model_files: dict[str, bytes]
    sources: Sources
    options: dict = field(default_factory=dict)
    _model: Any = field(default=None, repr=False, compare=False)
    _folder: Any = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = state["_folder"] = None  # each worker loads its own copy
        return state

    def model(self) -> Any:
        """The loaded model, loaded on first use in this process."""
        if self._model is None:
            self._folder = tempfile.TemporaryDirectory(prefix="scarceseg-model-")
            folder = Path(self._folder.name)
            for name, data in self.model_files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(data)
            self._model = _load_model(self.fmt, folder)
        return self._model


def _load_model(fmt: str, folder: Path) -> Any:
    if fmt == "unet":
        from scarceseg.methods.unet_baseline import UNetBaseline

        return UNetBaseline.load(folder)
    if fmt == "acwe":
        from scarceseg.methods.acwe import ACWESegmenter

        return ACWESegmenter.load(folder)
    if fmt == "pixeldrl":
        from scarceseg.methods.pixeldrl import PixelDRL

        return PixelDRL.load(folder)
    from scarceseg.methods.udc_rl import Selector

    return Selector.load(folder)


def _mask_bytes(mask: np.ndarray, name: str, case: Any) -> bytes:
    from scarceseg.io import write_mask

    with tempfile.TemporaryDirectory(prefix="scarceseg-mask-") as tmp:
        return write_mask(mask, Path(tmp) / name, like=case).read_bytes()


def segment_task(job: SegmentJob, item: CohortItem) -> CaseResult:
    """Segment one case as the single-process ``segment_folder*`` function of the model's method does."""
    case = job.sources.load(item.data)
    model = job.model()
    cid = case.case_id
    files: dict[str, bytes] = {}
    record: dict = {}
    try:
        if job.fmt == "unet":
            from scarceseg.methods.unet_baseline import select_channels

            mask, name = model.predict(select_channels(case, model.meta.get("channels", "flair")))[1], f"{cid}.png"
        elif job.fmt == "acwe":
            from scarceseg.methods.acwe_data import select_channel

            image = select_channel(case, model.config.channel)
            if case.ndim == 2:
                mask, name = model.predict(image)[1], f"{cid}.png"
            else:
                mask = np.stack(model.predict_prepared([model.prepare(sl) for sl in image]))
                name = f"{cid}.nii.gz"
        elif job.fmt == "pixeldrl":
            from scarceseg.methods.pixeldrl_data import save_action_maps
            from scarceseg.methods.unet_baseline import select_channels

            mask, steps = model.predict(select_channels(case, model.meta.get("channels", "all")), return_steps=True)
            name = f"{cid}.png"
            if job.options.get("action_maps"):
                with tempfile.TemporaryDirectory(prefix="scarceseg-maps-") as tmp:
                    files[f"action_maps/{cid}.png"] = save_action_maps(steps, Path(tmp) / "a.png").read_bytes()
        else:
            mask, record = _select(job, model, case)
            name = f"{cid}.png"
    except ValueError as exc:  # what the single-process loop skips a case for
        raise InputError(case.source, str(exc)) from None
    files[name] = _mask_bytes(mask, name, case)
    return CaseResult(files=files, record=_jsonable(record))


def _select(job: SegmentJob, selector: Any, case: Any) -> tuple[np.ndarray, dict]:
    from scarceseg.cluster.propose import propose_case

    opts = job.options
    proposal = propose_case(case, opts["proposer_config"], channels=opts["channels"], seed=opts["seed"])
    if opts["mode"] == "automatic":
        index, scores = selector.select_automatic(proposal.image, proposal.masks)
        extra: dict = {}
    else:
        point = opts["points"].get(case.case_id)
        if point is None:
            raise InputError(None, "no click point for this case")
        index, info = selector.select_one_click(proposal.image, proposal.masks, tuple(point))
        scores = info.pop("scores")
        extra = {"point": list(point), **info}
    record = {"index": index, "score": float(scores[index]), "scores": scores.tolist(),
              "n_candidates": len(proposal.masks), **extra}
    return np.asarray(proposal.masks[index], dtype=bool), record


def segment_cohort(model_dir: str | Path, data: str | Path, out_dir: str | Path, *, mode: str = "automatic",
                   points: dict | str | Path | None = None, action_maps: bool = False, layout: str | None = None,
                   seed: int = 0, workers: int | None = None, ray: str | None = None, retries: int = 1,
                   resume: bool = True, progress: bool = True) -> dict:
    """Segment every case of ``data`` with any saved model, one task per case (see :func:`run_cohort`).

    The masks are those of the method's single-process ``segment_folder*`` function, bit for bit.

    Returns
    -------
    dict
        ``written`` (mask paths written by this run), ``kept`` (cases finished before: a runner marker, or a mask
        already in OUT; redone with ``resume=False``), ``skipped`` (``(case_id, reason)``), ``failed``
        (``(case_id, reason)``), ``notes`` (the data set's), ``report`` (:class:`CohortReport`).
    """
    model_dir, out = Path(model_dir), Path(out_dir)
    fmt = model_format(model_dir)
    options: dict = {"action_maps": bool(action_maps)}
    if action_maps and fmt != "pixeldrl":
        raise ScarcesegError("--action-maps is for PixelDRL-MG models")
    if fmt == "selector":
        options.update(_selector_options(model_dir, mode, points, seed))
    from scarceseg.bench.runner import finished_record

    sources = Sources()
    items = dataset_items(Path(data), layout, sources)
    # a mask already in OUT without a runner marker (written by an earlier version, or copied there) is kept too
    legacy = [] if not resume else [
        item.case_id for item in items if finished_record(out, item.case_id) is None
        and any((out / f"{item.case_id}{ending}").is_file() for ending in (".png", ".nii.gz"))]
    job = SegmentJob(fmt, read_folder(model_dir), sources, options)
    report = run_cohort(segment_task, [i for i in items if i.case_id not in set(legacy)], out, shared=job,
                        workers=workers, ray=ray, retries=retries, resume=resume, progress=progress,
                        description=f"segmenting ({fmt})")
    written = [str(out / f) for cid in report.done for f in _files_of(out, cid) if not f.startswith("action_maps/")]
    order = {item.case_id: k for k, item in enumerate(items)}
    kept = sorted(report.reused + legacy, key=order.__getitem__)
    if fmt == "selector" and out.is_dir():
        selection = {cid: report.records[cid] for cid in report.reused + report.done}
        summary = {"model": str(model_dir), "mode": options["mode"], "cases": selection,
                   "skipped": report.skipped + report.failed}
        (out / "selection.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return {"written": written, "kept": kept, "skipped": report.skipped, "failed": report.failed,
            "notes": list(sources.datasets[0].notes), "report": report}


def _files_of(out: Path, case_id: str) -> list[str]:
    from scarceseg.bench.runner import finished_record

    return list((finished_record(out, case_id) or {}).get("files", []))


def _selector_options(model_dir: Path, mode: str, points: Any, seed: int) -> dict:
    from scarceseg.methods.selector_method import load_points
    from scarceseg.methods.udc_rl import SEGMENT_MODES, Selector

    mode = mode.replace("-", "_")
    if mode not in SEGMENT_MODES:
        raise ScarcesegError(f"--mode must be automatic or one-click, got {mode!r}")
    if mode == "one_click":
        if points is None:
            raise InputError(None, "one-click mode needs click points (--points FILE)")
        points = points if isinstance(points, dict) else load_points(points)
    proposer_config = Selector.load(model_dir, device="cpu").summary.get("proposer_config")
    channels = "flair"
    if isinstance(proposer_config, dict):  # a saved Proposal.config: UDCConfig fields plus run facts
        from scarceseg.cluster.udc import UDCConfig

        channels = proposer_config.get("input_channels", channels)
        proposer_config = UDCConfig.from_dict(proposer_config)
    return {"mode": mode, "points": dict(points or {}), "proposer_config": proposer_config, "channels": channels,
            "seed": seed}


# ---- propose --------------------------------------------------------------------------------------------
@dataclass
class ProposeJob:
    """The shared object of ``scarceseg propose`` on a cohort."""

    sources: Sources
    config: Any
    channels: str
    seed: int


def propose_task(job: ProposeJob, item: CohortItem) -> CaseResult:
    """Propose one case; returns the files :func:`save_proposal` writes and its ``index.json`` entry."""
    from scarceseg.cluster.propose import propose_case
    from scarceseg.store.proposals import PROPOSALS, read_index, save_proposal

    case = job.sources.load(item.data)
    proposal = propose_case(case, job.config, channels=job.channels, seed=job.seed)
    with tempfile.TemporaryDirectory(prefix="scarceseg-propose-") as tmp:
        folder = save_proposal(proposal, tmp)
        files = {f"{PROPOSALS}/{case.case_id}/{name}": data for name, data in read_folder(folder).items()}
        entry = read_index(tmp)[case.case_id]
    return CaseResult(files=files, record={"index": entry, "candidates": len(proposal.candidates)})


def propose_cohort(inputs: Sequence[Path], workdir: str | Path, config: Any = None, channels: str = "flair",
                   seed: int = 0, layout: str | None = None, workers: int | None = None, ray: str | None = None,
                   retries: int = 1, resume: bool = True, progress: bool = True) -> dict:
    """Propose candidates for every case of ``inputs`` into ``workdir``, one task per case.

    The files of each case are those of :func:`~scarceseg.store.propose_many.propose_inputs`; ``index.json`` gets
    one entry per finished case (merged with the entries already there).

    Returns
    -------
    dict
        ``workdir``, ``proposed`` (this run), ``kept`` (proposed before with the same config, channels and seed;
        not redone unless ``resume=False``), ``skipped`` (``[case_or_file, where, reason]``), ``failed``,
        ``seconds``, ``median_seconds``, ``candidates`` (this run's), ``report``.
    """
    from scarceseg.cluster.propose import CHANNEL_MODES
    from scarceseg.cluster.udc import UDCConfig
    from scarceseg.store.proposals import INDEX, PROPOSALS, read_index

    if channels not in CHANNEL_MODES:
        raise InputError(None, f"--channels must be one of {CHANNEL_MODES}, got {channels!r}")
    workdir = Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise InputError(workdir, "WORKDIR exists and is not a folder")
    sources = Sources()
    skipped: list[tuple[str, str, str]] = []
    items = input_items(inputs, layout, sources, skipped)
    from dataclasses import asdict

    from scarceseg.store.proposals import is_finished  # the single-process rule: same config, channels, seed

    cfg = UDCConfig.preset(config)
    job = ProposeJob(sources, cfg, channels, seed)
    index = read_index(workdir) if workdir.is_dir() else {}
    wanted = json.loads(json.dumps(asdict(cfg)))
    kept = [i.case_id for i in items if resume and is_finished(index, workdir, i.case_id, wanted, channels, seed)]
    report = run_cohort(propose_task, [i for i in items if i.case_id not in set(kept)], workdir, shared=job,
                        workers=workers, ray=ray, retries=retries, resume=False, progress=progress,
                        description="proposing")
    report.reused = kept
    index = read_index(workdir)
    index.update({cid: report.records[cid]["index"] for cid in report.done})
    from scarceseg.bench.runner import write_atomic

    write_atomic(workdir / PROPOSALS / INDEX, json.dumps(index, indent=1, sort_keys=True).encode())
    where = {item.case_id: str(sources.datasets[item.data[1]].root if item.data[0] == "dataset" else item.data[1])
             for item in items}
    skipped += [(cid, where[cid], reason) for cid, reason in report.skipped]
    seconds = {cid: float(index[cid].get("seconds", 0.0)) for cid in report.done}
    return {
        "workdir": str(workdir),
        "proposed": report.done,
        "kept": kept,
        "skipped": [list(s) for s in skipped],
        "failed": [list(f) for f in report.failed],
        "seconds": seconds,
        "median_seconds": float(np.median(list(seconds.values()))) if seconds else 0.0,
        "candidates": {cid: report.records[cid]["candidates"] for cid in report.done},
        "report": report,
    }


__all__ = ["CohortReport", "propose_cohort", "segment_cohort", "segment_task", "propose_task"]
