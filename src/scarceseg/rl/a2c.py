"""Pixel-level actor-critic pieces: every pixel (voxel) is an agent with a discrete action.

Paper 002 (IteR-MRL) §3.2-3.3 and PixelRL (Furuta et al. 2019) treat each voxel as an agent sharing one
fully-convolutional policy. The learner here is **synchronous advantage actor-critic (A2C)**: one
process rolls out a whole episode (T steps) on a mini-batch of images, then takes one gradient step.
Paper 002 trains with A3C (asynchronous workers); with two CPU cores and a mini-batch of 1 in the
paper, synchronous A2C gives the same expected gradient without the lock-free machinery, and it is
reproducible.

The pieces, in the order a training loop uses them:

1. :func:`sample_actions` / :func:`greedy_actions` — one action index per voxel from policy logits.
2. :func:`apply_adjustments` — eq. 2: ``p' = clip(p + A[a], 0, 1)``.
3. :func:`cross_entropy_map`, :func:`relative_ce_reward` — eqs. 3-4: ``r = X(p_prev) - X(p_cur)``.
4. :func:`discounted_returns` — eq. 5 / 7: ``R_t = sum_k gamma^(k-t) r_k``.
   :func:`kernel_returns` — PixelRL / paper 004 eq. 8: ``R_t = r_t + gamma * (omega * R_{t+1})`` where ``omega``
   is a learned convolution kernel that mixes the returns of neighbouring pixels.
   :func:`mask_reward` — paper 004 eq. 12: ``r = (f_prev - G)^2 - (f_cur - G)^2`` for binary masks.
5. :func:`a2c_loss` — policy gradient ``-log pi(a|s) * A``, value regression ``A^2`` (eq. 6), optional
   entropy bonus.

Two advantage estimates are offered: ``"mean"`` follows eq. 7 literally (the mean reward over all
voxels and one scalar value per image, so every voxel of an image shares one advantage); ``"pixel"``
gives each voxel its own return and value (PixelRL), which assigns credit far better and is what we
train with (see :mod:`scarceseg.methods.iter_mrl`). Eq. 8 writes ``-grad pi(a|s) A``; we use the
standard ``-grad log pi(a|s) A`` of Mnih et al. 2016, which the paper cites for A3C.

References
----------
.. [1] V. Mnih et al., "Asynchronous methods for deep reinforcement learning", ICML 2016.
.. [2] R. Furuta, N. Inoue, T. Yamasaki, "Fully convolutional network with multi-step reinforcement
   learning for image processing" (PixelRL), AAAI 2019.
.. [3] X. Liao et al., paper 002, eqs. 2-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

ADJUSTMENTS = (-0.4, -0.2, -0.1, 0.1, 0.2, 0.4)  # paper 002 §4.3, Table 4: A = {±0.1, ±0.2, ±0.4}
ADVANTAGES = ("pixel", "mean")


def sample_actions(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one action per voxel from ``softmax(logits)`` along dim 1.

    Parameters
    ----------
    logits : Tensor, shape (B, K, *spatial)
    generator : torch.Generator, optional
        For reproducible sampling.

    Returns
    -------
    Tensor of int64, shape (B, *spatial)
    """
    b, k = logits.shape[:2]
    probs = torch.softmax(logits.detach(), dim=1).movedim(1, -1).reshape(-1, k)
    idx = torch.multinomial(probs, 1, generator=generator).squeeze(1)
    return idx.reshape(b, *logits.shape[2:])


def greedy_actions(logits: torch.Tensor) -> torch.Tensor:
    """``argmax`` over the action dimension: ``(B, K, *spatial) -> (B, *spatial)``."""
    return logits.argmax(dim=1)


def apply_adjustments(prob, actions, adjustments=ADJUSTMENTS):
    """Paper 002 eq. 2: ``clip(p + A[a], 0, 1)``; numpy arrays or torch tensors of the same shape."""
    if isinstance(prob, torch.Tensor):
        table = torch.as_tensor(adjustments, dtype=prob.dtype, device=prob.device)
        return (prob + table[actions]).clamp(0.0, 1.0)
    table = np.asarray(adjustments, dtype=np.float32)
    return np.clip(np.asarray(prob, dtype=np.float32) + table[np.asarray(actions)], 0.0, 1.0)


def cross_entropy_map(prob, target, eps: float = 1e-3):
    """Paper 002 eq. 4 per voxel, with ``p`` clipped to ``[eps, 1 - eps]`` so that p = 0 or 1 stay finite.

    ``eps`` is ours: the paper's actions reach exactly 0 and 1, where eq. 4 is infinite.
    """
    if isinstance(prob, torch.Tensor):
        p = prob.clamp(eps, 1.0 - eps)
        return -(target * torch.log(p) + (1.0 - target) * torch.log(1.0 - p))
    p = np.clip(np.asarray(prob, dtype=np.float64), eps, 1.0 - eps)
    y = np.asarray(target, dtype=np.float64)
    return -(y * np.log(p) + (1.0 - y) * np.log(1.0 - p))


def relative_ce_reward(prev_prob, prob, target, eps: float = 1e-3):
    """Paper 002 eq. 3: the decrease of the cross entropy from the previous probability to the current one."""
    return cross_entropy_map(prev_prob, target, eps) - cross_entropy_map(prob, target, eps)


