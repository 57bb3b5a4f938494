"""Interactive pieces: hint maps against exact distances, robot users, session undo/redo, min-cut."""

from __future__ import annotations

import heapq
import itertools
import json

import numpy as np
import pytest

from scarceseg.errors import InputError
from scarceseg.interactive.clicks import (
    Click,
    ClickLog,
    NoCRobot,
    PaperRobot,
    RandomRobot,
    ReplayRobot,
    error_regions,
)
from scarceseg.interactive.hints import euclidean_distance, geodesic_distance, geodesic_distances, hint_maps
from scarceseg.interactive.refiners import IdentityRefiner, MinCutRefiner, Refiner, seed_masks
from scarceseg.interactive.session import InteractiveSession
from scarceseg.methods.registry import load_refiner


# ---- hint maps ------------------------------------------------------------------------------------
def dijkstra(image: np.ndarray, points, lamb: float) -> np.ndarray:
    """Exact shortest paths on the 8/26-connected grid with the GeoS edge cost (reference)."""
    dist = np.full(image.shape, np.inf)
    heap = []
    for p in points:
        dist[p] = 0.0
        heap.append((0.0, tuple(p)))
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=image.ndim) if any(o)]
    while heap:
        d, p = heapq.heappop(heap)
        if d > dist[p]:
            continue
        for o in offsets:
            q = tuple(a + b for a, b in zip(p, o, strict=True))
            if all(0 <= v < n for v, n in zip(q, image.shape, strict=True)):
                nd = d + np.sqrt((1 - lamb) * sum(v * v for v in o) + lamb * (image[p] - image[q]) ** 2)
                if nd < dist[q]:
                    dist[q] = nd
                    heapq.heappush(heap, (nd, q))
    return dist


@pytest.mark.parametrize("lamb", [0.0, 0.5, 1.0])
def test_geodesic_2d_matches_dijkstra(lamb):
    image = np.random.default_rng(1).normal(size=(9, 11))
    points = [(2, 3), (7, 9)]
    got = geodesic_distance(image, points, lamb=lamb, max_passes=None)
    np.testing.assert_allclose(got, dijkstra(image, points, lamb), rtol=1e-6, atol=1e-6)


def test_geodesic_3d_matches_dijkstra():
    image = np.random.default_rng(2).normal(size=(4, 6, 5))
    points = [(1, 2, 3)]
    got = geodesic_distance(image, points, lamb=0.7, max_passes=None)
    np.testing.assert_allclose(got, dijkstra(image, points, 0.7), rtol=1e-6, atol=1e-6)


def test_geodesic_hand_values_and_wall():
    # flat image, lamb 0: chamfer distances 1 (straight) and sqrt(2) (diagonal)
    d = geodesic_distance(np.zeros((3, 3)), [(1, 1)], lamb=0.0)
    s = np.sqrt(2)
    np.testing.assert_allclose(d, [[s, 1, s], [1, 0, 1], [s, 1, s]])
    # a bright wall costs its intensity step to cross
    image = np.zeros((5, 5))
    image[:, 2] = 10.0
    d = geodesic_distance(image, [(2, 0)], lamb=1.0, max_passes=None)
    assert d[2, 1] == 0.0 and d[2, 2] == pytest.approx(10.0) and d[2, 4] == pytest.approx(20.0)


def test_geodesic_empty_and_bad_points():
    assert np.isinf(geodesic_distance(np.zeros((4, 4)), [])).all()
    with pytest.raises(ValueError, match="outside"):
        geodesic_distance(np.zeros((4, 4)), [(4, 0)])
    many = geodesic_distances(np.zeros((4, 4)), [[(0, 0)], []])
    assert many.shape == (2, 4, 4) and np.isinf(many[1]).all() and many[0, 0, 0] == 0


def test_euclidean_and_gaussian_exact():
    pts = [(1, 1), (4, 6)]
    yy, xx = np.mgrid[:6, :8]
    exact = np.minimum(np.hypot(yy - 1, xx - 1), np.hypot(yy - 4, xx - 6))
    np.testing.assert_allclose(euclidean_distance((6, 8), pts), exact)
    h = hint_maps(np.zeros((6, 8)), pts, [], kind="gaussian", scale=2.0)
    np.testing.assert_allclose(h[0], np.exp(-exact**2 / 8.0), rtol=1e-6)
    assert (h[1] == 0).all() and h.dtype == np.float32
    h = hint_maps(np.zeros((6, 8)), [], pts, kind="euclidean", scale=3.0)
    np.testing.assert_allclose(h[1], np.exp(-exact / 3.0), rtol=1e-6)


