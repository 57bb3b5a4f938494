"""The ACWE ConvNet's settings (:class:`ACWEConfig`): paper 003's values, the CPU budget this project runs, and the
data presets that choose the region of interest, the intensity window and the foreground phase
(:mod:`scarceseg.methods.acwe` explains the choices the paper leaves open)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from scarceseg.cluster.acwe import HEAVISIDES
from scarceseg.configs import ConfigDict
from scarceseg.preprocess.roi import ROIS, WINDOWS

MODES = (1, 2, 3, 4)
PAPER_SIZE = 192  # paper 003 §2: the network's input is 192 x 192
FOREGROUNDS = ("bright", "dark")
#: Data presets: how the region of interest and the window are chosen (see scarceseg.preprocess.roi).
DATA_PRESETS = {
    "lgg": {"roi": "brain", "window": "median", "foreground": "bright"},  # FLAIR-hyperintense lesion
    "la": {"roi": "centre", "window": "percentile", "foreground": "bright"},  # LGE-MRI atrial blood pool
}
#: Layout -> data preset for ``preset="auto"``.
LAYOUT_PRESETS = {"lgg": "lgg", "brats": "lgg", "pairs": "lgg", "h5": "la", "msd": "la"}


@dataclass
class ACWEConfig(ConfigDict):
    """Loss, network, modes and training budget; defaults are paper 003's (and its code's) values."""

    nu: float = 0.004  # paper 003 §2: "ν in the L_ACWE to be 0.004" (area weight)
    lambda1: float = 1.0  # paper 003 §2: "Both λ1 and λ2 are chosen to be 1"
    lambda2: float = 1.0  # paper 003 §2: idem
    mu: float = 0.0  # paper 003 §2: "we choose μ to be 0" (no length term in L_ACWE)
    alpha: float = 0.4  # paper 003 §2: "We set α = 0.4" (L = L_ACWE + α L_label)
    heaviside: str = "sigmoid"  # not in the paper (hard f > 0): smooth Heaviside so that the loss has a gradient
    eps: float = 0.03  # not in the paper: width of the smooth Heaviside in L_ACWE (scores are O(1))
    label_eps: float = 1.0  # not in the paper: width of the Heaviside of L_label when fine-tuning (modes 2, 3)
    length_weight: float = 1.0  # paper 003 eq. 3 (Chen et al. 2019, authors' code): weight of sum |grad H|
    width: int = 16  # not in the paper: 16 filters per layer, as in the authors' code
    n_recurrent: int = 3  # paper 003 §2: "three recurrent and two regular convolutional layers"
    steps: int = 3  # paper 003 §2: "For each recurrent layer, T = 3 time-steps"
    size: int = 192  # paper 003 §2: "input and output ... share the same dimension of 192 × 192 × 1"
    n_labels_mode2: int = 10  # paper 003 §3: Mode 2, "fine-tuning using L_label with 10 ground truth labels"
    n_labels_mode3: int = 80  # paper 003 §3: Mode 3, "... with 80 GT labels"
    lr: float = 5e-4  # not in the paper: Adam 5e-4 in the authors' code
    batch_size: int = 20  # not in the paper: 20 in the authors' code
    epochs: int = 160  # not in the paper: the authors' code runs 161 epochs (of 1,000 images)
    finetune_steps: int = 800  # not in the paper: the authors' fine-tuning runs 801 full-batch steps
    finetune_epochs: int = 0  # ours: fine-tune for at least this many passes over the labelled images
    channel: str = "auto"  # ours: "auto" = FLAIR when the case names one, else channel 0; or a name/index
    roi: str = "brain"  # ours: region of interest, scarceseg.preprocess.roi.ROIS
    window: str = "median"  # ours: intensity window, scarceseg.preprocess.roi.WINDOWS
    rim: float = 0.1  # ours: "brain" ROI, rim left out (fraction of the head's equivalent radius)
    centre_fraction: float = 0.7  # ours: "centre" ROI, side of the central box per axis
    foreground: str = "bright"  # ours: mode 1 foreground = the phase with the brighter mean

    def __post_init__(self) -> None:
        if self.heaviside not in HEAVISIDES:
            raise ValueError(f"unknown heaviside {self.heaviside!r}; choose one of {HEAVISIDES}")
        if self.roi not in ROIS:
            raise ValueError(f"unknown roi {self.roi!r}; choose one of {ROIS}")
        if self.window not in WINDOWS:
            raise ValueError(f"unknown window {self.window!r}; choose one of {WINDOWS}")
        if self.foreground not in FOREGROUNDS:
            raise ValueError(f"foreground must be one of {FOREGROUNDS}, got {self.foreground!r}")
        if min(self.batch_size, self.size, self.width) < 1 or self.epochs < 0 or self.finetune_steps < 0:
            raise ValueError("batch_size, size and width must be >= 1, epochs and finetune_steps >= 0")
        if self.length_weight < 0:
            raise ValueError(f"length_weight must be >= 0, got {self.length_weight}")
        if self.lr <= 0 or self.eps <= 0:
            raise ValueError(f"lr and eps must be > 0, got {self.lr}, {self.eps}")

    @classmethod
    def cpu(cls, **changes) -> ACWEConfig:
        """The budget used on this project's CPUs (about 40 ms per image and step on one core).

        64 x 64 grid (the Dice of an LGG mask sent to 64 x 64 and back is 0.98 of the one at 128 x 128),
        batch 8, 8 epochs over the training images for modes 1 and 4 (the ACWE loss is flat after 4),
        fine-tuning for 150 steps or 40 passes over the labelled images, whichever is more (mode 2: 150
        steps; mode 3: 400: with 80 labels 150 steps left LA 2018 under-fitted, test Dice 0.58 vs 0.65);
        everything else as in the paper.
        """
        return replace(cls(size=64, batch_size=8, epochs=8, finetune_steps=150, finetune_epochs=40), **changes)

    def with_data_preset(self, name: str) -> ACWEConfig:
        """A copy with the ROI, window and foreground rule of a :data:`DATA_PRESETS` entry."""
        if name not in DATA_PRESETS:
            raise ValueError(f"unknown data preset {name!r}; choose one of {sorted(DATA_PRESETS)}")
        return replace(self, **DATA_PRESETS[name])
