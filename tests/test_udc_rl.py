"""The DQN mask selector (paper 000, section 0.4) on tiny synthetic images.

Toy: 32x32 dark noisy images with one bright disc. The candidates are the disc (the pick), a few dark
rectangles and the disc's complement, in random order. Trivially separable: "is the red region bright?".
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scarceseg.errors import CorruptFileError, InputError
from scarceseg.methods.selector_method import load_points
from scarceseg.methods.udc_rl import (
    Selector,
    SelectorConfig,
    train_selector_arrays,
)
from scarceseg.rl.env_mask_select import (
    MaskSelectEnv,
    area_resize,
    grey_image,
    interior_point,
    prepare_image,
    render_state,
)

torch.set_num_threads(1)


def make_toys(n: int, seed: int, size: int = 32):
    """``n`` toy images ``(1, size, size)``, candidates ``(K, size, size)`` and the disc's index."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, masks, picks = [], [], []
    for _ in range(n):
        img = rng.normal(0.2, 0.05, (size, size)).astype(np.float32)
        cy, cx, r = rng.integers(8, size - 8), rng.integers(8, size - 8), rng.integers(4, 7)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[disc] = 0.9
        cands = []
        while len(cands) < 4:
            h, w = rng.integers(5, 10, 2)
            y0, x0 = rng.integers(0, size - h), rng.integers(0, size - w)
            m = np.zeros((size, size), bool)
            m[y0:y0 + h, x0:x0 + w] = True
            if (m & ~disc).sum() >= 12:
                cands.append(m & ~disc)
        cands.append(~disc)
        k = int(rng.integers(len(cands) + 1))
        cands.insert(k, disc)
        images.append(img[None])
        masks.append(np.stack(cands))
        picks.append(k)
    return images, masks, picks


TINY = SelectorConfig(input_size=32, channels=(8, 16, 16, 16), hidden=32, n_episodes=12, eval_every=6)


@pytest.fixture(scope="module")
def learned():
    """A selector trained on 10 toys with the paper's settings but 120 episodes and 32x32 states."""
    cfg = SelectorConfig(input_size=32, n_episodes=120, eval_every=40)
    train, test = make_toys(10, seed=0), make_toys(10, seed=1)
    selector, history = train_selector_arrays(*train, config=cfg, seed=0, eval_sets={"test": test})
    return selector, history, test


# ---- rendering and the environment --------------------------------------------------------------------
def test_state_rendering_exact():
    grey = np.array([[0.0, 1.0], [0.5, 0.5]], np.float32)
    region = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    s = render_state(grey, region, alpha=0.5)
    assert s.shape == (3, 2, 2) and s.dtype == np.uint8
    np.testing.assert_array_equal(s[:, 0, 0], [128, 0, 0])  # black + half red
    np.testing.assert_array_equal(s[:, 0, 1], [255, 255, 255])  # white, untinted
    np.testing.assert_array_equal(s[:, 1, 1], [191, 64, 64])  # 0.5 grey + half red
    assert np.array_equal(area_resize(np.ones((2, 8, 6)), 4), np.ones((2, 4, 4)))
    g = grey_image(np.arange(100, dtype=np.float32).reshape(10, 10), percentiles=(0, 100))
    assert g.min() == 0.0 and g.max() == 1.0
    assert interior_point(np.pad(np.ones((3, 3), bool), 2)) == (3, 3)


def test_candidates_env_rewards_follow_eq3():
    images, masks, picks = make_toys(3, seed=2)
    preps = [prepare_image(i, m, 16, picked=k) for i, m, k in zip(images, masks, picks, strict=True)]
    env = MaskSelectEnv(preps, "candidates", steps_per_episode=5, rng=np.random.default_rng(0))
    shown_pos = []
    for _ in range(40):
        obs, done, t = env.reset(), False, 0
        assert obs.shape == (3, 16, 16) and obs.dtype == np.uint8
        while not done:
            positive = bool(env.images[env.image_index].positive[env.shown])
            shown_pos.append(positive)
            action = int(np.random.default_rng(t).integers(2))
            _, r, done, info = env.step(action)
            assert r == (1.0 if (action == 0) == positive else -1.0)
            assert info["correct_action"] == (0 if positive else 1)
            t += 1
        assert t == 5
    assert 0.3 < np.mean(shown_pos) < 0.7  # p_positive = 0.5


def test_paper_env_is_the_two_state_environment():
    images, masks, picks = make_toys(2, seed=3)
    preps = [prepare_image(i, m, 16, picked=k) for i, m, k in zip(images, masks, picks, strict=True)]
    env = MaskSelectEnv(preps, "paper", rng=np.random.default_rng(0))
    s1 = env.reset(0)
    assert env.shown == "M"
    green, r, done, _ = env.step(1)  # "point in M^C": wrong, next state = M^C in green
    assert r == -1.0 and env.shown == "MC" and not done
    assert green[1].astype(int).sum() > s1[1].astype(int).sum()  # the green tint
    red, r, _, _ = env.step(0)
    assert r == 1.0 and env.shown == "M" and np.array_equal(red, s1)


