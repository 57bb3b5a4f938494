"""Picking candidates: nesting rule, pick by point / index, oracle, resolving picks after re-running propose."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from scarceseg.errors import InputError, ShapeMismatchError
from scarceseg.io.case import Case
from scarceseg.store import (
    candidate_at_point,
    candidates_at_point,
    fiducial_point,
    format_oracle_summary,
    format_pick,
    matching_candidate,
    open_store,
    oracle_pick,
    oracle_pick_dataset,
    parse_point,
    pick,
    proposal_id_of,
    resolve_pick_mask,
)

try:
    from scarceseg.cluster.propose import Proposal
except ImportError:  # cluster/propose.py not written yet: a stand-in with the contract's attributes

    @dataclass
    class Proposal:  # type: ignore[no-redef]
        case_id: str
        image: np.ndarray
        labels: np.ndarray
        masks: np.ndarray
        candidates: list[dict]
        config: dict = field(default_factory=dict)
        seconds: float = 0.0
        patient_id: str = ""
        source: str = ""


SHAPE = (12, 16)


def box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """Bool (12, 16) mask of rows y0..y1 and columns x0..x1 (inclusive)."""
    m = np.zeros(SHAPE, bool)
    m[y0 : y1 + 1, x0 : x1 + 1] = True
    return m


def make_proposal(masks: list[np.ndarray], case_id: str = "case1") -> Proposal:
    stack = np.stack(masks).astype(bool)
    labels = np.zeros(SHAPE, np.int32)
    for k, m in enumerate(stack):
        labels[m] = k + 1
    candidates = []
    for k, m in enumerate(stack):
        ys, xs = np.nonzero(m)
        candidates.append({
            "index": k, "area": int(m.sum()), "centroid": [float(ys.mean()), float(xs.mean())],
            "bbox": [int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1], "source": "test",
        })
    image = np.random.default_rng(0).random((1, *SHAPE)).astype(np.float32)
    return Proposal(case_id=case_id, image=image, labels=labels, masks=stack, candidates=candidates, config={},
                    seconds=0.0)


# 0: big square (area 100) > 1: inner square (16) > 2: core (4); 3: a separate box (12)
NESTED = [box(1, 10, 1, 10), box(3, 6, 3, 6), box(4, 5, 4, 5), box(2, 5, 12, 14)]


@pytest.fixture
def proposal() -> Proposal:
    return make_proposal(NESTED)


@pytest.fixture
def with_dice(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use scarceseg.metrics.dice; a local stand-in only while that module does not export it yet."""

    def dice(pred, gt):
        return 2 * np.logical_and(pred, gt).sum() / (np.sum(pred) + np.sum(gt))

    try:
        import scarceseg.metrics as metrics
    except ImportError:  # the metrics package is being written
        monkeypatch.setitem(sys.modules, "scarceseg.metrics", types.SimpleNamespace(dice=dice))
        return
    if not hasattr(metrics, "dice"):
        monkeypatch.setattr(metrics, "dice", dice, raising=False)


