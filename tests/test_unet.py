"""The 16-layer U-Net and the U-Net baseline: shapes, a tiny fit, determinism, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scarceseg.methods.unet_baseline import UNetBaseline, UNetConfig
from scarceseg.nets.unet import build_unet, count_conv_layers, pad_to_multiple


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _toy_set(n: int = 4, size: int = 64, seed: int = 0):
    """Bright squares on a noisy dark background; the mask is the square."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), dtype=bool)
        y, x = rng.integers(8, size - 24, 2)
        mask[y : y + 14, x : x + 14] = True
        image = 20 + 5 * rng.random((1, size, size), dtype=np.float32)
        image[0][mask] += 100
        images.append(image)
        masks.append(mask)
    return images, masks


TINY = UNetConfig(lr=1e-3, loss="dice_bce", epochs=6, batch_size=2)


def test_network_shape_and_sixteen_layers():
    net = build_unet(3, 1)
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 1, 64, 64)
    assert count_conv_layers(net) == 16
    assert count_conv_layers(build_unet(1, variant="fair")) == 16
    with pytest.raises(ValueError, match="variant"):
        build_unet(1, variant="nope")


def test_pad_to_multiple_and_crop_back():
    a = np.ones((2, 50, 64), dtype=np.float32)
    padded, crop = pad_to_multiple(a, 32)
    assert padded.shape == (2, 64, 64) and padded[:, 50:].sum() == 0
    np.testing.assert_array_equal(padded[crop], a)


def test_paper_and_fair_configs():
    paper = UNetConfig()
    assert (paper.batch_size, paper.lr, paper.loss, paper.epochs, paper.augment) == (4, 1e-5, "neg_dice", 50, False)
    fair = UNetConfig.fair()
    assert fair.augment and fair.lr == 1e-3 and fair.loss == "dice_bce" and fair.lr_schedule == "cosine"
    assert UNetConfig.from_dict(fair.to_dict()) == fair
    with pytest.raises(ValueError, match="loss"):
        UNetConfig(loss="mse")


def test_tiny_fit_reduces_loss_and_keeps_global_rng():
    images, masks = _toy_set()
    state = torch.get_rng_state()
    history = UNetBaseline(TINY).fit(images, masks, seed=0, progress=False)
    assert torch.equal(state, torch.get_rng_state())
    assert len(history["loss"]) == 6 and history["steps"] == 12
    assert history["loss"][-1] < history["loss"][0]


def test_same_seed_identical_weights_other_seed_differs():
    images, masks = _toy_set()
    cfg = UNetConfig(lr=1e-3, loss="dice_bce", epochs=2, batch_size=2, augment=True, variant="fair")
    a, b, c = UNetBaseline(cfg), UNetBaseline(cfg), UNetBaseline(cfg)
    a.fit(images, masks, seed=1, progress=False)
    b.fit(images, masks, seed=1, progress=False)
    c.fit(images, masks, seed=2, progress=False)
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_predict_save_load(tmp_path):
    images, masks = _toy_set()
    model = UNetBaseline(UNetConfig(lr=1e-3, loss="dice_bce", epochs=2, batch_size=4))
    model.meta["channels"] = "flair"
    model.fit(images, masks, seed=0, progress=False)
    prob, mask = model.predict(images[0][:, :50, :60])
    assert prob.shape == (50, 60) and prob.dtype == np.float32 and mask.dtype == bool
    assert 0.0 <= prob.min() and prob.max() <= 1.0
    np.testing.assert_array_equal(mask, prob > 0.5)

    folder = model.save(tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert info["in_channels"] == 1 and info["config"]["lr"] == 1e-3 and info["meta"]["channels"] == "flair"
    loaded = UNetBaseline.load(folder)
    for image in images:
        p1, m1 = model.predict(image)
        p2, m2 = loaded.predict(image)
        np.testing.assert_array_equal(p1, p2)
        np.testing.assert_array_equal(m1, m2)
    with pytest.raises(ValueError, match="expected an image"):
        loaded.predict(np.zeros((3, 64, 64), np.float32))


def test_load_rejects_a_folder_without_model(tmp_path):
    from scarceseg.errors import InputError

    with pytest.raises(InputError, match="missing"):
        UNetBaseline.load(tmp_path)


def test_train_and_segment_an_lgg_style_folder(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from scarceseg.methods.unet_data import segment_folder_unet, train_unet_from_dataset

    images, masks = _toy_set(n=3)
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    ids = []
    for i, (image, mask) in enumerate(zip(images, masks, strict=True)):
        cid = f"TCGA_XX_{i:04d}_20000101_{i + 1}"
        rgb = np.repeat(np.clip(image[0], 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        tifffile.imwrite(data / "images" / f"{cid}.tif", rgb)
        tifffile.imwrite(data / "masks" / f"{cid}_mask.tif", mask.astype(np.uint8) * 255)
        ids.append(cid)

    cfg = UNetConfig(lr=1e-3, loss="dice_bce", epochs=1)
    history = train_unet_from_dataset(data, ids[:2], tmp_path / "model", cfg, channels="flair", seed=0,
                                      progress=False)
    assert history["steps"] == 1 and (tmp_path / "model" / "history.json").is_file()
    info = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    assert info["meta"]["channels"] == "flair" and info["meta"]["case_ids"] == ids[:2]

    result = segment_folder_unet(tmp_path / "model", data, tmp_path / "masks", progress=False)
    assert result["skipped"] == []
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == sorted(f"{c}.png" for c in ids)
