"""The label -> learn -> correct loop of the browser app: learn from the saved masks, suggest, accept, go back.

* ``POST /api/train`` ``{method, episodes}`` and ``POST /api/segment-rest`` ``{method}``: the two halves on
  their own (the selector learns from picks; "segment the rest" suggests with the model in use).
* ``POST /api/learn`` ``{method, steps, epochs}`` (a background job): trains the learner (default ``fewshot``)
  on this user's saved masks into a new run (:mod:`scarceseg.web.runs`, older runs are kept), makes it the
  model in use, then suggests a mask for every 2D case the user has not worked on (stored as kind ``auto``
  with its uncertainty, :func:`scarceseg.metrics.uncertainty.mask_uncertainty`). The job reports the
  learner's own progress loops (the few-shot learner: images encoded, then steps done / total) and an ETA.
* ``GET /api/models/<method>``: the runs (case ids, time, budget) and which one is in use.
* ``POST /api/models/<method>/activate`` ``{run, suggest}``: go back (or forward) to a run; with ``suggest``
  the suggestions are made again with it (a job).
* ``POST /api/cases/<id>/adopt`` ``{z}``: the suggestion becomes the user's editable mask (a session started
  from it, stored as a pick + snapshot like a box), so clicks correct it with the chosen refiner and undo
  goes back to the suggestion.
* ``POST /api/cases/<id>/accept`` ``{z, format}`` (key ``a``): adopt the suggestion if needed, then save it
  through the same path as the save button (file + ``final`` row). A unit where the user already has a
  mask of their own (not started from the suggestion) is refused (409): ``s`` saves that one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from scarceseg.errors import InputError
from scarceseg.web.state import AUTO, FINAL, PRIOR_CONFIDENCE, SNAPSHOT, NotReady

METHOD_RE = r"^[a-z0-9_]{1,40}$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TrainBody(_Body):
    episodes: int | None = Field(default=None, ge=1, le=5000)
    method: str = Field(default="selector", pattern=METHOD_RE)


class MethodBody(_Body):
    method: str = Field(default="selector", pattern=METHOD_RE)


class LearnBody(_Body):
    method: str = Field(default="fewshot", pattern=METHOD_RE)
    steps: int | None = Field(default=None, ge=1, le=100_000)
    epochs: int | None = Field(default=None, ge=1, le=5000)


class ActivateBody(_Body):
    run: str = Field(pattern=r"^\d{4,9}$")
    suggest: bool = False


class UnitBody(_Body):
    z: int | None = Field(default=None, ge=0, lt=1 << 16)


class AcceptBody(UnitBody):
    format: Literal["auto", "dicom-seg"] | None = None


def learn_work(train: Callable, suggest: Callable) -> Callable:
    """A job function: ``train(job)`` (a new run, in use), then ``suggest(job)`` with it."""

    def work(job) -> dict:
        run = train(job)
        return {"run": run, "suggested": suggest(job)}

    return work


def loop_router(*, catalog, store, sessions, jobs, workdir: Path, unit, user_of, answer, public, seed: int = 0,
                proposer: str = "fast", save_format: str = "auto", episodes: int = 300) -> APIRouter:
    """The routes above, sharing the app's helpers (``unit`` checks a case and slice, ``answer`` is the state,
    ``public`` takes server paths out of an answer)."""
    from scarceseg.web import runs
    from scarceseg.web.learners import segment_rest_work, train_work
    from scarceseg.web.security import check_writable

    router = APIRouter()

    def suggest_work(user: str, name: str):
        def done_keys() -> set[str]:
            return set(store.latest_masks(FINAL, who=user)) | set(store.latest_masks(SNAPSHOT, who=user))

        return segment_rest_work(catalog, store, workdir, user, done_keys, name, proposer, seed)

    @router.post("/api/train")
    def train(body: TrainBody, request: Request):
        check_writable(workdir, runs.runs_dir(workdir, body.method))
        work = train_work(catalog, store, workdir, body.method, body.episodes or episodes, seed, user_of(request))
        return public(jobs.submit("train", work, long=True).as_dict())

    @router.post("/api/segment-rest")
    def segment_rest(request: Request, body: MethodBody | None = None):
        user = user_of(request)
        check_writable(workdir, workdir / "proposals")
        name = body.method if body is not None else "selector"
        return public(jobs.submit("segment", suggest_work(user, name), target=user, long=True).as_dict())

    @router.post("/api/learn")
    def learn(body: LearnBody, request: Request):
        from scarceseg.methods.registry import names

        user = user_of(request)
        if body.method not in names("segmenter"):
            raise InputError(None, f"{body.method!r} is not a learner; choose one of {', '.join(names('segmenter'))}")
        check_writable(workdir, runs.runs_dir(workdir, body.method))
        train = train_work(catalog, store, workdir, body.method, body.epochs, seed, user, steps=body.steps)
        job = jobs.submit("learn", learn_work(train, suggest_work(user, body.method)), target=user, long=True,
                          user=user)
        return public(job.as_dict())

    @router.get("/api/models/{method}")
    def models(method: str):
        listed = runs.list_runs(workdir, method)  # InputError (400) for an unknown method
        return public({"method": method, "active": runs.active_run(workdir, method), "runs": listed})

    @router.post("/api/models/{method}/activate")
    def activate(method: str, body: ActivateBody, request: Request):
        manifest = runs.activate(workdir, method, body.run)
        out: dict = {"run": manifest, "job": None}
        if body.suggest:
            user = user_of(request)
            out["job"] = jobs.submit("segment", suggest_work(user, method), target=user, long=True,
                                     user=user).as_dict()
        return public(out)

    def adopt_unit(user: str, case_id: str, z: int | None) -> str:
        key = unit(case_id, z)
        record = store.latest_mask_record(key, AUTO, who=user)
        if record is None:
            raise NotReady(None, f"{key}: no suggestion here yet (learn from your masks first)")
        ws = sessions.get(user, key)
        if ws is not None and ws.source == "auto":
            return key  # already adopted: keep its corrections
        if ws is not None:
            raise NotReady(None, f"{key}: you already have your own mask here (s saves it, r starts a new one)")
        prob = np.where(record.mask, PRIOR_CONFIDENCE, 1.0 - PRIOR_CONFIDENCE).astype(np.float32)
        sessions.start(user, case_id, z if key != case_id else None, prob, "auto")
        return key

    @router.post("/api/cases/{case_id}/adopt")
    def adopt(case_id: str, body: UnitBody, request: Request):
        user = user_of(request)
        key = unit(case_id, body.z)
        with sessions.lock(user, key):
            adopt_unit(user, case_id, body.z)
            return answer(user, key)

    @router.post("/api/cases/{case_id}/accept")
    def accept(case_id: str, body: AcceptBody, request: Request):
        user = user_of(request)
        key = unit(case_id, body.z)
        with sessions.lock(user, key):
            adopt_unit(user, case_id, body.z)
            path, mask = sessions.save(user, case_id, body.z, mask_format=body.format or save_format)
        return answer(user, key, saved={"file": str(path.relative_to(workdir)), "voxels": int(mask.sum())},
                      accepted=True)

    return router
