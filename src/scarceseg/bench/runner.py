"""Run one task per case over a cohort: in this process, on a local process pool, or on a Ray cluster.

The same contract for every backend:

* ``task_fn(shared, item) -> CaseResult`` is a module-level function (so it pickles by reference); ``shared``
  (the model, the data set's entries, options) is sent once: once per pool worker through the initializer,
  once to Ray's object store with ``ray.put`` (each Ray worker deserialises it once and keeps it).
* A worker returns the case's files as bytes; this process writes each one atomically (temporary file +
  ``os.replace``) as soon as the case finishes, then a marker ``OUT/.cohort/<case_id>.json``. A case whose
  marker and files are present is finished and never recomputed when the job is restarted (``resume``).
* A :class:`~scarceseg.errors.ScarcesegError` raised by the task (unreadable or unsuitable input) marks the
  case *skipped* at once: retrying cannot help. Any other failure, a worker process killed included, is
  retried ``retries`` times, then the case is reported *failed*. No case is silently dropped.
* One progress bar for the whole cohort (total, elapsed, ETA). Beside it, what the cases in flight are doing
  now (``pat0001 45/155``): every :func:`~scarceseg.progress.track` loop a task runs (a volume's slices)
  reports to it, from this process or from the pool's workers through a pipe (Ray tasks do not report).

Workers write nothing but what they return, so ``OUT`` need not be visible to the Ray nodes; the nodes must
be able to read the input files (a shared file system, as on any cluster that segments a shared cohort).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scarceseg.errors import InputError, ScarcesegError
from scarceseg.progress import CaseStatus, reporting_case

MARKERS = ".cohort"  # OUT/.cohort/<case_id>.json: the files a finished case wrote, its record and timing


@dataclass(frozen=True)
class CohortItem:
    """One task: a case id (names the marker) and what the task needs to load that case (picklable)."""

    case_id: str
    data: Any = None


@dataclass
class CaseResult:
    """What a task returns: ``files`` (path relative to OUT -> bytes) and a JSON-able ``record``."""

    files: dict[str, bytes] = field(default_factory=dict)
    record: dict = field(default_factory=dict)


@dataclass
class CohortReport:
    """The outcome of :func:`run_cohort`.

    Attributes
    ----------
    done : list of str
        Cases computed in this run.
    reused : list of str
        Cases finished by an earlier run (marker and files present), not recomputed.
    skipped : list of (case_id, reason)
        Cases the task refused (a ScarcesegError: unreadable or unsuitable input).
    failed : list of (case_id, reason)
        Cases that still failed after ``retries`` retries (exceptions, killed workers).
    attempts : dict
        Case id -> attempts used in this run (only cases that were tried).
    records : dict
        Case id -> the task's record, for every finished case (this run's and reused ones).
    backend : str
        ``"serial"``, ``"pool"`` or ``"ray"``.
    workers : int
    seconds : float
        Wall time of the run, start-up of the pool or of Ray included.
    startup_seconds : float
        Time to connect to or start Ray (0 for serial and for the pool, whose processes start lazily).
    first_result_seconds : float
        From the start of the run to the first finished task (start-up, workers' imports and model loading
        included).
    finish_seconds : list of float
        When each task of this run finished, from the start of the run (in order).
    """

    done: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    backend: str = "serial"
    workers: int = 1
    seconds: float = 0.0
    startup_seconds: float = 0.0
    first_result_seconds: float = 0.0
    finish_seconds: list[float] = field(default_factory=list)

    def steady_seconds_per_case(self) -> float | None:
        """Median time between finished tasks over the second half of the run (start-up left out), or None."""
        times = self.finish_seconds
        if len(times) < 4:
            return None
        half = times[len(times) // 2 - 1:]
        gaps = sorted(b - a for a, b in zip(half, half[1:], strict=False))
        return gaps[len(gaps) // 2]

    def records_of_all(self, items: Sequence[CohortItem], what: str) -> dict[str, dict]:
        """``{case_id: record}`` in the order of ``items``; a :class:`ScarcesegError` naming every case that was
        skipped or failed (for jobs that are wrong with any case missing, like a benchmark's table)."""
        lost = self.failed + self.skipped
        if lost:
            reasons = ", ".join(f"{cid} ({why})" for cid, why in lost)
            raise ScarcesegError(f"{what}: {len(lost)} case(s) could not be run: {reasons}")
        return {item.case_id: self.records[item.case_id] for item in items}

    def summary(self) -> str:
        """One line: computed / reused / skipped / failed, backend and time."""
        return (f"{len(self.done)} computed, {len(self.reused)} already finished, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed ({self.backend}, {self.workers} worker(s), {self.seconds:.1f} s)")


# ---- files -------------------------------------------------------------------------------------------
def _safe_name(case_id: str) -> str:
    if not case_id or case_id in {".", ".."} or "/" in case_id or "\\" in case_id or "\0" in case_id:
        raise InputError(None, f"case id {case_id!r} cannot be used as a file name")
    return case_id


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(out: Path, name: str) -> Path:
    rel = Path(name)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"task returned a file name outside OUT: {name!r}")
    return out / rel


