"""Picking the best candidate of a proposal: by a click inside the lesion, by index, or by an oracle.

Paper 000, section 0.3.3: the user looks at all candidate masks of an image and selects the best one;
clicking on it records a point inside the lesion, the *fiducial point* ``p_fid``. Here a pick is made
either from a point ``(y, x)`` in image coordinates (the candidate is the one containing it, see
:func:`candidate_at_point`) or from a candidate index (the point is then a pixel deep inside the
candidate, see :func:`fiducial_point`). Both are stored, with the mask itself, in the label store.

The oracle, which picks by the truth for experiments, is in :mod:`scarceseg.store.oracle`.

References
----------
.. [1] Paper 000 (unsupervised clusters + user pick + RL), section 0.3.3 "Evaluating clusters and
   selecting best masks".
"""

from __future__ import annotations

import getpass
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from scarceseg.errors import InputError, ShapeMismatchError
from scarceseg.store.labelstore import open_store
from scarceseg.store.records import Pick


def default_user() -> str:
    """The OS user name, or ``"user"`` when it cannot be found (containers without a passwd entry)."""
    try:
        return getpass.getuser() or "user"
    except (KeyError, OSError):
        return "user"


def proposal_id_of(proposal: Any) -> str:
    """A short fingerprint of the proposal's candidates: 12 hex characters of SHA-1.

    It hashes the candidate stack ``masks`` (K, Y, X) (shape + packed bits), i.e. exactly what a candidate
    index refers to: two proposals with the same id map every index to the same mask, and re-running
    ``propose`` with another seed or filter changes the id.
    """
    masks = np.asarray(proposal.masks, dtype=bool)
    h = hashlib.sha1(repr(masks.shape).encode())
    h.update(np.packbits(masks.ravel()).tobytes())
    return h.hexdigest()[:12]


def parse_point(text: str) -> tuple[int, int]:
    """Parse ``"Y,X"`` (or ``"Y X"``) into ``(y, x)``; InputError naming the option otherwise."""
    parts = text.replace(",", " ").split()
    try:
        y, x = (int(p) for p in parts)
    except ValueError:
        raise InputError(None, f"--point must be two integers Y,X (row, column), got {text!r}") from None
    return y, x


def _n_candidates(proposal: Any) -> int:
    return int(np.asarray(proposal.masks).shape[0])


def _check_point(proposal: Any, point: Any) -> tuple[int, int]:
    shape = np.asarray(proposal.labels).shape
    try:
        y, x = (int(v) for v in point)
    except (TypeError, ValueError):
        raise InputError(None, f"a point must be (y, x) integers, got {point!r}") from None
    if not (0 <= y < shape[0] and 0 <= x < shape[1]):
        raise InputError(
            None,
            f"point ({y}, {x}) is outside the image of case {proposal.case_id!r} "
            f"(Y, X) = {tuple(shape)}; give it as Y,X (row, column)",
        )
    return y, x


def _check_index(proposal: Any, candidate: Any) -> int:
    k = _n_candidates(proposal)
    if isinstance(candidate, bool) or not isinstance(candidate, int | np.integer):
        raise InputError(None, f"a candidate index must be an integer, got {candidate!r}")
    if not 0 <= int(candidate) < k:
        valid = f"0-{k - 1}" if k else "none"
        raise InputError(
            None, f"candidate {candidate} is out of range: case {proposal.case_id!r} has {k} candidates ({valid})"
        )
    return int(candidate)


def _order_keys(proposal: Any) -> np.ndarray:
    """Areas of the candidates, used as the nesting rule's sort key (ties: lower index)."""
    return np.asarray(proposal.masks, dtype=bool).reshape(_n_candidates(proposal), -1).sum(axis=1)


def candidates_at_point(proposal: Any, point: tuple[int, int]) -> list[int]:
    """All candidates containing ``point``, in the order of the nesting rule (smallest area first).

    Parameters
    ----------
    proposal : Proposal
        With ``masks`` (K, Y, X) bool.
    point : (int, int)
        ``(y, x)`` in image coordinates.

    Returns
    -------
    list of int
        Candidate indices sorted by (area, index); empty if no candidate contains the point.
    """
    y, x = _check_point(proposal, point)
    masks = np.asarray(proposal.masks, dtype=bool)
    inside = np.flatnonzero(masks[:, y, x])
    areas = _order_keys(proposal)
    return sorted((int(k) for k in inside), key=lambda k: (int(areas[k]), k))


