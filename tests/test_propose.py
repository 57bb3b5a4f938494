"""Proposals and the WORKDIR contract (docs/workdir.md), on tiny synthetic images."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from scarceseg.cluster.propose import Proposal, propose_case, select_channels
from scarceseg.cluster.udc import UDCConfig
from scarceseg.errors import DimensionError, InputError
from scarceseg.io.case import Case
from scarceseg.store.proposals import list_proposals, load_proposal, save_proposal
from scarceseg.store.propose_many import propose_inputs

SMALL = UDCConfig(
    n_segments=200,
    channels=16,
    target_clusters=6,
    levels=(10, 8),
    max_iters=60,
    threads=1,
    min_area=40,
    reference_shape=(64, 64),
    candidates="extended",
)


def lesion_case(size: int = 64, case_id: str = "synthetic_1") -> tuple[Case, np.ndarray]:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size * 0.4) ** 2 + (xx - size * 0.6) ** 2 <= (size / 6) ** 2
    flair = 70 + 25 * (xx > size / 2) + 10 * np.sin(yy / 2.0) * np.cos(xx / 3.0) + 5 * rng.standard_normal((size, size))
    flair[disc] = 230 + 5 * rng.standard_normal(int(disc.sum()))
    other = np.full((size, size), 50.0) + 5 * rng.standard_normal((size, size))
    image = np.stack([other, flair, other]).astype(np.float32)
    case = Case(
        image=image,
        spacing=(1.0, 1.0),
        case_id=case_id,
        patient_id="p1",
        label=disc.astype(np.uint8),
        channel_names=("pre-contrast", "FLAIR", "post-contrast"),
    )
    return case, disc


def best_dice(masks: np.ndarray, truth: np.ndarray) -> float:
    return max(2.0 * np.count_nonzero(m & truth) / (m.sum() + truth.sum()) for m in masks)


def test_select_channels():
    case, _ = lesion_case(16)
    image, names = select_channels(case, "flair")
    assert names == ("FLAIR",)
    np.testing.assert_array_equal(image[0], case.channel("FLAIR"))
    image, names = select_channels(case, "all")
    assert image.shape == (3, 16, 16) and names == case.channel_names
    gray = Case(image=np.zeros((1, 8, 8), np.float32), spacing=(1.0, 1.0))
    assert select_channels(gray, "flair")[1] == ("ch0",)
    with pytest.raises(InputError):
        select_channels(case, "rgb")


@pytest.mark.parametrize("mode", ["paper", "extended"])
def test_propose_case_finds_the_lesion(mode):
    case, disc = lesion_case()
    config = UDCConfig(**{**SMALL.__dict__, "candidates": mode})
    proposal = propose_case(case, config, channels="flair", seed=0)
    assert proposal.case_id == "synthetic_1" and proposal.patient_id == "p1"
    assert proposal.image.shape == (1, 64, 64) and proposal.image.dtype == np.float32
    assert proposal.labels.dtype == np.int32 and proposal.masks.dtype == bool
    assert len(proposal.candidates) == len(proposal.masks) > 0
    assert [c["index"] for c in proposal.candidates] == list(range(len(proposal.masks)))
    assert best_dice(proposal.masks, disc) > 0.9
    assert proposal.config["candidates"] == mode and proposal.config["seed"] == 0


def test_same_seed_same_candidates():
    case, _ = lesion_case(48)
    a = propose_case(case, SMALL, channels="all", seed=5)
    b = propose_case(case, SMALL, channels="all", seed=5)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert a.candidates == b.candidates


def test_3d_case_is_refused():
    volume = Case(image=np.zeros((1, 4, 16, 16), np.float32), spacing=(1.0, 1.0, 1.0), case_id="vol")
    with pytest.raises(DimensionError, match="2D"):
        propose_case(volume, SMALL)


def test_save_load_round_trip_and_files(tmp_path):
    case, _ = lesion_case()
    proposal = propose_case(case, SMALL, seed=2)
    folder = save_proposal(proposal, tmp_path)
    assert folder == tmp_path / "proposals" / "synthetic_1"
    for name in ("proposal.npz", "candidates.json", "contact_sheet.png", "labels.png"):
        assert (folder / name).is_file(), name
    with np.load(folder / "proposal.npz") as data:
        assert set(data.files) == {"image", "labels", "masks"}
    cands = json.loads((folder / "candidates.json").read_text(encoding="utf-8"))
    assert cands and all(set(c) == {"index", "area", "centroid", "bbox", "source"} for c in cands)
    index = json.loads((tmp_path / "proposals" / "index.json").read_text(encoding="utf-8"))
    assert set(index["synthetic_1"]) == {"source", "patient_id", "config", "seed", "seconds", "created"}
    assert Image.open(folder / "labels.png").size == (64, 64)

    back = load_proposal(tmp_path, "synthetic_1")
    assert isinstance(back, Proposal)
    np.testing.assert_array_equal(back.image, proposal.image)
    np.testing.assert_array_equal(back.labels, proposal.labels)
    np.testing.assert_array_equal(back.masks, proposal.masks)
    assert back.candidates == proposal.candidates
    assert back.config == json.loads(json.dumps(proposal.config))
    assert back.patient_id == "p1" and back.seconds == pytest.approx(proposal.seconds, abs=1e-3)
    assert UDCConfig.from_dict(back.config) == SMALL
    assert list_proposals(tmp_path) == ["synthetic_1"]
    with pytest.raises(InputError, match="no proposal"):
        load_proposal(tmp_path, "missing")


def _write_png(path, case):
    Image.fromarray(np.clip(case.image[1], 0, 255).astype(np.uint8)).save(path)


def test_propose_inputs_skips_corrupt_and_keeps_other_content(tmp_path):
    case, _ = lesion_case()
    inputs = tmp_path / "in"
    inputs.mkdir()
    _write_png(inputs / "good.png", case)
    (inputs / "broken.tif").write_bytes(b"II*\x00" + b"garbage" * 20)
    work = tmp_path / "work"
    (work / "proposals" / "other").mkdir(parents=True)
    (work / "proposals" / "other" / "keep.txt").write_text("mine")
    (work / "store.sqlite").write_bytes(b"not touched")
    messages: list[str] = []

    summary = propose_inputs(
        [inputs / "good.png", inputs / "broken.tif", inputs / "absent.png"],
        work,
        config=SMALL,
        channels="flair",
        seed=0,
        progress=False,
        echo=messages.append,
    )
    assert summary["proposed"] == ["good"]
    assert sorted(s[0] for s in summary["skipped"]) == ["absent.png", "broken.tif"]
    assert any("broken.tif" in m for m in messages)
    assert (work / "store.sqlite").read_bytes() == b"not touched"
    assert (work / "proposals" / "other" / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert list_proposals(work) == ["good"]

    # a folder of loose images works too: the finished case is kept (resume), --force proposes it again
    summary = propose_inputs([inputs], work, config=SMALL, progress=False, echo=None)
    assert summary["proposed"] == [] and summary["kept"] == ["good"]
    assert [s[0] for s in summary["skipped"]] == ["broken.tif"]
    summary = propose_inputs([inputs], work, config=SMALL, progress=False, echo=None, force=True)
    assert summary["proposed"] == ["good"] and [s[0] for s in summary["skipped"]] == ["broken.tif"]
    assert list_proposals(work) == ["good"]
    assert (work / "store.sqlite").read_bytes() == b"not touched"


# ---- the benchmark's helpers, and one real slice when the shared data is there ---------------------
def test_bench_best_dice_and_spread():
    from scarceseg.bench.propose_bench import best_dice as bench_best_dice
    from scarceseg.bench.propose_bench import spread_cases

    truth = np.zeros((4, 4), bool)
    truth[:2, :2] = True
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2, :] = True  # Dice 2*4/(8+4)
    masks[1, :2, :2] = True  # exact
    assert bench_best_dice(masks[:1], truth) == pytest.approx(2 / 3)
    assert bench_best_dice(masks, truth) == 1.0
    assert bench_best_dice(np.zeros((0, 4, 4), bool), truth) == 0.0

    class FakeDataset:
        def cases_by_patient(self):
            return {f"p{i}": [f"p{i}_{j}" for j in range(3)] for i in range(5)}

    assert spread_cases(FakeDataset(), 3) == ["p0_1", "p2_1", "p4_1"]
    assert spread_cases(FakeDataset(), 10) == [f"p{i}_1" for i in range(5)]


def test_bench_runs_on_one_real_slice(shared_data):
    from scarceseg.bench.propose_bench import run_propose_bench

    lines: list[str] = []
    tiny = UDCConfig(n_segments=300, channels=8, scale=0.25, target_clusters=6, max_iters=20)
    result = run_propose_bench(shared_data / "lgg", n=1, configs=(tiny,), channels=("flair",), echo=lines.append)
    (run,) = result["runs"]
    assert len(run["slices"]) == 1 and 0.0 <= run["summary"]["extended_dice"]["mean"] <= 1.0
    assert any(line.startswith("custom") for line in lines)
