"""The browser app's HTTP API and page (FastAPI): box / click with the prior, propose, pick, refine, undo/redo,
save, train, segment. The prior's routes (background embedding, box, click-to-segment, propagation) are in
:mod:`scarceseg.web.prior_routes`; the learn -> suggest -> accept loop and the model history in
:mod:`scarceseg.web.loop_routes`.

``create_app(folder, ...)`` builds the application; ``scarceseg serve FOLDER`` runs it with uvicorn.
Every route that names a case checks it against the folder's catalog (unknown ids are 404, files are
resolved inside the folder; a slice ``z`` is required for a volume and refused for a 2D case); bodies are
strict pydantic models (integers are JSON integers, not ``"12"`` or ``true``) with bounds and no extra keys;
the user is the server's (``--user``) unless a request names another in the ``X-Scarceseg-User`` header.
Error answers carry no absolute server path. The files the app writes stay inside WORKDIR (a folder
that is a symlink out of it is refused) and are written with no-follow semantics
(:mod:`scarceseg.io.safe_write`).
"""

import errno
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from scarceseg.errors import InputError, ScarcesegError
from scarceseg.web import security
from scarceseg.web.catalog import Catalog, slice_key
from scarceseg.web.jobs import JobManager, QueueFull, propose_work
from scarceseg.web.learners import method_choices, open_refiner
from scarceseg.web.state import FINAL, SNAPSHOT, NotReady, SessionManager
from scarceseg.web.workdir import default_workdir

__all__ = ["ServerConfig", "create_app", "default_workdir", "serve"]

STATIC = Path(__file__).parent / "static"
MAX_COORD = 1 << 16


