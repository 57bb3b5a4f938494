"""Training from the label store: a WORKDIR's picks and proposals turned into training data for a method.

The trainers in :mod:`scarceseg.methods` take arrays or cases and never read SQLite; this module (above them)
reads the store and hands them what it holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.errors import InputError, ScarcesegError
from scarceseg.methods.udc_rl import Selector, SelectorConfig, TrainingHistory, train_selector_arrays
from scarceseg.rl.env_mask_select import iou_with


def _pick_index(masks: np.ndarray, pick_mask: np.ndarray, candidate: int) -> tuple[np.ndarray, int]:
    """The candidate index of a pick; appends the picked mask when no candidate matches it (IoU < 0.5)."""
    if 0 <= candidate < len(masks) and np.array_equal(masks[candidate], pick_mask):
        return masks, candidate
    iou = iou_with(masks, pick_mask) if len(masks) else np.zeros(0)
    if len(iou) and iou.max() >= 0.5:
        return masks, int(np.argmax(iou))
    return np.concatenate([masks, pick_mask[None].astype(bool)]), len(masks)


def train_selector(workdir: str | Path, config: SelectorConfig | None = None, seed: int = 0,
                   progress: bool = True, eval_sets: dict | None = None) -> tuple[Selector, TrainingHistory]:
    """Train the selector from a WORKDIR's current picks and proposals (``docs/workdir.md``).

    Each pick's mask is resolved in the current proposal (:func:`scarceseg.store.picking.resolve_pick_mask`);
    when the proposal was re-run and no candidate matches it any more (IoU < 0.5), the picked mask is
    added as an extra candidate. Cases whose pick or proposal cannot be read are skipped and listed in
    ``selector.summary["skipped"]``.

    Raises
    ------
    InputError
        No usable pick in ``workdir``.
    """
    from scarceseg.store.labelstore import open_store
    from scarceseg.store.picking import resolve_pick_mask
    from scarceseg.store.proposals import list_proposals, load_proposal

    workdir = Path(workdir)
    if not workdir.is_dir():
        raise InputError(workdir, "WORKDIR does not exist (run `scarceseg propose` first)")
    store = open_store(workdir)
    try:
        picks = store.current_picks()
    finally:
        getattr(store, "close", lambda: None)()
    available = set(list_proposals(workdir))
    images, masks_list, picked, used, skipped, proposer_config = [], [], [], [], [], None
    for case_id in sorted(picks):
        if case_id not in available:
            skipped.append((case_id, "no proposal in WORKDIR/proposals"))
            continue
        try:
            proposal = load_proposal(workdir, case_id)
            pick_mask = np.asarray(resolve_pick_mask(picks[case_id], proposal), dtype=bool)
            if not pick_mask.any():
                raise ValueError("the picked mask is empty")
        except (ScarcesegError, ValueError, KeyError, IndexError, OSError) as exc:
            skipped.append((case_id, str(exc)))
            continue
        candidate = picks[case_id].candidate
        masks, k = _pick_index(np.asarray(proposal.masks, dtype=bool), pick_mask,
                               -1 if candidate is None else int(candidate))
        images.append(proposal.image)
        masks_list.append(masks)
        picked.append(k)
        used.append(case_id)
        proposer_config = proposer_config or proposal.config
    if not used:
        why = f"; skipped: {skipped[:3]}" if skipped else ""
        raise InputError(workdir, f"no usable picks in this WORKDIR (pick lesions first with `scarceseg pick`){why}")
    selector, history = train_selector_arrays(images, masks_list, picked, config, seed, eval_sets, progress)
    selector.summary.update({"workdir": str(workdir), "cases": used, "skipped": skipped,
                             "proposer_config": proposer_config, "history": history.as_dict()})
    return selector, history


def labelled_from_store(store, load_case, kind: str, who: str | None = None) -> list:
    """The cases that have a saved mask of ``kind`` (e.g. the user's final masks), each with that mask as label.

    Parameters
    ----------
    store : LabelStore
    load_case : callable
        ``case_id -> Case`` (e.g. the app's catalog); 3D cases are left out (masks are saved per slice).
    kind : str
    who : str, optional
        Only this person's masks.
    """
    from dataclasses import replace

    cases = []
    for case_id, record in sorted(store.latest_masks(kind, who=who).items()):
        try:
            case = load_case(case_id)
        except (ScarcesegError, KeyError, OSError):
            continue
        if case.ndim == 2 and record.mask.shape == case.shape:
            cases.append(replace(case, label=np.asarray(record.mask, dtype=np.int32)))
    return cases


def train_from_store(name: str, workdir: str | Path, store, load_case, out: str | Path, who: str | None = None,
                     config: dict | None = None, budget=None, seed: int = 0, progress: bool = False) -> dict:
    """Train the registered learner ``name`` on what the label store holds, and save it to ``out``.

    A method that learns from picks (``learns_from == "picks"``: the selector) trains on the current picks and
    proposals of ``workdir``; any other on the cases with a saved final mask (of ``who``).

    Returns
    -------
    dict
        ``model`` (folder), ``n_images``, ``case_ids`` (what it learnt from), ``seconds``, ``skipped`` and, for
        the selector, ``train_accuracy``.
    """
    import time

    from scarceseg.methods.registry import get

    cls = get(name)
    if getattr(cls, "learns_from", "masks") == "picks":
        values = dict(config or {})
        episodes = budget.epochs if budget is not None and budget.epochs else None
        if episodes:
            values["n_episodes"] = int(episodes)
        method = cls(values)
        selector, history = train_selector(workdir, config=method.selector_config, seed=seed, progress=progress)
        method.selector = selector
        path = method.save(out)
        acc = history.accuracy.get("train") or []
        return {"model": str(path), "n_images": selector.summary.get("n_images"), "seconds": round(history.seconds, 1),
                "train_accuracy": acc[-1] if acc else None, "skipped": selector.summary.get("skipped") or [],
                "case_ids": list(selector.summary.get("cases") or [])}
    cases = labelled_from_store(store, load_case, "final", who)
    if not cases:
        raise InputError(workdir, f"no saved masks to train {name} on (save some masks first)")
    method = cls(config or {})
    t0 = time.perf_counter()
    method.fit(cases, budget, progress=progress, seed=seed)
    path = method.save(out)
    return {"model": str(path), "n_images": len(cases), "seconds": round(time.perf_counter() - t0, 1), "skipped": [],
            "case_ids": [c.case_id for c in cases]}
