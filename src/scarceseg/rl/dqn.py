"""Generic deep Q-learning pieces: device, seeding, epsilon-greedy, TD(0) targets, one update step.

The training *loop* lives with the method that uses it (e.g. :mod:`scarceseg.methods.udc_rl`), written
top to bottom in the CleanRL manner; these functions are the parts every such loop shares.

Epsilon-greedy here is the standard rule: a uniformly random action with probability ``epsilon``, the
greedy action otherwise. Paper 000's eq. 5 writes the two cases the other way round (greedy with
probability epsilon); with its epsilon of 0.7 that would act greedily most of the time. We follow the
standard rule, which is what its text ("initial epsilon of 0.7 to allow for adequate exploration")
describes.

References
----------
.. [1] Mnih et al., "Human-level control through deep reinforcement learning", Nature 518 (2015).
.. [2] Sutton & Barto, "Reinforcement Learning: An Introduction", 2nd ed., sections 6.1 (TD(0)), 6.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# re-exported: these used to live here
from scarceseg.nets.runtime import resolve_device, seed_everything, torch_threads  # noqa: F401


def epsilon_greedy(q_values: np.ndarray | torch.Tensor, epsilon: float, rng: np.random.Generator) -> int:
    """Pick an action from one state's Q values ``(n_actions,)``.

    With probability ``epsilon`` a uniformly random action, otherwise ``argmax`` (ties -> lowest index).
    Exactly one uniform draw is made per call (two when exploring), so runs replay exactly.
    """
    q = q_values.detach().cpu().numpy() if isinstance(q_values, torch.Tensor) else np.asarray(q_values)
    q = q.reshape(-1)
    if rng.random() < epsilon:
        return int(rng.integers(q.size))
    return int(np.argmax(q))


def td0_targets(rewards: torch.Tensor, next_q: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """TD(0) targets ``r + gamma * (1 - done) * max_a Q(s', a)`` (paper 000, eq. 4).

    Parameters
    ----------
    rewards, dones : Tensor, shape (B,)
    next_q : Tensor, shape (B, n_actions)
        Q values of the next states (from the online network, or a target network if one is used).
    gamma : float
    """
    return rewards + gamma * (1.0 - dones) * next_q.max(dim=1).values


def dqn_update(q_net: nn.Module, optimizer: torch.optim.Optimizer, batch, gamma: float,
               target_net: nn.Module | None = None) -> float:
    """One gradient step of the MSE between ``Q(s, a)`` and its TD(0) target; returns the loss.

    Parameters
    ----------
    q_net : nn.Module
        Maps states ``(B, ...)`` to ``(B, n_actions)``.
    optimizer : torch.optim.Optimizer
        Over ``q_net``'s parameters.
    batch : ReplaySample
        ``obs, actions, rewards, next_obs, dones``.
    gamma : float
        Discount.
    target_net : nn.Module or None
        Network for the bootstrap term. ``None`` (paper 000, which mentions none) uses ``q_net`` itself
        under ``no_grad``.
    """
    with torch.no_grad():
        next_q = (target_net if target_net is not None else q_net)(batch.next_obs)
        targets = td0_targets(batch.rewards, next_q, batch.dones, gamma)
    q_taken = q_net(batch.obs).gather(1, batch.actions.long().unsqueeze(1)).squeeze(1)
    loss = F.mse_loss(q_taken, targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())