# ---- request bodies: bounded, no extra keys ---------------------------------------------------------
class Body(BaseModel):
    """A JSON body: unknown keys and loose types (``"12"``, ``true`` or ``12.0`` for an integer) are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PointBody(Body):
    y: int = Field(ge=0, lt=MAX_COORD)
    x: int = Field(ge=0, lt=MAX_COORD)
    z: int | None = Field(default=None, ge=0, lt=MAX_COORD)


class ClickBody(PointBody):
    positive: bool = True
    refiner: str | None = Field(default=None, min_length=1, max_length=200)


class SliceBody(Body):
    z: int | None = Field(default=None, ge=0, lt=MAX_COORD)


class SaveBody(SliceBody):
    # "dicom-seg": a DICOM SEG referencing the case's DICOM series; None: the server's --format
    format: Literal["auto", "dicom-seg"] | None = None


@dataclass
class ServerConfig:
    """What ``scarceseg serve`` was started with.

    Attributes
    ----------
    folder : Path
        The opened folder of images / volumes.
    workdir : Path or None
        Proposals, label store, saved masks; default a user data folder keyed by FOLDER's path
        (:func:`~scarceseg.web.workdir.default_workdir`), so FOLDER itself is never written.
    user : str
        The default user name (``--user``, else the OS user).
    token : str or None
        Required on every request when set.
    refiner : str
        The default corrective refiner: ``"prior-mincut"`` (Min-Cut on the prior's probabilities, local to the
        click), ``"prior"`` (re-prompts the prior), ``"mincut"``, or a trained refiner
        folder (``scarceseg train refiner``); the others stay selectable per click.
    episodes : int
        Selector training episodes of the "train selector" button: the paper's 300, as ``scarceseg train
        selector`` (``SelectorConfig.n_episodes``; a test keeps the two equal).
    layout : str or None
    max_body : int
        Largest request body in bytes (413 above).
    proposer : str
        Proposer preset (``fast``).
    seed : int
    pick_confidence : float
        Initial probability inside the picked candidate (see :class:`~scarceseg.web.state.SessionManager`).
    save_format : {"auto", "dicom-seg"}
        What "save" writes when the request does not say: PNG (2D) / NIfTI (3D), or a DICOM SEG (DICOM input).
    queue_per_user, queue_total : int
        Proposals one user, and all users together, may have queued or running (429 above).
    """

    folder: Path
    workdir: Path | None = None
    user: str = "user"
    token: str | None = None
    refiner: str = "prior-mincut"  # the fewest slices ending worse on the robot bench (0.9 % of 966; docs/prior.md)
    episodes: int = 300
    layout: str | None = None
    max_body: int = security.DEFAULT_MAX_BODY
    proposer: str = "fast"
    seed: int = 0
    pick_confidence: float = 0.6
    save_format: str = "auto"
    queue_per_user: int = 4
    queue_total: int = 16


def create_app(config: ServerConfig):
    """The FastAPI application serving ``config.folder``."""
    from scarceseg.methods.registry import names
    from scarceseg.prior import get_prior
    from scarceseg.store import open_store
    from scarceseg.web.loop_routes import loop_router
    from scarceseg.web.prior_routes import Embeddings, prior_router

    folder = Path(config.folder).resolve()
    workdir = Path(config.workdir if config.workdir else default_workdir(folder)).resolve()
    default_user = security.check_user(config.user)
    catalog = Catalog(folder, layout=config.layout)
    store = open_store(workdir)
    # every registered refiner (trained ones from WORKDIR/<name>, once trained); the default from --refiner
    choices = {name: (lambda name=name: open_refiner(workdir, name)) for name in names("refiner")}
    sessions = SessionManager(catalog, store, workdir, open_refiner(workdir, config.refiner), config.pick_confidence,
                              choices=choices)
    embeddings = Embeddings(get_prior)
    jobs = JobManager(config.queue_per_user, config.queue_total)
    token = config.token
    roots = {folder: "", workdir: "WORKDIR"}  # how paths appear in answers

    def public(value: Any) -> Any:
        """``value`` (str, or lists / dicts of them) without absolute server paths."""
        if isinstance(value, str):
            return security.redact(value, roots)
        if isinstance(value, dict):
            return {k: public(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [public(v) for v in value]
        return value

    @asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.shutdown()
        embeddings.shutdown()
        store.close()

    app = FastAPI(title="scarceseg", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.jobs, app.state.sessions, app.state.workdir = store, jobs, sessions, workdir

    @app.middleware("http")
    async def guard(request: Request, call_next):
        origin = request.headers.get("origin")
        if (request.method not in ("GET", "HEAD") and origin is not None
                and not security.same_origin(origin, request.url.scheme, request.headers.get("host"))):
            return JSONResponse({"detail": "cross-origin request refused: only this app's own page may "
                                           "change anything"}, status_code=403)
        if token is None:
            if not security.host_allowed(request.headers.get("host")):
                return JSONResponse({"detail": "Host header must name the loopback server"}, status_code=403)
        else:
            given = (request.headers.get(security.TOKEN_HEADER) or request.query_params.get("token")
                     or request.cookies.get(security.TOKEN_COOKIE))
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not security.token_matches(token, given):
                return JSONResponse({"detail": "token required (open the address printed by scarceseg serve)"},
                                    status_code=401)
        response = await call_next(request)
        if token is not None and request.query_params.get("token"):
            response.set_cookie(security.TOKEN_COOKIE, token, httponly=True, samesite="strict")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, exc: RequestValidationError):
        # never echo the input back (it may be binary, e.g. a pickle, which FastAPI's default handler chokes on)
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
                  for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ScarcesegError)
    async def scarceseg_error(request: Request, exc: ScarcesegError):
        status = (409 if isinstance(exc, NotReady) else 404 if isinstance(exc, security.PathOutside)
                  else 429 if isinstance(exc, QueueFull) else 400)
        return JSONResponse({"detail": public(str(exc))}, status_code=status)

    def user_of(request: Request) -> str:
        name = request.headers.get(security.USER_HEADER)
        return default_user if not name else security.check_user(name)

    def known(case_id: str) -> str:
        if case_id not in catalog:
            raise HTTPException(404, f"no case {case_id!r} in the opened folder")
        return case_id

    def unit(case_id: str, z: int | None) -> str:
        case = catalog.load(known(case_id))
        if case.ndim == 3 and (z is None or not 0 <= z < case.shape[0]):
            raise HTTPException(400, f"{case_id} is a volume of {case.shape[0]} slices: give z in range")
        if case.ndim == 2 and z is not None:
            raise HTTPException(400, f"{case_id} is a 2D image: it has no slices, leave z out")
        return slice_key(case_id, z if case.ndim == 3 else None)

    def answer(user: str, key: str, **extra: Any) -> dict:
        return {**sessions.state(user, key), **extra}

    # ---- page and static files ------------------------------------------------------------------------
    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name:path}")
    def static(name: str):
        path = security.inside(STATIC, name)
        if not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path)

    # ---- cases ----------------------------------------------------------------------------------------
    @app.get("/api/info")
    def info(request: Request):
        return {"user": user_of(request), "folder": folder.name, "layout": catalog.layout,
                "refiner": sessions.default_refiner, "refiners": sessions.refiner_names, "episodes": config.episodes,
                "token_required": token is not None, "n_cases": len(catalog.case_ids),
                "refused": public([list(r) for r in catalog.refused])}

    @app.get("/api/cases")
    def cases(request: Request, order: Literal["folder", "uncertainty"] = "folder"):
        """Every case with its state for this user; ``uncertainty`` (of the suggestion, None without one) and,
        with ``order=uncertainty``, the suggested cases not saved yet most uncertain first, then the others in
        folder order."""
        from scarceseg.store.proposals import list_proposals

        user = user_of(request)
        saved = store.latest_masks(FINAL, who=user)
        started = store.latest_masks(SNAPSHOT, who=user)
        auto = store.latest_masks("auto", who=user)
        proposed = set(list_proposals(workdir)) if (workdir / "proposals").is_dir() else set()
        rows = []
        for cid in catalog.case_ids:
            slices = [k for k in started if k == cid or k.startswith(cid + "_z")]
            note = _note(auto[cid].note) if cid in auto else {}
            rows.append({"case_id": cid, "saved": cid in saved, "started": bool(slices),
                         "proposed": cid in proposed, "auto": cid in auto, "uncertainty": note.get("uncertainty"),
                         "auto_run": note.get("run")})
        if order == "uncertainty":  # stable: ties, saved cases and cases without a suggestion keep the folder order
            def rank(r: dict) -> tuple:
                rest = r["saved"] or r["uncertainty"] is None
                return (rest, 0.0 if rest else -r["uncertainty"])

            rows.sort(key=rank)
        return {"cases": rows, "n_saved": sum(r["saved"] for r in rows), "n_cases": len(rows), "order": order}

    @app.get("/api/cases/{case_id}")
    def case_info(case_id: str):
        case = catalog.load(known(case_id))
        return {"case_id": case_id, "ndim": case.ndim, "shape": list(case.shape), "spacing": list(case.spacing),
                "channels": list(case.channel_names), "dicom": bool(case.meta.get("dicom_files"))}

    @app.get("/api/cases/{case_id}/image.png")
    def image(case_id: str, z: int | None = None):
        key = unit(case_id, z)
        del key
        return Response(catalog.slice_png(case_id, z), media_type="image/png")

    @app.get("/api/cases/{case_id}/state")
    def state(case_id: str, request: Request, z: int | None = None):
        return answer(user_of(request), unit(case_id, z))

    @app.get("/api/cases/{case_id}/candidates")
    def candidates(case_id: str, z: int | None = None):
        import base64

        import numpy as np

        from scarceseg.store.proposals import label_colours

        key = unit(case_id, z)
        proposal = sessions.proposal(key)
        if proposal is None:
            return {"key": key, "n": 0, "proposed": False}
        masks = np.asarray(proposal.masks, dtype=bool)
        areas = masks.reshape(len(masks), -1).sum(axis=1)
        shown = np.zeros(masks.shape[1:], dtype=np.uint16)  # what a click selects: the smallest candidate
        for k in sorted(range(len(masks)), key=lambda k: (-areas[k], -k)):
            shown[masks[k]] = k + 1
        return {"key": key, "proposed": True, "n": int(len(masks)), "shape": list(shown.shape),
                "labels": base64.b64encode(shown.astype("<u2").tobytes()).decode(),
                "areas": areas.tolist(), "colours": label_colours(len(masks)).tolist()}

    @app.get("/api/cases/{case_id}/contact_sheet.png")
    def contact_sheet(case_id: str, z: int | None = None):
        key = unit(case_id, z)
        path = security.inside(workdir, f"proposals/{key}/contact_sheet.png")
        if not path.is_file():
            raise HTTPException(404, "no contact sheet yet: propose first")
        return FileResponse(path, media_type="image/png")

    # ---- jobs -----------------------------------------------------------------------------------------
    @app.post("/api/cases/{case_id}/propose")
    def propose(case_id: str, body: SliceBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        security.check_writable(workdir, workdir / "proposals" / key)
        from scarceseg.cluster.propose import check_propose_size

        check_propose_size(catalog.slice_case(case_id, body.z if key != case_id else None))  # 4xx, not a dying job
        job = jobs.submit("propose", propose_work(catalog, workdir, case_id, body.z if key != case_id else None,
                                                  config.proposer, config.seed), target=key, user=user)
        return public(job.as_dict())

    @app.get("/api/methods")
    def methods():
        return {**method_choices(), "refiner": sessions.default_refiner}

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str):
        try:
            return public(jobs.get(job_id).as_dict())
        except KeyError:
            raise HTTPException(404, f"no job {job_id!r}") from None

    # ---- editing --------------------------------------------------------------------------------------
    @app.post("/api/cases/{case_id}/pick")
    def pick(case_id: str, body: PointBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        with sessions.lock(user, key):
            sessions.pick(user, key, (body.y, body.x))
            return answer(user, key)

    @app.post("/api/cases/{case_id}/click")
    def click(case_id: str, body: ClickBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        with sessions.lock(user, key):
            sessions.click(user, key, body.y, body.x, body.positive, z=body.z if key != case_id else None,
                           refiner=body.refiner)
            return answer(user, key)

    @app.post("/api/cases/{case_id}/undo")
    def undo(case_id: str, body: SliceBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        with sessions.lock(user, key):
            sessions.undo(user, key)
            return answer(user, key)

    @app.post("/api/cases/{case_id}/redo")
    def redo(case_id: str, body: SliceBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        with sessions.lock(user, key):
            sessions.undo(user, key, redo=True)
            return answer(user, key)

    @app.post("/api/cases/{case_id}/save")
    def save(case_id: str, body: SaveBody, request: Request):
        user, key = user_of(request), unit(case_id, body.z)
        with sessions.lock(user, key):
            path, mask = sessions.save(user, case_id, body.z, mask_format=body.format or config.save_format)
        return answer(user, key, saved={"file": str(path.relative_to(workdir)), "voxels": int(mask.sum())})

    app.include_router(loop_router(catalog=catalog, store=store, sessions=sessions, jobs=jobs, workdir=workdir,
                                   unit=unit, user_of=user_of, answer=answer, public=public, seed=config.seed,
                                   proposer=config.proposer, save_format=config.save_format,
                                   episodes=config.episodes))
    app.include_router(prior_router(catalog=catalog, sessions=sessions, jobs=jobs, embeddings=embeddings,
                                    unit=unit, user_of=user_of, answer=answer, slice_key=slice_key))
    return security.BodyLimit(app, config.max_body)


def _note(text: str | None) -> dict:
    """A stored mask's JSON note as a dict (``{}`` for an empty or non-JSON note)."""
    import json

    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` and listening.

    Raises
    ------
    InputError
        The port is in use (the message says so and names ``--port``), or the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart without waiting
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise InputError(None, f"port {port} on {host} is in use (another scarceseg serve?); "
                                   "choose another with --port") from None
        raise InputError(None, f"cannot listen on {host} port {port} ({exc.strerror or exc})") from None
    return sock


def run_server(app, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on the bound socket until interrupted."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8765, echo=print) -> None:
    """Run the app until interrupted; prints the address to open once the port is bound."""
    token = security.check_bind(host, config.token)
    config.token = token
    if not Path(config.folder).is_dir():
        raise InputError(config.folder, "not a folder")
    sock = bind_socket(host, port)  # first: a busy port fails before anything is created
    try:
        app = create_app(config)
        shown = f"[{host.strip('[]')}]" if ":" in host else host
        address = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
        echo(f"scarceseg serving {Path(config.folder).resolve()} as user {config.user!r} "
             f"(work files in {app.app.state.workdir}); open {address}")
        run_server(app, sock)
    finally:
        sock.close()