def discounted_returns(rewards, gamma: float, bootstrap=None):
    """``R_t = r_t + gamma * R_{t+1}`` backwards over the first axis (eq. 5; eq. 7's first term).

    Parameters
    ----------
    rewards : Tensor or ndarray, shape (T, ...)
    gamma : float
    bootstrap : same type, shape (...), optional
        Value of the state after the last step (0 for an episode that ends there, as IteR-MRL's does).

    Returns
    -------
    same type as ``rewards``, shape (T, ...)
    """
    is_torch = isinstance(rewards, torch.Tensor)
    out = torch.zeros_like(rewards) if is_torch else np.zeros_like(np.asarray(rewards, dtype=np.float64))
    running = bootstrap if bootstrap is not None else (0.0 * rewards[0])
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def mask_reward(prev_mask, mask, target):
    """Paper 004 eq. 12 per pixel: ``r = (f^(t-1) - G)^2 - (f^(t) - G)^2``.

    With binary masks ``r`` is +1 where a pixel became right, -1 where it became wrong, 0 otherwise.

    Parameters
    ----------
    prev_mask, mask, target : Tensor or ndarray, same shape
        ``f^(t-1)``, ``f^(t)`` and ``G`` (0/1 or probabilities).

    Returns
    -------
    same type, float, same shape
    """
    if isinstance(mask, torch.Tensor):
        prev_mask, target = prev_mask.to(mask.dtype), target.to(mask.dtype)
        return (prev_mask - target) ** 2 - (mask - target) ** 2
    f0, f1, g = (np.asarray(a, dtype=np.float64) for a in (prev_mask, mask, target))
    return (f0 - g) ** 2 - (f1 - g) ** 2


def kernel_returns(rewards: torch.Tensor, gamma: float, kernel: torch.nn.Module | torch.Tensor,
                   bootstrap: torch.Tensor | None = None) -> torch.Tensor:
    """n-step returns whose future term is a convolution of the neighbours' returns (paper 004 eq. 8, PixelRL).

    ``R^(T-1) = r^(T-1) + gamma * (omega * B)`` with ``B`` the bootstrap value map (0 for a terminal state, as in
    Algorithm 1 line 16), then backwards ``R^(t) = r^(t) + gamma * (omega * R^(t+1))``. With ``omega`` the
    identity kernel (1 in the centre) this is :func:`discounted_returns`. Gradients flow into ``omega`` (it is
    learned with the value loss, eq. 13).

    Parameters
    ----------
    rewards : Tensor, shape (T, B, Y, X)
    gamma : float
    kernel : nn.Module or Tensor
        A module mapping (B, 1, Y, X) to (B, 1, Y, X) (e.g. ``Conv2d(1, 1, 3, padding=1, bias=False)``), or a
        (kh, kw) weight tensor applied with zero padding ("same" size, odd sides).
    bootstrap : Tensor, shape (B, Y, X), optional
        ``V(s^(T))``; zeros when None (terminal).

    Returns
    -------
    Tensor, shape (T, B, Y, X)
    """
    if isinstance(kernel, torch.Tensor):
        weight = kernel.reshape(1, 1, *kernel.shape[-2:]).to(rewards.dtype)
        pad = (weight.shape[-2] // 2, weight.shape[-1] // 2)

        def mix(z: torch.Tensor) -> torch.Tensor:
            return F.conv2d(z.unsqueeze(1), weight, padding=pad).squeeze(1)
    else:

        def mix(z: torch.Tensor) -> torch.Tensor:
            return kernel(z.unsqueeze(1)).squeeze(1)

    running = torch.zeros_like(rewards[0]) if bootstrap is None else bootstrap
    out = []
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * mix(running)
        out.append(running)
    return torch.stack(out[::-1])


@dataclass
class A2CLoss:
    """The parts of one A2C loss (scalars as tensors so ``total`` can be back-propagated)."""

    total: torch.Tensor
    policy: torch.Tensor
    value: torch.Tensor
    entropy: torch.Tensor


def a2c_loss(
    logits: torch.Tensor,
    values: torch.Tensor,
    actions: torch.Tensor,
    returns: torch.Tensor,
    advantage: str = "pixel",
    value_coef: float = 0.5,
    entropy_coef: float = 0.0,
) -> A2CLoss:
    """Actor-critic loss of a rollout, averaged over steps, images and voxels.

    Parameters
    ----------
    logits : Tensor, shape (T, B, K, *spatial)
        Policy logits of every step.
    values : Tensor, shape (T, B, 1, *spatial)
        Value head output (per voxel; averaged over voxels for ``advantage="mean"``).
    actions : Tensor of int64, shape (T, B, *spatial)
    returns : Tensor, shape (T, B, *spatial)
        Discounted per-voxel returns (:func:`discounted_returns` of the per-voxel rewards, or
        :func:`kernel_returns`; when they carry gradients, e.g. into a learned kernel, the value loss reaches
        them while the policy term uses the detached advantage).
    advantage : {"pixel", "mean"}
        ``"pixel"``: ``A = R_i - V_i`` per voxel (PixelRL). ``"mean"``: paper 002 eq. 7, ``A = mean_i R_i
        - mean_i V_i``, one advantage per image and step.
    value_coef, entropy_coef : float

    Returns
    -------
    A2CLoss
    """
    if advantage not in ADVANTAGES:
        raise ValueError(f"unknown advantage {advantage!r}; choose one of {ADVANTAGES}")
    log_probs = F.log_softmax(logits, dim=2)
    taken = log_probs.gather(2, actions.unsqueeze(2)).squeeze(2)  # (T, B, *spatial)
    entropy = -(log_probs.exp() * log_probs).sum(2).mean()
    v = values.squeeze(2)
    if advantage == "pixel":
        adv = returns - v
        policy = -(taken * adv.detach()).mean()
    else:
        dims = tuple(range(2, returns.ndim))
        adv = returns.mean(dim=dims) - v.mean(dim=dims)  # (T, B)
        policy = -(taken.mean(dim=dims) * adv.detach()).mean()
    value = (adv**2).mean()
    total = policy + value_coef * value - entropy_coef * entropy
    return A2CLoss(total, policy.detach(), value.detach(), entropy.detach())
