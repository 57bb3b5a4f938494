"""Baselines of paper 004 run in the PixelDRL-MG harness: U-Net, Attention U-Net, and PixelRL refinement.

* U-Net: :func:`scarceseg.nets.unet.build_unet` ("fair" variant, 16 layers) — the repository's U-Net baseline
  network, trained here by :func:`train_supervised` under a CPU budget on the same prepared grid as
  PixelDRL-MG (loss ``1 - soft Dice + BCE`` as ``UNetConfig.fair``; seeded flips / quarter turns; Adam 1e-3
  with a cosine decay over the budget).
* Attention U-Net (Oktay et al. 2018): :class:`monai.networks.nets.AttentionUnet`, channels 16 … 256, same
  training.
* PixelRL-U-Net (paper 004 §Ablation, after paper 002 / Furuta et al.): the U-Net's probability map is the
  starting state; every pixel adds one of ±0.1, ±0.2, ±0.4, ±1.0 per step (clipped to [0, 1]); reward = decrease
  of the per-pixel cross entropy (:func:`scarceseg.rl.a2c.relative_ce_reward`); A2C with per-pixel returns;
  the policy/value network is :class:`scarceseg.nets.refine_net.RefineNet` (dilated, full resolution); mask =
  ``p^(T) > 0.5``. Like PixelDRL-MG's cpu configuration it is trained with the "mixed" strategy: the A2C loss
  plus ``sup_coef`` × the cross entropy of the oracle action (:func:`oracle_adjustment`, the action that brings
  each pixel's probability closest to its label). Pure A2C with a few hundred updates on a CPU budget drove
  every pixel to background (Dice 0.00 in the first bench run); ``sup_coef=0`` gives the pure variant.

Every training function stops at ``steps`` updates or ``budget_s`` process CPU seconds, whichever comes first
(:func:`scarceseg.nets.engine.run`; the cosine schedule follows the CPU seconds when they are given).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.methods.pixeldrl_inputs import augment_batch
from scarceseg.nets.engine import cosine, run, seeded
from scarceseg.nets.losses import compute_loss
from scarceseg.rl.a2c import a2c_loss, apply_adjustments, discounted_returns, relative_ce_reward, sample_actions

PIXELRL_ADJUSTMENTS = (-1.0, -0.4, -0.2, -0.1, 0.1, 0.2, 0.4, 1.0)  # paper 004 §Ablation: ±1.0, ±0.4, ±0.2, ±0.1
BASELINES = ("unet", "attention_unet")


def build_baseline(name: str, in_channels: int) -> torch.nn.Module:
    """``"unet"`` (the repository's 16-layer MONAI U-Net, fair variant) or ``"attention_unet"`` (MONAI)."""
    if name == "unet":
        from scarceseg.nets.unet import build_unet

        return build_unet(in_channels, 1, variant="fair")
    if name == "attention_unet":
        from monai.networks.nets import AttentionUnet

        return AttentionUnet(spatial_dims=2, in_channels=in_channels, out_channels=1,
                             channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), dropout=0.1)
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def train_supervised(name: str, x: np.ndarray, g: np.ndarray, seed: int = 0, steps: int | None = None,
                     budget_s: float | None = None, batch_size: int = 4, lr: float = 1e-3,
                     augment: bool = True) -> tuple[torch.nn.Module, dict]:
    """Train a baseline segmentation network on prepared images (N, C, S, S) and masks (N, S, S).

    Returns the network (eval mode) and ``{"steps", "cpu_seconds", "loss"}``.
    """
    if steps is None and budget_s is None:
        raise ValueError("give steps or budget_s")
    rng = np.random.default_rng(seed)
    hist: dict = {"loss": [], "steps": 0}
    with seeded(seed):
        net = build_baseline(name, x.shape[1])
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()

        def step(index: int, frac: float) -> float:
            for group in opt.param_groups:
                group["lr"] = cosine(frac, lr)
            idx = rng.permutation(len(x))[:batch_size]
            xb, gb = x[idx], g[idx]
            if augment:
                xb, gb = augment_batch(xb, gb, rng)
            loss = compute_loss("dice_bce", net(torch.from_numpy(xb)), torch.from_numpy(gb.astype(np.float32))[:, None])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())

        run(step, steps, hist, cpu_seconds=budget_s, description=f"training {name}")
    return net.eval(), hist


def predict_probability(net: torch.nn.Module, x: np.ndarray, out_size: tuple[int, int] | None = None,
                        batch: int = 8) -> np.ndarray:
    """``sigmoid`` of a baseline's logits for prepared images (N, C, S, S) -> (N, Y, X) float32.

    With ``out_size`` the logits are upsampled bilinearly first.
    """
    out = []
    net.eval()
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = net(torch.from_numpy(np.ascontiguousarray(x[i : i + batch])))
            if out_size is not None and tuple(out_size) != tuple(logits.shape[-2:]):
                logits = F.interpolate(logits, size=tuple(out_size), mode="bilinear", align_corners=False)
            out.append(torch.sigmoid(logits)[:, 0].numpy())
    return np.concatenate(out).astype(np.float32)


