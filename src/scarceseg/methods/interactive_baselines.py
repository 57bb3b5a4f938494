"""Supervised interactive refiners compared with IteR-MRL in paper 002: DeepIGeoS R-Net-style and InterCNN.

Both use the same dilated backbone as IteR-MRL (:class:`scarceseg.nets.refine_net.RefineNet`, one
output logit, no value head), the same robot user and the same data (D_train2 with the initial
method's probabilities), as paper 002 §3.3 does "for fair comparison". They differ in what they see:

* ``"rnet"`` — DeepIGeoS R-Net (Wang et al. 2019) style: input = image, the *initial* probability and
  the two geodesic hint maps of all clicks so far; output = a new segmentation. It always refines the
  initial segmentation, so what it produced at earlier steps is not used (paper 002 §2.2's point).
  Training: clicks of ``5k`` paper-robot clicks (``k`` uniform in 1..5) on the initial mask's errors,
  one supervised step.
* ``"intercnn"`` — InterCNN (Bredell et al. 2018): input = image, its own *previous binary* prediction and
  the click maps (Gaussian, sigma 5 voxels here; the paper used scribbles); trained iteratively: an
  episode of ``T`` steps where the robot clicks on the network's current errors and the next step
  sees the binarised (detached) output.

Loss: binary cross-entropy + (1 - soft Dice), Adam; not specified by paper 002 for the baselines.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.configs import ConfigDict
from scarceseg.interactive.clicks import Click, PaperRobot, split_clicks
from scarceseg.interactive.hints import hint_maps
from scarceseg.interactive.refiners import check_inputs, zscore
from scarceseg.methods.contract import write_method_file
from scarceseg.methods.refine_data import RefineSample, load_model, random_crop, save_model, stack_states
from scarceseg.nets.engine import cosine, run, seeded
from scarceseg.nets.losses import soft_dice
from scarceseg.nets.refine_net import RefineNet
from scarceseg.nets.runtime import torch_threads

FORMAT = "scarceseg.supervised_refiner"
KINDS = ("rnet", "intercnn")


@dataclass
class BaselineConfig(ConfigDict):
    """Training settings of the R-Net-style and InterCNN baselines (shared with IteR-MRL where it applies)."""

    kind: str = "rnet"  # "rnet" (DeepIGeoS R-Net style) or "intercnn"
    steps: int = 5  # paper 002 §4.2: T = 5 refinement steps (InterCNN's training episodes)
    n_clicks: int = 5  # paper 002 §4.2: N_click = 5
    click_noise: int = 3  # paper 002 §4.2: eps_noise = [-3, 3]
    lr: float = 1e-3  # not in paper 002: Adam, cosine decay
    batch_size: int = 4  # not in paper 002 (paper: 1)
    iterations: int = 300  # not in paper 002: a CPU budget
    width: int = 16  # paper 002 §3.3: same backbone as IteR-MRL (R-Net uses 64; 16 fits the CPU)
    dims: int = 2
    crop: tuple[int, ...] = (96, 96)
    hint_kind: str = ""  # "" = the kind's own: geodesic for rnet (DeepIGeoS), gaussian for intercnn
    hint_scale: float = 10.0  # rnet: exp(-d/scale); intercnn: Gaussian sigma = scale / 2
    hint_lamb: float = 0.5
    bg_fraction: float = 0.3  # as IterMRLConfig.cpu(): share of all-background initial masks
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown baseline kind {self.kind!r}; choose one of {KINDS}")
        self.crop = tuple(int(c) for c in self.crop)
        if self.dims not in (2, 3) or len(self.crop) != self.dims:
            raise ValueError(f"dims must be 2 or 3 and crop must have dims entries, got {self.dims}, {self.crop}")
        if not self.hint_kind:
            self.hint_kind = "geodesic" if self.kind == "rnet" else "gaussian"

    @classmethod
    def for_dims(cls, kind: str, dims: int = 2) -> BaselineConfig:
        return cls(kind=kind, dims=dims, crop=(96, 96) if dims == 2 else (32, 48, 48))




def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + 1.0 - soft_dice(logits, target)


class SupervisedRefiner:
    """R-Net-style (``kind="rnet"``) or InterCNN (``kind="intercnn"``) refiner; implements ``Refiner``."""

    def __init__(self, config: BaselineConfig | None = None, device: str = "cpu") -> None:
        self.config = config or BaselineConfig()
        self.device = torch.device(device)
        self.net: RefineNet | None = None
        self.meta: dict = {}

    @property
    def name(self) -> str:
        return self.config.kind

    def hints(self, image_z: np.ndarray, clicks: Sequence[Click], spacing=None) -> np.ndarray:
        c = self.config
        pos, neg = split_clicks(clicks)
        scale = c.hint_scale / 2 if c.hint_kind == "gaussian" else c.hint_scale
        return hint_maps(image_z, pos, neg, kind=c.hint_kind, scale=scale, lamb=c.hint_lamb, spacing=spacing)

    def _state(self, image_z, prev, clicks, spacing=None) -> list[np.ndarray]:
        return [image_z, np.asarray(prev, np.float32), *self.hints(image_z, clicks, spacing)]

    # ---- training --------------------------------------------------------------------------------
    def fit(self, samples: Sequence[RefineSample], seed: int = 0, progress: bool = False,
            cpu_seconds: float | None = None) -> dict:
        """Supervised training on crops of ``samples`` for ``config.iterations`` updates (or fewer, when
        ``cpu_seconds`` of process CPU time run out first); returns ``loss`` per update, ``seconds``, ``seed``."""
        c = self.config
        if not samples:
            raise ValueError("no training samples")
        rng = np.random.default_rng(seed)
        robot = PaperRobot(n_clicks=c.n_clicks, noise=c.click_noise, seed=seed)
        history: dict = {"loss": [], "seed": seed}
        t0 = time.perf_counter()
        with seeded(seed, threads=c.threads, exact=False):
            net = RefineNet(4, 1, value_head=False, width=c.width, dims=c.dims).to(self.device)
            opt = torch.optim.Adam(net.parameters(), lr=c.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine(min(s, c.iterations) / c.iterations))
            net.train()

            def step(index: int, frac: float) -> float:
                picks = [samples[int(rng.integers(len(samples)))] for _ in range(c.batch_size)]
                batch = [random_crop(s, c.crop, rng) for s in picks]
                inits = [b.init if rng.random() >= c.bg_fraction else np.zeros_like(b.init) for b in batch]
                target = torch.from_numpy(np.stack([b.target for b in batch]).astype(np.float32)[:, None])
                if c.kind == "rnet":
                    states = []
                    for b, init in zip(batch, inits, strict=True):
                        robot.n_clicks = c.n_clicks * int(rng.integers(1, c.steps + 1))
                        clicks = robot(init > 0.5, b.target, step=1)
                        states.append(self._state(b.image, init, clicks))
                    loss = _loss(net(stack_states(states).to(self.device)), target.to(self.device))
                else:
                    robot.n_clicks = c.n_clicks
                    prev = [(init > 0.5).astype(np.float32) for init in inits]
                    clicks = [[] for _ in batch]
                    loss = 0.0
                    for t in range(c.steps):
                        states = []
                        for i, b in enumerate(batch):
                            clicks[i] += robot(prev[i] > 0.5, b.target, step=t + 1)
                            states.append(self._state(b.image, prev[i], clicks[i]))
                        logits = net(stack_states(states).to(self.device))
                        loss = loss + _loss(logits, target.to(self.device)) / c.steps
                        prev = list((logits.detach() > 0).float()[:, 0].cpu().numpy())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                return float(loss.detach())

            run(step, c.iterations, history, cpu_seconds=cpu_seconds, description=f"training {c.kind}",
                progress=progress)
        history.pop("steps", None)
        history.pop("cpu_seconds", None)
        history["seconds"] = time.perf_counter() - t0
        self.net = net.eval()
        self.meta.update(seed=seed, n_train=len(samples), iterations=c.iterations)
        return history

    # ---- inference -------------------------------------------------------------------------------
    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        """R-Net: refine ``init`` with all clicks; InterCNN: refine the binarised ``prob``. Returns 0/1 floats
        for InterCNN and the sigmoid probability for R-Net."""
        if self.net is None:
            raise RuntimeError(f"the {self.config.kind} refiner is not trained: call fit() or load() first")
        check_inputs(image, prob, clicks)
        if np.ndim(image) != self.config.dims:
            raise ValueError(f"this model is {self.config.dims}D, the image is {np.ndim(image)}D")
        image_z = zscore(image)
        if self.config.kind == "rnet":
            prev = np.asarray(prob if init is None else init, np.float32)
        else:
            prev = (np.asarray(prob) > 0.5).astype(np.float32)
        x = stack_states([self._state(image_z, prev, clicks, spacing)]).to(self.device)
        with torch.no_grad(), torch_threads(self.config.threads):
            out = torch.sigmoid(self.net(x))[0, 0].cpu().numpy().astype(np.float32)
        return (out > 0.5).astype(np.float32) if self.config.kind == "intercnn" else out

    # ---- persistence -----------------------------------------------------------------------------
    def save(self, path):
        if self.net is None:
            raise RuntimeError("nothing to save: the refiner is not trained")
        info = {"format": FORMAT, "format_version": 1, "config": self.config.to_dict(), "meta": self.meta}
        folder = save_model(path, self.net, info)
        options = {"dims": self.config.dims, "channel": self.meta.get("channel")}
        write_method_file(folder, self.config.kind, "refiner", options)
        return folder

    @classmethod
    def load(cls, path, device: str = "cpu") -> SupervisedRefiner:
        net, info = load_model(path, FORMAT)
        model = cls(BaselineConfig.from_dict(info["config"]), device=device)
        model.net = net.to(model.device)
        model.meta = dict(info.get("meta", {}))
        return model
