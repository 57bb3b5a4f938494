"""PixelDRL-MG (paper 004): network shapes, eq. 12 rewards and eq. 8 returns by hand, the documented choices
(f(0) = 1, f(t) = keep actions, terminal bootstrap 0), a toy task, seeding, checkpoint / resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from scarceseg.methods.pixeldrl import PixelDRL
from scarceseg.methods.pixeldrl_baselines import (
    PIXELRL_ADJUSTMENTS,
    PixelRLRefiner,
    build_baseline,
    predict_probability,
    train_supervised,
)
from scarceseg.methods.pixeldrl_config import PixelDRLConfig
from scarceseg.methods.pixeldrl_data import action_map_rgb
from scarceseg.methods.pixeldrl_inputs import prepare_image, prepare_mask
from scarceseg.nets.pixeldrl_net import KEEP, HalfVGG, PixelDRLNet, SelfAttention
from scarceseg.rl.a2c import discounted_returns, kernel_returns, mask_reward


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: these tiny networks are slower with two threads on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_config(**changes) -> PixelDRLConfig:
    base = dict(size=16, widths=(4, 4, 8, 8), fuse_width=8, head_width=8, head_dilations=(1, 2),
                state_in_trunk=False, norm=True, t_max=3, batch_size=4, schedule="cosine", warm_fraction=0.5,
                lr=3e-3, rl_lr=1e-3, rl_sup_coef=1.0, augment=True)
    base.update(changes)
    return PixelDRLConfig(**base)


def squares(n: int = 12, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright squares (side 5-7) on noise: images (n, 1, size, size), masks (n, size, size)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 1, size, size), np.float32)
    g = np.zeros((n, size, size), bool)
    for i in range(n):
        side = int(rng.integers(5, 8))
        y0, x0 = rng.integers(1, size - side - 1, 2)
        g[i, y0 : y0 + side, x0 : x0 + side] = True
        x[i, 0] = rng.normal(0.0, 0.1, (size, size)) + g[i]
    return x, g


# ---- shapes --------------------------------------------------------------------------------------------
def test_half_vgg_has_23_layers_and_four_source_maps():
    vgg = HalfVGG(3, widths=(32, 64, 128, 256))
    assert len(vgg.layers) == 23  # conv1_1 ... conv4_3 with ReLUs and 3 pools, as vgg16().features[:23]
    assert len(HalfVGG(3, norm=True).layers) == 33  # + one instance norm per convolution
    convs = [m for m in vgg.layers if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 10 and all(c.dilation == (2, 2) for c in convs)
    outs = vgg(torch.zeros(1, 3, 32, 32))
    assert [tuple(o.shape) for o in outs] == [(1, 32, 32, 32), (1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4)]


def test_self_attention_eq1_is_spatial_softmax_and_starts_as_identity():
    sam = SelfAttention(4)
    f = torch.rand(2, 4, 5, 6)
    m = sam.attention(f)
    assert m.shape == f.shape
    torch.testing.assert_close(m.sum(dim=(2, 3)), torch.ones(2, 4))
    torch.testing.assert_close(sam(f), f)  # gate starts at 0
    with torch.no_grad():
        sam.gate.fill_(1.0)
    torch.testing.assert_close(sam(f), f + 30 * m * f)


@pytest.mark.parametrize("in_trunk", [True, False])
def test_pixeldrl_net_outputs_at_input_resolution(in_trunk):
    net = PixelDRLNet(3, widths=(4, 4, 8, 8), fuse_width=8, head_width=8, head_dilations=(2, 1),
                      state_in_trunk=in_trunk)
    x, f = torch.rand(2, 3, 24, 32), torch.ones(2, 1, 24, 32)
    logits, value = net(x, f)
    assert logits.shape == (2, 2, 24, 32) and value.shape == (2, 1, 24, 32)
    assert net.encode(x, f).shape == (2, 8, 24, 32)
    torch.testing.assert_close(net.omega.weight[0, 0], torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]))
    if in_trunk:
        with pytest.raises(ValueError, match="state"):
            net.encode(x)


def test_rollout_shapes_f0_is_ones_and_masks_are_the_keep_actions():
    model = PixelDRL(tiny_config())
    net = model.build(1)
    x = torch.rand(2, 1, 16, 16)
    logits, values, actions, masks = model.rollout(net, x, 3, greedy=False, generator=torch.Generator().manual_seed(0))
    assert logits.shape == (3, 2, 2, 16, 16) and values.shape == (3, 2, 1, 16, 16)
    assert actions.shape == (3, 2, 16, 16) and masks.shape == (4, 2, 1, 16, 16)
    assert torch.all(masks[0] == 1)  # f(0) = 1: nothing set to background yet
    for t in range(3):  # f(t) = [a(t) == keep], not f(t-1) with pixels zeroed
        torch.testing.assert_close(masks[t + 1][:, 0], (actions[t] == KEEP).float())


def test_predict_shapes_and_steps(tmp_path):
    x, g = squares(4)
    model = PixelDRL(tiny_config())
    model.fit(x, g, steps=2)
    raw = np.random.default_rng(0).random((1, 40, 24)).astype(np.float32) * 100
    mask, steps = model.predict(raw, return_steps=True)
    assert mask.shape == (40, 24) and mask.dtype == bool and steps.shape == (3, 40, 24)
    assert np.array_equal(mask, steps[-1])
    assert model.predict_prepared(x[:2], t_max=5).shape == (5, 2, 16, 16)
    assert model.predict_prepared(x[:2], out_size=(32, 32)).shape == (3, 2, 32, 32)
    assert prepare_image(raw, 16).shape == (1, 16, 16) and prepare_mask(raw[0] > 50, 16).shape == (16, 16)


def test_baselines_shapes():
    x, g = squares(4, size=64)
    for name in ("unet", "attention_unet"):
        net = build_baseline(name, 1)
        assert predict_probability(net, x, out_size=(96, 96)).shape == (4, 96, 96)
    net, hist = train_supervised("unet", x, g, steps=1)
    assert hist["steps"] == 1
    refiner = PixelRLRefiner(t_max=2, width=4)
    refiner.fit(x, np.full((4, 64, 64), 0.5, np.float32), g, steps=1)
    assert refiner.refine(x, np.full((4, 64, 64), 0.5, np.float32), out_size=(96, 96)).shape == (4, 96, 96)
    assert len(PIXELRL_ADJUSTMENTS) == 8 and sorted(np.abs(PIXELRL_ADJUSTMENTS))[::2] == [0.1, 0.2, 0.4, 1.0]
    with pytest.raises(ValueError, match="unknown baseline"):
        build_baseline("fcn", 1)


def test_action_map_colours():
    steps = np.array([[[1, 0, 0]], [[1, 1, 0]]], dtype=bool)  # (T=2, 1, 3)
    rgb = action_map_rgb(steps)
    assert rgb.shape == (2, 1, 3, 3)
    assert tuple(rgb[0, 0, 0]) == (20, 30, 110) and tuple(rgb[0, 0, 1]) == (173, 216, 230)
    assert tuple(rgb[1, 0, 1]) == (220, 30, 30)  # changed from background to keep
    assert tuple(rgb[1, 0, 0]) == (20, 30, 110)


# ---- eq. 12 and eq. 8 by hand ----------------------------------------------------------------------------
def test_mask_reward_eq12_on_3x3():
    g = np.array([[0, 1, 1], [0, 1, 0], [0, 0, 0]])
    f0 = np.ones((3, 3))  # f(0)
    f1 = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    expected = np.array([[1, 0, -1], [0, -1, 1], [1, 1, 0]])  # +1 became right, -1 became wrong
    assert np.array_equal(mask_reward(f0, f1, g), expected)
    got = mask_reward(torch.tensor(f0), torch.tensor(f1, dtype=torch.float64), torch.tensor(g))
    assert np.array_equal(got.numpy(), expected)
    assert mask_reward(f1, f1, g).sum() == 0


def test_kernel_returns_identity_equals_discounted_returns():
    rewards = torch.tensor(np.random.default_rng(0).normal(size=(4, 2, 3, 3)), dtype=torch.float32)
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    torch.testing.assert_close(kernel_returns(rewards, 0.95, identity), discounted_returns(rewards, 0.95))


def test_kernel_returns_eq8_on_3x3_by_hand():
    # two steps, one 3x3 image; omega weights the centre 0.5 and the right neighbour 0.5 (cross-correlation:
    # (omega * R)[i, j] = 0.5 R[i, j] + 0.5 R[i, j + 1], zero outside)
    r0 = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    r1 = torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, -1.0], [0.0, 4.0, 0.0]])
    omega = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]])
    out = kernel_returns(torch.stack([r0, r1])[:, None], 0.9, omega)
    # terminal: R1 = r1 (bootstrap 0); R0 = r0 + 0.9 * (omega * R1)
    mixed = torch.tensor([[1.0, 1.0, 0.0], [0.5, -0.5, -0.5], [2.0, 2.0, 0.0]])
    torch.testing.assert_close(out[1, 0], r1)
    torch.testing.assert_close(out[0, 0], r0 + 0.9 * mixed)
    # with a bootstrap value map V(s^T) = 1 everywhere: R1 = r1 + 0.9 * (omega * 1)
    boot = kernel_returns(torch.stack([r0, r1])[:, None], 0.9, omega, bootstrap=torch.ones(1, 3, 3))
    expect_r1 = r1 + 0.9 * torch.tensor([[1.0, 1.0, 0.5]] * 3)
    torch.testing.assert_close(boot[1, 0], expect_r1)


def test_kernel_returns_learns_omega_through_the_value_loss():
    model = PixelDRL(tiny_config(warm_fraction=0.0, rl_sup_coef=0.0))
    net = model.build(1)
    x, g = squares(2)
    loss, _ = model.episode_loss(net, torch.from_numpy(x), torch.from_numpy(g.astype(np.float32)), warm=False,
                                 generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert net.omega.weight.grad is not None and net.omega.weight.grad.abs().sum() > 0


# ---- learning, seeding, resume -------------------------------------------------------------------------
@pytest.mark.slow
def test_toy_bright_square_is_learned_and_pa3c_fine_tuning_keeps_it():
    from scarceseg.metrics import dice

    x, g = squares(12)
    model = PixelDRL(tiny_config(augment=False))
    hist = model.fit(x, g, seed=0, steps=240)
    assert hist["warm_steps"] == 120
    pred = model.predict_prepared(x)[-1]
    scores = [dice(pred[i], g[i]) for i in range(len(g))]
    assert np.mean(scores) > 0.9, scores
    assert np.mean(hist["reward"][-20:]) > np.mean(hist["reward"][:20])


def test_same_seed_same_weights_and_other_seed_differs():
    x, g = squares(6)
    states = []
    for seed in (0, 0, 1):
        model = PixelDRL(tiny_config())
        model.fit(x, g, seed=seed, steps=4)
        states.append(model.net.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    x, g = squares(6)
    whole = PixelDRL(tiny_config())
    h_whole = whole.fit(x, g, seed=3, steps=6)  # 3 warm-start + 3 PA3C updates
    first = PixelDRL(tiny_config())
    first.fit(x, g, seed=3, steps=6, checkpoint_dir=tmp_path / "ck", checkpoint_every=2, stop_at=3)
    assert json.loads((tmp_path / "ck" / "state.json").read_text(encoding="utf-8"))["history"]["steps"] == 3
    second = PixelDRL(tiny_config())
    h_second = second.fit(x, g, seed=3, steps=6, checkpoint_dir=tmp_path / "ck", resume=True)
    assert h_second["steps"] == 6 and h_second["warm_steps"] == 3
    assert h_second["loss"] == h_whole["loss"]
    a, b = whole.net.state_dict(), second.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_save_load_roundtrip_and_wrong_format(tmp_path):
    from scarceseg.errors import InputError

    x, g = squares(4)
    model = PixelDRL(tiny_config())
    model.fit(x, g, steps=2)
    model.save(tmp_path / "m")
    again = PixelDRL.load(tmp_path / "m")
    assert again.config == model.config
    assert np.array_equal(again.predict_prepared(x), model.predict_prepared(x))
    info = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    info["format"] = "scarceseg.unet_baseline"
    (tmp_path / "m" / "config.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="not a PixelDRL-MG model"):
        PixelDRL.load(tmp_path / "m")


def test_config_validation_and_named():
    assert PixelDRLConfig.named("paper") == PixelDRLConfig()
    cpu = PixelDRLConfig.named("cpu")
    assert cpu.size == 128 and not cpu.state_in_trunk and cpu.warm_fraction > 0 and cpu.norm
    paper = PixelDRLConfig()
    assert (paper.t_max, paper.gamma, paper.lr, paper.batch_size, paper.epochs) == (10, 0.95, 1e-3, 2, 200)
    with pytest.raises(ValueError, match="multiple of 8"):
        PixelDRLConfig(size=20)
    with pytest.raises(ValueError, match="unknown"):
        PixelDRLConfig.named("gpu")


@pytest.mark.slow
def test_cli_train_and_segment_with_action_maps(tmp_path):
    from typer.testing import CliRunner

    from scarceseg.cli import app
    from scarceseg.datasets.sample import make_sample_data

    data = tmp_path / "data"
    make_sample_data(data, n=10, seed=0)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "pixeldrl", "--data", str(data), "--out", str(tmp_path / "m"),
                              "--shots", "3", "--steps", "2", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "2 updates" in res.output and (tmp_path / "m" / "checkpoint" / "state.json").is_file()
    res = runner.invoke(app, ["segment", "--model", str(tmp_path / "m"), "--data", str(data), "--out",
                              str(tmp_path / "seg"), "--action-maps", "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "seg").glob("*.png"))) == 10
    assert len(list((tmp_path / "seg" / "action_maps").glob("*.png"))) == 10


def test_paper_config_network_runs_one_update_with_the_state_in_the_vgg():
    from dataclasses import replace

    x, g = squares(2, size=32)
    x = np.repeat(x, 3, axis=1)
    model = PixelDRL(replace(PixelDRLConfig.paper(), size=32, t_max=2))
    hist = model.fit(x, g, steps=1)
    assert hist["steps"] == 1 and hist["warm_steps"] == 0  # paper: PA3C only
    assert model.net.state_in_trunk and model.net.vgg.layers[0].in_channels == 4  # image + f^(t-1)
    assert model.net.vgg.layers[-2].out_channels == 256  # conv4_3 at half of VGG16's 512
    assert model.predict_prepared(x).shape == (2, 2, 32, 32)


def test_oracle_adjustment_on_3x3_and_pixelrl_refiner_learns_a_toy_task():
    from scarceseg.methods.pixeldrl_baselines import oracle_adjustment

    p = torch.tensor([[[0.0, 0.5, 1.0], [0.35, 0.65, 0.9], [0.05, 0.95, 0.0]]])
    g = torch.tensor([[[1, 1, 1], [0, 0, 1], [0, 0, 0]]])
    table = np.array(PIXELRL_ADJUSTMENTS)
    got = table[oracle_adjustment(p, g).numpy()[0]]
    # exact hits win (+1.0 from 0 or 0.5 to 1); ties go to the smaller step (0.35 -> 0 by -0.4 or -1.0);
    # at the label: the smallest step towards it
    assert np.allclose(got, [[1.0, 1.0, 0.1], [-0.4, -1.0, 0.1], [-0.1, -1.0, -0.1]])

    # toy: a coarse, too-large probability square must be pulled towards the true square
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, (8, 1, 24, 24)).astype(np.float32)
    g = np.zeros((8, 24, 24), np.float32)
    g[:, 8:16, 8:16] = 1
    x[:, 0] += 2 * g
    p0 = np.zeros_like(g)
    p0[:, 5:19, 5:19] = 0.7
    refiner = PixelRLRefiner(t_max=2, width=8)
    refiner.fit(x, p0, g, steps=200, seed=0)
    out = refiner.refine(x, p0) > 0.5
    dice = 2 * (out & (g > 0)).sum() / (out.sum() + g.sum())
    assert dice > 0.9 > 2 * 64 / (196 + 64)  # the start's Dice is 0.49


def test_registered_pixeldrl_predicts_the_steps_it_is_asked_for():
    """`bench pixeldrl`'s action maps: the registered method's inference options `action_maps` and `t_max`."""
    from scarceseg.io.case import Case
    from scarceseg.methods import registry
    from scarceseg.methods.contract import Budget

    rng = np.random.default_rng(0)
    cases = []
    for i in range(2):
        truth = np.zeros((40, 40), bool)
        truth[10 + i : 25, 12:28] = True
        image = rng.normal(0, 1, (2, 40, 40)).astype(np.float32) + 3 * truth
        cases.append(Case(image=image, spacing=(1.0, 1.0), case_id=f"p{i}", label=truth))
    method = registry.get("pixeldrl")({"preset": "cpu", "size": 16, "batch_size": 2})
    method.fit(cases, Budget(steps=1), seed=0)
    assert method.predict(cases[0]).extra == {}
    method.set_inference(action_maps=True, t_max=5)
    steps = method.predict(cases[0]).extra["steps"]
    assert steps.shape == (5, 40, 40) and steps.dtype == bool
