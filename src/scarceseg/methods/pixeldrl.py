"""PixelDRL-MG: every pixel is an agent that writes the mask directly (paper 004, Liu et al. 2025).

An episode starts from the state ``f^(0)`` and runs ``t_max`` steps. At step ``t`` the network
(:class:`scarceseg.nets.pixeldrl_net.PixelDRLNet`: half-width dilated VGG16 + self-attention + dilated policy /
value heads) sees the image and ``f^(t-1)`` and every pixel draws an action from ``{0: set to background,
1: keep}``; the reward is eq. 12, ``r = (f^(t-1) - G)^2 - (f^(t) - G)^2`` per pixel, the returns are n-step
returns whose future term is a learned 3x3 convolution ``omega`` of the neighbours' returns (eq. 8), and the
losses are the pixel-averaged policy gradient and value regression of eqs. 13-16
(:func:`scarceseg.rl.a2c.a2c_loss`, ``advantage="pixel"``).

Choices where the paper is ambiguous (tested in ``tests/test_pixeldrl.py``)
---------------------------------------------------------------------------
* **f(0) = all ones.** ``s^(0) = I``: nothing has been set to zero yet, so every pixel starts as object.
* **"keep" and the segmentation network M.** The policy network *is* the segmentation network M (the
  feature extractor, SAM and heads are trained together by eq. 16). "Keep" means "keep M's output": the pixel
  is object at this step; "set to zero" makes it background. So the mask after step ``t`` is the action map,
  ``f^(t) = [a^(t) == keep]`` — not the previous mask with some pixels zeroed — which lets a pixel come back
  (the paper's Fig. 4 shows actions changing in both directions) and matches §Discussion: "set zero to
  represent the backgrounds, set one to represent the objects". At inference the actions are greedy
  (``argmax π``); the mask is ``f^(t_max)``.
* **Terminal state.** The episode ends after ``t_max`` steps, so the bootstrap value is 0 (Algorithm 1
  line 16). A consequence of eq. 12 with ``f = a``: the undiscounted return telescopes to
  ``(f^(t-1) - G)^2 - (f^(T) - G)^2``, so for steps before the last only the discount (1 - γ = 0.05) rewards
  being right early; the last step carries the full ±1 signal. This is one reason for the warm start below.
* **ω** is learned through the value loss only (eq. 13: ``R`` depends on ω); the policy term uses the
  detached advantage.
* **A3C → A2C.** One process, synchronous updates (see :mod:`scarceseg.rl.a2c`); same expected gradient,
  reproducible.

Configurations (paper, cpu, prior) and the reasons for the cpu one's choices: :mod:`scarceseg.methods.pixeldrl_config`.
Inputs and training batches: :mod:`scarceseg.methods.pixeldrl_inputs`.

Reproducibility: the same seed gives the same weights (CPU; deterministic algorithms on), and training
checkpoints (weights, Adam state, step, CPU seconds used, numpy and torch generator states) every
``checkpoint_every`` steps; resuming from a checkpoint gives the weights of an uninterrupted run.

References
----------
.. [1] Y. Liu et al., "Pixel level deep reinforcement learning for accurate and robust medical image
   segmentation", Scientific Reports 15, 2025 (paper 004), eqs. 1, 8, 12-16, Algorithm 1.
.. [2] R. Furuta, N. Inoue, T. Yamasaki, "PixelRL", IEEE TMM 2019 (reward map convolution).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scarceseg.methods.contract import write_method_file
from scarceseg.methods.pixeldrl_config import EMBED_CHANNELS, EMBED_GRID, PixelDRLConfig
from scarceseg.methods.pixeldrl_inputs import augment_batch, flip_batch, grid_of, prepare_image, take, to_torch
from scarceseg.nets.checkpoint import load_weights, read_checkpoint_info, save_checkpoint
from scarceseg.nets.engine import cosine, has_state, load_state, run, save_state, seeded
from scarceseg.nets.losses import soft_dice_prob
from scarceseg.nets.pixeldrl_net import KEEP, PixelDRLNet, PriorPixelDRLNet, count_parameters
from scarceseg.nets.runtime import resolve_device
from scarceseg.rl.a2c import a2c_loss, kernel_returns, mask_reward, sample_actions

FORMAT = "scarceseg.pixeldrl"
FORMAT_VERSION = 1
def soft_dice_keep(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Mean per-image soft Dice of ``π(keep)`` (logits (B, 2, Y, X)) and ``target`` (B, Y, X)."""
    return soft_dice_prob(torch.softmax(logits, dim=1)[:, KEEP].flatten(1), target.flatten(1), smooth)