# ---- learning ----------------------------------------------------------------------------------------
def test_learns_the_toy_and_generalises(learned):
    selector, history, test = learned
    assert history.accuracy["train"][-1] >= 0.9
    assert history.accuracy["test"][-1] >= 0.9
    hits = [selector.select_automatic(i, m)[0] == k for i, m, k in zip(*test, strict=True)]
    assert np.mean(hits) >= 0.9
    assert len(history.returns) == 120 and history.epsilon[0] == 0.7
    assert history.eval_episodes == [40, 80, 120]


def test_same_seed_same_weights_and_picks():
    data = make_toys(4, seed=4)
    a, ha = train_selector_arrays(*data, config=TINY, seed=11)
    b, hb = train_selector_arrays(*data, config=TINY, seed=11)
    c, _ = train_selector_arrays(*data, config=TINY, seed=12)
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert ha.returns == hb.returns and np.array_equal(ha.loss, hb.loss, equal_nan=True)
    for image, masks in zip(data[0], data[1], strict=True):
        ia, scores_a = a.select_automatic(image, masks)
        ib, scores_b = b.select_automatic(image, masks)
        assert ia == ib and np.array_equal(scores_a, scores_b)


def test_paper_mode_runs_and_learns_to_answer_m():
    cfg = SelectorConfig(mode="paper", input_size=32, n_episodes=40, learning_rate=1e-3, eval_every=0)
    selector, history = train_selector_arrays(*make_toys(3, seed=5), config=cfg, seed=0)
    assert np.mean(history.greedy_correct[-10:]) >= 0.8  # the literal environment: always "M"
    assert history.accuracy == {}
    images, masks, _ = make_toys(1, seed=6)
    assert selector.score(images[0], masks[0]).shape == (len(masks[0]),)


def test_one_click_only_candidates_containing_the_point(learned):
    selector, _, test = learned
    image, masks, pick = test[0][0], test[1][0], test[2][0]
    point = interior_point(masks[pick])
    index, info = selector.select_one_click(image, masks, point)
    assert index == pick
    assert set(info["containing"]) == set(np.flatnonzero(masks[:, point[0], point[1]]).tolist())
    # a click in the background: the disc cannot win, whatever its score
    outside = tuple(int(v) for v in np.argwhere(~masks[pick])[0])
    index, info = selector.select_one_click(image, masks, outside)
    assert index != pick and masks[index][outside] and index in info["containing"]
    assert info["fallback"] is None and isinstance(info["agent_says_not_lesion"], bool)
    # no candidate holds the point: the nearest one is used and said so
    only_disc = masks[pick:pick + 1]
    index, info = selector.select_one_click(image, only_disc, outside)
    assert index == 0 and info["fallback"]
    with pytest.raises(ValueError, match="outside"):
        selector.select_one_click(image, masks, (99, 0))


# ---- files -------------------------------------------------------------------------------------------
def test_save_load_round_trip_gives_identical_scores(tmp_path):
    data = make_toys(3, seed=7)
    selector, _ = train_selector_arrays(*data, config=TINY, seed=0)
    folder = selector.save(tmp_path / "model")
    assert (folder / "model.safetensors").is_file()
    meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert meta["config"]["gamma"] == 0.99 and meta["seed"] == 0 and "scarceseg_version" in meta
    loaded = Selector.load(folder, device="cpu")
    assert loaded.config.channels == TINY.channels
    for image, masks in zip(data[0], data[1], strict=True):
        assert np.array_equal(selector.score(image, masks), loaded.score(image, masks))


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        Selector.load(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(InputError, match="missing"):
        Selector.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="config.json"):
        Selector.load(tmp_path / "m")
    selector, _ = train_selector_arrays(*make_toys(2, seed=8), config=TINY, seed=0)
    selector.save(tmp_path / "m2")
    (tmp_path / "m2" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="model.safetensors"):
        Selector.load(tmp_path / "m2")


def test_load_points(tmp_path):
    (tmp_path / "p.json").write_text(json.dumps({"a": [3, 4]}))
    assert load_points(tmp_path / "p.json") == {"a": (3, 4)}
    (tmp_path / "p.csv").write_text("case_id,y,x\nb,5,6\n")
    assert load_points(tmp_path / "p.csv") == {"b": (5, 6)}
    (tmp_path / "bad.json").write_text(json.dumps({"a": 3}))
    with pytest.raises(CorruptFileError):
        load_points(tmp_path / "bad.json")


def test_config_validation():
    with pytest.raises(ValueError, match="mode"):
        SelectorConfig(mode="bandit")
    with pytest.raises(ValueError, match="n_episodes"):
        SelectorConfig(n_episodes=0)
    assert SelectorConfig.from_dict({"gamma": 0.5}).gamma == 0.5
    with pytest.raises(ValueError, match="unknown"):  # unknown keys are an error in every config (issue 14)
        SelectorConfig.from_dict({"gamma": 0.5, "unknown": 1})


