"""Where ``scarceseg serve FOLDER`` keeps its files when no ``--workdir`` is given: a per-user data folder.

The data folder itself is never written (it may be read-only, shared, or a mounted archive). Its work
files (label store, proposals, saved masks, the selector) go to ``<data home>/<folder name>-<hash>``,
the hash taken from the folder's resolved path, so two folders of the same name do not share a WORKDIR
and the same folder always finds its own again.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

DATA_HOME_ENV = "SCARCESEG_DATA_HOME"


def data_home() -> Path:
    """The folder holding every default WORKDIR.

    ``$SCARCESEG_DATA_HOME`` when set; else the platform's user data folder plus ``scarceseg``:
    ``$XDG_DATA_HOME`` or ``~/.local/share`` (Linux and other Unix), ``~/Library/Application Support``
    (macOS), ``%LOCALAPPDATA%`` (Windows).
    """
    override = os.environ.get(DATA_HOME_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "scarceseg"


def default_workdir(folder: str | Path) -> Path:
    """The WORKDIR of ``folder``: ``data_home() / "<name>-<12 hex digits of sha256(resolved path)>"``."""
    resolved = Path(folder).resolve()
    digest = hashlib.sha256(str(resolved).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", resolved.name).strip("._")[:40] or "folder"
    return data_home() / f"{name}-{digest}"