def finished_record(out_dir: str | Path, case_id: str) -> dict | None:
    """The marker of a finished case (its files all present), or None."""
    out = Path(out_dir)
    marker = out / MARKERS / f"{_safe_name(case_id)}.json"
    if not marker.is_file():
        return None
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if not all((out / name).is_file() for name in info.get("files", [])):
        return None
    return info


def _save(out: Path, case_id: str, result: CaseResult, attempts: int, seconds: float) -> None:
    for name, data in result.files.items():
        write_atomic(_target(out, name), data)
    info = {"case_id": case_id, "files": sorted(result.files), "record": result.record,
            "attempts": attempts, "seconds": round(seconds, 4)}
    write_atomic(out / MARKERS / f"{_safe_name(case_id)}.json", json.dumps(info, indent=1).encode())


# ---- what runs in a worker ---------------------------------------------------------------------------
_SHARED: dict[str, Any] = {}  # pool worker: the shared object; Ray worker: object-ref id -> shared object


def _init_pool_worker(task_fn: Callable, shared: Any, threads: int, progress_pipe: Any = None) -> None:
    import signal

    # Ctrl-C reaches the whole process group: the driver stops the workers (see _stopping_workers), so a
    # worker does not also print its own traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    _SHARED["task"] = task_fn
    _SHARED["shared"] = shared
    _SHARED["progress"] = progress_pipe


def _timed(task_fn: Callable, shared: Any, item: CohortItem,
           sink: Callable[..., None] | None = None) -> tuple[str, Any, float]:
    """``("ok", CaseResult, s)`` or ``("skip", reason, s)``; other exceptions propagate (and are retried).

    ``sink(case_id, description, done, total)`` receives the progress of the task's loops, then
    ``sink(case_id)`` when it ends."""
    start = time.perf_counter()
    try:
        with reporting_case(item.case_id, sink) if sink is not None else contextlib.nullcontext():
            result = task_fn(shared, item)
    except ScarcesegError as exc:
        return "skip", str(exc), time.perf_counter() - start
    return "ok", result, time.perf_counter() - start


def _pool_task(item: CohortItem) -> tuple[str, Any, float]:
    writer = _SHARED.get("progress")
    return _timed(_SHARED["task"], _SHARED["shared"], item, None if writer is None else _PipeSink(writer))