def candidate_at_point(proposal: Any, point: tuple[int, int]) -> int:
    """The candidate a click at ``point`` selects.

    Nesting rule: when several candidates contain the point (extended candidates can hold smaller
    ones), the **smallest** one wins (ties: the lower index). A radiologist clicks *inside the lesion*;
    the smallest region around the click is the most specific structure there, while the larger ones add
    surroundings (oedema, tissue, background). To choose a larger nested candidate, pick it by index
    (``--candidate K``); :func:`candidates_at_point` lists all of them.

    Parameters
    ----------
    proposal : Proposal
        With ``labels`` (Y, X) and ``masks`` (K, Y, X) bool.
    point : (int, int)
        ``(y, x)``: row, column.

    Returns
    -------
    int
        The candidate index.

    Raises
    ------
    InputError
        The point is outside the image or in no candidate (the message lists the nearest candidates).
    """
    found = candidates_at_point(proposal, point)
    if found:
        return found[0]
    y, x = int(point[0]), int(point[1])
    masks = np.asarray(proposal.masks, dtype=bool)
    dists = []
    for k in range(masks.shape[0]):
        pix = np.argwhere(masks[k])
        if len(pix):
            dists.append((float(np.sqrt(((pix - (y, x)) ** 2).sum(axis=1).min())), k))
    near = ", ".join(f"{k} ({d:.0f} px away)" for d, k in sorted(dists)[:3]) or "none: the proposal is empty"
    raise InputError(
        None, f"point ({y}, {x}) of case {proposal.case_id!r} lies in no candidate; nearest candidates: {near}"
    )


def fiducial_point(proposal: Any, candidate: int) -> tuple[int, int]:
    """A point inside ``candidate`` that a click would select again: the pixel farthest from the boundary.

    Paper 000 uses the centre of mass as the fiducial point, but a centre of mass can fall outside a
    non-convex mask. This takes, among the candidate's pixels where :func:`candidate_at_point` returns
    ``candidate`` (not covered by a smaller nested candidate), the one with the largest Euclidean distance
    to the outside (ties: first in row-major order); if every pixel is covered, the deepest pixel of the
    whole candidate.

    Returns
    -------
    (int, int)
        ``(y, x)``.
    """
    from scarceseg.interactive.clicks import innermost_pixel

    k = _check_index(proposal, candidate)
    masks = np.asarray(proposal.masks, dtype=bool)
    areas = _order_keys(proposal)
    smaller = [j for j in range(masks.shape[0]) if (areas[j], j) < (areas[k], k)]
    region = masks[k] & ~masks[smaller].any(axis=0) if smaller else masks[k]
    if not region.any():
        region = masks[k]
    if not region.any():
        raise InputError(None, f"candidate {k} of case {proposal.case_id!r} is empty")
    return innermost_pixel(region)


def load_proposal_checked(workdir: str | Path, case_id: str) -> Any:
    """``load_proposal(workdir, case_id)`` with a clear InputError for an unknown case or WORKDIR."""
    from scarceseg.store.proposals import list_proposals, load_proposal

    workdir = Path(workdir)
    if not (workdir / "proposals").is_dir():
        raise InputError(workdir, "no proposals in this WORKDIR; run `scarceseg propose` first")
    known = list(list_proposals(workdir))
    if case_id not in known:
        shown = ", ".join(known[:5]) + (", ..." if len(known) > 5 else "")
        raise InputError(
            workdir,
            f"no proposal for case {case_id!r}; this WORKDIR has {len(known)} proposals"
            f"{f' ({shown})' if known else ''}; run `scarceseg propose` on that case first",
        )
    return load_proposal(workdir, case_id)


def pick(
    workdir: str | Path,
    case_id: str,
    point: tuple[int, int] | None = None,
    candidate: int | None = None,
    who: str | None = None,
    note: str = "",
    proposal: Any = None,
) -> Pick:
    """Record a person's choice of the best candidate for one case in ``WORKDIR/store.sqlite``.

    Parameters
    ----------
    workdir : str or Path
        The WORKDIR written by ``scarceseg propose``.
    case_id : str
    point : (int, int), optional
        Click ``(y, x)`` inside the lesion: the candidate is :func:`candidate_at_point`.
    candidate : int, optional
        Candidate index; the stored point is :func:`fiducial_point`. Give exactly one of the two.
    who : str, optional
        Default: the OS user name.
    note : str
    proposal : Proposal, optional
        Already loaded proposal of ``case_id`` (skips reading ``WORKDIR/proposals``).

    Returns
    -------
    Pick
        The stored pick (candidate, point, mask, proposal id, who/when). Earlier picks stay in the history.

    Raises
    ------
    InputError
        Both or neither of point/candidate, unknown case, index out of range, point outside every candidate.
    """
    if (point is None) == (candidate is None):
        which = "both were given" if point is not None else "neither was given"
        raise InputError(None, f"give exactly one of a point (--point Y,X) or a candidate (--candidate K); {which}")
    if proposal is None:
        proposal = load_proposal_checked(workdir, case_id)
    elif proposal.case_id != case_id:
        raise ValueError(f"the proposal is for case {proposal.case_id!r}, not {case_id!r}")
    if point is not None:
        point = _check_point(proposal, point)
        candidate = candidate_at_point(proposal, point)
    else:
        candidate = _check_index(proposal, candidate)
        point = fiducial_point(proposal, candidate)
    with open_store(workdir) as store:
        pid = store.add_pick(
            case_id, candidate, point, who=who or default_user(), oracle=False,
            mask=np.asarray(proposal.masks[candidate], dtype=bool), proposal_id=proposal_id_of(proposal), note=note,
        )
        return store.get_pick(pid)


