"""Kept for old imports: the progress reporter lives in :mod:`scarceseg.progress` (a low-level module)."""

from __future__ import annotations

from scarceseg.progress import observe_progress, track

__all__ = ["observe_progress", "track"]
