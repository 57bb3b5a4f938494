"""bench loop: the robot user's decisions (exact, no prior), and the whole loop on a tiny synthetic cohort."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from scarceseg.bench.loop_bench import plan_loop, run_loop_bench
from scarceseg.bench.loop_report import format_table
from scarceseg.bench.loop_tasks import robot_label
from scarceseg.errors import InputError

TIMING = {"train_seconds", "train_cpu_seconds", "stage_seconds"}


def test_pool_is_drawn_in_order_one_per_patient_and_disjoint_from_the_test(tmp_path):
    from scarceseg.bench.fewshot_bench import held_out
    from scarceseg.datasets import n_shot
    from scarceseg.datasets.sample import make_sample_data

    make_sample_data(tmp_path, n=10, seed=0)
    p = plan_loop(tmp_path, 5, seed=0, every=1, test_slices=3)
    ds = p["dataset"]
    patients = [ds.patient_of(c) for c in p["pool"]]
    assert len(p["pool"]) == 5 and len(set(patients)) == 5 and len(p["test"]) == 3
    assert not set(patients) & {ds.patient_of(c) for c in p["test"]}
    train_part = held_out(ds, every=1, test_slices=3)[0]
    for k in (1, 3, 5):  # the first k images are the k-shot set of bench fewshot
        assert set(p["pool"][:k]) == set(n_shot(ds, k, seed=0, pool=train_part, pick="largest"))
    assert plan_loop(tmp_path, 3, seed=0, every=1, test_slices=3)["pool"] == p["pool"][:3]
    assert plan_loop(tmp_path, 5, seed=1, every=1, test_slices=3)["pool"] != p["pool"]
    with pytest.raises(InputError, match="pool has 7 patients"):
        plan_loop(tmp_path, 8, every=1, test_slices=3)


def test_cli_refuses_bad_rounds_and_settings(tmp_path):
    from typer.testing import CliRunner

    from scarceseg.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["bench", "loop", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                              "--rounds", "5,x"])
    assert bad.exit_code != 0 and "--rounds" in bad.output
    bad = runner.invoke(app, ["bench", "loop", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                              "--rounds", "0,5"])
    assert bad.exit_code == 1 and "--rounds must be positive" in bad.output


# ---- the robot user, with stand-ins for the prior and the refiner ------------------------------------------
def _square(shape=(32, 32), y0=10, x0=10, size=10) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[y0 : y0 + size, x0 : x0 + size] = True
    return mask


class OracleRefiner:
    """Each click fixes the whole error region it lies in (so one click per region)."""

    def __init__(self, truth):
        self.truth, self.calls = truth, 0

    def refine(self, image, prob, clicks, init=None):
        from scipy import ndimage

        self.calls += 1
        mask = prob > 0.5
        labels, _ = ndimage.label(mask != self.truth)
        region = labels == labels[clicks[-1].position]
        return np.where(region, self.truth, mask).astype(np.float32)


class IdleRefiner:
    """Changes nothing: the robot clicks until its budget is spent."""

    def refine(self, image, prob, clicks, init=None):
        return np.asarray(prob, np.float32)


def _box_calls(mask):
    calls = []

    def box():
        calls.append(1)
        return mask.astype(np.float32)

    return box, calls


def test_robot_accepts_a_good_suggestion_with_zero_interactions():
    truth = _square()
    box, calls = _box_calls(truth)
    suggestion = SimpleNamespace(mask=truth, prob=truth.astype(np.float32))
    got = robot_label(np.zeros(truth.shape), truth, IdleRefiner(), box, suggestion)
    assert got["start"] == "accept" and got["interactions"] == 0 and got["clicks"] == 0 and not calls
    assert got["suggestion_dice"] == 1.0 and np.array_equal(got["mask"], truth)


def test_robot_corrects_a_fair_suggestion_with_clicks_only():
    truth = _square()
    fair = truth.copy()
    fair[10:13, 10:20] = False  # misses 30 of 100 pixels: Dice 140 / 170
    box, calls = _box_calls(truth)
    refiner = OracleRefiner(truth)
    got = robot_label(np.zeros(truth.shape), truth, refiner, box, SimpleNamespace(mask=fair, prob=fair * 1.0))
    assert got["start"] == "correct" and got["suggestion_dice"] == pytest.approx(140 / 170)
    assert got["interactions"] == got["clicks"] == 1 and refiner.calls == 1 and not calls
    assert got["dice"] == 1.0 and np.array_equal(got["mask"], truth)


def test_robot_redraws_an_empty_or_hopeless_suggestion_with_a_box():
    truth = _square()
    boxed = _square(size=12, y0=9, x0=9)  # the prior's answer to the box: too big, Dice 200 / 244 < 0.9
    for suggestion in (np.zeros_like(truth), _square(y0=0, x0=20, size=4)):
        box, calls = _box_calls(boxed)
        got = robot_label(np.zeros(truth.shape), truth, OracleRefiner(truth), box,
                          SimpleNamespace(mask=suggestion, prob=suggestion * 1.0))
        assert got["start"] == "redraw" and len(calls) == 1
        assert got["interactions"] == 1 + got["clicks"] == 2 and got["dice"] == 1.0


def test_robot_without_a_model_draws_a_box_and_stops_at_the_click_budget():
    truth = _square()
    box, calls = _box_calls(_square(size=12, y0=9, x0=9))
    got = robot_label(np.zeros(truth.shape), truth, IdleRefiner(), box, None, clicks=3)
    assert got["start"] == "box" and got["suggestion_dice"] is None and len(calls) == 1
    assert got["clicks"] == 3 and got["interactions"] == 4 and got["dice"] == pytest.approx(200 / 244)
    perfect, _ = _box_calls(truth)
    assert robot_label(np.zeros(truth.shape), truth, IdleRefiner(), perfect, None)["interactions"] == 1


# ---- the loop end to end, with the real prior ----------------------------------------------------------------
def _rows(summary):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in summary["table"]]


@pytest.fixture(scope="module")
def loop_runs(prior, tmp_path_factory):
    """Two runs with the same seed (separate OUT, shared embedding cache), a rerun of the first (all finished),
    and a rerun of the second after cutting its state back to stage 0 (resume)."""
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.methods.prior_fewshot_method import PriorFewShotMethod

    root = tmp_path_factory.mktemp("loop")
    make_sample_data(root / "data", n=4, seed=0)  # 3 pool patients, 1 test patient
    fits: list[list] = []
    original = PriorFewShotMethod.fit

    def recording_fit(self, cases, *args, **kwargs):
        fits.append([(c.case_id, np.asarray(c.label).copy()) for c in cases])
        return original(self, cases, *args, **kwargs)

    kwargs = dict(rounds=(1, 2), test_slices=1, every=1, steps=1, seed=0, cache_dir=root / "emb", prior=prior,
                  log=lambda line: None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PriorFewShotMethod, "fit", recording_fit)
        first = run_loop_bench(root / "data", root / "a", **kwargs)
        fits_first = list(fits)
        second = run_loop_bench(root / "data", root / "b", **kwargs)
        fits.clear()
        resumed = run_loop_bench(root / "data", root / "a", **kwargs)
        fits_resumed = list(fits)
        # as if run b had been stopped after stage 0: the rerun retrains from the saved labels
        state = json.loads((root / "b" / "state.json").read_text(encoding="utf-8"))
        state["stages"] = {"0": state["stages"]["0"]}
        (root / "b" / "state.json").write_text(json.dumps(state), encoding="utf-8")
        fits.clear()
        continued = run_loop_bench(root / "data", root / "b", **kwargs)
        fits_continued = list(fits)
    return SimpleNamespace(root=root, first=first, second=second, resumed=resumed, fits=fits_first,
                           fits_resumed=fits_resumed, continued=continued, fits_continued=fits_continued,
                           kwargs=kwargs)


@pytest.mark.slow
def test_loop_on_a_process_pool_matches_this_process(prior, tmp_path):
    """Each stage's test slices and labelled images as tasks on 2 local processes (each opens the saved model
    through the registry and loads its own prior): the same table, labels and test Dice as in this process."""
    from scarceseg.datasets.sample import make_sample_data

    make_sample_data(tmp_path / "data", n=6, seed=0)  # 4 pool patients, 2 test patients: 2 tasks per phase
    kwargs = dict(rounds=(2,), test_slices=2, every=1, steps=1, seed=0, cache_dir=tmp_path / "emb",
                  log=lambda line: None)
    here = run_loop_bench(tmp_path / "data", tmp_path / "here", prior=prior, **kwargs)
    pool = run_loop_bench(tmp_path / "data", tmp_path / "pool", workers=2, **kwargs)
    assert [r["test_slices"] for r in pool["table"]] == [0, 2] and pool["table"][0]["batch"] == "1-2"
    assert _rows(pool) == _rows(here)
    with np.load(tmp_path / "pool" / "labels.npz") as a, np.load(tmp_path / "here" / "labels.npz") as b:
        assert sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)
    assert len(list((tmp_path / "pool" / ".runs").glob("stage-2/test/.cohort/*.json"))) == 2


@pytest.mark.slow
def test_loop_table_structure_and_invariants(loop_runs):
    rows = loop_runs.first["table"]
    assert [r["labelled"] for r in rows] == [0, 1, 2]
    assert loop_runs.first["accept_counts_as"] == 0
    # stage 0: no model, so no test Dice, and the loop is the no-learning run on the same images
    assert rows[0]["test_dice_mean"] is None and rows[0]["train_seconds"] is None
    assert rows[0]["interactions"] == rows[0]["interactions_no_learning"]
    assert rows[0]["accepts"] == rows[0]["corrected"] == 0 and rows[0]["boxes"] == 1
    assert [r["batch"] for r in rows] == ["1-1", "2-2", ""]
    # a model exists from stage 1 on; the last stage trains and tests only
    for r in rows[1:]:
        assert r["test_slices"] == 1 and 0.0 <= r["test_dice_mean"] <= 1.0 and r["steps"] == 1
    assert rows[1]["accepts"] + rows[1]["corrected"] + rows[1]["boxes"] == 1
    assert rows[1]["interactions_accept_as_one"] == rows[1]["interactions"] + rows[1]["accepts"]
    assert rows[2]["interactions"] is None and rows[2]["accepts"] == 0
    state = json.loads((loop_runs.root / "a" / "state.json").read_text(encoding="utf-8"))
    for key, stage in state["stages"].items():
        for b in stage["batch"] + stage["no_learning"]:
            boxed = b["start"] in ("box", "redraw")
            assert b["interactions"] == int(boxed) + b["clicks"]
            assert (b["start"] == "accept") == (b["suggestion_dice"] is not None and b["suggestion_dice"] >= 0.9)
            assert b["clicks"] <= 10
        if key == "0":
            strip = [{k: v for k, v in b.items() if k != "seconds"} for b in stage["batch"]]
            assert strip == [{k: v for k, v in b.items() if k != "seconds"} for b in stage["no_learning"]]
    out = loop_runs.root / "a"
    for name in ("rounds.csv", "summary.json", "per_image.csv", "test_dice.csv", "interactions.png", "report.md"):
        assert (out / name).is_file(), name
    assert format_table(rows) in (out / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
def test_loop_trains_on_the_robots_masks_not_the_truth(loop_runs):
    from scarceseg.datasets import open_dataset
    from scarceseg.metrics import dice

    saved = np.load(loop_runs.root / "a" / "labels.npz")
    state = json.loads((loop_runs.root / "a" / "state.json").read_text(encoding="utf-8"))
    robot = {b["case_id"]: b for s in state["stages"].values() for b in s["batch"]}
    ds = open_dataset(loop_runs.root / "data")
    order = [state["stages"][k]["batch"][0]["case_id"] for k in ("0", "1")]  # the pool, in labelling order
    assert [[cid for cid, _ in f] for f in loop_runs.fits] == [order[:1], order[:2]]
    for fit in loop_runs.fits:
        for cid, label in fit:
            assert np.array_equal(label > 0, saved[cid])  # what was trained on is what the robot ended with
            assert dice(saved[cid], ds.load(cid).target) == pytest.approx(robot[cid]["dice"])
    assert any(robot[cid]["dice"] < 1.0 for cid in robot)  # so the labels are not the truth


@pytest.mark.slow
def test_loop_same_seed_same_table_and_resumes(loop_runs):
    assert _rows(loop_runs.first) == _rows(loop_runs.second)
    assert loop_runs.fits_resumed == [] and _rows(loop_runs.resumed) == _rows(loop_runs.first)
    assert len(loop_runs.fits_continued) == 2 and _rows(loop_runs.continued) == _rows(loop_runs.first)
    with pytest.raises(InputError, match="other settings"):
        run_loop_bench(loop_runs.root / "data", loop_runs.root / "a", **{**loop_runs.kwargs, "seed": 1})


@pytest.mark.data
@pytest.mark.slow
def test_loop_on_real_lgg_two_rounds(shared_data, prior, tmp_path):
    lgg = shared_data / "lgg"
    if not lgg.is_dir():
        pytest.skip(f"LGG not found at {lgg}")
    summary = run_loop_bench(lgg, tmp_path / "out", rounds=(1, 2), test_slices=2, steps=2, prior=prior,
                             cache_dir=tmp_path / "emb", log=lambda line: None)
    rows = summary["table"]
    assert [r["labelled"] for r in rows] == [0, 1, 2]
    assert rows[0]["interactions"] == rows[0]["interactions_no_learning"] >= 1
    assert all(r["test_slices"] == 2 for r in rows[1:])
    assert rows[0]["label_dice"] > 0.5  # a box + clicks on a real lesion gives a usable label


# ---- several seeds: the pooled table (exact, no prior) --------------------------------------------------------
def _summary(loop, plain, test):
    rows = [{"labelled": n, "batch": b, "interactions": a, "interactions_no_learning": p, "test_dice_mean": d}
            for n, b, a, p, d in zip((0, 5, 10), ("1-5", "6-10", ""), loop, plain, test, strict=True)]
    return {"table": rows}


def test_pooled_table_averages_each_stage_over_the_seeds():
    from scarceseg.bench.loop_report import format_pooled, pool_seeds

    rows = pool_seeds({2: _summary([5.0, 1.0, None], [5.0, 2.0, None], [None, 0.5, 0.7]),
                       0: _summary([3.0, 2.0, None], [3.0, 3.0, None], [None, 0.6, 0.8])})
    assert [r["labelled"] for r in rows] == [0, 5, 10] and rows[0]["seeds"] == [0, 2]
    assert rows[0]["interactions"] == [3.0, 5.0] and rows[0]["interactions_mean"] == 4.0
    assert rows[1]["interactions_mean"] == 1.5 and rows[1]["interactions_no_learning_mean"] == 2.5
    assert rows[1]["vs_first_batch"] == pytest.approx(1.5 / 4.0) and rows[0]["vs_first_batch"] == 1.0
    assert rows[2]["interactions_mean"] is None and rows[2]["vs_first_batch"] is None
    assert rows[2]["test_dice_mean"] == pytest.approx(0.75) and rows[0]["test_dice_mean"] is None
    text = format_pooled(rows)
    assert "| 5 | 6-10 | 2.00 / 3.00 | 1.00 / 2.00 | 1.50 / 2.50 | 0.38 | 0.600 / 0.500 | 0.550 |" in text
    assert "| 10 | — | — / — | — / — | — / — | — | 0.800 / 0.700 | 0.750 |" in text
    with pytest.raises(ValueError, match="different stages"):
        pool_seeds({0: _summary([1, 1, None], [1, 1, None], [None, 1, 1]), 1: {"table": rows[:2]}})


def test_several_seeds_run_in_their_own_folders_and_write_the_pooled_table(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from scarceseg.bench import loop_bench
    from scarceseg.cli import app

    calls = []

    def fake_run(data, out, seed, cache_dir, log, **kwargs):
        calls.append((out, seed, cache_dir, kwargs["rounds"]))
        return _summary([4.0 + seed, 1.0, None], [4.0 + seed, 2.0, None], [None, 0.5, 0.6])

    monkeypatch.setattr(loop_bench, "run_loop_bench", fake_run)
    result = CliRunner().invoke(app, ["bench", "loop", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                                      "--rounds", "5,10", "--seed", "1", "--seed", "0", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path / "o" / "seed1", 1, tmp_path / "o" / "emb_cache", [5, 10]),
                     (tmp_path / "o" / "seed0", 0, tmp_path / "o" / "emb_cache", [5, 10])]
    pooled = json.loads((tmp_path / "o" / "pooled.json").read_text(encoding="utf-8"))
    assert pooled["seeds"] == [0, 1] and pooled["table"][0]["interactions_mean"] == 4.5
    assert "mean: loop / no learning" in (tmp_path / "o" / "pooled.md").read_text(encoding="utf-8")
    assert (tmp_path / "o" / "pooled.csv").read_text(encoding="utf-8").splitlines()[1] == "0,0,4.0,4.0,"
    assert "pooled table written to" in result.output