@pytest.fixture
def propose_api(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The real scarceseg.store.proposals if written, otherwise an in-memory stand-in with its API."""
    try:
        import scarceseg.store.proposals as real

        if all(hasattr(real, n) for n in ("save_proposal", "load_proposal", "list_proposals")):
            try:
                import scarceseg.figures.overlays  # noqa: F401  (save_proposal draws the contact sheet)
            except ImportError:  # being written: skip the drawing only
                stub = types.SimpleNamespace(save_contact_sheet=lambda *a, **k: None)
                monkeypatch.setitem(sys.modules, "scarceseg.figures.overlays", stub)
            return real
    except ImportError:
        pass
    saved: dict[tuple[str, str], Proposal] = {}
    fake = types.ModuleType("scarceseg.store.proposals")

    def save_proposal(p: Proposal, workdir: Path) -> Path:
        folder = Path(workdir) / "proposals" / p.case_id
        folder.mkdir(parents=True, exist_ok=True)
        saved[(str(workdir), p.case_id)] = p
        return folder

    fake.Proposal = Proposal
    fake.save_proposal = save_proposal
    fake.load_proposal = lambda workdir, case_id: saved[(str(workdir), case_id)]
    fake.list_proposals = lambda workdir: sorted(c for w, c in saved if w == str(workdir))
    monkeypatch.setitem(sys.modules, "scarceseg.store.proposals", fake)
    return fake


# -- candidate_at_point: the nesting rule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "expected", "containing"),
    [((4, 4), 2, [2, 1, 0]), ((5, 5), 2, [2, 1, 0]), ((3, 3), 1, [1, 0]), ((6, 4), 1, [1, 0]),
     ((1, 1), 0, [0]), ((10, 10), 0, [0]), ((3, 13), 3, [3])],
)
def test_candidate_at_point_smallest_containing(proposal, point, expected, containing) -> None:
    assert candidate_at_point(proposal, point) == expected
    assert candidates_at_point(proposal, point) == containing


def test_candidate_at_point_ties_go_to_the_lower_index() -> None:
    p = make_proposal([box(0, 11, 0, 15), box(2, 4, 2, 4), box(2, 4, 2, 4)])
    assert candidate_at_point(p, (3, 3)) == 1


def test_point_in_no_candidate_lists_the_nearest(proposal) -> None:
    expected = r"lies in no candidate; nearest candidates: 0 \(1 px away\), 1 \(4 px away\), 2 \(6 px away\)$"
    with pytest.raises(InputError, match=expected):
        candidate_at_point(proposal, (0, 0))


@pytest.mark.parametrize("point", [(12, 0), (0, 16), (-1, 3)])
def test_point_outside_the_image(proposal, point) -> None:
    with pytest.raises(InputError, match=r"outside the image .* \(12, 16\)"):
        candidate_at_point(proposal, point)


def test_parse_point() -> None:
    assert parse_point("120,98") == (120, 98) and parse_point(" 3 4 ") == (3, 4)
    for bad in ("1", "a,b", "1,2,3", ""):
        with pytest.raises(InputError, match="--point"):
            parse_point(bad)


def test_fiducial_point_is_inside_and_selects_the_candidate_again(proposal) -> None:
    assert fiducial_point(proposal, 3) == (3, 13)  # deepest pixel of the 4x3 box, first in row-major order
    assert fiducial_point(proposal, 2) == (4, 4)
    assert fiducial_point(proposal, 1) == (3, 3)  # on the ring of 1 that the smaller 2 does not cover
    for k in range(4):
        y, x = fiducial_point(proposal, k)
        assert proposal.masks[k, y, x] and candidate_at_point(proposal, (y, x)) == k


# -- pick ------------------------------------------------------------------------------------------------


def test_pick_by_point_and_by_candidate(tmp_path: Path, proposal) -> None:
    by_point = pick(tmp_path, "case1", point=(3, 4), who="alice", note="looks right", proposal=proposal)
    assert (by_point.candidate, by_point.point, by_point.who, by_point.oracle) == (1, (3, 4), "alice", False)
    assert np.array_equal(by_point.mask, NESTED[1]) and by_point.proposal_id == proposal_id_of(proposal)
    assert by_point.note == "looks right"
    by_index = pick(tmp_path, "case1", candidate=3, proposal=proposal)
    assert (by_index.candidate, by_index.point) == (3, (3, 13)) and by_index.who  # the OS user by default
    assert np.array_equal(by_index.mask, NESTED[3])
    with open_store(tmp_path) as store:
        assert [p.id for p in store.history("case1")] == [by_point.id, by_index.id]
        assert store.current_picks()["case1"].candidate == 3


@pytest.mark.parametrize(("kwargs", "which"), [({}, "neither was"), ({"point": (4, 4), "candidate": 2}, "both were")])
def test_pick_needs_exactly_one_of_point_and_candidate(tmp_path: Path, proposal, kwargs, which) -> None:
    with pytest.raises(InputError, match=f"exactly one .*; {which} given"):
        pick(tmp_path, "case1", proposal=proposal, **kwargs)


@pytest.mark.parametrize("candidate", [4, -1, 99])
def test_pick_out_of_range_index(tmp_path: Path, proposal, candidate) -> None:
    with pytest.raises(InputError, match=rf"candidate {candidate} is out of range: .* has 4 candidates \(0-3\)"):
        pick(tmp_path, "case1", candidate=candidate, proposal=proposal)
    with open_store(tmp_path) as store:
        assert store.all_picks() == []


def test_pick_loads_the_proposal_and_reports_unknown_cases(tmp_path: Path, proposal, propose_api) -> None:
    with pytest.raises(InputError, match="no proposals in this WORKDIR"):
        pick(tmp_path / "empty", "case1", candidate=0)
    propose_api.save_proposal(proposal, tmp_path)
    got = pick(tmp_path, "case1", point=(4, 5), who="bob")
    assert got.candidate == 2 and np.array_equal(got.mask, NESTED[2])
    with pytest.raises(InputError, match=r"no proposal for case 'nope'; this WORKDIR has 1 proposals \(case1\)"):
        pick(tmp_path, "nope", candidate=0)


def test_history_kept_after_repicking_and_rerunning_propose(tmp_path: Path, proposal) -> None:
    first = pick(tmp_path, "case1", candidate=1, who="alice", proposal=proposal)
    rerun = make_proposal([NESTED[3], NESTED[2], NESTED[1], NESTED[0]])  # same candidates, indices moved
    second = pick(tmp_path, "case1", candidate=0, who="alice", proposal=rerun)
    with open_store(tmp_path) as store:
        hist = store.history("case1")
    assert [p.id for p in hist] == [first.id, second.id]
    assert np.array_equal(resolve_pick_mask(hist[0], rerun), NESTED[1])
    assert np.array_equal(resolve_pick_mask(hist[1], rerun), NESTED[3])


# -- resolve_pick_mask / matching_candidate ---------------------------------------------------------------


def test_resolve_pick_mask_same_and_changed_proposal(tmp_path: Path, proposal) -> None:
    picked = pick(tmp_path, "case1", candidate=1, proposal=proposal)
    assert np.array_equal(resolve_pick_mask(picked, proposal), NESTED[1])
    permuted = make_proposal([NESTED[2], NESTED[3], NESTED[1], NESTED[0]])
    assert proposal_id_of(permuted) != proposal_id_of(proposal)
    assert np.array_equal(resolve_pick_mask(picked, permuted), NESTED[1])  # the stored mask, not masks[1]
    assert matching_candidate(picked.mask, permuted) == (2, 1.0)


def test_resolve_pick_mask_fallbacks(tmp_path: Path, proposal) -> None:
    with open_store(tmp_path) as store:
        no_mask = store.get_pick(store.add_pick("case1", 0, point=(3, 13), proposal_id="oldoldoldold"))
        legacy = store.get_pick(store.add_pick("case1", 1))
        lost = store.get_pick(store.add_pick("case1", 9, proposal_id="oldoldoldold", note="x"))
        wrong = store.get_pick(store.add_pick("case1", 0, mask=np.ones((3, 3), bool), proposal_id="old"))
    assert np.array_equal(resolve_pick_mask(no_mask, proposal), NESTED[3])  # the candidate at the point
    assert np.array_equal(resolve_pick_mask(legacy, proposal), NESTED[1])  # no id: trust the index
    with pytest.raises(InputError, match="identifies no mask"):
        resolve_pick_mask(lost, proposal)
    with pytest.raises(ShapeMismatchError):
        resolve_pick_mask(wrong, proposal)


def test_matching_candidate_best_iou() -> None:
    p = make_proposal(NESTED)
    assert matching_candidate(box(3, 6, 3, 7), p) == (1, 16 / 20)
    assert matching_candidate(np.zeros(SHAPE, bool), p) == (0, 0.0)
    empty = make_proposal(NESTED)
    empty.masks = np.zeros((0, *SHAPE), bool)
    assert matching_candidate(NESTED[0], empty) == (-1, 0.0)


def test_proposal_id_is_stable_and_short(proposal) -> None:
    again = make_proposal([m.copy() for m in NESTED])
    assert proposal_id_of(proposal) == proposal_id_of(again)
    assert len(proposal_id_of(proposal)) == 12 and int(proposal_id_of(proposal), 16) >= 0


# -- oracle ----------------------------------------------------------------------------------------------


def test_oracle_pick_best_dice_exact(proposal, with_dice) -> None:
    assert oracle_pick(proposal, NESTED[1]) == (1, 1.0)
    truth = box(3, 6, 3, 7)  # area 20: Dice 32/36 with 1, 8/24 with 2, 40/120 with 0
    assert oracle_pick(proposal, truth) == (1, 32 / 36)
    tie = make_proposal([box(0, 0, 0, 0), box(4, 5, 4, 5), box(4, 5, 4, 5)])
    assert oracle_pick(tie, box(4, 5, 4, 5)) == (1, 1.0)


def test_oracle_pick_errors(proposal, with_dice) -> None:
    with pytest.raises(InputError, match="empty"):
        oracle_pick(proposal, np.zeros(SHAPE, bool))
    with pytest.raises(ShapeMismatchError):
        oracle_pick(proposal, np.ones((3, 3), bool))


def test_oracle_pick_dataset_stores_labelled_oracle_picks(
    tmp_path: Path, proposal, propose_api, with_dice, monkeypatch: pytest.MonkeyPatch
) -> None:
    wd = tmp_path / "wd"
    propose_api.save_proposal(proposal, wd)
    propose_api.save_proposal(make_proposal(NESTED, case_id="nolabel"), wd)
    propose_api.save_proposal(make_proposal(NESTED, case_id="gone"), wd)
    labels = {"case1": box(3, 6, 3, 7).astype(np.uint8), "nolabel": None}

    class FakeDataset:
        case_ids = list(labels)

        def load(self, case_id: str) -> Case:
            if case_id not in labels:
                raise InputError(tmp_path / "data", f"no case {case_id!r}")
            return Case(image=np.zeros((1, *SHAPE), np.float32), spacing=(1.0, 1.0), case_id=case_id,
                        label=labels[case_id])

    import scarceseg.datasets

    opened = []
    monkeypatch.setattr(scarceseg.datasets, "open_dataset",
                        lambda root, layout=None: opened.append((root, layout)) or FakeDataset(), raising=False)
    summary = oracle_pick_dataset(wd, tmp_path / "data", layout="images_masks", case_ids=None)
    assert opened == [(tmp_path / "data", "images_masks")]
    assert summary["oracle"] is True and summary["n_proposals"] == 3 and summary["n_picked"] == 1
    assert summary["picked"]["case1"]["candidate"] == 1 and summary["mean_dice"] == 32 / 36
    assert set(summary["skipped"]) == {"nolabel", "gone"} and "no label" in summary["skipped"]["nolabel"]
    text = format_oracle_summary(summary)
    assert text.startswith("[oracle] picked 1 of 3") and "skipped gone" in text
    with open_store(wd) as store:
        stored = store.current_picks()["case1"]
        assert stored.oracle and stored.who == "oracle" and stored.candidate == 1
        assert np.array_equal(stored.mask, NESTED[1]) and "0.8889" in stored.note
        assert store.current_picks(include_oracle=False) == {}
    assert format_pick(stored).endswith("[oracle] - " + stored.note)
    summary = oracle_pick_dataset(wd, tmp_path / "data", case_ids=["case1", "unproposed"])
    assert summary["skipped"] == {"unproposed": "no proposal in WORKDIR"} and summary["n_picked"] == 1


def test_format_pick(tmp_path: Path, proposal) -> None:
    p = pick(tmp_path, "case1", point=(4, 4), who="alice", proposal=proposal)
    line = format_pick(p)
    assert line.startswith("case case1: candidate 2 at (4, 4) by alice at 20") and "[oracle]" not in line
    assert line.endswith("Z") and "T" not in line.split(" at ")[-1]
