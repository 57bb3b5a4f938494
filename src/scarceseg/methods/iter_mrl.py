"""IteR-MRL (paper 002): every voxel is an agent that nudges its object probability after each round of clicks.

State per voxel (§3.2): image value, previous probability, object and background hint maps. Action: one
of the adjustments ``{-0.4, -0.2, -0.1, +0.1, +0.2, +0.4}`` added to the probability and clipped to [0, 1]
(eq. 2). Reward: the decrease of the voxel's cross entropy to the ground truth (eqs. 3-4), discounted
over ``T = 5`` steps with ``gamma = 0.95`` (eq. 5). One fully-convolutional actor-critic shares the policy
among all voxels (Figure 3; :class:`scarceseg.nets.refine_net.RefineNet`), trained by **synchronous
A2C** (:mod:`scarceseg.rl.a2c`) instead of the paper's A3C.

The training loop (:meth:`IterMRL.fit`) reads top to bottom: sample crops of D_train2 images with their
initial probabilities; for ``t = 1..T``: the robot user clicks on the errors of the current mask (paper
robot: 5 clicks per step at the centres of the largest error regions, ±3 voxels of noise), hint maps
are computed from all clicks so far, the policy samples an adjustment per voxel, rewards are the CE
gains; then returns, advantages, one Adam step.

:meth:`IterMRLConfig.paper` holds the paper's values; :meth:`IterMRLConfig.cpu` is what fits this
project's CPU budget and what the benchmark trains. Differences (also in docs/itermrl.md):

===================  ==============================  ==============================================
setting              paper                           cpu()
===================  ==============================  ==============================================
learner              A3C, batch 1, lr 1e-4 (step)    A2C, batch 4 crops (3D: 2), lr 2e-3 (cosine)
advantage            eq. 7 (mean reward, one value)  per voxel (PixelRL), no entropy bonus
pre-training         1000 epochs IteR-MRL0           ``pretrain_iterations`` (no clicks); cpu(): 0
budget               500 epochs                      600 interactive updates (minutes)
network              R-Net width (64)                width 16
input                crop around target -> 55x55x30  random crops of 96x96 / 24x40x40 (whole image at test)
hint maps            geodesic (GeoS)                 geodesic, one raster-scan pass (``hint_passes``)
initial method       one per run                     D_train2 init, or all-background with prob. 0.15
===================  ==============================  ==============================================

Inference (:meth:`IterMRL.refine`) takes the greedy (most probable) action of every voxel. Images with more
than ``max_voxels`` voxels (3D preset: 64^3) are refined at a stride: the state is area-averaged onto a
coarser grid, the policy runs there, and each coarse voxel's greedy action adjusts the full-resolution
voxels it covers (the paper instead resizes every volume to 55x55x30).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from scarceseg.configs import ConfigDict
from scarceseg.interactive.clicks import Click, PaperRobot, split_clicks
from scarceseg.interactive.hints import HINT_KINDS, hint_maps
from scarceseg.interactive.refiners import check_inputs, zscore
from scarceseg.methods.contract import write_method_file
from scarceseg.methods.refine_data import RefineSample, load_model, random_crop, save_model, stack_states
from scarceseg.nets.engine import cosine
from scarceseg.nets.refine_net import RefineNet
from scarceseg.nets.runtime import torch_threads
from scarceseg.rl import a2c

FORMAT = "scarceseg.iter_mrl"


@dataclass
class IterMRLConfig(ConfigDict):
    """IteR-MRL settings; defaults are paper 002's values where it gives them."""

    adjustments: tuple[float, ...] = a2c.ADJUSTMENTS  # paper 002 §4.3 / Table 4: A = {±0.1, ±0.2, ±0.4}
    steps: int = 5  # paper 002 §4.2: T = 5
    gamma: float = 0.95  # paper 002 §4.2: gamma = 0.95
    n_clicks: int = 5  # paper 002 §4.2: N_click = 5 clicks per step
    click_noise: int = 3  # paper 002 §4.2: eps_noise = [-3, 3] per axis
    lr: float = 1e-4  # paper 002 §4.2: initial learning rate 1e-4 (step decay)
    batch_size: int = 1  # paper 002 §4.2: Adam with mini-batch size 1
    iterations: int = 58500  # paper 002 §4.2: 500 epochs x 117 BraTS training volumes, batch 1
    pretrain_iterations: int = 117000  # paper 002 §4.2: IteR-MRL0 (no interaction), 1000 epochs x 117 volumes
    hint_kind: str = "geodesic"  # paper 002 §3.2: geodesic-distance hint maps (Criminisi et al. 2008)
    advantage: str = "mean"  # paper 002 eq. 7: mean reward over voxels, one value per state
    width: int = 64  # DeepIGeoS R-Net (paper 002 §3.3's backbone): 64 features per layer
    dims: int = 2  # not in the paper (3D there): 2 for slices, 3 for volumes / crops
    crop: tuple[int, ...] = (128, 128)  # not in the paper (crops resized to 55x55x30): training crop size
    hint_scale: float = 10.0  # not in the paper: hint = exp(-distance / scale)
    hint_lamb: float = 0.5  # not in the paper: intensity weight of the geodesic cost
    hint_passes: int = 2  # not in the paper: raster-scan passes of the geodesic distance (2: exact or nearly)
    value_coef: float = 0.5  # not in the paper: weight of the critic loss (eq. 6)
    entropy_coef: float = 0.0  # not in the paper: entropy bonus
    lr_schedule: str = "step"  # paper 002 §4.2: "step decay schedule" (here: x0.1 at 2/3 of the budget)
    bg_fraction: float = 0.0  # not in the paper: share of episodes started from an all-background mask
    reward_eps: float = 1e-3  # not in the paper: p clipped to [eps, 1-eps] inside eq. 4
    threads: int | None = 1  # not in the paper: torch threads while training
    max_voxels: int = 0  # not in the paper (it resizes to 55x55x30): larger images are refined at a stride, 0 = off

    def __post_init__(self) -> None:
        self.adjustments = tuple(float(a) for a in self.adjustments)
        self.crop = tuple(int(c) for c in self.crop)
        if self.hint_kind not in HINT_KINDS:
            raise ValueError(f"unknown hint kind {self.hint_kind!r}; choose one of {HINT_KINDS}")
        if self.advantage not in a2c.ADVANTAGES:
            raise ValueError(f"unknown advantage {self.advantage!r}; choose one of {a2c.ADVANTAGES}")
        if self.lr_schedule not in ("step", "cosine", "constant"):
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}")
        if self.dims not in (2, 3) or len(self.crop) != self.dims:
            raise ValueError(f"dims must be 2 or 3 and crop must have dims entries, got {self.dims}, {self.crop}")
        if self.steps < 1 or self.iterations < 1 or self.batch_size < 1 or not 0 < self.gamma <= 1 \
                or self.pretrain_iterations < 0:
            raise ValueError("steps, iterations and batch_size must be >= 1 and gamma in (0, 1]")

    @classmethod
    def paper(cls) -> IterMRLConfig:
        return cls()

    @classmethod
    def cpu(cls, dims: int = 2) -> IterMRLConfig:
        """The budget version trained by the benchmark (see the module docstring)."""
        return cls(
            lr=2e-3, batch_size=4 if dims == 2 else 2, iterations=600, pretrain_iterations=0, advantage="pixel",
            width=16, entropy_coef=0.0, lr_schedule="cosine", bg_fraction=0.15, dims=dims, hint_passes=1,
            crop=(96, 96) if dims == 2 else (24, 40, 40), max_voxels=0 if dims == 2 else 64**3,
        )




