"""Cohort jobs on :func:`~scarceseg.bench.runner.run_cohort`: ``scarceseg segment`` and ``scarceseg propose``.

The shared object of a job holds the model *folder's files* (bytes) and the data sets' light entries; each
worker writes the files to a private temporary folder and loads the model once, on its first case, through the
registry (:func:`~scarceseg.methods.registry.load_model`: any registered method). A task
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
    """The shared object of a segmentation cohort: the model folder's files, data sets and inference options."""

    model_files: dict[str, bytes]
    sources: Sources
    options: dict = field(default_factory=dict)
    _model: Any = field(default=None, repr=False, compare=False)
    _folder: Any = field(default=None, repr=False, compare=False)
    _neighbours: dict = field(default_factory=dict, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_model"] = state["_folder"] = None  # each worker loads its own copy
        state["_neighbours"] = {}
        return state

    def neighbours(self, index: int):
        """The :class:`~scarceseg.datasets.slices.NeighbourSlices` of data set ``index``, built once per process
        (its recently loaded slices then serve the next cases too)."""
        if index not in self._neighbours:
            from scarceseg.datasets.slices import NeighbourSlices

            self._neighbours[index] = NeighbourSlices.of_dataset(self.sources.datasets[index])
        return self._neighbours[index]

    def model(self) -> Any:
        """The registered method the folder names (``load_model``), loaded on first use in this process."""
        if self._model is None:
            self._folder, model = open_model_files(self.model_files)
            if self.options:
                model.set_inference(**self.options)
            self._model = model
        return self._model


def open_model_files(files: dict[str, bytes]) -> tuple[tempfile.TemporaryDirectory, Any]:
    """``(folder, segmenter)``: a model folder's files (:func:`read_folder`) written to a private temporary
    folder and opened through the registry; keep ``folder`` alive as long as the model is used."""
    from scarceseg.methods.registry import load_model

    folder = tempfile.TemporaryDirectory(prefix="scarceseg-model-")
    for name, data in files.items():
        (Path(folder.name) / name).parent.mkdir(parents=True, exist_ok=True)
        (Path(folder.name) / name).write_bytes(data)
    return folder, load_model(folder.name, kind="segmenter")


def _mask_bytes(mask: np.ndarray, name: str, case: Any) -> bytes:
    from scarceseg.io import write_mask

    with tempfile.TemporaryDirectory(prefix="scarceseg-mask-") as tmp:
        return write_mask(mask, Path(tmp) / name, like=case).read_bytes()


def segment_task(job: SegmentJob, item: CohortItem) -> CaseResult:
    """Segment one case exactly as :func:`~scarceseg.methods.folder.segment_folder` does: the model's
    ``predict`` and ``after_predict`` (whose files, e.g. PixelDRL-MG's action maps, are returned as bytes)."""
    from scarceseg.methods.contract import predict_case

    case = job.sources.load(item.data)
    model = job.model()
    name = f"{case.case_id}{'.png' if case.ndim == 2 else '.nii.gz'}"
    neighbours = None
    if model.context_slices and item.data[0] == "dataset":
        neighbours = job.neighbours(item.data[1])
    try:
        prediction = predict_case(model, case, neighbours)
    except ValueError as exc:  # what the single-process loop skips a case for
        raise InputError(case.source, str(exc)) from None
    files = {name: _mask_bytes(prediction.mask, name, case)}
    with tempfile.TemporaryDirectory(prefix="scarceseg-extra-") as tmp:
        model.after_predict(Path(tmp), case, prediction)
        files.update(read_folder(Path(tmp)))
    return CaseResult(files=files, record=_jsonable(prediction.extra))


def segment_cohort(model_dir: str | Path, data: str | Path, out_dir: str | Path, *, options: dict | None = None,
                   layout: str | None = None, workers: int | None = None, ray: str | None = None, retries: int = 1,
                   resume: bool = True, progress: bool = True) -> dict:
    """Segment every case of ``data`` with any saved model (any registered method), one task per case.

    The masks are those of :func:`~scarceseg.methods.folder.segment_folder`, bit for bit: each worker opens the
    folder with :func:`~scarceseg.methods.registry.load_model`, applies ``options`` (the method's inference
    options: the selector's mode, points and seed, PixelDRL-MG's action maps) and calls ``predict``. The model's
    ``finish`` hook (the selector's ``selection.json``) runs here at the end, over every finished case.

    Returns
    -------
    dict
        ``written`` (mask paths written by this run), ``kept`` (cases finished before: a runner marker, or a mask
        already in OUT; redone with ``resume=False``), ``skipped`` (``(case_id, reason)``), ``failed``
        (``(case_id, reason)``), ``notes`` (the data set's), ``extra`` (each finished case's
        ``Prediction.extra``), ``report`` (:class:`CohortReport`).
    """
    from scarceseg.bench.runner import finished_record
    from scarceseg.methods.folder import MASK_ENDINGS
    from scarceseg.methods.registry import load_model

    model_dir, out = Path(model_dir), Path(out_dir)
    here = load_model(model_dir, kind="segmenter")  # checks the folder and the options before any worker starts
    # the seed is an option only of methods that draw at inference (the proposals)
    options = {k: v for k, v in (options or {}).items() if k != "seed" or k in here.inference_options}
    shared_cache = None
    if here.context_slices and "embedding_cache" in here.inference_options and "embedding_cache" not in options:
        # a model that reads each slice's neighbours needs every slice's embedding several times, in whichever
        # worker: they share one cache folder for this run (removed at the end), so each is encoded about once
        shared_cache = tempfile.TemporaryDirectory(prefix="scarceseg-embeddings-")
        options["embedding_cache"] = shared_cache.name
    here.set_inference(**options)
    sources = Sources()
    items = dataset_items(Path(data), layout, sources)
    # a mask already in OUT without a runner marker (written by an earlier version, or copied there) is kept too
    legacy = [] if not resume else [
        item.case_id for item in items if finished_record(out, item.case_id) is None
        and any((out / f"{item.case_id}{ending}").is_file() for ending in MASK_ENDINGS)]
    job = SegmentJob(read_folder(model_dir), sources, options)
    try:
        report = run_cohort(segment_task, [i for i in items if i.case_id not in set(legacy)], out, shared=job,
                            workers=workers, ray=ray, retries=retries, resume=resume, progress=progress,
                            description=f"segmenting ({here.name})")
    finally:
        if shared_cache is not None:
            shared_cache.cleanup()
    written = [str(out / f) for cid in report.done for f in _files_of(out, cid) if not f.startswith("action_maps/")]
    order = {item.case_id: k for k, item in enumerate(items)}
    kept = sorted(report.reused + legacy, key=order.__getitem__)
    extra = {cid: report.records[cid] for cid in sorted(report.reused + report.done, key=order.__getitem__)}
    summary = {"written": written, "kept": legacy, "skipped": report.skipped + report.failed, "extra": extra}
    if extra or legacy:
        here.finish(out, summary)
    return {"written": written, "kept": kept, "skipped": report.skipped, "failed": report.failed,
            "notes": list(sources.datasets[0].notes), "extra": extra, "report": report}


def _files_of(out: Path, case_id: str) -> list[str]:
    from scarceseg.bench.runner import finished_record

    return list((finished_record(out, case_id) or {}).get("files", []))


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