def matching_candidate(mask: np.ndarray, proposal: Any) -> tuple[int, float]:
    """The candidate of ``proposal`` that overlaps ``mask`` best (IoU; ties: the lowest index).

    Parameters
    ----------
    mask : ndarray (Y, X) bool
    proposal : Proposal

    Returns
    -------
    (int, float)
        Index and IoU; ``(-1, 0.0)`` when the proposal has no candidates.
    """
    m = np.asarray(mask, dtype=bool)
    masks = np.asarray(proposal.masks, dtype=bool)
    if m.shape != masks.shape[1:]:
        raise ShapeMismatchError(None, f"mask shape {m.shape} differs from the proposal's (Y, X) {masks.shape[1:]}")
    if masks.shape[0] == 0:
        return -1, 0.0
    inter = (masks & m).reshape(masks.shape[0], -1).sum(axis=1)
    union = (masks | m).reshape(masks.shape[0], -1).sum(axis=1)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    k = int(np.argmax(iou))
    return k, float(iou[k])


def resolve_pick_mask(pick: Pick, proposal: Any) -> np.ndarray:
    """The picked mask for the *current* proposal of the pick's case.

    In order: the candidate's mask if the pick was made on this very proposal (same
    :func:`proposal_id_of`) and the index is valid; else the mask stored with the pick (the proposal was
    re-run and indices may have moved); else the candidate containing the stored point; else, for picks
    recorded without a proposal id, the candidate at the stored index.

    Returns
    -------
    ndarray (Y, X) bool

    Raises
    ------
    InputError
        Nothing in the pick identifies a mask in this proposal.
    """
    masks = np.asarray(proposal.masks, dtype=bool)
    k = masks.shape[0]
    valid = pick.candidate is not None and 0 <= pick.candidate < k
    if valid and pick.proposal_id and pick.proposal_id == proposal_id_of(proposal):
        return masks[pick.candidate].copy()
    if pick.mask is not None:
        if pick.mask.shape != masks.shape[1:]:
            raise ShapeMismatchError(
                None, f"the stored mask of pick {pick.id} has shape {pick.mask.shape}, "
                f"the proposal of case {pick.case_id!r} {masks.shape[1:]}",
            )
        return pick.mask.astype(bool, copy=True)
    if pick.point is not None:
        return masks[candidate_at_point(proposal, pick.point)].copy()
    if valid and not pick.proposal_id:
        return masks[pick.candidate].copy()
    raise InputError(None, f"pick {pick.id} of case {pick.case_id!r} identifies no mask in the current proposal")


def background_reason(proposal: Any, candidate: int, point: tuple[int, int]) -> str | None:
    """Why a pick looks like background rather than a lesion, or None.

    Two signs, either enough: the candidate touches the image's edge (a lesion lies inside the body, a
    sliver along the frame is background), or the clicked pixel is darker than the Otsu threshold of the
    image (air around the head, not tissue).
    """
    from skimage.filters import threshold_otsu

    from scarceseg.store.proposals import display_image

    mask = np.asarray(proposal.masks[candidate], dtype=bool)
    if mask.any() and (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()):
        return f"candidate {candidate} touches the image's edge"
    image = display_image(proposal)
    y, x = int(point[0]), int(point[1])
    if image.size and float(image.max()) > float(image.min()) and image[y, x] < threshold_otsu(image):
        return f"the clicked pixel ({y}, {x}) is darker than the tissue (below the Otsu threshold)"
    return None


def pick_warnings(workdir: str | Path, pick: Pick, proposal: Any = None) -> list[str]:
    """Doubts about a recorded pick, one line each (the pick is kept; the person decides)."""
    if pick.candidate is None or pick.point is None:
        return []
    proposal = proposal if proposal is not None else load_proposal_checked(workdir, pick.case_id)
    reason = background_reason(proposal, int(pick.candidate), pick.point)
    if reason is None:
        return []
    return [f"case {pick.case_id}: this pick looks like background, not a lesion ({reason}); "
            "pick again with a point inside the lesion if that was not meant"]


def format_pick(pick: Pick) -> str:
    """One line: ``case X: candidate 3 at (120, 98) by alice at 2026-05-01 10:11:12Z [oracle]``."""
    what = "no candidate" if pick.candidate is None else f"candidate {pick.candidate}"
    where = "" if pick.point is None else f" at ({pick.point[0]}, {pick.point[1]})"
    when = pick.when.replace("T", " ").split(".")[0] + ("Z" if pick.when.endswith("Z") else "")
    tag = " [oracle]" if pick.oracle else ""
    note = f" - {pick.note}" if pick.note else ""
    return f"case {pick.case_id}: {what}{where} by {pick.who} at {when}{tag}{note}"