def _lr_lambda(schedule: str, total: int):
    if schedule == "cosine":
        return lambda s: cosine(min(s, total) / total)
    if schedule == "step":
        return lambda s: 0.1 if s >= 2 * total // 3 else 1.0
    return lambda s: 1.0


def _mean_dice(prob: np.ndarray, target: np.ndarray) -> float:
    from scarceseg.metrics import dice

    return float(np.mean([dice(p > 0.5, y) for p, y in zip(prob, target, strict=True)]))


class IterMRL:
    """The IteR-MRL refiner: fit on D_train2, then ``refine`` one step per round of clicks.

    Parameters
    ----------
    config : IterMRLConfig, optional
    device : str
    """

    name = "itermrl"

    def __init__(self, config: IterMRLConfig | None = None, device: str = "cpu") -> None:
        self.config = config or IterMRLConfig()
        self.device = torch.device(device)
        self.net: RefineNet | None = None
        self.meta: dict = {}

    def build(self) -> RefineNet:
        c = self.config
        return RefineNet(4, len(c.adjustments), value_head=True, width=c.width, dims=c.dims)

    def hints(self, image_z: np.ndarray, clicks: Sequence[Click], spacing=None) -> np.ndarray:
        """The two hint channels ``(2, *spatial)`` of a z-scored image and its clicks."""
        pos, neg = split_clicks(clicks)
        c = self.config
        return hint_maps(image_z, pos, neg, kind=c.hint_kind, scale=c.hint_scale, lamb=c.hint_lamb, spacing=spacing,
                         max_passes=c.hint_passes)

    # ---- training --------------------------------------------------------------------------------
    def fit(self, samples: Sequence[RefineSample], seed: int = 0, progress: bool = False) -> dict:
        """Train by synchronous A2C on crops of ``samples`` (D_train2 with its initial probabilities).

        Returns
        -------
        dict
            ``reward`` (mean per-voxel reward of each update, summed over steps), ``dice_start`` /
            ``dice_end`` (crop Dice before the first and after the last step), ``seconds``, ``seed``.
        """
        from scarceseg.progress import track

        c = self.config
        if not samples:
            raise ValueError("no training samples")
        rng = np.random.default_rng(seed)
        robot = PaperRobot(n_clicks=c.n_clicks, noise=c.click_noise, seed=seed)
        history: dict = {"reward": [], "loss": [], "dice_start": [], "dice_end": [], "seed": seed}
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]), torch_threads(c.threads):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            net = self.build().to(self.device)
            opt = torch.optim.Adam(net.parameters(), lr=c.lr)
            total = c.pretrain_iterations + c.iterations
            sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(c.lr_schedule, total))
            net.train()
            for it in track(range(total), description="training IteR-MRL (A2C updates)", enabled=progress):
                # IteR-MRL0 (paper 002 §4.2): the first pretrain_iterations updates see no clicks (empty hints)
                interactive = it >= c.pretrain_iterations
                # 1. a mini-batch of crops, each with its initial probability (or all background)
                picks = [samples[int(rng.integers(len(samples)))] for _ in range(c.batch_size)]
                batch = [random_crop(s, c.crop, rng) for s in picks]
                prob = np.stack([b.init if rng.random() >= c.bg_fraction else np.zeros_like(b.init) for b in batch])
                target = np.stack([b.target for b in batch])
                clicks: list[list[Click]] = [[] for _ in batch]
                logits_t, values_t, actions_t, rewards_t = [], [], [], []
                history["dice_start"].append(_mean_dice(prob, target))
                # 2. the episode: T rounds of clicks and adjustments
                for t in range(c.steps):
                    states = []
                    for i, b in enumerate(batch):
                        if interactive:
                            clicks[i] += robot(prob[i] > 0.5, b.target, step=t + 1)
                        states.append([b.image, prob[i], *self.hints(b.image, clicks[i])])
                    logits, values = net(stack_states(states).to(self.device))
                    actions = a2c.sample_actions(logits, gen)
                    new_prob = a2c.apply_adjustments(prob, actions.cpu().numpy(), c.adjustments)
                    rewards_t.append(torch.from_numpy(
                        a2c.relative_ce_reward(prob, new_prob, target, c.reward_eps).astype(np.float32)))
                    logits_t.append(logits)
                    values_t.append(values)
                    actions_t.append(actions)
                    prob = new_prob
                # 3. returns (the episode ends after T steps: no bootstrap), advantages, one update
                rewards = torch.stack(rewards_t).to(self.device)
                returns = a2c.discounted_returns(rewards, c.gamma)
                loss = a2c.a2c_loss(torch.stack(logits_t), torch.stack(values_t), torch.stack(actions_t), returns,
                                    advantage=c.advantage, value_coef=c.value_coef, entropy_coef=c.entropy_coef)
                opt.zero_grad(set_to_none=True)
                loss.total.backward()
                opt.step()
                sched.step()
                history["reward"].append(float(rewards.sum(0).mean()))
                history["loss"].append(float(loss.total.detach()))
                history["dice_end"].append(_mean_dice(prob, target))
        history["seconds"] = time.perf_counter() - t0
        self.net = net.eval()
        self.meta.update(seed=seed, n_train=len(samples), iterations=c.iterations,
                         pretrain_iterations=c.pretrain_iterations)
        return history

    # ---- inference -------------------------------------------------------------------------------
    def _require_net(self) -> RefineNet:
        if self.net is None:
            raise RuntimeError("IteR-MRL is not trained: call fit() or load() first")
        return self.net

    def step(self, image_z: np.ndarray, prob: np.ndarray, hints: np.ndarray) -> np.ndarray:
        """One greedy adjustment from an explicit state (z-scored image, probability, hints (2, ...))."""
        net = self._require_net()
        x = stack_states([[image_z, np.asarray(prob, np.float32), hints[0], hints[1]]]).to(self.device)
        with torch.no_grad(), torch_threads(self.config.threads):
            logits, _ = net(x, with_value=False)
        actions = a2c.greedy_actions(logits)[0].cpu().numpy()
        return a2c.apply_adjustments(prob, actions, self.config.adjustments)

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        """One IteR-MRL step: hint maps from all clicks, then every voxel's greedy adjustment.

        Parameters
        ----------
        image : ndarray (Y, X) or (Z, Y, X), raw
        prob : ndarray, same shape, previous probability
        clicks : sequence of Click
        init, spacing : ignored / passed to the hint maps

        Returns
        -------
        ndarray of float32, same shape
        """
        check_inputs(image, prob, clicks)
        if np.ndim(image) != self.config.dims:
            raise ValueError(f"this IteR-MRL model is {self.config.dims}D, the image is {np.ndim(image)}D")
        image_z = zscore(image)
        size = int(np.prod(np.shape(image)))
        if self.config.max_voxels and size > self.config.max_voxels:
            return self._refine_strided(image_z, np.asarray(prob, np.float32), clicks, spacing)
        return self.step(image_z, prob, self.hints(image_z, clicks, spacing))

    def _refine_strided(self, image_z: np.ndarray, prob: np.ndarray, clicks, spacing) -> np.ndarray:
        """Policy on a grid ``stride`` times coarser (area-averaged state, clicks moved with it); each coarse
        voxel's greedy action is applied to the full-resolution voxels it covers."""
        import torch.nn.functional as F

        stride = int(np.ceil((image_z.size / self.config.max_voxels) ** (1.0 / image_z.ndim)))
        pool = F.avg_pool2d if image_z.ndim == 2 else F.avg_pool3d
        full = torch.from_numpy(np.stack([image_z, prob]).astype(np.float32))[None]
        small = pool(full, stride, stride=stride, ceil_mode=True)[0].numpy()
        shape = small.shape[1:]
        moved = [Click(tuple(min(p // stride, n - 1) for p, n in zip(c.position, shape, strict=True)), c.positive)
                 for c in clicks]
        sp = None if spacing is None else [s * stride for s in spacing]
        hints = self.hints(small[0], moved, sp)
        x = stack_states([[small[0], small[1], hints[0], hints[1]]]).to(self.device)
        net = self._require_net()
        with torch.no_grad(), torch_threads(self.config.threads):
            logits, _ = net(x, with_value=False)
            coarse = a2c.greedy_actions(logits)[:, None].float()
            actions = F.interpolate(coarse, scale_factor=stride, mode="nearest")[0, 0].long().cpu().numpy()
        actions = actions[tuple(slice(0, n) for n in image_z.shape)]
        return a2c.apply_adjustments(prob, actions, self.config.adjustments)

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path) -> object:
        info = {"format": FORMAT, "format_version": 1, "config": self.config.to_dict(), "meta": self.meta}
        folder = save_model(path, self._require_net(), info)
        write_method_file(folder, "itermrl", "refiner", {"dims": self.config.dims, "channel": self.meta.get("channel")})
        return folder

    @classmethod
    def load(cls, path, device: str = "cpu") -> IterMRL:
        net, info = load_model(path, FORMAT)
        model = cls(IterMRLConfig.from_dict(info["config"]), device=device)
        model.net = net.to(model.device)
        model.meta = dict(info.get("meta", {}))
        return model