class _PipeSink:
    """Sends a worker's progress messages to the driver, each short enough to be one atomic pipe write; a
    message that cannot be sent is dropped (progress must never fail a case)."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def __call__(self, case_id: str, description: str | None = None, done: int = 0, total: int | None = None):
        message = (case_id,) if description is None else (case_id, description[:200], done, total)
        try:
            self.writer.send(message)
        except OSError:  # pragma: no cover - the driver closed the pipe
            pass


def _ray_task(task_fn: Callable, shared_box: list, item: CohortItem) -> tuple[str, Any, float]:
    # shared_box = [ObjectRef]: a ref inside a list is not resolved by Ray, so this worker fetches the shared
    # object once (first task) and keeps it for the following tasks of the job.
    import ray

    ref = shared_box[0]
    key = ref.hex()
    if key not in _SHARED:
        _SHARED.clear()
        _SHARED[key] = ray.get(ref)
    return _timed(task_fn, _SHARED[key], item)


# ---- the driver --------------------------------------------------------------------------------------
def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def run_cohort(
    task_fn: Callable[[Any, CohortItem], CaseResult],
    cases: Sequence[CohortItem],
    out_dir: str | Path,
    shared: Any = None,
    workers: int | None = None,
    ray: str | None = None,
    retries: int = 1,
    resume: bool = True,
    progress: bool = True,
    description: str = "cohort",
    ray_init: dict | None = None,
    on_result: Callable[[str, dict], None] | None = None,
) -> CohortReport:
    """Run ``task_fn(shared, item)`` for every item and write each case's files into ``out_dir`` as it finishes.

    Parameters
    ----------
    task_fn : callable
        A module-level function ``(shared, CohortItem) -> CaseResult``. Raise a ScarcesegError for an input
        that cannot be used (the case is skipped, not retried).
    cases : sequence of CohortItem
        One per case; case ids must be unique and usable as file names.
    out_dir : str or Path
        Receives the files the tasks return and ``.cohort/<case_id>.json`` markers.
    shared : object, optional
        Sent once to every worker (pool) or put once in Ray's object store.
    workers : int, optional
        Process-pool size (default: every core this process may use); 1 runs in this process. With Ray: at
        most this many tasks in flight (default: as many as the cluster schedules).
    ray : str, optional
        None: no Ray. ``"auto"``: the running cluster (``RAY_ADDRESS`` or ``ray start``), else a local one
        started here. Anything else: a cluster address (``ray://host:10001`` or ``host:6379``).
    retries : int
        Extra attempts for a case whose task raised or whose worker died.
    resume : bool
        Reuse finished cases (marker and files present); False recomputes every case.
    progress : bool
        One rich progress bar on stderr (total, elapsed, ETA).
    description : str
        Text beside the bar.
    ray_init : dict, optional
        Extra keyword arguments for ``ray.init`` (tests: ``num_cpus``).
    on_result : callable, optional
        ``(case_id, record)``, called here after each case of this run is saved (e.g. to rewrite a partial
        table as results stream in).

    Returns
    -------
    CohortReport
    """
    from scarceseg.progress import track

    start = time.perf_counter()
    out = Path(out_dir)  # created with the first file written: nothing is created when no case can be used
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if workers is not None and workers < 1:
        raise InputError(None, f"--workers must be at least 1, got {workers}")
    ids = [item.case_id for item in cases]
    if len(set(ids)) != len(ids):
        raise InputError(None, "case ids of a cohort must be unique")
    report = CohortReport()
    status = CaseStatus()
    todo: list[CohortItem] = []
    for item in cases:
        info = finished_record(out, item.case_id) if resume else None
        if info is None:
            todo.append(item)
        else:
            report.reused.append(item.case_id)
            report.records[item.case_id] = info.get("record", {})

    if ray is not None:
        report.backend = "ray"
        events = _run_ray(task_fn, shared, todo, ray, workers, retries, report, ray_init or {})
    elif (workers or default_workers()) > 1 and len(todo) > 1:
        report.backend = "pool"
        report.workers = min(workers or default_workers(), len(todo))
        events = _run_pool(task_fn, shared, todo, report.workers, retries, report, status)
    else:
        events = _run_serial(task_fn, shared, todo, retries, report, status)

    with _stopping_workers():
        for item, outcome, value, attempts, seconds in track(events, description=description, enabled=progress,
                                                             total=len(todo), status=status):
            status.update(item.case_id)
            report.attempts[item.case_id] = attempts
            report.finish_seconds.append(time.perf_counter() - start)
            report.first_result_seconds = report.finish_seconds[0]
            if outcome == "ok":
                _save(out, item.case_id, value, attempts, seconds)
                report.done.append(item.case_id)
                report.records[item.case_id] = value.record
                if on_result is not None:
                    on_result(item.case_id, value.record)
            elif outcome == "skip":
                report.skipped.append((item.case_id, value))
            else:
                report.failed.append((item.case_id, value))
    order = {cid: k for k, cid in enumerate(ids)}
    for name in ("done", "reused"):
        getattr(report, name).sort(key=order.__getitem__)
    report.skipped.sort(key=lambda pair: order[pair[0]])
    report.failed.sort(key=lambda pair: order[pair[0]])
    report.seconds = time.perf_counter() - start
    return report


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _run_serial(task_fn, shared, todo, retries, report, status=None):
    for item in todo:
        for attempt in range(1, retries + 2):
            try:
                status_, value, seconds = _timed(task_fn, shared, item, status.update if status else None)
            except Exception as exc:  # noqa: BLE001 - any failure of the task is retried, then reported
                if attempt <= retries:
                    continue
                yield item, "fail", _describe(exc), attempt, 0.0
                break
            yield item, status_, value, attempt, seconds
            break


def _drain(reader, status: CaseStatus, stop: threading.Event) -> None:
    """Pass the workers' progress messages on to ``status`` until ``stop`` is set and none is left (a thread of
    the driver)."""
    while True:
        try:
            if not reader.poll(0.1):
                if stop.is_set():
                    return
                continue
            message = reader.recv()
        except (EOFError, OSError):  # every writer is gone
            return
        status.update(*message)


def _run_pool(task_fn, shared, todo, workers, retries, report, status=None):
    """Local processes (forked from a clean server: no inherited torch threads or locks).

    A dead worker breaks the whole pool: every case in flight then counts one attempt and the pool is started
    again for what is left."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    threads = max(1, default_workers() // workers)
    attempts = {item.case_id: 0 for item in todo}
    queue = list(todo)
    # forkserver: a clean server process (no threads of ours) imports torch and this module once; each worker
    # is a fork of it, so a pool starts in a fraction of a second after the first one (spawn: a full import
    # per worker and per pool)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "scarceseg.bench.runner"])
    while queue:
        # the workers' progress messages: one pipe, no lock (a worker killed while holding a queue's lock would
        # block the others); each message is one write of far less than PIPE_BUF bytes, so writes do not mix
        reader, writer = context.Pipe(duplex=False) if status is not None else (None, None)
        stop_drain = threading.Event()
        drain = threading.Thread(target=_drain, args=(reader, status, stop_drain), daemon=True)
        if reader is not None:
            drain.start()
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_pool_worker,
                                   initargs=(task_fn, shared, threads, writer))
        broken = stopped = False
        try:
            pending = {}
            for item in queue:
                attempts[item.case_id] += 1
                pending[pool.submit(_pool_task, item)] = item
            queue = []
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    try:
                        outcome, value, seconds = future.result()
                    except BrokenProcessPool as exc:
                        broken = True
                        if attempts[item.case_id] <= retries:
                            queue.append(item)
                        else:
                            yield item, "fail", f"worker process died ({_describe(exc)})", attempts[item.case_id], 0.0
                        continue
                    except Exception as exc:  # noqa: BLE001
                        if attempts[item.case_id] <= retries and not broken:
                            attempts[item.case_id] += 1
                            pending[pool.submit(_pool_task, item)] = item
                        elif attempts[item.case_id] <= retries:
                            queue.append(item)
                        else:
                            yield item, "fail", _describe(exc), attempts[item.case_id], 0.0
                        continue
                    yield item, outcome, value, attempts[item.case_id], seconds
        except BaseException:  # Ctrl-C, SIGTERM (see _stopping_workers), or the caller stopped early
            stopped = True
            raise
        finally:
            if stopped:
                _terminate_workers(pool)
            pool.shutdown(wait=not (broken or stopped), cancel_futures=True)
            stop_drain.set()
            if drain.is_alive():
                drain.join(timeout=2)
            for end in (reader, writer):
                if end is not None:
                    end.close()


