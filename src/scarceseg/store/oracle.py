"""The oracle: picks the candidate with the best Dice against the truth, for one proposal or a whole data set.

It exists for experiments (an upper bound on picking, or a stand-in user); its picks are stored with
``oracle=True`` and ``who="oracle"`` and are always labelled ``[oracle]`` when shown. A person's picks are
made in :mod:`scarceseg.store.picking`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from scarceseg.errors import ScarcesegError
from scarceseg.store.labelstore import open_store
from scarceseg.store.picking import fiducial_point, proposal_id_of

ORACLE_WHO = "oracle"


def oracle_pick(proposal: Any, truth: np.ndarray) -> tuple[int, float]:
    """The candidate with the best Dice against the truth (ties: the lowest index): ``(index, dice)``.

    See :func:`scarceseg.cluster.candidates.best_candidate` (``proposal.masks`` against ``truth`` (Y, X)); raises
    :class:`InputError` without candidates or with an empty truth, :class:`ShapeMismatchError` on a shape mismatch.
    """
    from scarceseg.cluster.candidates import best_candidate

    return best_candidate(proposal.masks, truth, proposal.case_id)


def _load_case(ds: Any, case_id: str, slicers: dict[int, Any]) -> Any:
    """``ds.load(case_id)``; a slice id ``<volume>_z12`` of a 3D data set loads that slice of the volume."""
    try:
        return ds.load(case_id)
    except (KeyError, ScarcesegError):
        match = re.fullmatch(r"(.+)_([zyx])(\d+)", case_id)
        if match is None or match.group(1) not in getattr(ds, "case_ids", ()):
            raise
    from scarceseg.datasets.slices import AXIS_LETTERS, SliceDataset

    axis = AXIS_LETTERS.index(match.group(2))
    if axis not in slicers:
        slicers[axis] = SliceDataset(ds, axis=axis)
    return slicers[axis].load(case_id)


def oracle_pick_dataset(
    workdir: str | Path,
    dataset_dir: str | Path,
    layout: str | None = None,
    case_ids: list[str] | None = None,
    who: str = ORACLE_WHO,
) -> dict:
    """Oracle-pick every proposed case that has a label, storing the picks with ``oracle=True``.

    Parameters
    ----------
    workdir : str or Path
        WORKDIR with proposals.
    dataset_dir : str or Path
        The data set the cases came from (opened with :func:`scarceseg.datasets.open_dataset`).
    layout : str, optional
        Data set layout; detected when None.
    case_ids : list of str, optional
        Only these cases (default: every proposed case).
    who : str
        Recorded as the picker (default ``"oracle"``).

    Returns
    -------
    dict
        ``{"oracle": True, "workdir", "dataset", "n_proposals", "n_picked", "mean_dice",
        "picked": {case_id: {"candidate", "dice", "pick_id"}}, "skipped": {case_id: reason}}``.
        Cases without a proposal, without a label, with an empty label or a shape mismatch are skipped
        and listed; the others are still picked. A proposal id ``<volume>_z12`` of a 3D data set is
        matched to that slice of the volume (:class:`scarceseg.datasets.slices.SliceDataset`).
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.store.proposals import list_proposals, load_proposal

    workdir = Path(workdir)
    proposed = list(list_proposals(workdir)) if (workdir / "proposals").is_dir() else []
    wanted = proposed if case_ids is None else list(case_ids)
    ds = open_dataset(dataset_dir, layout=layout)
    picked: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    slicers: dict[int, Any] = {}
    with open_store(workdir) as store:
        for case_id in wanted:
            if case_id not in proposed:
                skipped[case_id] = "no proposal in WORKDIR"
                continue
            try:
                case = _load_case(ds, case_id, slicers)
            except (KeyError, ScarcesegError) as exc:
                skipped[case_id] = f"not loadable from the data set: {exc}"
                continue
            if case.target is None:
                skipped[case_id] = "no label in the data set"
                continue
            try:
                proposal = load_proposal(workdir, case_id)
                index, d = oracle_pick(proposal, case.target)
            except ScarcesegError as exc:
                skipped[case_id] = str(exc)
                continue
            pid = store.add_pick(
                case_id, index, fiducial_point(proposal, index), who=who, oracle=True,
                mask=np.asarray(proposal.masks[index], dtype=bool), proposal_id=proposal_id_of(proposal),
                note=f"oracle: best Dice {d:.4f} against the truth of {dataset_dir}",
            )
            picked[case_id] = {"candidate": index, "dice": d, "pick_id": pid}
    dices = [v["dice"] for v in picked.values()]
    return {
        "oracle": True,
        "workdir": str(workdir),
        "dataset": str(dataset_dir),
        "n_proposals": len(proposed),
        "n_picked": len(picked),
        "mean_dice": float(np.mean(dices)) if dices else float("nan"),
        "picked": picked,
        "skipped": skipped,
    }


def format_oracle_summary(summary: dict) -> str:
    """A few lines for a person: how many cases the oracle picked, their mean Dice, what was skipped."""
    lines = [
        f"[oracle] picked {summary['n_picked']} of {summary['n_proposals']} proposed cases, "
        f"mean best Dice {summary['mean_dice']:.4f} (against {summary['dataset']})"
    ]
    lines += [f"  skipped {case}: {reason}" for case, reason in summary["skipped"].items()]
    return "\n".join(lines)