def test_hint_maps_geodesic_channels_3d():
    image = np.zeros((3, 5, 5))
    h = hint_maps(image, [(1, 2, 2)], [(0, 0, 0)], kind="geodesic", scale=1.0, lamb=0.0, max_passes=None)
    assert h.shape == (2, 3, 5, 5)
    assert h[0, 1, 2, 2] == 1.0 and h[1, 0, 0, 0] == 1.0
    assert h[0, 1, 2, 3] == pytest.approx(np.exp(-1.0), rel=1e-6)


# ---- clicks and robots -----------------------------------------------------------------------------
def _error_case():
    """Target: a 5x5 square and a 3x3 square; prediction misses the 3x3 and adds a 4x6 false block."""
    target = np.zeros((20, 20), bool)
    target[2:7, 2:7] = True
    target[12:15, 2:5] = True
    pred = np.zeros_like(target)
    pred[2:7, 2:7] = True
    pred[10:14, 10:16] = True
    return pred, target


def test_error_regions_exact():
    pred, target = _error_case()
    regions = error_regions(pred, target)
    assert [(r.size, r.positive) for r in regions] == [(24, False), (9, True)]
    assert regions[0].centre == (11, 11)  # depth 2 at rows 11-12, cols 11-14: first in C order
    assert regions[1].centre == (13, 3)
    assert error_regions(target, target) == []


def test_noc_robot_clicks_largest_region_centre():
    pred, target = _error_case()
    assert NoCRobot()(pred, target, step=3) == [Click((11, 11), False, 3)]
    assert NoCRobot()(target, target) == []


def test_paper_robot_without_noise_and_with_noise():
    pred, target = _error_case()
    clicks = PaperRobot(n_clicks=5, noise=0)(pred, target, step=1)
    assert clicks == [Click((11, 11), False, 1), Click((13, 3), True, 1)]
    noisy = PaperRobot(n_clicks=1, noise=3, seed=4)(pred, target)[0]
    assert max(abs(a - b) for a, b in zip(noisy.position, (11, 11), strict=True)) <= 3
    # same seed -> same clicks; another seed -> (here) different ones
    a = [PaperRobot(noise=3, seed=7)(pred, target) for _ in range(2)]
    assert a[0] == a[1]
    runs = {tuple(PaperRobot(noise=3, seed=s)(pred, target)) for s in range(5)}
    assert len(runs) > 1


def test_random_robot_seeded_and_in_bounds():
    t = np.zeros((6, 7), bool)
    a, b = RandomRobot(n_clicks=4, seed=3)(t, t), RandomRobot(n_clicks=4, seed=3)(t, t)
    assert a == b and len(a) == 4 and all(0 <= c.position[0] < 6 and 0 <= c.position[1] < 7 for c in a)


def test_click_log_round_trip_and_replay(tmp_path):
    pred, target = _error_case()
    robot = PaperRobot(noise=3, seed=1)
    log = ClickLog(meta={"robot": "paper", "seed": 1})
    log.record(robot(pred, target, step=1))
    log.record(robot(target, target, step=2))
    back = ClickLog.load(log.save(tmp_path / "clicks.json"))
    assert back.steps == log.steps and back.meta == log.meta
    replay = ReplayRobot(back)
    assert replay(pred, target, step=1) == log.steps[0] and replay(pred, target, step=9) == []
    (tmp_path / "plain.json").write_text(json.dumps([{"position": [1, 2], "positive": True}]))
    assert ClickLog.load(tmp_path / "plain.json").clicks == [Click((1, 2), True, 0)]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError):
        ClickLog.load(tmp_path / "bad.json")


def test_click_parse():
    assert Click.parse("3,4,+") == Click((3, 4), True)
    assert Click.parse("1, 2, 3, -") == Click((1, 2, 3), False)
    for bad in ("3,4", "a,b,+", "3,4,x"):
        with pytest.raises(ValueError):
            Click.parse(bad)


# ---- session -------------------------------------------------------------------------------------
class _PaintRefiner:
    """Sets a 3x3 box around every click to its label: easy to predict exactly."""

    name = "paint"

    def refine(self, image, prob, clicks, init=None, spacing=None):
        out = np.asarray(prob, np.float32).copy()
        for c in clicks:
            sl = tuple(slice(max(0, p - 1), p + 2) for p in c.position)
            out[sl] = 1.0 if c.positive else 0.0
        return out