# ---- WORKDIR and data-folder wiring (uses the proposer's and the store's public API) ------------------
def _fake_proposal(case_id: str, image: np.ndarray, masks: np.ndarray):
    from scarceseg.cluster.propose import Proposal

    labels = np.argmax(np.concatenate([np.zeros((1, *masks.shape[1:])), masks]), axis=0).astype(np.int32)
    return Proposal(case_id=case_id, image=image.astype(np.float32), labels=labels, masks=masks,
                    candidates=[{"index": k} for k in range(len(masks))], config={"fake": True}, seconds=0.0)


def test_train_from_workdir_and_segment_a_folder(tmp_path, monkeypatch):
    pytest.importorskip("scarceseg.store.picking")
    proposals = pytest.importorskip("scarceseg.store.proposals")
    propose = pytest.importorskip("scarceseg.cluster.propose")
    from PIL import Image

    from scarceseg.methods.selector_method import segment_folder
    from scarceseg.store import open_store
    from scarceseg.store.training import train_selector

    images, masks, picks = make_toys(4, seed=9)
    work = tmp_path / "work"
    with open_store(work) as store:
        for i, (img, m, k) in enumerate(zip(images, masks, picks, strict=True)):
            proposals.save_proposal(_fake_proposal(f"toy{i}", img, m), work)
            if i < 3:  # the fourth case has no pick
                store.add_pick(f"toy{i}", k)
    selector, history = train_selector(work, TINY, seed=0, progress=False)
    assert selector.summary["cases"] == ["toy0", "toy1", "toy2"]
    assert len(history.returns) == TINY.n_episodes
    model = selector.save(tmp_path / "model")

    # a data folder (images/ + masks/ PNGs); the proposer is replaced by the toy candidates
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    test_images, test_masks, test_picks = make_toys(3, seed=10)
    by_id = {}
    for i, (img, m, k) in enumerate(zip(test_images, test_masks, test_picks, strict=True)):
        Image.fromarray((img[0] * 255).astype(np.uint8)).save(data / "images" / f"t{i}.png")
        Image.fromarray(m[k].astype(np.uint8) * 255).save(data / "masks" / f"t{i}.png")
        by_id[f"t{i}"] = (img, m, k)
    monkeypatch.setattr(propose, "propose_case",
                        lambda case, config=None, channels="flair", seed=0:
                        _fake_proposal(case.case_id, *by_id[case.case_id][:2]))
    out = segment_folder(model, data, tmp_path / "auto", progress=False)
    assert sorted(out["selection"]) == ["t0", "t1", "t2"] and out["skipped"] == []
    assert (tmp_path / "auto" / "t0.png").is_file()
    report = json.loads((tmp_path / "auto" / "selection.json").read_text(encoding="utf-8"))
    assert report["mode"] == "automatic" and len(report["cases"]["t1"]["scores"]) == len(by_id["t1"][1])

    points = {cid: interior_point(m[k]) for cid, (_, m, k) in by_id.items() if cid != "t2"}
    out = segment_folder(model, data, tmp_path / "click", mode="one-click", points=points, progress=False)
    assert sorted(out["selection"]) == ["t0", "t1"]
    assert out["skipped"] == [("t2", "no click point for this case")]
    for rec in out["selection"].values():
        assert rec["index"] in rec["containing"]


def test_registered_selector_on_given_proposals_trains_as_the_array_trainer():
    """What `bench stember` does through the registry: the selector fitted on given proposals (oracle picks) with
    `eval_cases` records the same accuracy curves and selects as `train_selector_arrays` with those arrays."""
    import dataclasses
    from types import SimpleNamespace

    from scarceseg.io.case import Case
    from scarceseg.methods import registry

    def cases_of(toys, prefix):
        props, cases = {}, []
        for i, (image, masks, pick) in enumerate(zip(*toys, strict=True)):
            cid = f"{prefix}{i}"
            props[cid] = SimpleNamespace(case_id=cid, image=image, masks=masks)
            cases.append(Case(image=image, spacing=(1.0, 1.0), case_id=cid, label=masks[pick]))
        return props, cases

    train, test = make_toys(4, seed=2), make_toys(3, seed=3)
    (p_train, c_train), (p_test, c_test) = cases_of(train, "a"), cases_of(test, "b")
    props = {**p_train, **p_test}
    cfg = dataclasses.replace(TINY, device="cpu")
    method = registry.get("selector")({"input_size": 32, "channels": [8, 16, 16, 16], "hidden": 32,
                                       "n_episodes": 12, "eval_every": 6, "device": "cpu"})
    method.set_inference(proposals=lambda case: props[case.case_id])
    method.eval_cases = {"test": c_test}
    hist = method.fit(c_train, seed=0)
    selector, ref = train_selector_arrays(*train, config=cfg, seed=0, eval_sets={"test": test})
    assert hist["accuracy"] == ref.accuracy and hist["cases"] == ["a0", "a1", "a2", "a3"]
    for case, (image, masks) in zip(c_test, zip(test[0], test[1], strict=True), strict=True):
        assert method.predict(case).extra["index"] == selector.select_automatic(image, masks)[0]
