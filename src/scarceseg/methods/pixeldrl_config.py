"""PixelDRL-MG's settings (:class:`PixelDRLConfig`): the paper's values, and ours for a CPU and for the prior.

Configurations
--------------
:meth:`PixelDRLConfig.paper` — the paper's values: 256x256 input, VGG widths (32, 64, 128, 256), f^(t-1) fed to
the VGG at every step, t_max = 10, γ = 0.95, Adam lr 1e-3 × 0.9 every 25 epochs, batch 2, 200 epochs, pure PA3C.

:meth:`PixelDRLConfig.cpu` — what two shared CPU cores can train in minutes, keeping the method's idea
(pixel agents, binary background/keep actions, eq. 12 rewards, ω-returns, SAM + dilated heads at input
resolution):

===================  ===========================  ========================================================
setting              paper                        cpu
===================  ===========================  ========================================================
input                256x256                      128x128 (logits upsampled bilinearly to the slice)
VGG widths           32, 64, 128, 256             8, 16, 32, 64, with instance norm after each convolution
fused / head width   (not given) 64 / 64          16 / 16; one dilated (d = 2) 3x3 layer + 1x1 per head
state f^(t-1)        into the VGG, every step     into the heads only: VGG + SAM once per episode
t_max                10                           3 (inference can run more steps: Fig. 7 uses 1..10)
schedule             lr 1e-3 × 0.9 / 25 epochs    cosine per phase; warm start lr 3e-3, PA3C lr 1e-3
batch                2                            4
training             PA3C only                    "mixed": warm start (first 60 % of the budget), then
                                                  PA3C + the warm-start loss (``rl_sup_coef`` = 1)
augmentation         none stated                  flips and quarter turns
===================  ===========================  ========================================================

The warm start rolls out the same episodes (sampled actions, so the policy meets its own states) and
replaces the policy-gradient term by the log-likelihood of the oracle action ``a* = G`` (cross entropy +
soft Dice of π(keep)) at every step, while the critic and ω already learn from eq. 12 rewards. With ``f = a``
the oracle action is the optimal one for eq. 12, so this is behaviour cloning of the optimal policy. In the
PA3C phase the eqs. 13-16 loss is added to it. Why not PA3C alone on a CPU budget: measured on LGG
(150 CPU s, 154 warm-start + 105 pure PA3C updates) and on a toy set of bright squares, pure PA3C drifts to
"everything background" (tumour is ~2 % of a slice, and for every step but the last eq. 12 separates the
actions only by 1 - γ, far below the noise of a young critic); the oracle term keeps it from drifting.
Measured as well: without instance norm the narrow VGG had not started to segment after 98 updates (Dice 0.00
vs 0.54 with it). Training length is a step count or a budget of process CPU seconds (``time.process_time``,
which counts every torch thread). Use one torch thread on a shared machine: two threads made the unit tests'
tiny networks 50 times slower under load.

Features from the prior
-----------------------
:meth:`PixelDRLConfig.prior` (``features="prior"``, registered as ``pixeldrl-prior``) keeps the agents, the
actions, eq. 12 rewards, ω-returns and the cpu configuration's training (warm start, then PA3C + the oracle
term), but replaces the VGG + SAM trunk learned from scratch by the frozen image embedding of the pretrained
prior (LiteMedSAM, 256 x 64 x 64 for the slice resized to 256; cached by
:class:`~scarceseg.methods.prior_fewshot.EmbeddingStore`). A 1x1 convolution reduces it to ``fuse_width``
channels, it is upsampled bilinearly to the agents' ``size`` x ``size`` grid and, with ``intensity``, the
normalised slice at that grid is appended; only this reduction, the policy / value heads and ω are trained
(about 46 k parameters). The prior sees one channel (the first of the selected ones; the method's default is
FLAIR). Augmentation is left-right / up-down flips of embedding, intensity and mask (like the few-shot learner;
no quarter turns, which the prior's positional encoding makes unlike any real embedding).
"""

from __future__ import annotations

from dataclasses import dataclass

from scarceseg.configs import ConfigDict

SCHEDULES = ("paper", "cosine")
FEATURES = ("vgg", "prior")
EMBED_CHANNELS, EMBED_GRID = 256, 64  # the prior's image embedding (LiteMedSAM: 256 x 64 x 64)
PRESETS = ("paper", "cpu", "prior")


