"""The rows of the label store as values: picks, clicks and masks, and how a mask is packed into a row.

:class:`~scarceseg.store.labelstore.LabelStore` reads and writes these; they hold no connection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Pick:
    """One recorded choice of a candidate for a case (a row of ``picks``).

    Parameters
    ----------
    id : int
        Row id; larger ids are later picks.
    case_id : str
    candidate : int or None
        Index into the proposal's ``masks`` (K, Y, X) at the time of the pick.
    point : tuple of int or None
        The fiducial point ``(y, x)`` inside the lesion (paper 000, section 0.3.3).
    who : str
        The person (OS user name by default) or ``"oracle"``.
    when : str
        ISO-8601 UTC time stamp, e.g. ``"2026-05-01T10:11:12.123Z"``.
    oracle : bool
        True for picks made by the oracle (best Dice against the truth): experiments only.
    proposal_id : str
        :func:`scarceseg.store.picking.proposal_id_of` of the proposal the index refers to.
    mask : ndarray (Y, X) bool or None
        The picked mask itself, so the pick survives re-running ``propose``.
    note : str
    """

    id: int
    case_id: str
    candidate: int | None
    point: tuple[int, int] | None
    who: str
    when: str
    oracle: bool = False
    proposal_id: str = ""
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    note: str = ""


@dataclass(frozen=True)
class Click:
    """One click of an interactive refinement session (a row of ``clicks``); ``z`` is None in 2D."""

    id: int
    case_id: str
    session: str
    y: int
    x: int
    z: int | None
    positive: bool
    who: str
    when: str


@dataclass(frozen=True)
class MaskRecord:
    """One row of ``masks``: a mask of any shape saved under ``kind`` by ``who`` at ``when``, with a note."""

    id: int
    case_id: str
    kind: str
    mask: np.ndarray = field(compare=False, repr=False)
    who: str = "user"
    when: str = ""
    note: str = ""


def utc_now() -> str:
    """The current time as ISO-8601 UTC with milliseconds, e.g. ``"2026-05-01T10:11:12.123Z"``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pack_mask(mask: np.ndarray) -> tuple[bytes, str]:
    """Pack a boolean mask of any shape into ``(np.packbits bytes, JSON shape)``."""
    arr = np.asarray(mask)
    if arr.ndim == 0 or arr.size == 0:
        raise ValueError(f"a mask must be a non-empty array, got shape {arr.shape}")
    return np.packbits(arr.astype(bool, copy=False).ravel()).tobytes(), json.dumps(list(arr.shape))


def unpack_mask(blob: bytes, shape: str) -> np.ndarray:
    """Inverse of :func:`pack_mask`: a bool array of the stored shape."""
    dims = tuple(int(s) for s in json.loads(shape))
    bits = np.unpackbits(np.frombuffer(blob, dtype=np.uint8), count=int(np.prod(dims)))
    return bits.astype(bool).reshape(dims)


def int_or_none(value: Any, name: str) -> int | None:
    """``value`` as an int (numpy integers too), or None; a bool or anything else is a ValueError naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def as_point(point: Any) -> tuple[int, int] | None:
    """``point`` as ``(y, x)`` non-negative ints, or None."""
    if point is None:
        return None
    if len(point) != 2:
        raise ValueError(f"point must be (y, x), got {point!r}")
    y, x = (int_or_none(v, "point coordinate") for v in point)
    if y < 0 or x < 0:
        raise ValueError(f"point must have non-negative coordinates, got {(y, x)}")
    return y, x