def test_session_undo_redo_round_trip(tmp_path):
    image = np.random.default_rng(0).random((10, 10)).astype(np.float32)
    init = np.zeros((10, 10), np.float32)
    events = []
    s = InteractiveSession(image, init, _PaintRefiner(), on_change=lambda e, _: events.append(e))
    assert isinstance(s.refiner, Refiner) and not s.can_undo and not s.can_redo
    p1 = s.apply_click(Click((2, 2), True))
    assert s.mask.sum() == 9 and s.step == 1 and s.clicks == [Click((2, 2), True, 1)]
    p2 = s.apply_step([Click((7, 7), True), Click((2, 2), False)])
    assert s.mask.sum() == 9 and s.step == 2 and len(s.clicks) == 3
    assert s.undo() and np.array_equal(s.prob, p1) and s.step == 1
    assert s.undo() and np.array_equal(s.prob, init) and not s.undo()
    assert s.redo() and s.redo() and np.array_equal(s.prob, p2) and not s.redo()
    # a new edit after undo drops the redo branch
    s.undo()
    s.apply_click(Click((5, 5), False))
    assert not s.can_redo and s.step == 2 and s.mask.sum() == 9
    hist = s.history()
    assert [h["step"] for h in hist] == [0, 1, 2] and hist[2]["added"][0]["position"] == [5, 5]
    log = s.click_log(case="x")
    assert [len(st) for st in log.steps] == [1, 1] and log.meta == {"case": "x"}
    assert events == ["step", "step", "undo", "undo", "redo", "redo", "undo", "step"]
    path = s.export(tmp_path / "mask.png")
    from scarceseg.io import read_mask

    assert np.array_equal(read_mask(path) > 0, s.mask)
    s.reset()
    assert s.step == 0 and not s.can_redo and np.array_equal(s.prob, init)


def test_session_all_steps_keeps_the_redo_tail_and_replace_current():
    image = np.zeros((10, 10), np.float32)
    s = InteractiveSession(image, np.zeros((10, 10), np.float32), _PaintRefiner())
    s.apply_click(Click((2, 2), True))
    s.apply_step([Click((7, 7), True), Click((5, 5), False)])
    s.undo()
    assert s.step == 1 and [[c.position for c in added] for added in s.all_steps] == [[(2, 2)], [(7, 7), (5, 5)]]
    clicks = s.clicks
    s.replace_current(np.ones((10, 10)))
    assert s.mask.all() and s.clicks == clicks and s.step == 1 and s.can_redo
    with pytest.raises(ValueError, match="shape"):
        s.replace_current(np.ones((3, 3)))


def test_session_3d_and_bad_clicks():
    image = np.zeros((4, 6, 6), np.float32)
    s = InteractiveSession(image, np.zeros_like(image), _PaintRefiner())
    s.apply_click(Click((1, 2, 3), True))
    assert s.mask.sum() == 27
    with pytest.raises(ValueError, match="outside"):
        s.apply_click(Click((9, 2, 3), True))
    with pytest.raises(ValueError, match="outside"):
        s.apply_click(Click((1, 2), True))
    with pytest.raises(ValueError, match="shape"):
        InteractiveSession(image, np.zeros((4, 6)), IdentityRefiner())


# ---- min-cut -------------------------------------------------------------------------------------
def _two_regions():
    image = np.zeros((16, 16), np.float32)
    image[:, 8:] = 1.0
    image += np.random.default_rng(0).normal(0, 0.05, image.shape).astype(np.float32)
    truth = np.zeros((16, 16), bool)
    truth[:, 8:] = True
    return image, truth


def test_mincut_two_regions_from_uninformative_prior():
    image, truth = _two_regions()
    prob = np.full(image.shape, 0.5, np.float32)
    out = MinCutRefiner(lam=2.0).refine(image, prob, [Click((8, 12), True), Click((8, 3), False)])
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 1.0}
    assert np.array_equal(out > 0.5, truth)


def test_mincut_follows_unaries_and_seeds_win():
    image, truth = _two_regions()
    prob = np.where(truth, 0.9, 0.1).astype(np.float32)
    assert np.array_equal(MinCutRefiner().refine(image, prob, []) > 0.5, truth)
    # a negative seed inside the object wins at the seed
    out = MinCutRefiner(seed_radius=1.0).refine(image, prob, [Click((8, 12), False)])
    assert out[8, 12] == 0.0 and out[0, 15] == 1.0
    # 3D works too
    vol = np.stack([image] * 3)
    out3 = MinCutRefiner().refine(vol, np.stack([prob] * 3), [Click((1, 8, 12), True)])
    assert np.array_equal(out3 > 0.5, np.stack([truth] * 3))


def test_seed_masks_ball():
    fg, bg = seed_masks((7, 7), [Click((3, 3), True), Click((3, 4), False)], radius=1.0)
    assert fg.sum() == 3 and bg.sum() == 5 and bg[3, 4] and not fg[3, 4]


def test_load_refiner_errors(tmp_path):
    assert isinstance(load_refiner("mincut").refiner, MinCutRefiner)
    with pytest.raises(InputError, match="config.json"):
        load_refiner(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "scarceseg.unet_baseline"}')
    with pytest.raises(InputError, match="not a refiner"):
        load_refiner(tmp_path)