@dataclass
class PixelDRLConfig(ConfigDict):
    """PixelDRL-MG settings; the defaults are paper 004's (§Implementation details), :meth:`cpu` ours."""

    size: int = 256  # paper 004 Table 1: Brain slices are 256x256 (trained at native size)
    widths: tuple[int, ...] = (32, 64, 128, 256)  # paper 004: first 23 VGG16 layers, half the channels
    vgg_dilations: tuple[int, ...] = (2, 2, 2, 2)  # paper 004: "3x3 dilation convolution" (rate not given)
    fuse_width: int = 64  # not in the paper: 1x1 fusion of conv1_2, conv2_2, conv3_3 and SAM(conv4_3)
    head_width: int = 64  # not in the paper: width of the policy/value heads
    head_dilations: tuple[int, ...] = (2, 4, 1)  # paper 004: "DC in each layer" of both heads (rates not given)
    state_in_trunk: bool = True  # paper 004 Fig. 1: X^(t) enters the feature extractor at every step
    norm: bool = False  # paper 004: plain VGG16 convolutions (cpu: instance norm, faster learning)
    t_max: int = 10  # paper 004: "the length of each episode t_max to 10"
    gamma: float = 0.95  # paper 004: "the discount rate γ to 0.95"
    lr: float = 1e-3  # paper 004: Adam, "learning rates ... set to 1e-3"
    lr_decay: float = 0.9  # paper 004: "drops by a factor of 0.9 every 25 epoch"
    decay_every_epochs: int = 25  # paper 004
    batch_size: int = 2  # paper 004: "the batch size is set to 2"
    epochs: int = 200  # paper 004: "maximum epoch to 200"
    value_coef: float = 1.0  # paper 004 eq. 16: policy and value terms summed with weight 1
    entropy_coef: float = 0.0  # paper 004: no entropy term
    schedule: str = "paper"  # "paper": step decay above; "cosine": ours
    warm_fraction: float = 0.0  # paper 004: PA3C only; cpu: first part is the supervised warm start
    rl_lr: float | None = None  # PA3C learning rate when different from lr (cpu: smaller)
    rl_sup_coef: float = 0.0  # paper 004: none; cpu: the oracle-action loss stays on during PA3C
    augment: bool = False  # not in the paper
    normalisation: str = "percentile"  # not in the paper: see preprocess.intensity.normalise
    features: str = "vgg"  # "vgg": the paper's network learned from scratch; "prior": frozen LiteMedSAM embedding
    intensity: bool = True  # features="prior" only: the normalised intensity at the agents' grid into the heads

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        self.vgg_dilations = tuple(int(d) for d in self.vgg_dilations)
        self.head_dilations = tuple(int(d) for d in self.head_dilations)
        if self.features not in FEATURES:
            raise ValueError(f"unknown features {self.features!r}; choose one of {FEATURES}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if self.size % 8 or self.size < 8:
            raise ValueError(f"size must be a positive multiple of 8, got {self.size}")
        if self.t_max < 1 or self.batch_size < 1 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("t_max, batch_size and epochs must be >= 1 and lr > 0")
        if not 0.0 <= self.warm_fraction <= 1.0 or not 0.0 <= self.gamma <= 1.0:
            raise ValueError("warm_fraction and gamma must lie in [0, 1]")

    @classmethod
    def paper(cls) -> PixelDRLConfig:
        return cls()

    @classmethod
    def cpu(cls) -> PixelDRLConfig:
        """The CPU configuration of the module docstring's table."""
        return cls(size=128, widths=(8, 16, 32, 64), fuse_width=16, head_width=16, head_dilations=(2,),
                   state_in_trunk=False, norm=True, t_max=3, schedule="cosine", lr=3e-3, warm_fraction=0.6,
                   rl_lr=1e-3, rl_sup_coef=1.0, batch_size=4, value_coef=0.5, augment=True)

    @classmethod
    def prior(cls) -> PixelDRLConfig:
        """The agents on the frozen LiteMedSAM embedding (see "Features from the prior" in the module docstring)."""
        return cls(size=128, features="prior", fuse_width=32, head_width=32, head_dilations=(1, 2),
                   state_in_trunk=False, t_max=3, schedule="cosine", lr=3e-3, warm_fraction=0.6, rl_lr=1e-3,
                   rl_sup_coef=1.0, batch_size=4, value_coef=0.5, augment=True)

    @classmethod
    def named(cls, name: str) -> PixelDRLConfig:
        if name not in PRESETS:
            raise ValueError(f"unknown PixelDRL-MG config {name!r}; choose one of {', '.join(PRESETS)}")
        return getattr(cls, name)()