# ---- the method --------------------------------------------------------------------------------------
class PixelDRL:
    """PixelDRL-MG agent: :meth:`fit` on prepared arrays, :meth:`predict` on raw slices, :meth:`save` / :meth:`load`.

    Parameters
    ----------
    config : PixelDRLConfig, optional
        Paper values by default; ``PixelDRLConfig.cpu()`` for the CPU configuration.
    device : str
        ``"cpu"`` (default, bit-reproducible), ``"cuda"`` or ``"auto"``.
    store : EmbeddingStore, optional
        ``features="prior"``: where the prior's embeddings come from (a cache folder shared with the few-shot
        learner); a fresh in-memory store by default.
    """

    def __init__(self, config: PixelDRLConfig | None = None, device: str = "cpu", store=None) -> None:
        self.config = config or PixelDRLConfig()
        self.device = resolve_device(device)
        self.net: PixelDRLNet | PriorPixelDRLNet | None = None
        self.in_channels: int | None = None
        self.meta: dict = {}
        self._store = store

    @property
    def store(self):
        """The :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore` of ``features="prior"``."""
        if self._store is None:
            from scarceseg.methods.prior_fewshot import EmbeddingStore

            self._store = EmbeddingStore()
        return self._store

    def build(self, in_channels: int) -> PixelDRLNet | PriorPixelDRLNet:
        c = self.config
        if c.features == "prior":
            return PriorPixelDRLNet(EMBED_CHANNELS, int(c.intensity), c.fuse_width, c.head_width,
                                    c.head_dilations).to(self.device)
        return PixelDRLNet(in_channels, c.widths, c.vgg_dilations, c.fuse_width, c.head_width, c.head_dilations,
                           c.state_in_trunk, norm=c.norm).to(self.device)

    # ---- inputs ------------------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray):
        """The network's input for one raw slice ``(C, Y, X)``.

        ``features="vgg"``: :func:`prepare_image` (C, S, S). ``features="prior"``: ``(embedding (256, 64, 64)
        float16, extra (K, S, S) float32)`` — the prior's frozen embedding of channel 0 (its valid part,
        resized to 64x64 so it covers the same frame as the S x S grid) and, with ``intensity``, channel 0
        normalised and resized to S x S.
        """
        cfg = self.config
        if cfg.features != "prior":
            return prepare_image(image, cfg.size, cfg.normalisation)
        image = np.asarray(image, dtype=np.float32)
        emb = self.store.get(image[0])
        feats = emb.features[..., : max(1, round(emb.resized_shape[0] / 4)), : max(1, round(emb.resized_shape[1] / 4))]
        if feats.shape[-2:] != (EMBED_GRID, EMBED_GRID):
            feats = F.interpolate(feats, size=(EMBED_GRID, EMBED_GRID), mode="bilinear", align_corners=False)
        extra = (prepare_image(image[:1], cfg.size, cfg.normalisation) if cfg.intensity
                 else np.zeros((0, cfg.size, cfg.size), dtype=np.float32))
        return feats[0].numpy().astype(np.float16), extra

    def prepare_batch(self, images):
        """:meth:`prepare` of several slices, stacked: (N, C, S, S), or a tuple of two stacks for the prior."""
        items = [self.prepare(im) for im in images]
        if self.config.features != "prior":
            return np.stack(items)
        self._image_channels = int(np.shape(images[0])[0])  # what predict() will expect (the prior reads channel 0)
        return np.stack([e for e, _ in items]), np.stack([x for _, x in items])

    @property
    def n_parameters(self) -> int:
        return count_parameters(self._require_net())

    # ---- episodes ----------------------------------------------------------------------------------
    def rollout(self, net: PixelDRLNet, x: torch.Tensor, t_max: int, greedy: bool,
                generator: torch.Generator | None = None, grad: bool = True):
        """Run one episode from ``f^(0) = 1``.

        Parameters
        ----------
        net : PixelDRLNet
        x : Tensor (B, C, S, S)
        t_max : int
        greedy : bool
            ``argmax`` actions (inference) or sampled ones (training).
        generator : torch.Generator, optional
        grad : bool

        Returns
        -------
        logits (T, B, 2, S, S), values (T, B, 1, S, S), actions (T, B, S, S) int64, masks (T+1, B, 1, S, S)
        float with ``masks[0] = f^(0)``.
        """
        ref = grid_of(x)
        f = torch.ones((ref.shape[0], 1, *ref.shape[-2:]), dtype=ref.dtype, device=ref.device)
        logits_l, values_l, actions_l, masks = [], [], [], [f]
        with torch.set_grad_enabled(grad):
            feats = None if net.state_in_trunk else net.encode(x)
            for _ in range(t_max):
                logits, value = net(x, f) if net.state_in_trunk else net.act(feats, f)
                a = logits.argmax(1) if greedy else sample_actions(logits, generator)
                f = (a == KEEP).to(ref.dtype).unsqueeze(1)
                logits_l.append(logits)
                values_l.append(value)
                actions_l.append(a)
                masks.append(f)
        return torch.stack(logits_l), torch.stack(values_l), torch.stack(actions_l), torch.stack(masks)

    def episode_loss(self, net: PixelDRLNet, x: torch.Tensor, g: torch.Tensor, warm: bool,
                     generator: torch.Generator) -> tuple[torch.Tensor, dict]:
        """Loss of one sampled episode: PA3C (eqs. 8, 12-16), or the warm-start variant (oracle log-likelihood)."""
        cfg = self.config
        logits, values, actions, masks = self.rollout(net, x, cfg.t_max, greedy=False, generator=generator)
        gt = g.unsqueeze(1)
        rewards = torch.stack([mask_reward(masks[t], masks[t + 1], gt).squeeze(1) for t in range(cfg.t_max)])
        returns = kernel_returns(rewards, cfg.gamma, net.omega)
        info = {"reward": float(rewards.sum(0).mean())}
        flat = logits.flatten(0, 1)
        target = g.unsqueeze(0).expand(cfg.t_max, *g.shape).flatten(0, 1)
        sup = F.cross_entropy(flat, target.long()) + 1.0 - soft_dice_keep(flat, target)
        if not warm:
            parts = a2c_loss(logits, values, actions, returns, advantage="pixel", value_coef=cfg.value_coef,
                             entropy_coef=cfg.entropy_coef)
            return (parts.total + cfg.rl_sup_coef * sup if cfg.rl_sup_coef else parts.total), info
        value_loss = ((returns - values.squeeze(2)) ** 2).mean()
        return sup + cfg.value_coef * value_loss, info

    # ---- training ------------------------------------------------------------------------------------
    def fit(self, images: np.ndarray, masks: np.ndarray, seed: int = 0, steps: int | None = None,
            budget_s: float | None = None, checkpoint_dir: str | Path | None = None, checkpoint_every: int = 50,
            resume: bool = False, stop_at: int | None = None, progress: bool = False) -> dict:
        """Train on prepared images and masks.

        Parameters
        ----------
        images : ndarray (N, C, S, S) float32, or for ``features="prior"`` a tuple (N, 256, 64, 64), (N, K, S, S)
            Output of :meth:`prepare_batch` (S = ``config.size``).
        masks : ndarray (N, S, S) bool
        seed : int
            Seeds initialisation, batch order, augmentation and action sampling.
        steps : int, optional
            Number of updates (default: ``epochs * ceil(N / batch_size)``).
        budget_s : float, optional
            Stop when this many process CPU seconds (``time.process_time``) have been spent in this run (with
            a checkpoint: in all runs together). Phases and the schedule then follow the spent fraction.
        checkpoint_dir : str or Path, optional
            Where the training state goes every ``checkpoint_every`` steps and at the end.
        resume : bool
            Continue from the state in ``checkpoint_dir`` when there is one.
        stop_at : int, optional
            Leave after this many updates (counting resumed ones) as if interrupted; the schedule still follows
            ``steps`` / ``budget_s``, so a resumed run continues exactly.
        progress : bool

        Returns
        -------
        dict
            ``loss``, ``reward`` (per step), ``steps``, ``warm_steps``, ``cpu_seconds``, ``seconds``, ``seed``.
        """
        cfg = self.config
        if cfg.features == "prior":
            if not isinstance(images, tuple) or len(images) != 2:
                raise ValueError("features='prior' trains on (embeddings, extra) from prepare_batch()")
            x_all = (np.asarray(images[0]), np.asarray(images[1], dtype=np.float32))
            if x_all[0].ndim != 4 or x_all[0].shape[1] != EMBED_CHANNELS or len(x_all[0]) != len(x_all[1]):
                raise ValueError(f"embeddings must be (N, {EMBED_CHANNELS}, h, w), got {x_all[0].shape}")
        else:
            x_all = np.asarray(images, dtype=np.float32)
        ref = grid_of(x_all)
        g_all = np.asarray(masks).astype(bool)
        if ref.ndim != 4 or g_all.shape != (ref.shape[0], *ref.shape[2:]):
            raise ValueError(f"images must be (N, C, S, S) and masks (N, S, S); got {ref.shape}, {g_all.shape}")
        if ref.shape[-1] != cfg.size or ref.shape[-2] != cfg.size:
            raise ValueError(f"images must be prepared at size {cfg.size}, got {ref.shape[-2:]}")
        n = len(ref)
        per_epoch = math.ceil(n / cfg.batch_size)
        total = steps if steps is not None else cfg.epochs * per_epoch
        t_wall = time.perf_counter()
        with seeded(seed):
            in_channels = getattr(self, "_image_channels", 1) if cfg.features == "prior" else ref.shape[1]
            net = self.build(in_channels)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            gen = torch.Generator().manual_seed(seed)
            rng = np.random.default_rng(seed)
            hist: dict = {"loss": [], "reward": [], "steps": 0, "warm_steps": 0, "cpu_seconds": 0.0, "seed": seed}
            ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
            if resume and has_state(ckpt):
                hist = load_state(ckpt, net, opt, gen, rng)

            def step(index: int, frac: float) -> float:
                warm = frac < cfg.warm_fraction
                for group in opt.param_groups:
                    group["lr"] = self._lr(frac, index // per_epoch, warm)
                idx = rng.permutation(n)[: cfg.batch_size]
                xb, gb = take(x_all, idx), g_all[idx]
                if cfg.augment:
                    xb, gb = flip_batch(xb, gb, rng) if cfg.features == "prior" else augment_batch(xb, gb, rng)
                xt = to_torch(xb, self.device)
                gt = torch.from_numpy(gb.astype(np.float32)).to(self.device)
                net.train()
                loss, info = self.episode_loss(net, xt, gt, warm, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                hist["reward"].append(info["reward"])
                hist["warm_steps"] += int(warm)
                return float(loss.detach())

            def checkpoint(history: dict) -> None:
                save_state(ckpt, net, opt, gen, rng, history, {"config": cfg.to_dict()})

            run(step, total, hist, cpu_seconds=budget_s, description="training PixelDRL-MG", progress=progress,
                checkpoint=checkpoint if ckpt is not None else None, every=checkpoint_every, stop_at=stop_at)
        hist["seconds"] = time.perf_counter() - t_wall
        net.eval()
        self.net, self.in_channels = net, int(in_channels)
        self.meta.update(seed=seed, n_train=n, steps=hist["steps"], warm_steps=hist["warm_steps"],
                         cpu_seconds=hist["cpu_seconds"])
        return hist

    def _lr(self, frac: float, epoch: int, warm: bool) -> float:
        cfg = self.config
        if cfg.schedule == "paper":
            base = cfg.lr if (warm or cfg.rl_lr is None) else cfg.rl_lr
            return base * cfg.lr_decay ** (epoch // cfg.decay_every_epochs)
        w = cfg.warm_fraction
        if warm:
            return cosine(frac / w, cfg.lr)
        base = cfg.rl_lr if cfg.rl_lr is not None else cfg.lr
        sub = (frac - w) / (1.0 - w) if w < 1.0 else 1.0
        return cosine(sub, base)

    # ---- inference -------------------------------------------------------------------------------------
    def _require_net(self) -> PixelDRLNet:
        if self.net is None:
            raise RuntimeError("PixelDRL-MG is not trained: call fit() or load() first")
        return self.net

    def predict_prepared(self, x, t_max: int | None = None, out_size: tuple[int, int] | None = None,
                         ) -> np.ndarray:
        """Greedy episode on prepared images (B, C, S, S) (prior: the tuple of :meth:`prepare_batch`); returns
        the masks after every step (T, B, Y, X) bool.

        With ``out_size`` the keep-minus-background logits of every step are upsampled bilinearly to
        ``out_size`` and the mask is where they are positive (= the argmax action at that resolution).
        """
        net = self._require_net()
        net.eval()
        xt = to_torch(x, self.device)
        logits, _, actions, _ = self.rollout(net, xt, t_max or self.config.t_max, greedy=True, grad=False)
        grid = grid_of(x)
        if out_size is None or tuple(out_size) == tuple(grid.shape[-2:]):
            return (actions == KEEP).cpu().numpy()
        diff = (logits[:, :, KEEP] - logits[:, :, 1 - KEEP]).flatten(0, 1).unsqueeze(1)
        up = F.interpolate(diff, size=tuple(out_size), mode="bilinear", align_corners=False)
        return (up.squeeze(1) > 0).reshape(len(logits), len(grid), *out_size).cpu().numpy()

    def predict(self, image: np.ndarray, t_max: int | None = None, return_steps: bool = False):
        """Segment one raw slice.

        Parameters
        ----------
        image : ndarray (C, Y, X)
            Raw intensities with the ``C`` the network was trained on.
        t_max : int, optional
            Steps of the episode (default ``config.t_max``).
        return_steps : bool
            Also return the action map of every step (the paper's Fig. 4).

        Returns
        -------
        mask : ndarray (Y, X) bool
            ``f^(t_max)``.
        steps : ndarray (T, Y, X) bool
            Only with ``return_steps``: ``f^(1)`` … ``f^(T)`` (= the keep actions).
        """
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 3 or image.shape[0] != self.in_channels:
            raise ValueError(f"expected an image (C={self.in_channels}, Y, X), got shape {image.shape}")
        x = self.prepare_batch([image])
        steps = self.predict_prepared(x, t_max, out_size=image.shape[-2:])[:, 0]
        return (steps[-1], steps) if return_steps else steps[-1]

    # ---- persistence -------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "in_channels": self.in_channels,
                "config": self.config.to_dict(), "n_parameters": self.n_parameters, "meta": self.meta}
        folder = save_checkpoint(path, self._require_net(), info)
        name = "pixeldrl-prior" if self.config.features == "prior" else "pixeldrl"
        write_method_file(folder, name, "segmenter", {"channels": self.meta.get("channels", "all")})
        return folder

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", store=None) -> PixelDRL:
        info, w_path = read_checkpoint_info(path, FORMAT, "a PixelDRL-MG model folder (scarceseg train pixeldrl)",
                                            "a PixelDRL-MG model")
        model = cls(PixelDRLConfig.from_dict(info["config"]), device=device, store=store)
        model.in_channels = int(info["in_channels"])
        model.meta = dict(info.get("meta", {}))
        net = model.build(model.in_channels)
        load_weights(net, w_path, "the PixelDRL-MG network")
        model.net = net.eval()
        return model
