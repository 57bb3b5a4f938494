"""Refiners on the prior: locality (exact, on synthetic images), the click → mask strategies, the robot bench."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scarceseg.errors import InputError
from scarceseg.interactive.clicks import Click
from scarceseg.methods.prior_refiners import (
    PriorIterMRLRefiner,
    PriorMinCutRefiner,
    PriorPromptRefiner,
    localise,
    newest_clicks,
)


def ring_image(shape=(96, 96), seed=0):
    """A bright disk (r 14 at (40, 40)) and a bright square far from it (rows/cols 70-85)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    obj = (yy - 40) ** 2 + (xx - 40) ** 2 <= 14**2
    other = (yy >= 70) & (yy <= 85) & (xx >= 70) & (xx <= 85)
    rng = np.random.default_rng(seed)
    image = (40 + 150 * (obj | other) + rng.normal(0, 6, shape)).astype(np.float32)
    return image, obj, other


def far_from(click: Click, shape, radius: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - click.position[0]) ** 2 + (xx - click.position[1]) ** 2 > radius**2


class Wrecker:
    """A destructive 'model': proposes all background (or all object) everywhere."""

    def __init__(self, value: float):
        self.value = value

    def refine(self, image, prob, clicks, init=None, spacing=None):
        return np.full(np.shape(prob), self.value, dtype=np.float32)


def check_local(refiner, image, prob, click, radius):
    out = refiner.refine(image, prob, [click], init=prob)
    assert out.shape == prob.shape and out.dtype == np.float32
    away = far_from(click, prob.shape, radius)
    np.testing.assert_array_equal(out[away], prob[away])  # exactly unchanged away from the click
    before, after = prob > 0.5, out > 0.5
    if click.positive:
        assert np.all(after[before]), "a positive click removed object"
        assert after[click.position]
    else:
        assert not np.any(after & ~before), "a negative click added object"
        assert not after[click.position]
    return out


# ---- locality: pure function and refiners without the prior ---------------------------------------
def test_localise_keeps_only_the_change_connected_to_the_click():
    prev = np.zeros((20, 20), np.float32)
    prev[5:10, 5:10] = 0.9
    proposed = np.zeros((20, 20), np.float32)  # the method empties everything...
    proposed[5:10, 5:12] = 0.8  # ...but grows the square to the right
    proposed[15:18, 15:18] = 0.8  # and adds a blob elsewhere
    out = localise(prev, proposed, [Click((7, 11), True)], radius=10, seed_radius=0)
    expected = prev.copy()
    expected[5:10, 10:12] = 0.8
    expected[7, 11] = 1.0  # the click's own pixel takes its label
    np.testing.assert_array_equal(out, expected)


def test_newest_clicks_are_those_of_the_last_step():
    a, b, c = Click((1, 1), True, 1), Click((2, 2), False, 2), Click((3, 3), True, 2)
    assert newest_clicks([a, b, c]) == [b, c]
    assert newest_clicks([Click((1, 1), True), Click((2, 2), False)]) == [Click((2, 2), False)]
    assert newest_clicks([]) == []


@pytest.mark.parametrize("value", [0.0, 1.0])
@pytest.mark.parametrize("positive", [True, False])
def test_itermrl_refiner_is_local_even_with_a_destructive_model(value, positive):
    image, obj, other = ring_image()
    prob = np.where(obj | other, 0.9, 0.1).astype(np.float32)
    prob[40:55, 26:40] = 0.1 if positive else 0.9  # a missed bite (positive) / nothing to remove yet
    click = Click((47, 33), positive) if positive else Click((40, 60), False)
    if not positive:
        prob[35:46, 54:66] = 0.9  # a false blob attached to the disk
    refiner = PriorIterMRLRefiner(model=Wrecker(value), radius=20)
    out = check_local(refiner, image, prob, click, 20)
    np.testing.assert_array_equal(out[other], prob[other])  # the far square is untouched


def test_itermrl_refiner_without_a_model_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("SCARCESEG_ITERMRL_MODEL", raising=False)
    image, obj, _ = ring_image()
    with pytest.raises(InputError, match="trained IteR-MRL model"):
        PriorIterMRLRefiner().refine(image, obj.astype(np.float32), [Click((40, 40), True)])


@pytest.mark.parametrize("positive", [True, False])
def test_prior_mincut_is_local(positive):
    image, obj, other = ring_image()
    prob = np.where(obj | other, 0.95, 0.05).astype(np.float32)
    if positive:
        prob[40:55, 26:40] = 0.05
        click = Click((47, 33), True)
    else:
        prob[35:46, 54:66] = 0.95
        click = Click((40, 60), False)
    out = check_local(PriorMinCutRefiner(radius=20), image, prob, click, 20)
    np.testing.assert_array_equal(out[other], prob[other])
    truth_near = (obj & ~far_from(click, obj.shape, 20))
    # the correction moved towards the truth near the click
    assert np.sum((out > 0.5)[truth_near] == True) >= np.sum((prob > 0.5)[truth_near] == True)  # noqa: E712


