"""Every model the app trains, kept: ``WORKDIR/<method>/runs/<NNNN>/`` with a manifest, and which one is in use.

```text
WORKDIR/<method>/runs/0001/             a model folder (method.json + the method's files, as `scarceseg train`)
WORKDIR/<method>/runs/0001/run.json     {run, method, created, who, case_ids, n_images, seconds, budget, ...}
WORKDIR/<method>/active.json            {"run": "0002"}: the model "segment the rest" and trained refiners use
```

A run is trained into a hidden ``runs/.training-NNNN-<hex>`` folder and renamed to ``runs/NNNN`` only when its
model and manifest are written, so an interrupted training leaves no run that looks complete (a training
that fails with an error removes its hidden folder); run numbers are
never reused and no run is ever removed or overwritten. ``active.json`` and ``run.json`` are written with
no-follow semantics (:mod:`scarceseg.io.safe_write`); the folders are checked to resolve inside WORKDIR.

A WORKDIR from before runs existed has its model in ``WORKDIR/<method>/`` itself; it is used while no run
exists (:func:`active_model_dir`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from scarceseg.errors import InputError
from scarceseg.web.security import check_writable

RUN_FILE = "run.json"
ACTIVE_FILE = "active.json"
_RUN_RE = re.compile(r"\d{4,9}")


def method_dir(workdir: Path, name: str) -> Path:
    """``WORKDIR/<name>`` of a registered method (InputError for an unknown name)."""
    from scarceseg.web.learners import model_dir

    return model_dir(workdir, name)


def runs_dir(workdir: Path, name: str) -> Path:
    return method_dir(workdir, name) / "runs"


def list_runs(workdir: Path, name: str) -> list[dict]:
    """Manifests of the method's finished runs, oldest first, each with ``active`` (True for the one in use)."""
    folder = runs_dir(workdir, name)
    if not folder.is_dir():
        return []
    active = active_run(workdir, name)
    out = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if not _RUN_RE.fullmatch(child.name) or child.is_symlink() or not (child / RUN_FILE).is_file():
            continue
        try:
            info = json.loads((child / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        out.append({**info, "run": child.name, "active": child.name == active})
    return out


def active_run(workdir: Path, name: str) -> str | None:
    """The run in use: the one ``active.json`` names, else the newest run, else None."""
    folder = runs_dir(workdir, name)
    path = method_dir(workdir, name) / ACTIVE_FILE
    if path.is_file() and not path.is_symlink():
        try:
            run = str(json.loads(path.read_text(encoding="utf-8")).get("run", ""))
        except (OSError, ValueError, AttributeError):
            run = ""
        if _RUN_RE.fullmatch(run) and (folder / run / RUN_FILE).is_file():
            return run
    runs = sorted(p.name for p in folder.iterdir() if _RUN_RE.fullmatch(p.name) and (p / RUN_FILE).is_file()) \
        if folder.is_dir() else []
    return runs[-1] if runs else None


def active_model_dir(workdir: Path, name: str) -> Path | None:
    """The model folder in use: the active run's, else a model saved in ``WORKDIR/<name>`` itself (before runs)."""
    run = active_run(workdir, name)
    if run is not None:
        return runs_dir(workdir, name) / run
    legacy = method_dir(workdir, name)
    if (legacy / "method.json").is_file() or (legacy / "config.json").is_file():
        return legacy
    return None


def activate(workdir: Path, name: str, run: str) -> dict:
    """Make ``run`` the model in use (nothing is deleted); returns its manifest."""
    from scarceseg.io.safe_write import write_text

    if not _RUN_RE.fullmatch(str(run)):
        raise InputError(None, f"{run!r} is not a run number (e.g. 0001)")
    found = {r["run"]: r for r in list_runs(workdir, name)}
    if run not in found:
        raise InputError(None, f"no run {run} of {name} in this WORKDIR; runs: {', '.join(found) or 'none yet'}")
    folder = check_writable(workdir, method_dir(workdir, name))
    write_text(folder / ACTIVE_FILE, json.dumps({"run": run, "since": _now()}) + "\n")
    return {**found[run], "active": True}


class NewRun:
    """A run being trained: ``path`` (a hidden folder) to save the model into; :meth:`publish` names it
    ``runs/NNNN``. A training that fails before :meth:`publish` leaves the hidden folder, never a run."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.workdir, self.name = Path(workdir), name
        self.runs = check_writable(workdir, runs_dir(workdir, name))
        self.runs.mkdir(parents=True, exist_ok=True)
        check_writable(workdir, self.runs)  # made just now: still inside WORKDIR
        self.path = self.runs / f".training-{secrets.token_hex(6)}"
        self.path.mkdir()
        self.started = time.time()

    def discard(self) -> None:
        """Remove the hidden training folder (a training that failed: nothing in it is a run)."""
        import shutil

        if self.path.parent == self.runs and self.path.name.startswith(".training-") and not self.path.is_symlink():
            shutil.rmtree(self.path, ignore_errors=True)

    def publish(self, manifest: dict, activate_it: bool = True) -> dict:
        """Write ``run.json`` into the model folder, rename it to the next free ``runs/NNNN``, make it active."""
        from scarceseg.io.safe_write import write_text

        info = {"method": self.name, "created": _now(), "train_seconds": round(time.time() - self.started, 1),
                **manifest}
        for _ in range(100):
            taken = [int(p.name) for p in self.runs.iterdir() if _RUN_RE.fullmatch(p.name)]
            run = f"{max(taken, default=0) + 1:04d}"
            info["run"] = run
            write_text(self.path / RUN_FILE, json.dumps(info, indent=2) + "\n")
            try:
                os.rename(self.path, self.runs / run)  # fails on a non-empty existing folder: never overwrites
            except OSError:
                if (self.runs / run).exists():
                    continue  # another training took the number meanwhile
                raise
            self.path = self.runs / run
            break
        else:
            raise InputError(self.runs, "could not find a free run number")
        if activate_it:
            activate(self.workdir, self.name, run)
        return {**info, "active": activate_it}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
