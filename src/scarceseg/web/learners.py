"""The app's "train" and "segment the rest" for any registered learner, and its choice of refiner.

The app reaches methods only through :mod:`scarceseg.methods.registry`: the learners are the registered
segmenters, the refiners the registered refiners. Every model trained in the app is kept as a run
``WORKDIR/<name>/runs/NNNN`` with its manifest (:mod:`scarceseg.web.runs`); one of them is in use.
:func:`scarceseg.store.training.train_from_store` decides what it learns from (the selector: the picks; the
others: the saved masks).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scarceseg.errors import InputError, ScarcesegError


def method_choices() -> dict:
    """``{"learners": [...], "refiners": [...]}``: name, kind and summary of each registered method."""
    from scarceseg.methods.registry import listing

    rows = listing()
    return {"learners": [r for r in rows if r["kind"] == "segmenter"],
            "refiners": [r for r in rows if r["kind"] == "refiner"]}


def model_dir(workdir: Path, name: str) -> Path:
    """Where the app keeps the learner or refiner ``name`` it trained: ``WORKDIR/<name>``."""
    from scarceseg.methods.registry import names

    if name not in names():
        raise InputError(None, f"unknown method {name!r}; registered: {', '.join(names())}")
    return Path(workdir) / name


def open_refiner(workdir: Path, name: str | Path):
    """The refiner ``name``: untrained ones (prior, min-cut) directly, trained ones from ``WORKDIR/<name>``; a
    path that is not a registered name is a trained refiner's folder (``scarceseg serve --refiner MODEL``)."""
    from scarceseg.methods.registry import get, load_refiner, names

    if str(name) not in names("refiner"):
        return load_refiner(name)
    cls = get(str(name))
    if getattr(cls, "untrained", False):
        return cls()
    from scarceseg.web.runs import active_model_dir

    folder = active_model_dir(workdir, name)
    if folder is None:
        raise InputError(None, f"no trained {name} refiner in this WORKDIR yet (train it first)")
    return load_refiner(folder)


def train_work(catalog, store, workdir: Path, name: str, episodes: int | None, seed: int = 0,
               user: str | None = None, steps: int | None = None):
    """A job function: train the learner ``name`` on the store (picks or saved masks) into a new run
    ``WORKDIR/<name>/runs/NNNN`` (:mod:`scarceseg.web.runs`), which becomes the model in use; older runs stay.

    ``episodes`` is the budget's ``epochs`` (the selector's episodes), ``steps`` its updates; None: the method's
    default. Returns the run's manifest (no server paths).
    """
    from scarceseg.methods.contract import Budget
    from scarceseg.store.training import train_from_store
    from scarceseg.web.runs import NewRun

    budget = Budget(epochs=episodes, steps=steps)

    def work(job) -> dict:
        job.message = f"training {name}"
        run = NewRun(workdir, name)
        try:
            result = train_from_store(name, workdir, store, catalog.load, run.path, who=user, budget=budget,
                                      seed=seed)
        except BaseException:
            run.discard()
            raise
        manifest = run.publish({"who": user, "case_ids": result.get("case_ids") or [],
                                "n_images": result.get("n_images"), "seconds": result.get("seconds"),
                                "budget": {"epochs": episodes, "steps": steps}, "seed": seed,
                                "skipped": [list(s) for s in result.get("skipped") or []],
                                **({"train_accuracy": result["train_accuracy"]} if "train_accuracy" in result
                                   else {})})
        return {**manifest, "model": f"{name}/runs/{manifest['run']}", "episodes": episodes}

    return work


def segment_rest_work(catalog, store, workdir: Path, user: str, done_keys: Callable[[], set[str]], name: str,
                      config: str = "fast", seed: int = 0):
    """A job function: the learner ``name``'s model in use proposes a mask for every 2D case the user has not done.

    Each mask is stored as kind ``"auto"`` for this user, its note holding the method, the run and the
    prediction's uncertainty (:func:`scarceseg.metrics.uncertainty.mask_uncertainty`: ``uncertainty``,
    ``band_px``, ``graded``); the page shows it as a suggestion. Volumes are skipped (they are edited slice by
    slice). A learner that proposes candidates (the selector) reuses the proposals saved in WORKDIR and saves
    the ones it makes.
    """
    from scarceseg.methods.contract import predict_case
    from scarceseg.methods.registry import load_model
    from scarceseg.metrics.uncertainty import mask_uncertainty
    from scarceseg.progress import track
    from scarceseg.web.runs import active_model_dir

    def work(job) -> dict:
        folder = active_model_dir(workdir, name)
        if folder is None:
            raise ScarcesegError(f"train the {name} learner first (no model of it in WORKDIR yet)")
        run = folder.name if folder.parent.name == "runs" else None
        job.message = f"loading the {name} model"
        model = load_model(folder, kind="segmenter")
        if "proposals" in model.inference_options:
            model.set_inference(proposals=_proposals(workdir, config, seed))
        skip = done_keys()
        todo = [c for c in catalog.case_ids if c not in skip]
        neighbours = catalog.neighbours() if getattr(model, "context_slices", 0) else None
        written: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for case_id in track(todo, "suggesting masks", enabled=False):
            try:
                case = catalog.load(case_id)
                if case.ndim != 2:
                    skipped[case_id] = "a volume: pick slice by slice"
                    continue
                prediction = predict_case(model, case, neighbours)
                note = {k: v for k, v in prediction.extra.items() if isinstance(v, int | float | str)}
                note.update(method=name, run=run, **mask_uncertainty(prediction.prob, prediction.mask))
                store.save_mask(case_id, "auto", np.asarray(prediction.mask, dtype=bool), who=user,
                                note=json.dumps(note))
                written[case_id] = prediction.extra.get("index")
            except (ScarcesegError, ValueError) as exc:
                skipped[case_id] = str(exc)
        return {"segmented": len(written), "skipped": skipped, "method": name, "run": run}

    return work


def _proposals(workdir: Path, config: str, seed: int):
    """``case -> Proposal``: the one saved in WORKDIR, else a new one (saved)."""
    from scarceseg.cluster.propose import propose_case
    from scarceseg.store.proposals import list_proposals, load_proposal, save_proposal

    proposed = set(list_proposals(workdir))

    def get(case):
        if case.case_id in proposed:
            return load_proposal(workdir, case.case_id)
        proposal = propose_case(case, config, channels="flair", seed=seed)
        save_proposal(proposal, workdir)
        return proposal

    return get