def test_volume_refines_only_the_slice_of_the_newest_click():
    image, obj, other = ring_image()
    vol = np.stack([image, image, image])
    prob = np.stack([np.where(obj, 0.9, 0.1)] * 3).astype(np.float32)
    prob[1, 40:55, 26:40] = 0.1
    out = PriorMinCutRefiner(radius=20).refine(vol, prob, [Click((1, 47, 33), True, 1)])
    np.testing.assert_array_equal(out[[0, 2]], prob[[0, 2]])
    assert out[1, 47, 33] == 1.0


# ---- with the real prior ----------------------------------------------------------------------------
@pytest.mark.parametrize("positive", [True, False])
def test_prior_prompt_refiner_is_local(prior, positive):
    image, obj, other = ring_image()
    prob = np.where(obj | other, 0.95, 0.05).astype(np.float32)
    if positive:
        prob[40:55, 26:40] = 0.05
        click = Click((47, 33), True)
    else:
        prob[35:46, 54:66] = 0.95
        click = Click((40, 60), False)
    refiner = PriorPromptRefiner(prior=prior, radius=20)
    out = check_local(refiner, image, prob, click, 20)
    np.testing.assert_array_equal(out[other], prob[other])
    # a second call on its own output reuses the kept logits
    assert len(refiner._logits) == 1
    refiner.refine(image, out, [click, Click((30, 30), True, 1)], init=prob)
    assert len(refiner._logits) == 2


def test_click_to_mask_strategies_find_the_disk(prior):
    from scarceseg.methods.prior_click import CLICK_METHODS, click_to_mask

    image, obj, _ = ring_image()
    for method in CLICK_METHODS:
        res = click_to_mask(prior, image, (40, 40), method=method)
        mask = res.prob > 0.5
        d = 2 * (mask & obj).sum() / (mask.sum() + obj.sum())
        assert d > 0.8, (method, d)
        assert res.logits.shape == (256, 256)
    with pytest.raises(ValueError, match="unknown click method"):
        click_to_mask(prior, image, (40, 40), method="nope")


def _tiny_folder(root, n=2):
    from PIL import Image

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        image, obj, _ = ring_image(shape=(64, 64), seed=i)
        image[obj] += 10 * i
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray((obj * 255).astype(np.uint8)).save(root / "masks" / f"s{i}.png")


def test_bench_end_to_end_tiny_and_deterministic(prior, tmp_path):
    from scarceseg.bench.interactive_bench import run_interactive_bench

    _tiny_folder(tmp_path / "data")
    kwargs = dict(first="box", refiners=("flat-mincut", "prior", "prior-mincut"), n_clicks=2, prior=prior,
                  echo=lambda *a: None)
    a = run_interactive_bench(tmp_path / "data", out=tmp_path / "a", **kwargs)
    b = run_interactive_bench(tmp_path / "data", out=tmp_path / "b", **kwargs)
    def no_times(summary):
        return {k: {m: v for m, v in row.items() if m != "median_ms_per_click"} for k, row in summary.items()}

    assert no_times(a["summary"]) == no_times(b["summary"])
    for name in ("flat-mincut", "prior", "prior-mincut"):
        row = a["summary"][name]
        assert row["slices"] == 2
        assert 0.0 <= row["mean_dice_0"] <= 1.0 and 1 <= row["noc90"] <= 3 or row["noc90"] == 0
        assert 0.0 <= row["worse_share"] <= 1.0
    for f in ("summary.csv", "summary.json", "per_slice.csv", "dice_vs_clicks.png"):
        assert (tmp_path / "a" / f).is_file()
    saved = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert set(saved["summary"]) == {"flat-mincut", "prior", "prior-mincut"}
    assert (tmp_path / "a" / "per_slice.csv").read_text() == (tmp_path / "b" / "per_slice.csv").read_text()


