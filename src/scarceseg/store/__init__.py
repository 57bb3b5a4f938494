"""The label store (SQLite): picks, clicks and masks with who/when, and picking candidates of a proposal.

See ``docs/workdir.md``: ``open_store(workdir)`` opens ``WORKDIR/store.sqlite``; ``resolve_pick_mask``
turns a stored pick into a mask of the current proposal.
"""

from __future__ import annotations

from scarceseg.store.labelstore import SCHEMA_VERSION, STORE_NAME, LabelStore, open_store
from scarceseg.store.oracle import format_oracle_summary, oracle_pick, oracle_pick_dataset
from scarceseg.store.picking import (
    candidate_at_point,
    candidates_at_point,
    fiducial_point,
    format_pick,
    matching_candidate,
    parse_point,
    pick,
    proposal_id_of,
    resolve_pick_mask,
)
from scarceseg.store.records import Click, MaskRecord, Pick

__all__ = [
    "SCHEMA_VERSION",
    "STORE_NAME",
    "Click",
    "LabelStore",
    "MaskRecord",
    "Pick",
    "candidate_at_point",
    "candidates_at_point",
    "fiducial_point",
    "format_oracle_summary",
    "format_pick",
    "matching_candidate",
    "open_store",
    "oracle_pick",
    "oracle_pick_dataset",
    "parse_point",
    "pick",
    "proposal_id_of",
    "resolve_pick_mask",
]
