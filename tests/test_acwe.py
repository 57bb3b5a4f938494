"""ACWE ConvNet (paper 003): energy against hand-computed values, the RCNN, the four modes, determinism,
save/load, the ROI preparation, the classical baselines, the CLI with tiny budgets, and real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scarceseg.cluster.acwe import (
    HEAVISIDES,
    acwe_energy_numpy,
    acwe_loss,
    acwe_terms,
    classical_acwe,
    heaviside,
    heaviside_numpy,
    label_loss,
    label_loss_numpy,
    length_term,
    pick_phase,
)
from scarceseg.errors import InputError
from scarceseg.methods.acwe import ACWESegmenter
from scarceseg.methods.acwe_config import ACWEConfig
from scarceseg.methods.acwe_data import choose_labelled
from scarceseg.metrics import dice
from scarceseg.nets.rcnn import RCNN, RecurrentConvLayer, count_parameters
from scarceseg.preprocess.roi import prepare, roi_mask, to_image_grid, to_input_grid


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Train on one thread: on a shared 2-core machine two torch threads can run ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- the energy ----------------------------------------------------------------------------------------
IMAGE_4X4 = np.array([[0.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 1.0, 0.0],
                      [0.0, 1.0, 0.5, 0.0],
                      [0.0, 0.0, 0.0, 0.2]])
INSIDE_4X4 = np.zeros((4, 4), dtype=bool)
INSIDE_4X4[1:3, 1:3] = True
# By hand: inside {1, 1, 1, 0.5}: c1 = 0.875, sum (g - c1)^2 = 3 * 0.125^2 + 0.375^2 = 0.1875.
# Outside: eleven 0 and one 0.2: c2 = 0.2 / 12 = 1/60, sum (g - c2)^2 = 11/3600 + (11/60)^2 = 132/3600.
# Area 4, nu = 0.004: 0.016.  E = 0.1875 + 132/3600 + 0.016.
HAND_ENERGY = 0.1875 + 132 / 3600 + 0.016


def test_energy_4x4_by_hand():
    assert acwe_energy_numpy(INSIDE_4X4, IMAGE_4X4) == pytest.approx(HAND_ENERGY, abs=1e-9)
    assert acwe_energy_numpy(INSIDE_4X4, IMAGE_4X4, normalise=True) == pytest.approx(HAND_ENERGY / 16, abs=1e-9)
    # ROI without the 0.2 pixel: outside is eleven zeros (c2 = 0, no fit error); normalised by 15 pixels
    roi = np.ones((4, 4), dtype=bool)
    roi[3, 3] = False
    assert acwe_energy_numpy(INSIDE_4X4, IMAGE_4X4, roi) == pytest.approx(0.1875 + 0.016, abs=1e-9)
    assert acwe_energy_numpy(INSIDE_4X4, IMAGE_4X4, roi, normalise=True) == pytest.approx(0.2035 / 15, abs=1e-9)
    # the weights: lambda1 = 2 doubles the inside fit, nu = 0 drops the area
    assert acwe_energy_numpy(INSIDE_4X4, IMAGE_4X4, nu=0.0, lambda1=2.0) == pytest.approx(0.375 + 132 / 3600)


def test_torch_energy_4x4_matches_hand_value():
    # "clip" Heaviside: H = clip(f + 1/2, 0, 1), so scores +-1/2 give an exactly binary H
    scores = torch.from_numpy(np.where(INSIDE_4X4, 0.5, -0.5))[None, None]
    image = torch.from_numpy(IMAGE_4X4)[None, None]
    terms = acwe_terms(scores, image, kind="clip")
    assert float(terms["energy"][0]) == pytest.approx(HAND_ENERGY, abs=1e-9)
    assert float(terms["c1"][0]) == pytest.approx(0.875, abs=1e-6)
    assert float(terms["c2"][0]) == pytest.approx(1 / 60, abs=1e-6)
    assert float(acwe_loss(scores, image, kind="clip")) == pytest.approx(HAND_ENERGY / 16, abs=1e-9)
    # a sharp sigmoid is the hard energy up to exp(-large)
    sharp = torch.from_numpy(np.where(INSIDE_4X4, 30.0, -30.0))[None, None]
    assert float(acwe_terms(sharp, image, kind="sigmoid", eps=1.0)["energy"][0]) == pytest.approx(HAND_ENERGY, abs=1e-9)


def test_length_term_of_a_vertical_edge():
    h = np.zeros((4, 4))
    h[:, :2] = 1.0
    ht = torch.from_numpy(h)[None, None]
    # three pixels (rows 0-2, column 1) see a jump of 1 to the right; the six others only sqrt(1e-8)
    assert float(length_term(ht, torch.ones_like(ht))[0]) == pytest.approx(3 + 6e-4, abs=1e-6)
    assert acwe_energy_numpy(h, np.zeros((4, 4)), nu=0.0, mu=1.0) == pytest.approx(3 + 6e-4, abs=1e-6)


@pytest.mark.parametrize("kind", HEAVISIDES)
def test_heaviside_half_at_zero_and_monotone(kind):
    f = torch.linspace(-3, 3, 61, dtype=torch.float64)
    h = heaviside(f, kind, eps=0.5)
    assert float(h[30]) == pytest.approx(0.5)
    assert bool((h[1:] >= h[:-1]).all()) and float(h.min()) >= 0 and float(h.max()) <= 1
    np.testing.assert_allclose(h.numpy(), heaviside_numpy(f.numpy(), kind, eps=0.5), atol=1e-12)
    with pytest.raises(ValueError, match="unknown Heaviside"):
        heaviside(f, "step")


def test_soft_energy_and_label_loss_match_numpy(rng):
    scores = rng.normal(size=(2, 1, 9, 11))
    image = rng.random((2, 1, 9, 11))
    roi = rng.random((2, 1, 9, 11)) > 0.2
    target = rng.random((2, 1, 9, 11)) > 0.6
    st, it, rt, ut = (torch.from_numpy(a) for a in (scores, image, roi, target))
    for kind in HEAVISIDES:
        terms = acwe_terms(st, it, rt, nu=0.01, mu=0.3, kind=kind, eps=0.7)
        for b in range(2):
            h = heaviside_numpy(scores[b, 0], kind, eps=0.7)
            ref = acwe_energy_numpy(h, image[b, 0], roi[b, 0], nu=0.01, mu=0.3)
            assert float(terms["energy"][b]) == pytest.approx(ref, rel=1e-9)
        loss = float(label_loss(st, ut, rt, kind=kind, eps=0.7, length_weight=0.5))
        refs = [label_loss_numpy(heaviside_numpy(scores[b, 0], kind, 0.7), target[b, 0], roi[b, 0], 0.5, True)
                for b in range(2)]
        assert loss == pytest.approx(np.mean(refs), rel=1e-9)


def test_acwe_loss_has_a_gradient():
    f = torch.zeros((1, 1, 8, 8), requires_grad=True)
    image = torch.zeros((1, 1, 8, 8))
    image[..., 2:5, 2:5] = 1.0
    acwe_loss(f + 0.01 * image, image, eps=0.1).backward()
    assert f.grad is not None and float(f.grad.abs().sum()) > 0


# ---- the network -----------------------------------------------------------------------------------------
def test_rcnn_layout():
    net = RCNN()
    x = torch.rand(2, 1, 20, 24)
    assert net(x).shape == (2, 1, 20, 24)
    rcls = [m for m in net.modules() if isinstance(m, RecurrentConvLayer)]
    assert len(rcls) == 3 and all(r.steps == 3 and len(r.norms) == 4 for r in rcls)  # T = 3, BN per step
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 2 + 3 * 2  # two regular layers; each RCL: feed-forward + one shared recurrent kernel
    assert isinstance(net.head[-1], torch.nn.PReLU)  # PReLU in the last layer too
    assert net.receptive_field() == 27
    assert count_parameters(net) == count_parameters(RCNN(width=16))


# ---- the method ------------------------------------------------------------------------------------------
def disks(n: int, seed: int = 0, side: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Bright disks (0.9) on a dark background (0.1) with a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    images, masks = [], []
    for _ in range(n):
        cy, cx, r = rng.uniform(12, side - 12), rng.uniform(12, side - 12), rng.uniform(5, 9)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        images.append(0.1 + 0.8 * m + rng.normal(0, 0.05, m.shape))
        masks.append(m)
    return images, masks


def disk_config(**changes) -> ACWEConfig:
    base = dict(size=32, epochs=20, batch_size=4, finetune_steps=10, roi="none", window="percentile")
    return ACWEConfig.cpu(**{**base, **changes})


def test_unsupervised_model_segments_a_bright_disk():
    images, masks = disks(12)
    model = ACWESegmenter(disk_config())
    history = model.fit(images[:8], mode=1, seed=0)
    assert history["stages"][0]["curve"][-1] < history["stages"][0]["curve"][0]
    scores = [dice(model.predict(im)[1], m) for im, m in zip(images[8:], masks[8:], strict=True)]
    assert min(scores) > 0.95, scores
    prob, mask = model.predict(images[8])
    assert prob.dtype == np.float32 and ((prob > 0.5) == mask).mean() > 0.99


def test_same_seed_same_weights_and_result():
    images, _ = disks(6)
    cfg = disk_config(epochs=3)
    a, b, c = ACWESegmenter(cfg), ACWESegmenter(cfg), ACWESegmenter(cfg)
    torch.manual_seed(123)
    before = torch.rand(1)
    a.fit(images, mode=1, seed=7)
    b.fit(images, mode=1, seed=7)
    c.fit(images, mode=1, seed=8)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), before)  # the global RNG is left alone
    sa, sb, sc = a.net.state_dict(), b.net.state_dict(), c.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    np.testing.assert_array_equal(a.predict(images[0])[1], b.predict(images[0])[1])


def test_modes_two_to_four_and_save_load(tmp_path: Path):
    images, masks = disks(8)
    cfg = disk_config(epochs=2)
    base = ACWESegmenter(cfg)
    base.fit(images, mode=1, seed=0)
    labels = [m if i < 3 else None for i, m in enumerate(masks)]
    tuned = ACWESegmenter(cfg)
    hist = tuned.fit(images, labels, mode=2, seed=0, pretrained=base)
    assert [s["loss"] for s in hist["stages"]] == ["label"] and hist["n_labels"] == 3
    assert tuned.polarity == base.polarity
    alone = ACWESegmenter(cfg)
    assert [s["loss"] for s in alone.fit(images, labels, mode=3, seed=0)["stages"]] == ["acwe", "label"]
    joint = ACWESegmenter(cfg)
    assert [s["loss"] for s in joint.fit(images, labels, mode=4, seed=0)["stages"]] == ["acwe+label"]
    assert joint.polarity == 1
    with pytest.raises(ValueError, match="needs labelled images"):
        ACWESegmenter(cfg).fit(images, mode=2)
    with pytest.raises(ValueError, match="mode must be"):
        ACWESegmenter(cfg).fit(images, mode=5)

    tuned.meta["note"] = "x"
    path = tuned.save(tmp_path / "m")
    info = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert info["format"] == "scarceseg.acwe" and info["mode"] == 2 and info["config"]["nu"] == 0.004
    back = ACWESegmenter.load(path)
    assert back.polarity == tuned.polarity and back.mode == 2 and back.meta["note"] == "x"
    np.testing.assert_array_equal(back.predict(images[0])[0], tuned.predict(images[0])[0])
    (path / "config.json").write_text(json.dumps({**info, "format": "other"}))
    with pytest.raises(InputError, match="not an ACWE model"):
        ACWESegmenter.load(path)
    with pytest.raises(InputError, match="missing"):
        ACWESegmenter.load(tmp_path / "nothing")


def test_config_defaults_are_the_papers():
    c = ACWEConfig()
    assert (c.nu, c.lambda1, c.lambda2, c.mu, c.alpha) == (0.004, 1.0, 1.0, 0.0, 0.4)
    assert (c.n_recurrent, c.steps, c.size, c.n_labels_mode2, c.n_labels_mode3) == (3, 3, 192, 10, 80)
    assert ACWEConfig.cpu().size == 64 and ACWEConfig.cpu(epochs=1).epochs == 1
    assert ACWEConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError):
        ACWEConfig(roi="skull")
    with pytest.raises(ValueError):
        ACWEConfig.from_dict({"bogus": 1})
    assert ACWEConfig().with_data_preset("la").roi == "centre"


def test_choose_labelled_spreads_over_patients_and_nests():
    case_patient = {f"p{p}_s{s}": f"p{p}" for p in range(5) for s in range(4)}
    ten = choose_labelled(case_patient, 10, seed=3)
    five = choose_labelled(case_patient, 5, seed=3)
    assert len(ten) == 10 and set(five) <= set(ten)
    assert len({case_patient[c] for c in five}) == 5  # one per patient first
    assert choose_labelled(case_patient, 10, seed=3) == ten
    assert choose_labelled(case_patient, None) == list(case_patient)
    assert choose_labelled(case_patient, 99) == list(case_patient)


# ---- region of interest and baselines -------------------------------------------------------------------
def test_prepare_centre_roi_and_grids():
    image = np.zeros((40, 20))
    image[15:25, 6:14] = 1.0
    roi = roi_mask(image, "centre", centre_fraction=0.5)
    assert roi.sum() == 20 * 10 and roi[10:30, 5:15].all()
    prep = prepare(image, size=16, roi="centre", window="percentile", centre_fraction=0.5)
    assert prep.x.shape == (16, 16) and prep.box == (10, 30, 5, 15) and prep.roi.all()
    assert 0.0 <= prep.x.min() and prep.x.max() <= 1.0
    truth = image > 0.5
    soft = to_input_grid(truth, prep)
    back = to_image_grid(soft - 0.5, prep)
    assert dice(back, truth) > 0.9 and not back[~roi].any()


def test_prepare_brain_roi_median_window():
    image = np.zeros((64, 64))
    yy, xx = np.mgrid[:64, :64]
    head = (yy - 32) ** 2 + (xx - 32) ** 2 < 28**2
    image[head] = 0.5
    image[(yy - 32) ** 2 + (xx - 32) ** 2 > 26**2] *= 2  # a bright scalp ring, thinner than the rim
    image[28:36, 28:36] = 0.9  # a hyperintense lesion
    prep = prepare(image, size=32, roi="brain", window="median")
    assert not prep.full_roi[32, 5] and prep.full_roi[32, 32]  # the scalp is left out
    assert prep.x.min() == 0.0 and prep.x.max() == pytest.approx(1.0)  # tissue at 0, lesion at 1


def test_classical_baselines_find_a_bright_square():
    x = np.full((32, 32), 0.1)
    x[10:20, 12:22] = 0.9
    assert dice(classical_acwe(x, method="chan_vese"), x > 0.5) == 1.0
    assert dice(classical_acwe(x, method="morphological_chan_vese"), x > 0.5) > 0.95  # smoothing rounds corners
    assert pick_phase(x < 0.5, x).sum() == 100  # the brighter phase, whichever the level set called inside
    with pytest.raises(ValueError):
        classical_acwe(x, method="snake")


# ---- command line ------------------------------------------------------------------------------------------
def _run(*args):
    from typer.testing import CliRunner

    from scarceseg.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_train_segment_bench_on_sample_data(tmp_path: Path):
    data = tmp_path / "data"
    assert _run("sample-data", "--out", data, "--n", "6", "--seed", "2").exit_code == 0
    tiny = ("--epochs", "1", "--finetune-steps", "2", "--size", "32")
    r1 = _run("train", "acwe", "--data", data, "--mode", "1", "--out", tmp_path / "m1", *tiny)
    assert r1.exit_code == 0, r1.output
    assert "mode 1" in r1.output and (tmp_path / "m1" / "model.safetensors").is_file()
    r2 = _run("train", "acwe", "--data", data, "--mode", "2", "--init", tmp_path / "m1", "--labels", "2",
              "--out", tmp_path / "m2", *tiny)
    assert r2.exit_code == 0, r2.output
    assert "2 labelled" in r2.output
    seg = _run("segment", "--model", tmp_path / "m2", "--data", data, "--out", tmp_path / "pred", "--workers", "1")
    assert seg.exit_code == 0, seg.output
    assert len(list((tmp_path / "pred").glob("*.png"))) == 6
    bad = _run("train", "acwe", "--data", data, "--mode", "5", "--out", tmp_path / "m5")
    assert bad.exit_code == 1 and bad.output.startswith("error:")
    bench = _run("bench", "acwe", "--data", data, "--out", tmp_path / "bench", "--n-train", "4", "--n-test", "2",
                 "--paper-timing", "0",
                 *tiny)
    assert bench.exit_code == 0, bench.output
    report = (tmp_path / "bench" / "report.md").read_text(encoding="utf-8")
    assert "mode4" in report and "chan_vese" in report and "ConvNet batch 32" in report
    summary = json.loads((tmp_path / "bench" / "data" / "mode1" / "summary.json").read_text(encoding="utf-8"))
    assert summary["dice"]["n"] >= 1


def test_cli_volumes_train_and_segment_as_slices(tmp_path: Path):
    import h5py

    rng = np.random.default_rng(0)
    for k in range(3):
        image = rng.normal(0, 0.1, (24, 20, 5)).astype(np.float32)  # UA-MT (H, W, D)
        label = np.zeros(image.shape, dtype=np.uint8)
        label[8:16, 6:14, 1:4] = 1
        image[label > 0] += 2.0
        folder = tmp_path / "la" / "cases" / f"case{k}"
        folder.mkdir(parents=True)
        with h5py.File(folder / "mri_norm2.h5", "w") as f:
            f["image"], f["label"] = image, label
    result = _run("train", "acwe", "--data", tmp_path / "la", "--mode", "4", "--out", tmp_path / "m",
                  "--epochs", "2", "--size", "16")
    assert result.exit_code == 0, result.output
    assert "on 9 images" in result.output  # 3 volumes x 3 slices with the atrium
    assert json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))["config"]["roi"] == "centre"
    seg = _run("segment", "--model", tmp_path / "m", "--data", tmp_path / "la", "--out", tmp_path / "pred",
               "--workers", "1")
    assert seg.exit_code == 0, seg.output
    from scarceseg.io import read_mask

    mask = read_mask(tmp_path / "pred" / "case0.nii.gz")
    assert mask.shape == (5, 24, 20)


# ---- real data ---------------------------------------------------------------------------------------------
@pytest.mark.data
def test_lgg_small_run(shared_data: Path):
    from scarceseg.datasets import open_dataset, split_patients
    from scarceseg.methods.acwe_data import select_channel

    lgg = shared_data / "lgg"
    if not lgg.is_dir():
        pytest.skip(f"no LGG data at {lgg}")
    ds = open_dataset(lgg)
    parts = split_patients(ds, (0.5, 0.5), seed=0)
    train_ids, test_ids = parts["train"][::15][:32], parts["test"][::40][:8]
    cfg = ACWEConfig.cpu(size=32, epochs=8).with_data_preset("lgg")
    model = ACWESegmenter(cfg)
    train = [model.prepare(select_channel(ds.load(c))) for c in train_ids]
    model.fit(train, mode=1, seed=0)
    cnn, cv = [], []
    for cid in test_ids:
        case = ds.load(cid)
        prep = model.prepare(select_channel(case))
        mask = model.predict_prepared([prep])[0]
        assert mask.shape == case.shape and not (mask & ~prep.full_roi).any()
        cnn.append(dice(mask, case.target))
        cv.append(dice(to_image_grid(classical_acwe(prep.x, prep.roi).astype(float) - 0.5, prep), case.target))
    assert np.isfinite(cnn).all() and np.isfinite(cv).all()
    # 32 steps on 32 slices already find the hyperintense tissue (measured: ConvNet 0.47, chan_vese 0.43)
    assert np.mean(cnn) > 0.3 and np.mean(cv) > 0.3


def test_negate_output_flips_the_sign_exactly():
    from scarceseg.nets.rcnn import negate_output

    torch.manual_seed(0)
    net = RCNN(width=4).eval()
    with torch.no_grad():
        net.head[1].running_mean.fill_(0.3)
        net.head[1].bias.fill_(0.2)
    x = torch.rand(2, 1, 12, 12)
    before = net(x)
    a = float(net.head[2].weight.detach())
    assert negate_output(net)
    after = net(x)
    torch.testing.assert_close(after, -before / a)
    with torch.no_grad():
        net.head[2].weight.fill_(-0.1)
    assert not negate_output(net)


def _square_cases(n: int = 3, size: int = 48, labelled: int | None = None):
    """``n`` one-channel cases with a bright square; the first ``labelled`` (default all) carry its mask."""
    from scarceseg.io.case import Case

    rng = np.random.default_rng(5)
    cases = []
    for i in range(n):
        image = rng.normal(100, 10, (size, size)).astype(np.float32)
        truth = np.zeros((size, size), bool)
        truth[12 + i : 30 + i, 14:32] = True
        image[truth] += 80
        keep = labelled is None or i < labelled
        cases.append(Case(image=image[None], spacing=(1.0, 1.0), case_id=f"c{i}", label=truth if keep else None))
    return cases


def test_registered_acwe_fine_tunes_a_saved_mode1_on_the_labelled_cases(tmp_path: Path):
    """What `bench acwe` does through the registry: mode 1 saved, mode 2 fine-tunes it (option `pretrained`)
    on the cases that have a label, exactly as the model class given the mode-1 model."""
    from scarceseg.methods import registry

    tiny = {"size": 32, "epochs": 1, "finetune_steps": 3, "data_preset": "la"}
    mode1 = registry.get("acwe")(tiny)
    mode1.fit(_square_cases(labelled=0), seed=0)
    mode1.save(tmp_path / "m1")
    mode2 = registry.get("acwe")({**tiny, "mode": 2, "pretrained": str(tmp_path / "m1")})
    cases = _square_cases(labelled=1)
    hist = mode2.fit(cases, seed=0)
    assert hist["n_images"] == 3 and hist["n_labels"] == 1 and "pretrained" in hist
    ref = ACWESegmenter(mode2.model.config)
    ref.fit([c.image[0] for c in cases], [c.label for c in cases], mode=2, seed=0, pretrained=mode1.model)
    for a, b in zip(ref.net.state_dict().values(), mode2.model.net.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="needs labelled cases"):
        registry.get("acwe")({**tiny, "mode": 2}).fit(_square_cases(labelled=0))
