"""The app's prior routes: the background embedding of the shown slice, a box or one click -> mask, propagation.

* ``POST /api/cases/<id>/embed`` ``{z}`` starts encoding the unit's image on the embedding worker (the page
  calls it as soon as a case opens and whenever the slice changes); ``GET /api/cases/<id>/embedding?z=``
  tells its status (``none``, ``queued``, ``running``, ``ready``, ``failed``) and how long it took.
* ``POST /api/cases/<id>/box`` ``{z, y0, x0, y1, x1, propagate}`` starts a new mask from a box (inclusive
  pixels). It waits for the embedding under way instead of computing it again. On a volume, with
  ``propagate`` (default), a job then carries the box to the neighbouring slices (MedSAM's 3D protocol); each
  slice it reaches becomes a session of its own (slices the user already started are left alone).
* ``POST /api/cases/<id>/segment`` ``{z, y, x}``: one click -> a box (:func:`scarceseg.prior.prompts.click_to_box`)
  -> a new mask.

Every start is stored (pick row + snapshot) before the answer, as picks and clicks are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scarceseg.errors import InputError

MAX_COORD = 1 << 16


class Embeddings:
    """Encodes images on one background worker; a prompt waits for the embedding under way.

    Parameters
    ----------
    get_prior : callable
        Returns the :class:`~scarceseg.prior.model.LiteMedSAM` to use (loaded on first call).
    """

    def __init__(self, get_prior: Callable[[], Any]) -> None:
        self._get_prior = get_prior
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="scarceseg-embed")
        self._lock = threading.Lock()
        self._futures: dict[str, Future] = {}
        self._info: dict[str, dict] = {}

    def prior(self):
        return self._get_prior()

    def start(self, key: str, image) -> Future:
        """Encode ``image`` (the unit ``key``'s) in the background unless that is done or under way."""
        with self._lock:
            future = self._futures.get(key)
            if future is not None and not (future.done() and future.exception() is not None):
                return future  # under way, or done (a later embed() re-encodes if the cache dropped it)
            info = {"status": "queued", "seconds": None, "error": None}
            self._info[key] = info

            def work():
                info["status"] = "running"
                t0 = time.perf_counter()
                try:
                    self.prior().embed(image)
                except Exception as exc:
                    info["status"], info["error"] = "failed", str(exc)
                    raise
                info["status"], info["seconds"] = "ready", round(time.perf_counter() - t0, 3)

            future = self._pool.submit(work)
            self._futures[key] = future
            return future

    def status(self, key: str) -> dict:
        """``{"status", "seconds", "error"}`` of the unit's embedding (``none`` when never asked for)."""
        with self._lock:
            info = self._info.get(key)
            return dict(info) if info is not None else {"status": "none", "seconds": None, "error": None}

    def wait(self, key: str, image):
        """The embedding of ``image``: waits for the background one (started now if needed)."""
        future = self.start(key, image)
        future.result()
        return self.prior().embed(image)  # from the cache

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Body(BaseModel):
    """A strict JSON body, as the app's others: no unknown keys, no loose types (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class SliceBody(_Body):
    z: int | None = Field(default=None, ge=0, lt=MAX_COORD)


class BoxBody(SliceBody):
    y0: int = Field(ge=0, lt=MAX_COORD)
    x0: int = Field(ge=0, lt=MAX_COORD)
    y1: int = Field(ge=0, lt=MAX_COORD)
    x1: int = Field(ge=0, lt=MAX_COORD)
    propagate: bool = True

    @model_validator(mode="after")
    def ordered(self):
        if self.y1 < self.y0 or self.x1 < self.x0:
            raise ValueError("a box needs y0 <= y1 and x0 <= x1")
        return self


class SegmentBody(SliceBody):
    y: int = Field(ge=0, lt=MAX_COORD)
    x: int = Field(ge=0, lt=MAX_COORD)


def prior_router(*, catalog, sessions, jobs, embeddings: Embeddings, unit, user_of, answer,
                 slice_key) -> APIRouter:
    """The routes above, sharing the app's helpers (``unit`` checks a case and slice, ``answer`` is the state)."""
    router = APIRouter()

    def image_of(case_id: str, z: int | None):
        key = unit(case_id, z)
        zz = z if key != case_id else None
        return key, zz, sessions.unit_image(case_id, zz)

    def inside(image, ys, xs) -> None:
        height, width = image.shape
        if any(not 0 <= y < height for y in ys) or any(not 0 <= x < width for x in xs):
            raise InputError(None, f"the prompt lies outside the {height}x{width} image")

    @router.post("/api/cases/{case_id}/embed")
    def embed(case_id: str, body: SliceBody):
        key, _, image = image_of(case_id, body.z)
        embeddings.start(key, image)
        return {"key": key, **embeddings.status(key)}

    @router.get("/api/cases/{case_id}/embedding")
    def embedding(case_id: str, z: int | None = None):
        key = unit(case_id, z)
        return {"key": key, **embeddings.status(key)}

    @router.post("/api/cases/{case_id}/box")
    def box(case_id: str, body: BoxBody, request: Request):
        user = user_of(request)
        key, z, image = image_of(case_id, body.z)
        inside(image, (body.y0, body.y1), (body.x0, body.x1))
        prompt = (body.y0, body.x0, body.y1, body.x1)
        emb = embeddings.wait(key, image)
        t0 = time.perf_counter()
        prob = embeddings.prior().decode(emb, box=prompt)[0].prob
        ms = round((time.perf_counter() - t0) * 1000, 1)
        with sessions.lock(user, key):
            sessions.start(user, case_id, z, prob, "box", box=prompt)
            extra: dict[str, Any] = {"prior_ms": ms}
            if z is not None and body.propagate:
                job = jobs.submit("propagate", propagate_work(case_id, z, prompt, user), target=f"{user}:{case_id}",
                                  long=True, user=user)
                extra["job"] = job.as_dict()
            return answer(user, key, **extra)

    @router.post("/api/cases/{case_id}/segment")
    def segment(case_id: str, body: SegmentBody, request: Request):
        from scarceseg.prior.prompts import click_to_box

        user = user_of(request)
        key, z, image = image_of(case_id, body.z)
        inside(image, (body.y,), (body.x,))
        embeddings.wait(key, image)
        t0 = time.perf_counter()
        prompt, prob = click_to_box(embeddings.prior(), image, (body.y, body.x))
        ms = round((time.perf_counter() - t0) * 1000, 1)
        with sessions.lock(user, key):
            sessions.start(user, case_id, z, prob, "click", box=prompt, point=(body.y, body.x))
            return answer(user, key, prior_ms=ms)

    def propagate_work(case_id: str, z: int, prompt, user: str):
        """A job: the box of slice ``z`` carried to the neighbours; every slice reached becomes a session."""
        from scarceseg.prior.prompts import box_from_mask, propagate_volume
        from scarceseg.web.catalog import display_channel

        def work(job) -> dict:
            volume = display_channel(catalog.load(case_id))
            job.total, job.message = int(volume.shape[0]), f"propagating from slice {z}"
            reached: list[int] = []

            def on_slice(k: int) -> None:
                reached.append(k)
                job.done, job.message = len(reached), f"propagating: slice {k}"

            prob = propagate_volume(embeddings.prior(), volume, z, prompt, on_slice=on_slice)
            started, kept = [], []
            for k in sorted(reached):
                if k == z:
                    continue
                key = slice_key(case_id, k)
                with sessions.lock(user, key):
                    if sessions.has_session(user, key):
                        kept.append(k)
                        continue
                    sessions.start(user, case_id, k, prob[k], "propagate", box=box_from_mask(prob[k] > 0.5, 5))
                started.append(k)
            job.done = job.total
            job.message = f"{len(started)} slices segmented from slice {z}"
            return {"case_id": case_id, "z": z, "slices": started, "kept": kept}

        return work

    return router