def _terminate_workers(pool) -> None:
    """Stop a pool's worker processes now, mid-task: a stopped run must not leave workers computing (the
    finished cases are saved already; a rerun resumes the rest)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join(timeout=5)


class _stopping_workers:
    """While a pool runs in the main thread, SIGTERM raises SystemExit there (the default would end this
    process at once and leave its pool's workers running), so the pool's clean-up stops them."""

    def __enter__(self):
        import signal
        import threading

        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
        return False


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def ray_connect(ray_address: str, init: dict | None = None) -> float:
    """Connect to (or start) Ray once per process; returns the seconds it took (0 when already connected)."""
    try:
        import ray as ray_module
    except ImportError:
        raise ScarcesegError("--ray needs the optional extra: pip install 'scarceseg[ray]'") from None
    if ray_module.is_initialized():
        return 0.0
    t0 = time.perf_counter()
    kwargs = {"include_dashboard": False, "log_to_driver": False, **(init or {})}
    if ray_address == "auto":
        # a cluster started here inherits this environment: make sure its workers import this scarceseg
        package_root = str(Path(__file__).resolve().parents[2])
        paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if package_root not in [str(Path(p).resolve()) for p in paths]:
            os.environ["PYTHONPATH"] = os.pathsep.join([package_root, *paths])
        try:
            ray_module.init(address="auto", **{k: v for k, v in kwargs.items() if k != "num_cpus"})
        except (ConnectionError, RuntimeError):  # no running cluster: start one on this machine
            ray_module.init(**kwargs)
    else:
        ray_module.init(address=ray_address, **{k: v for k, v in kwargs.items() if k != "num_cpus"})
    return time.perf_counter() - t0


def _run_ray(task_fn, shared, todo, ray_address, workers, retries, report, init):
    import ray as ray_module

    report.startup_seconds += ray_connect(ray_address, init)
    capacity = int(ray_module.cluster_resources().get("CPU", 1))
    report.workers = workers or capacity
    limit = workers or max(capacity, 1) * 2  # tasks in flight: bounded so results stream while others run
    remote = ray_module.remote(num_cpus=1, max_retries=0)(_ray_task)
    box = [ray_module.put(shared)]  # in the object store once; the list stops Ray from resolving it per task
    attempts = {item.case_id: 0 for item in todo}
    queue = list(todo)
    pending: dict = {}
    while queue or pending:
        while queue and len(pending) < limit:
            item = queue.pop(0)
            attempts[item.case_id] += 1
            pending[remote.remote(task_fn, box, item)] = item
        ready, _ = ray_module.wait(list(pending), num_returns=1)
        for ref in ready:
            item = pending.pop(ref)
            try:
                status, value, seconds = ray_module.get(ref)
            except Exception as exc:  # noqa: BLE001 - task error, worker crash, node loss: retry, then report
                if attempts[item.case_id] <= retries:
                    queue.insert(0, item)
                else:
                    yield item, "fail", _describe(getattr(exc, "cause", None) or exc), attempts[item.case_id], 0.0
                continue
            yield item, status, value, attempts[item.case_id], seconds
