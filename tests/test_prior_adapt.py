"""The adapted prior (a fine-tuned copy of LiteMedSAM's mask decoder): seeding, save/load, learning, the bench."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from scarceseg.prior.adapt import AdaptConfig, AdaptedPrior, jittered_box
from scarceseg.prior.embeddings import EmbeddingStore
from scarceseg.prior.prompts import box_from_mask

SIZE = 64


def toy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One bright disk at a random place on a noisy background, ``(image, mask)`` ``(64, 64)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centre, radius = rng.integers(18, SIZE - 18, 2), int(rng.integers(7, 12))
    mask = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    return (60 + 120 * mask + rng.normal(0, 10, mask.shape)).astype(np.float32), mask


TRAIN = [toy(s) for s in range(2)]
TOY = AdaptConfig(steps=2, batch_size=2, lr=1e-4, jitter=4)  # each update: 2 decoder passes, about 1 s each


@pytest.fixture(scope="module")
def store(prior, tmp_path_factory):
    """The real prior (conftest's fixture), with embeddings kept on disk in a temporary folder."""
    return EmbeddingStore(prior, folder=tmp_path_factory.mktemp("emb"))


@pytest.fixture(scope="module")
def adapted(store):
    model = AdaptedPrior(TOY, store=store)
    history = model.fit(TRAIN, seed=0)
    return model, history


def _state(model: AdaptedPrior) -> dict:
    return {k: v.clone() for k, v in model.decoder.state_dict().items()}


def test_jittered_box_grows_each_side_within_the_jitter_and_replays():
    mask = np.zeros((20, 20), dtype=bool)
    mask[5:9, 6:12] = True
    boxes = [jittered_box(mask, 3, np.random.default_rng(7)) for _ in range(2)]
    assert boxes[0] == boxes[1]
    y0, x0, y1, x1 = boxes[0]
    assert 2 <= y0 <= 5 and 3 <= x0 <= 6 and 8 <= y1 <= 11 and 11 <= x1 <= 14
    assert jittered_box(mask, 0, np.random.default_rng(0)) == box_from_mask(mask)
    edge = np.zeros((20, 20), dtype=bool)
    edge[0:3, 17:20] = True
    assert all(0 <= v <= 19 for v in jittered_box(edge, 5, np.random.default_rng(1)))  # clipped to the image


def test_before_fitting_it_is_the_zero_shot_prior(store):
    image, mask = toy(5)
    box = box_from_mask(mask, 5)
    ours = AdaptedPrior(TOY, store=store).predict(image, box=box)
    theirs = store.prior.predict(image, box=box)
    assert ours.prob.shape == image.shape and ours.logits.shape == (256, 256)
    np.testing.assert_allclose(ours.prob, theirs.prob, atol=2e-3)  # the store rounds embeddings to float16


def test_same_seed_same_weights_and_predictions(store, adapted):
    first, history = adapted
    assert history["steps"] == 2 and len(history["loss"]) == 2 and history["n_train"] == 2
    again = AdaptedPrior(TOY, store=store)
    again.fit(TRAIN, seed=0)
    a, b = _state(first), _state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    pretrained = store.prior.net.mask_decoder.state_dict()
    assert any(not torch.equal(a[k], pretrained[k].cpu()) for k in a)  # it moved, and the prior's own did not
    image, mask = toy(9)
    box = box_from_mask(mask, 5)
    np.testing.assert_array_equal(first.predict(image, box=box).prob, again.predict(image, box=box).prob)
    other = AdaptedPrior(TOY, store=store)
    other.fit(TRAIN, seed=1)
    assert any(not torch.equal(a[k], v) for k, v in _state(other).items())


def test_save_then_load_predicts_the_same(store, adapted, tmp_path):
    model, _ = adapted
    folder = model.save(tmp_path / "adapted")
    assert (folder / "decoder.safetensors").is_file()
    info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert info["format"] == "scarceseg.prior_adapted" and info["config"] == TOY.to_dict()
    loaded = AdaptedPrior.load(folder, store=store)
    assert loaded.config == TOY and loaded.meta["adapted"] and loaded.meta["seed"] == 0
    image, mask = toy(11)
    for prompt in ({"box": box_from_mask(mask, 5)}, {"points": [tuple(int(v) for v in np.argwhere(mask).mean(0))],
                                                     "labels": [1]}):
        np.testing.assert_array_equal(model.predict(image, **prompt).prob, loaded.predict(image, **prompt).prob)
    from scarceseg.errors import InputError

    with pytest.raises(InputError, match="missing"):
        AdaptedPrior.load(tmp_path / "nothing", store=store)


def test_adapting_lowers_the_training_loss(store):
    """Fixed boxes (no jitter) and the whole set in each batch: the loss of the same batch must go down."""
    model = AdaptedPrior(AdaptConfig(steps=4, batch_size=2, lr=3e-4, jitter=0), store=store)
    history = model.fit(TRAIN, seed=0)
    assert history["loss"][-1] < history["loss"][0]


def test_fit_refuses_an_empty_mask(store):
    from scarceseg.errors import InputError

    image, mask = TRAIN[0]
    with pytest.raises(InputError, match="empty"):
        AdaptedPrior(TOY, store=store).fit([(image, np.zeros_like(mask))])


@pytest.mark.slow
def test_bench_cli_end_to_end_on_sample_data(store, tmp_path, monkeypatch):
    """`bench prior-adapt` on 6 sample patients: 2 shots, 1 seed, 1 update, 2 test slices, box and click."""
    from typer.testing import CliRunner

    import scarceseg.prior.model as prior_model
    from scarceseg.cli import app
    from scarceseg.datasets.sample import make_sample_data

    monkeypatch.setattr(prior_model, "_SHARED", store.prior)  # the module's prior, no second load
    data, out = tmp_path / "data", tmp_path / "out"
    make_sample_data(data, n=6, seed=0)
    args = ["bench", "prior-adapt", "--data", str(data), "--out", str(out), "--shots", "2", "--seeds", "1",
            "--steps", "1", "--test-slices", "2", "--every", "1", "--click", "grow"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "adapted - zero-shot" in r.output
    with (out / "per_slice.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 2  # prompts x models x slices
    assert {(r["prompt"], r["model"]) for r in rows} == {(p, m) for p in ("box", "click")
                                                         for m in ("zero-shot", "adapted")}
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["paired_adapted_minus_zero_shot"]) == {"box", "click"}
    assert summary["settings"]["adapt_config"]["steps"] == 1
    assert not set(summary["settings"]["test"]) & {c for ids in summary["settings"]["train"].values() for c in ids}
    assert (out / "dice_zero_shot_vs_adapted.png").stat().st_size > 1000
    assert (out / "adapted_seed0" / "decoder.safetensors").is_file()
    assert len(list((out / "emb_cache").glob("*.npy"))) == 4
    bad = CliRunner().invoke(app, [*args[:6], "--click", "nonsense"])
    assert bad.exit_code != 0 and "nonsense" in bad.output