@pytest.mark.slow
def test_bench_on_a_process_pool_matches_this_process_and_resumes(prior, tmp_path):
    """One task per slice on 2 local processes (each loads its own prior): the same per-slice Dice as in this
    process; a rerun with the same settings keeps every finished slice."""
    from scarceseg.bench.interactive_bench import run_interactive_bench

    _tiny_folder(tmp_path / "data", n=3)
    kwargs = dict(first="box", refiners=("flat-mincut", "prior-mincut"), n_clicks=2, echo=lambda *a: None)
    run_interactive_bench(tmp_path / "data", out=tmp_path / "here", prior=prior, **kwargs)
    lines: list[str] = []
    pool = run_interactive_bench(tmp_path / "data", out=tmp_path / "pool", workers=2,
                                 **{**kwargs, "echo": lines.append})
    assert pool["meta"]["workers"] == 2
    assert (tmp_path / "pool" / "per_slice.csv").read_text() == (tmp_path / "here" / "per_slice.csv").read_text()
    assert len(list((tmp_path / "pool" / ".runs").glob("*/.cohort/*.json"))) == 3
    again: list[str] = []
    rerun = run_interactive_bench(tmp_path / "data", out=tmp_path / "pool", prior=prior,
                                  **{**kwargs, "echo": again.append})
    assert any("kept 3 slices" in line for line in again), again
    assert rerun["summary"] == pool["summary"]  # the kept slices' records, ms per click included
    # one slice lost: the rerun computes it alone, and its counter and partial table count the two kept ones
    sorted((tmp_path / "pool" / ".runs").glob("*/.cohort/*.json"))[0].unlink()
    resumed: list[str] = []
    run_interactive_bench(tmp_path / "data", out=tmp_path / "pool", prior=prior, **{**kwargs, "echo": resumed.append})
    assert any("kept 2 slices" in line for line in resumed) and "  3/3 slices" in " ".join(resumed), resumed
    partial = (tmp_path / "pool" / "per_slice.partial.csv").read_text().splitlines()
    assert len(partial) == 1 + 3 * 2  # header + 3 slices x 2 refiners
    assert (tmp_path / "pool" / "per_slice.csv").read_text() == (tmp_path / "here" / "per_slice.csv").read_text()


def test_bench_metrics_noc_and_worse_share():
    from scarceseg.bench.interactive_bench import noc, summarise

    curves = np.array([[0.8, 0.86, 0.91], [0.95, 0.9, 0.94], [0.5, 0.6, 0.7]])
    assert [noc(c, 0.9) for c in curves] == [2, 0, 3]
    row = summarise(curves, [10.0, 30.0, 20.0])
    assert row["noc90"] == pytest.approx(5 / 3)
    assert row["noc85"] == pytest.approx((1 + 0 + 3) / 3)
    assert row["worse_share"] == pytest.approx(1 / 3)
    assert row["median_ms_per_click"] == 20.0
    assert row["mean_dice_1"] == pytest.approx((0.86 + 0.9 + 0.6) / 3)


def test_worse_when_the_robot_stops_at_the_target():
    """A slice counts worse at stop90 only if the Dice where the robot stopped (the first click reaching 0.90, else
    the last) is below the first gesture's: a slice already at 0.95 is never clicked, so it cannot end worse."""
    from scarceseg.bench.interactive_bench import format_table, summarise

    curves = np.array([[0.95, 0.9, 0.94],   # starts above target: not clicked; worse only after every click
                       [0.6, 0.5, 0.55],    # never reaches the target: ends at 0.55, worse both ways
                       [0.8, 0.92, 0.85],   # stops at 0.92 after one click; after both clicks it is better too
                       [0.7, 0.65, 0.91]])  # dips, then reaches the target on the last click
    row = summarise(curves, [])
    assert row["worse_share"] == pytest.approx(2 / 4)
    assert row["worse_at_stop90_share"] == pytest.approx(1 / 4)
    assert "| 50.0% | 25.0% |" in format_table({"r": row})


def test_summary_from_an_interrupted_runs_rows(tmp_path):
    from scarceseg.bench.interactive_bench import format_table, summary_from_csv

    path = tmp_path / "per_slice.partial.csv"
    path.write_text("refiner,slice,dice_0,dice_1,dice_2\na,s0,0.8,0.86,0.91\na,s1,0.95,0.9,0.94\n"
                    "b,s0,0.8,0.8,0.8\nb,s1,0.5,0.6,0.7\n", encoding="utf-8")
    summary = summary_from_csv(path)
    assert summary["a"]["noc90"] == pytest.approx(1.0) and summary["a"]["worse_share"] == 0.5
    assert summary["b"]["mean_dice_0"] == pytest.approx(0.65) and summary["b"]["slices"] == 2
    table = format_table(summary)
    assert table.count("\n") == 3 and "| a |" in table


def test_prior_refiners_are_reachable_by_name():
    from scarceseg.methods.prior_refiners import make_refiner
    from scarceseg.methods.prompted import resolve_refiner

    assert isinstance(resolve_refiner("prior-mincut"), PriorMinCutRefiner)
    assert isinstance(resolve_refiner("prior"), PriorPromptRefiner)
    glob = make_refiner("prior-mincut-global")
    assert glob.local is False and glob.name == "prior-mincut-global"
    soft = make_refiner("prior-mincut-soft")
    assert soft.local is True and soft.eps == 0.35 and make_refiner("prior-mincut").eps == 0.02
    assert make_refiner("prior-mincut-soft-global").local is False
    with pytest.raises(KeyError, match="unknown prior refiner"):
        make_refiner("nope")
