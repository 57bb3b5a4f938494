"""Background jobs of the browser app (propose, train the selector, segment the rest) with progress.

A job runs in a worker thread; the page polls ``GET /api/jobs/<id>`` for ``status``, ``done``/``total``,
a message and ``eta_seconds`` (the current loop's time left at its pace so far; None when there is no total,
e.g. in a learner's set-up before its first loop). Progress comes from
:func:`scarceseg.progress.observe_progress`, so the library code's own progress loops (``track``) drive the
page's progress bar. Proposals run on one worker, the long
jobs (training, segmenting) on another, so a proposal is not stuck behind a training run.

The proposal queue is bounded, per user and overall (:class:`QueueFull`, answered 429); a long job runs once
per kind and target. Finished jobs are forgotten beyond the most recent :data:`KEEP_FINISHED`.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scarceseg.errors import ScarcesegError

KEEP_FINISHED = 256  # finished jobs kept for polling


class QueueFull(ScarcesegError):
    """The proposal queue holds as many jobs as allowed (for this user, or overall)."""


@dataclass
class Job:
    """One background job; ``status`` is queued, running, done or failed."""

    id: str
    kind: str
    target: str = ""
    status: str = "queued"
    done: int = 0
    total: int | None = None
    message: str = ""
    result: dict = field(default_factory=dict)
    error: str | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    user: str | None = None
    long: bool = False
    phase_started: float | None = None  # when the current progress loop (message + total) began
    reported: float | None = None  # when the last progress report came

    def progress(self, message: str, done: int, total: int | None) -> None:
        """Record a progress report; a new loop (another message or total, or ``done == 0``) restarts the clock."""
        now = time.time()
        if done == 0 or message != self.message or total != self.total or self.phase_started is None:
            self.phase_started = now
        self.message, self.done, self.total, self.reported = message, done, total, now

    def eta(self) -> float | None:
        """Seconds left in the current loop at its pace up to the last report, less the time since that report;
        None without a total or before the loop's first item is done."""
        if self.status != "running" or not self.total or not self.done or self.phase_started is None:
            return None
        per_item = ((self.reported or time.time()) - self.phase_started) / self.done
        since = time.time() - (self.reported or time.time())
        return max(0.0, per_item * max(0, self.total - self.done) - since)

    def as_dict(self) -> dict:
        eta = self.eta()
        elapsed = time.time() - self.started if self.status in ("queued", "running") else self.seconds
        return {"id": self.id, "kind": self.kind, "target": self.target, "status": self.status, "done": self.done,
                "total": self.total, "message": self.message, "result": self.result, "error": self.error,
                "seconds": round(elapsed, 2), "eta_seconds": None if eta is None else round(eta, 1)}


class JobManager:
    """Starts jobs on two worker threads and keeps their state for polling.

    Parameters
    ----------
    max_per_user : int
        Proposals one user may have queued or running at once.
    max_total : int
        Proposals of all users queued or running at once.
    """

    def __init__(self, max_per_user: int = 4, max_total: int = 16) -> None:
        if not 1 <= max_per_user <= max_total:
            raise ValueError(f"need 1 <= max_per_user <= max_total, got {max_per_user}, {max_total}")
        self.max_per_user, self.max_total = int(max_per_user), int(max_total)
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._quick = ThreadPoolExecutor(1, thread_name_prefix="scarceseg-propose")
        self._long = ThreadPoolExecutor(1, thread_name_prefix="scarceseg-train")

    def get(self, job_id: str) -> Job:
        return self._jobs[job_id]  # KeyError: unknown

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def active(self, kind: str, target: str = "") -> Job | None:
        """A queued or running job of this kind and target, if any."""
        return next((j for j in self._jobs.values()
                     if j.kind == kind and j.target == target and j.status in ("queued", "running")), None)

    def submit(self, kind: str, work: Callable[[Job], dict], target: str = "", long: bool = False,
               user: str | None = None) -> Job:
        """Run ``work(job)`` in the background (one job per kind and target at a time) and return the job.

        Raises
        ------
        QueueFull
            A new quick job (a proposal) when ``user`` already has ``max_per_user`` of them queued or
            running, or all users together ``max_total``.
        """
        with self._lock:
            running = self.active(kind, target)
            if running is not None:
                return running
            if not long:
                pending = [j for j in self._jobs.values() if not j.long and j.status in ("queued", "running")]
                mine = sum(j.user == user for j in pending) if user is not None else 0
                if mine >= self.max_per_user:
                    raise QueueFull(f"the proposal queue is full: you already have {mine} proposals queued or "
                                    "running; wait until one is done")
                if len(pending) >= self.max_total:
                    raise QueueFull(f"the proposal queue is full: {len(pending)} proposals of all users are "
                                    "queued or running; try again in a moment")
            job = Job(str(next(self._ids)), kind, target, user=user, long=long)
            self._jobs[job.id] = job
            self._forget_old()
        (self._long if long else self._quick).submit(self._run, job, work)
        return job

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in ("done", "failed")]
        for j in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[j.id]

    @staticmethod
    def _run(job: Job, work: Callable[[Job], dict]) -> None:
        from scarceseg.progress import observe_progress

        def report(description: str, done: int, total: int | None) -> None:
            job.progress(description, done, total)

        job.status, job.started = "running", time.time()
        try:
            with observe_progress(report):
                result = work(job) or {}
            job.seconds, job.result, job.status = time.time() - job.started, result, "done"
        except ScarcesegError as exc:
            job.seconds, job.error, job.status = time.time() - job.started, str(exc), "failed"
        except Exception as exc:  # a bug: keep the server up and show it
            job.seconds, job.error = time.time() - job.started, f"{type(exc).__name__}: {exc}"
            job.status = "failed"
            traceback.print_exc()

    def shutdown(self) -> None:
        self._quick.shutdown(wait=False, cancel_futures=True)
        self._long.shutdown(wait=False, cancel_futures=True)


# ---- the work ---------------------------------------------------------------------------------------
def propose_work(catalog, workdir: Path, case_id: str, z: int | None, config: str = "fast", seed: int = 0):
    """A job function: propose candidates for one 2D unit and save them into WORKDIR (contact sheet too)."""
    from scarceseg.cluster.propose import propose_case
    from scarceseg.store.proposals import save_proposal

    def work(job: Job) -> dict:
        job.total, job.message = 3, "loading"
        case = catalog.slice_case(case_id, z)
        job.done, job.message = 1, "clustering (UDC)"
        proposal = propose_case(case, config, channels="flair", seed=seed)
        job.done, job.message = 2, "writing candidates and contact sheet"
        save_proposal(proposal, workdir)
        job.done, job.message = 3, f"{len(proposal.candidates)} candidates"
        return {"key": proposal.case_id, "n_candidates": len(proposal.candidates), "seconds": proposal.seconds}

    return work
