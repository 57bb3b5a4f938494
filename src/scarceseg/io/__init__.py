"""Medical image I/O: read by file ending into a :class:`Case`, write masks."""

from __future__ import annotations

from scarceseg.io.case import Case

__all__ = ["Case"]
