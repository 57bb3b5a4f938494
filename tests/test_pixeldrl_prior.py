"""Paper 004's pixel agents on the prior's frozen embedding (``PixelDRLConfig.prior``): a toy task, same seed,
save/load, and the paper's VGG configuration still builds and old folders still load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scarceseg.io.case import Case
from scarceseg.methods.adapters import PixelDRLPriorMethod
from scarceseg.methods.contract import Budget
from scarceseg.methods.pixeldrl import PixelDRL
from scarceseg.methods.pixeldrl_config import PixelDRLConfig
from scarceseg.methods.prior_fewshot import EmbeddingStore
from scarceseg.nets.pixeldrl_net import PixelDRLNet, PriorPixelDRLNet

SIZE = 64


def toy(seed: int) -> Case:
    """One bright disk at a random place on a noisy background, as a one-channel FLAIR case."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    cy, cx = rng.integers(18, SIZE - 18, 2)
    mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= int(rng.integers(7, 12)) ** 2
    image = (60 + 120 * mask + rng.normal(0, 10, mask.shape)).astype(np.float32)
    return Case(image[None], (1.0, 1.0), case_id=f"t{seed}", patient_id=f"p{seed}", label=mask.astype(np.int32),
                channel_names=("FLAIR",))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1))


@pytest.fixture(scope="module")
def store(prior, tmp_path_factory):
    """The real prior (conftest's fixture); embeddings cached on disk so every test encodes each image once."""
    return EmbeddingStore(prior, folder=tmp_path_factory.mktemp("emb"))


# 3 toy slices at a 64x64 agents' grid, 60 updates of batch 2 (warm start, then PA3C + the oracle term). The
# prior encodes each 64x64 toy image at 256x256: about 4 CPU s each, most of this file's time.
TOY = {"size": 64, "batch_size": 2}
TOY_STEPS = 60


@pytest.fixture(scope="module")
def trained(store):
    method = PixelDRLPriorMethod(TOY, store=store)
    history = method.fit([toy(s) for s in range(3)], Budget(steps=TOY_STEPS), seed=0)
    return method, history


def test_learns_a_toy_task(trained):
    method, history = trained
    assert history["steps"] == TOY_STEPS and history["warm_steps"] == int(0.6 * TOY_STEPS)
    assert isinstance(method.model.net, PriorPixelDRLNet)
    assert method.model.config.features == "prior" and method.model.config.size == SIZE
    case = toy(100)
    assert dice(method.predict(case).mask, case.target) > 0.7


def test_only_the_heads_are_parameters(trained):
    method, _ = trained
    n = method.model.n_parameters
    assert n == sum(p.numel() for p in method.model.net.parameters())
    assert n < 50_000  # 1x1 reduction 256 -> 32 (8 k), two heads of two 3x3 layers (19 k each), omega


def test_same_seed_same_weights(store):
    cases = [toy(s) for s in range(2)]
    states = []
    for seed in (5, 5, 6):
        method = PixelDRLPriorMethod(TOY, store=store)
        method.fit(cases, Budget(steps=3), seed=seed)
        states.append(method.model.net.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_without_the_intensity_channel(store):
    method = PixelDRLPriorMethod({**TOY, "intensity": False}, store=store)
    method.fit([toy(s) for s in range(2)], Budget(steps=2), seed=0)
    assert method.model.in_channels == 1 and method.predict(toy(100)).mask.shape == (SIZE, SIZE)


def test_save_load_round_trip(trained, store, tmp_path):
    from scarceseg.methods.registry import load_model

    method, _ = trained
    folder = method.save(tmp_path / "m")
    info = json.loads((folder / "method.json").read_text(encoding="utf-8"))
    assert info["method"] == "pixeldrl-prior"
    loaded = load_model(folder)
    assert type(loaded) is PixelDRLPriorMethod and loaded.model.config == method.model.config
    loaded.model._store = store  # the same cached embeddings, no second prior in memory
    case = toy(100)
    np.testing.assert_array_equal(loaded.predict(case).mask, method.predict(case).mask)


def test_paper_config_unchanged_and_old_folders_load(tmp_path):
    paper = PixelDRLConfig.named("paper")
    assert paper == PixelDRLConfig() and paper.features == "vgg" and paper.widths == (32, 64, 128, 256)
    assert PixelDRLConfig.named("prior").features == "prior"
    with pytest.raises(ValueError, match="features"):
        PixelDRLConfig(features="resnet")
    model = PixelDRL(PixelDRLConfig.cpu())
    net = model.build(3)
    assert isinstance(net, PixelDRLNet)
    # a folder written before the "features" field: its config.json has no such key and must load as VGG
    model.net, model.in_channels = net, 3
    folder = model.save(tmp_path / "old")
    cfg_file = folder / "config.json"
    info = json.loads(cfg_file.read_text(encoding="utf-8"))
    for key in ("features", "intensity"):
        info["config"].pop(key)
    cfg_file.write_text(json.dumps(info), encoding="utf-8")
    old = PixelDRL.load(folder)
    assert old.config.features == "vgg" and isinstance(old.net, PixelDRLNet)
    assert old.predict(np.random.default_rng(0).random((3, 40, 40)).astype(np.float32)).shape == (40, 40)
