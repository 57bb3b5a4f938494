"""The RL core: replay memory, schedules, epsilon-greedy, TD(0) targets, one DQN update, the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scarceseg.nets.dqn_cnn import DQNCNN
from scarceseg.rl.dqn import dqn_update, epsilon_greedy, resolve_device, seed_everything, td0_targets
from scarceseg.rl.replay import ReplayBuffer, ReplaySample
from scarceseg.rl.schedules import ConstantSchedule, LinearDecay, LinearSchedule

torch.set_num_threads(1)


def _fill(buf: ReplayBuffer, n: int) -> None:
    for i in range(n):
        obs = np.full(buf.obs_shape, i, dtype=buf.obs.dtype)
        buf.add(obs, i % 2, float(i), obs + 1, i % 5 == 4)


# ---- replay memory ---------------------------------------------------------------------------------
def test_replay_ring_overwrites_oldest_rows_exactly():
    buf = ReplayBuffer(4, (2,), np.float32, device="cpu", seed=0)
    assert len(buf) == 0
    _fill(buf, 3)
    assert len(buf) == 3 and buf.pos == 3 and not buf.full
    _fill(buf, 0)
    for i in range(3, 6):  # rows 3, 4, 5 go to slots 3, 0, 1
        obs = np.full((2,), i, dtype=np.float32)
        buf.add(obs, i % 2, float(i), obs + 1, False)
    assert len(buf) == 4 and buf.full and buf.pos == 2
    np.testing.assert_array_equal(buf.rewards, [4.0, 5.0, 2.0, 3.0])
    np.testing.assert_array_equal(buf.obs[:, 0], [4, 5, 2, 3])
    np.testing.assert_array_equal(buf.next_obs[:, 0], [5, 6, 3, 4])
    np.testing.assert_array_equal(buf.actions, [0, 1, 0, 1])


def test_replay_sample_shapes_and_dtypes():
    buf = ReplayBuffer(10, (3, 8, 8), np.uint8, device="cpu", seed=1)
    _fill(buf, 7)
    s = buf.sample(16)
    assert isinstance(s, ReplaySample)
    assert s.obs.shape == (16, 3, 8, 8) and s.obs.dtype == torch.uint8
    assert s.next_obs.shape == (16, 3, 8, 8) and s.next_obs.dtype == torch.uint8
    assert s.actions.shape == (16,) and s.actions.dtype == torch.int64
    assert s.rewards.dtype == torch.float32 and s.dones.dtype == torch.float32
    assert s.obs.device.type == "cpu"
    # rows stay consistent: next_obs = obs + 1 and reward = the row's fill value
    assert torch.equal(s.next_obs.long(), s.obs.long() + 1)
    assert torch.equal(s.rewards, s.obs[:, 0, 0, 0].float())
    assert set(s.rewards.tolist()) <= set(range(7))


def test_replay_sample_is_reproducible_with_a_seed():
    a, b, c = (ReplayBuffer(50, (1,), np.float32, "cpu", seed=s) for s in (3, 3, 4))
    for buf in (a, b, c):
        _fill(buf, 50)
    sa, sb, sc = a.sample(32), b.sample(32), c.sample(32)
    assert torch.equal(sa.rewards, sb.rewards)
    assert not torch.equal(sa.rewards, sc.rewards)


def test_replay_errors():
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, (1,), device="cpu").sample(2)
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (1,))


# ---- schedules -------------------------------------------------------------------------------------
def test_linear_schedule_paper_values():
    eps = LinearSchedule(start=0.7, end=1e-4, decrement_per_step=1e-4)  # paper 000, section 0.4.3
    assert eps(0) == 0.7
    assert eps(1) == 0.7 - 1e-4
    assert eps(299) == 0.7 - 299 * 1e-4
    assert eps(6998) == 0.7 - 6998 * 1e-4  # 2e-4
    assert eps(6999) == pytest.approx(1e-4)
    assert eps(7000) == 1e-4  # 0.7 - 0.7 = 0 -> floor
    assert eps(10**6) == 1e-4
    values = [eps(t) for t in range(8000)]
    assert all(x >= y for x, y in zip(values, values[1:], strict=False))


def test_other_schedules():
    up = LinearSchedule(0.0, 1.0, -0.25)
    assert [up(t) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    decay = LinearDecay(1.0, 0.0, 4)
    assert [decay(t) for t in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert ConstantSchedule(0.3)(123) == 0.3


# ---- epsilon-greedy, TD(0), update ------------------------------------------------------------------
def test_epsilon_greedy_zero_is_greedy_and_one_is_uniform():
    rng = np.random.default_rng(0)
    q = torch.tensor([0.1, 0.9, -0.3])
    assert all(epsilon_greedy(q, 0.0, rng) == 1 for _ in range(100))
    assert epsilon_greedy(np.array([[2.0, 1.0]]), 0.0, rng) == 0
    counts = np.bincount([epsilon_greedy(q, 1.0, rng) for _ in range(3000)], minlength=3)
    assert counts.min() > 850  # ~1000 each
    a = [epsilon_greedy(q, 0.5, np.random.default_rng(7)) for _ in range(5)]
    b = [epsilon_greedy(q, 0.5, np.random.default_rng(7)) for _ in range(5)]
    assert a == b


def test_td0_targets_on_hand_numbers():
    rewards = torch.tensor([1.0, -1.0, 1.0])
    next_q = torch.tensor([[0.5, 2.0], [3.0, -1.0], [10.0, 20.0]])
    dones = torch.tensor([0.0, 0.0, 1.0])
    out = td0_targets(rewards, next_q, dones, gamma=0.5)
    assert torch.allclose(out, torch.tensor([1.0 + 0.5 * 2.0, -1.0 + 0.5 * 3.0, 1.0]))
    out99 = td0_targets(torch.tensor([1.0]), torch.tensor([[1.0, 0.0]]), torch.tensor([0.0]), gamma=0.99)
    assert out99.item() == pytest.approx(1.99)


def test_dqn_update_reduces_the_loss_on_a_fixed_batch():
    seed_everything(0)
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    batch = ReplaySample(torch.randn(8, 4, generator=gen), torch.tensor([0, 1] * 4), torch.ones(8),
                         torch.randn(8, 4, generator=gen), torch.ones(8))  # done: target = reward = 1
    losses = [dqn_update(net, opt, batch, gamma=0.99) for _ in range(50)]
    assert losses[-1] < 0.05 * losses[0]
    target = torch.nn.Linear(4, 2)
    loss = dqn_update(net, opt, batch._replace(dones=torch.zeros(8)), 0.99, target_net=target)
    assert np.isfinite(loss)


def test_seed_everything_and_device():
    g = seed_everything(5)
    a = torch.rand(3)
    g2 = seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=g2))
    state = np.random.get_state()[1].copy()  # noqa: NPY002 (checking the legacy global state)
    seed_everything(9)
    assert np.array_equal(state, np.random.get_state()[1])  # noqa: NPY002 (numpy global RNG untouched)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")


# ---- the network (paper 000, Figure 5) --------------------------------------------------------------
def test_dqn_cnn_shapes_and_byte_input():
    net = DQNCNN(in_channels=3, input_size=32, n_actions=2)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, torch.nn.ELU) for m in net.modules()) == 5
    x = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    assert net(x).shape == (5, 2)
    assert torch.allclose(net(x), net(x.float() / 255.0))
    assert DQNCNN(input_size=30)(torch.zeros(1, 3, 30, 30)).shape == (1, 2)
    pooled = DQNCNN(input_size=32, head="pool")
    assert pooled(x).shape == (5, 2) and pooled.head[1].in_features == 2 * 64
    assert DQNCNN(input_size=32, head="flatten").head[1].in_features == 64 * 2 * 2
    with pytest.raises(ValueError, match="head"):
        DQNCNN(head="attention")