def oracle_adjustment(prob: torch.Tensor, target: torch.Tensor, table=PIXELRL_ADJUSTMENTS) -> torch.Tensor:
    """Per pixel, the index of the adjustment that brings ``clip(p + A[a], 0, 1)`` closest to the label.

    ``prob`` and ``target`` are ``(N, Y, X)``; ties go to the smaller step (a pixel at its label moves by the
    smallest amount towards it, e.g. ``+0.1`` at ``p = 1, g = 1``). Returns ``(N, Y, X)`` int64.
    """
    t = torch.as_tensor(table, dtype=prob.dtype).view(1, -1, 1, 1)
    moved = (prob.unsqueeze(1) + t).clamp(0.0, 1.0)
    err = (moved - target.to(prob.dtype).unsqueeze(1)).abs() + 1e-4 * t.abs()
    return err.argmin(1)


class PixelRLRefiner:
    """PixelRL-style refinement of a coarse probability map with the ±0.1/0.2/0.4/1.0 actions.

    Parameters
    ----------
    t_max : int
        Steps per episode.
    gamma : float
    width : int
        Width of the :class:`~scarceseg.nets.refine_net.RefineNet`.
    sup_coef : float
        Weight of the oracle-action cross entropy added to the A2C loss (0: pure A2C).
    """

    def __init__(self, t_max: int = 5, gamma: float = 0.95, width: int = 12, sup_coef: float = 1.0) -> None:
        self.t_max, self.gamma, self.width, self.sup_coef = t_max, gamma, width, sup_coef
        self.net = None

    def _episode(self, net, x: torch.Tensor, p0: torch.Tensor, greedy: bool, gen=None):
        p = p0
        logits_l, values_l, actions_l, probs = [], [], [], [p0]
        for _ in range(self.t_max):
            logits, value = net(torch.cat([x, p.unsqueeze(1)], 1))
            a = logits.argmax(1) if greedy else sample_actions(logits, gen)
            p = apply_adjustments(p, a, PIXELRL_ADJUSTMENTS)
            logits_l.append(logits)
            values_l.append(value)
            actions_l.append(a)
            probs.append(p)
        return torch.stack(logits_l), torch.stack(values_l), torch.stack(actions_l), probs

    def fit(self, x: np.ndarray, p0: np.ndarray, g: np.ndarray, seed: int = 0, steps: int | None = None,
            budget_s: float | None = None, batch_size: int = 4, lr: float = 1e-3) -> dict:
        """Train on prepared images (N, C, S, S), coarse probabilities (N, S, S) and masks (N, S, S)."""
        from scarceseg.nets.refine_net import RefineNet

        if steps is None and budget_s is None:
            raise ValueError("give steps or budget_s")
        rng = np.random.default_rng(seed)
        hist: dict = {"loss": [], "steps": 0}
        stack = np.concatenate([x, p0[:, None]], 1).astype(np.float32)
        with seeded(seed):
            net = RefineNet(x.shape[1] + 1, len(PIXELRL_ADJUSTMENTS), value_head=True, width=self.width)
            opt = torch.optim.Adam(net.parameters(), lr=lr)
            gen = torch.Generator().manual_seed(seed)

            def step(index: int, frac: float) -> float:
                idx = rng.permutation(len(x))[:batch_size]
                sb, gb = augment_batch(stack[idx], g[idx], rng)
                xb, pb = torch.from_numpy(sb[:, :-1].copy()), torch.from_numpy(sb[:, -1].copy())
                gt = torch.from_numpy(gb.astype(np.float32))
                logits, values, actions, probs = self._episode(net, xb, pb, greedy=False, gen=gen)
                rewards = torch.stack([relative_ce_reward(probs[t], probs[t + 1], gt) for t in range(self.t_max)])
                returns = discounted_returns(rewards.float(), self.gamma)
                loss = a2c_loss(logits, values, actions, returns, advantage="pixel").total
                if self.sup_coef:
                    oracle = torch.stack([oracle_adjustment(probs[t].detach(), gt) for t in range(self.t_max)])
                    loss = loss + self.sup_coef * F.cross_entropy(logits.flatten(0, 1), oracle.flatten(0, 1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                return float(loss.detach())

            run(step, steps, hist, cpu_seconds=budget_s, description="training PixelRL refiner")
        self.net = net.eval()
        return hist

    def refine(self, x: np.ndarray, p0: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """Greedy refinement: prepared images (N, C, S, S), coarse probabilities (N, S, S) -> ``p^(T)`` (N, Y, X)."""
        if self.net is None:
            raise RuntimeError("the refiner is not trained")
        with torch.no_grad():
            _, _, _, probs = self._episode(self.net, torch.from_numpy(np.ascontiguousarray(x)),
                                           torch.from_numpy(np.ascontiguousarray(p0, dtype=np.float32)), greedy=True)
            p = probs[-1].unsqueeze(1)
            if out_size is not None and tuple(out_size) != tuple(p.shape[-2:]):
                p = F.interpolate(p, size=tuple(out_size), mode="bilinear", align_corners=False)
        return p[:, 0].numpy()
