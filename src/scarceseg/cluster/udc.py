"""Unsupervised deep clustering (UDC): SLIC superpixels + a clustering CNN trained per image.

Paper 000 (Stember & Shalu), section 0.3: the image is tiled into ``N_sp`` SLIC superpixels; a small
CNN (three 3x3 convolutions with 100 channels, batch norm) predicts a class per pixel (the argmax over
its 100 output features); the *target* is, in every superpixel, the class most of its pixels got; the
cross-entropy between output and target is minimised with SGD (lr 0.1, momentum 0.9) and training
stops as soon as the number of classes in the output reaches ``N_cl = 25``. The classes are the
clusters, i.e. the candidate lesion masks (:mod:`scarceseg.cluster.candidates`).

Two presets:

* :meth:`UDCConfig.faithful` - the paper's values (10-25 s per 256x256 slice on 2 CPU cores).
* :meth:`UDCConfig.fast` - the same algorithm at a fraction of the cost (well under 1 s); see its
  docstring for what changes and the benchmark (``scarceseg.bench.propose_bench``) for the evidence.

Deviations from the paper (both presets)
----------------------------------------
* Input. The paper's SLIC ran on RGB screen captures (0..255), which scikit-image rescales to
  [0, 1] and converts to Lab (lightness 0..100): ``compactness = 100`` weighs a full lightness range
  against about one superpixel spacing. Our input is MRI: 1 or 3 float channels. Each channel is
  scaled to [0, 1] (minimum -> 0, 99.9th percentile -> 1, clipped, see :func:`normalise`) and given
  to SLIC without a Lab conversion; as scikit-image works on [0, 1], it gets ``compactness / 100``
  so that ``compactness`` keeps the paper's meaning on a 0..100 scale (linear intensity rather than
  Lab's cube-root lightness). With 3 channels the colour distance sums over all three, so the same
  compactness gives slightly less compact superpixels. The CNN sees the [0, 1] image.
* Network. "Batch norm after each convolutional layer" is read as conv -> ReLU -> BN for the first
  ``layers - 1`` layers and conv -> BN for the last (no ReLU before the argmax, which would tie many
  features at 0); the paper does not say where the nonlinearity sits.
* Stop. Training stops at the first forward pass whose argmax has ``<= target_clusters`` classes
  (the count can jump past 25); ``max_iters`` caps a run that never gets there (not in the paper).
* The labels returned are the argmax of that forward pass, renumbered ``0..K-1``.
* ``scale < 1`` (fast preset only) trains the CNN on a downsampled image and upsamples its output
  features bilinearly before the argmax.

Reproducibility: the initial weights come from a local ``torch.Generator`` seeded with ``seed`` (the
global torch RNG is forked and restored), training is full-batch with no other randomness, and
torch runs on ``config.threads`` CPU threads (1 by default; the previous setting is restored). The
same image, config and seed give identical labels. One thread is also the fast choice on a shared
machine: with 2 threads and other processes on the 2 cores, OpenMP synchronisation made the small
convolutions up to 25x slower.

References
----------
.. [1] J. N. Stember and H. Shalu, "Unsupervised deep clustering and reinforcement learning can
   accurately segment MRI brain tumors with very small training sets" (paper 000), sections 0.3.1-0.3.3.
.. [2] A. Kanezaki, "Unsupervised image segmentation by backpropagation", ICASSP 2018 (a closely
   related superpixel-refined clustering CNN).
.. [3] R. Achanta et al., "SLIC superpixels compared to state-of-the-art superpixel methods",
   IEEE TPAMI 34(11), 2012.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import numpy as np

from scarceseg.configs import ConfigDict
from scarceseg.errors import InputError

CANDIDATE_MODES = ("paper", "extended")


@dataclass
class UDCConfig(ConfigDict):
    """Hyper-parameters of the proposer; the defaults are the paper's (paper 000, section named).

    Attributes beyond the paper are marked "not in paper".
    """

    _facts = ("seed", "input_channels", "channel_names", "run")  # what a saved Proposal.config adds

    n_segments: int = 10_000  # 0.3.1: N_sp = 1e4 SLIC superpixels
    compactness: float = 100.0  # 0.3.1: SLIC compactness 100 (intensities scaled to 0..100, see module doc)
    channels: int = 100  # 0.3.2: N_C = 100 feature channels per layer
    layers: int = 3  # 0.3.2: three convolutional layers
    kernel: int = 3  # 0.3.2: 3x3 kernels, zero padding
    lr: float = 0.1  # 0.3.2: learning rate 0.1
    momentum: float = 0.9  # 0.3.2: SGD momentum 0.9
    target_clusters: int = 25  # 0.3.2: stop when N_cl reaches 25
    min_area: int = 1000  # 0.3.3: candidates > 1e3 px and < N - 1e3 px (on 240x240, scaled by area)
    reference_shape: tuple[int, int] = (240, 240)  # 0.3.2: the paper's image size, for scaling min_area
    max_iters: int = 200  # not in paper: safety cap on training iterations ("~20 epochs" in 0.3.2)
    scale: float = 1.0  # not in paper: CNN resolution as a fraction of the image's (1 = full)
    candidates: str = "paper"  # 0.3.3 "paper" = clusters filtered by size; "extended" = see candidates.py
    levels: tuple[int, ...] = (50, 35)  # not in paper: extended also keeps the clusters at these N_cl (see UDCResult)
    component_min_area: int | None = None  # not in paper: size floor of extended components (None = min_area)
    fill_holes: bool = True  # not in paper: extended adds hole-filled components
    dedupe_iou: float = 0.95  # not in paper: extended drops a candidate this similar to an earlier one
    max_candidates: int = 60  # not in paper: extended keeps at most this many
    threads: int = 1  # not in paper: torch CPU threads inside udc_cluster (1: robust on a shared machine)

    def __post_init__(self) -> None:
        if self.candidates not in CANDIDATE_MODES:
            raise ValueError(f"UDCConfig.candidates must be one of {CANDIDATE_MODES}, got {self.candidates!r}")
        if not 0 < self.scale <= 1:
            raise ValueError(f"UDCConfig.scale must be in (0, 1], got {self.scale}")
        for name in ("n_segments", "channels", "layers", "target_clusters", "max_iters", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"UDCConfig.{name} must be >= 1, got {getattr(self, name)}")
        self.reference_shape = tuple(int(v) for v in self.reference_shape)  # type: ignore[assignment]
        self.levels = tuple(int(v) for v in self.levels)

    @classmethod
    def faithful(cls, **changes) -> UDCConfig:
        """The paper's configuration (``candidates="paper"``); slow: 10-25 s per 256x256 slice."""
        return replace(cls(), **changes)

    @classmethod
    def fast(cls, **changes) -> UDCConfig:
        """The same algorithm at a fraction of the cost, with the richer candidate set.

        Changes (measured with :mod:`scarceseg.bench.propose_bench` on LGG development slices,
        one per patient; rerun with ``run_propose_bench``):

        * the CNN runs at half resolution (``scale=0.5``) and its output features are upsampled
          bilinearly before the argmax: 4x fewer pixels per iteration;
        * 32 feature channels instead of 100 (the backward pass dominates and grows with the
          square of the width; 40, 48 and 64 channels gave no better best-candidate Dice);
        * 2000 superpixels instead of 1e4 - about the paper's 6-8 pixels per superpixel at half
          resolution;
        * ``candidates="extended"`` with components down to 500 px at 240x240 (the paper's size
          floor, 1000 px, hides lesions smaller than that), and clusters kept from the levels
          50, 35 and 15 as well as 25 (training goes on to 15 classes; with 32 channels the
          count starts below 50 and 35, so those levels hold the untrained network's clusters).

        About 0.5 s of one CPU core per 256x256 slice against 10-25 s for :meth:`faithful`.
        """
        base = cls(
            n_segments=2000,
            channels=32,
            scale=0.5,
            candidates="extended",
            component_min_area=500,
            levels=(50, 35, 15),
        )
        return replace(base, **changes)

    @classmethod
    def preset(cls, name: str | UDCConfig | None) -> UDCConfig:
        """``"faithful"``, ``"fast"``, ``None`` (= fast) or a config (returned as is)."""
        if isinstance(name, UDCConfig):
            return name
        if name is None or name == "fast":
            return cls.fast()
        if name == "faithful":
            return cls.faithful()
        raise InputError(None, f"unknown proposer configuration {name!r}: use 'fast' or 'faithful'")


@dataclass
class UDCResult:
    """What one clustering run produced.

    Attributes
    ----------
    labels : ndarray (Y, X) int32
        The clusters when training stopped, numbered ``0..K-1``.
    levels : dict[int, ndarray (Y, X) int32]
        For each level of ``config.levels``, the label map of the first forward pass whose class
        count was ``<= level`` (when the count jumps past several levels they share that map).
        Levels below ``target_clusters`` keep training past it (``labels`` stays the map at
        ``target_clusters``); a level never reached within ``max_iters`` is absent.
    superpixels : ndarray (Y', X') int32
        The SLIC tiling the CNN was trained against (at the CNN's resolution).
    n_iters : int
        Optimiser steps taken.
    n_clusters : int
    reached : bool
        Whether the count reached ``target_clusters`` within ``max_iters``.
    timings : dict[str, float]
        Seconds spent in ``superpixels`` and ``cnn``.
    """

    labels: np.ndarray
    levels: dict[int, np.ndarray]
    superpixels: np.ndarray
    n_iters: int
    n_clusters: int
    reached: bool
    timings: dict[str, float] = field(default_factory=dict)


def normalise(image: np.ndarray) -> np.ndarray:
    """Scale each channel to [0, 1]: its minimum -> 0, its 99.9th percentile -> 1, clipped.

    Parameters
    ----------
    image : ndarray (C, Y, X)

    Returns
    -------
    ndarray (C, Y, X) float32
        A constant channel becomes all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    out = np.zeros_like(image)
    for c, channel in enumerate(image):
        lo = float(channel.min())
        hi = float(np.percentile(channel, 99.9))
        if hi <= lo:
            hi = float(channel.max())
        if hi > lo:
            out[c] = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
    return out


def superpixels(image01: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC tiling of a [0, 1] image (paper 000, 0.3.1).

    Parameters
    ----------
    image01 : ndarray (C, Y, X) float in [0, 1]
    n_segments : int
        Requested number of superpixels (SLIC returns about this many).
    compactness : float
        On the paper's scale: colour distances in units of 0..100 (the Lab lightness range its RGB
        screen captures had inside scikit-image). scikit-image rescales its input to [0, 1], so
        ``compactness / 100`` is what it is given; no Lab conversion.

    Returns
    -------
    ndarray (Y, X) int32
        Superpixel index ``0..N-1``, every index present. Deterministic (SLIC has no randomness).
    """
    from skimage.segmentation import slic

    channels_last = np.moveaxis(np.asarray(image01, dtype=np.float64), 0, -1)
    sp = slic(
        channels_last,
        n_segments=int(n_segments),
        compactness=float(compactness) / 100.0,
        channel_axis=-1,
        convert2lab=False,
        start_label=0,
        enforce_connectivity=True,
    )
    _, inverse = np.unique(sp, return_inverse=True)
    return inverse.reshape(sp.shape).astype(np.int32)


def build_network(in_channels: int, config: UDCConfig, generator):
    """The clustering CNN of paper 000 (Figure 2), weights drawn from ``generator``.

    ``layers`` convolutions of ``kernel x kernel`` with ``channels`` outputs and zero padding;
    conv -> ReLU -> BatchNorm for all but the last, conv -> BatchNorm for the last.
    """
    import torch
    from torch import nn

    modules: list[nn.Module] = []
    c_in = in_channels
    for i in range(config.layers):
        conv = nn.Conv2d(c_in, config.channels, config.kernel, padding=config.kernel // 2)
        bound_w = 1.0 / math.sqrt(c_in * config.kernel * config.kernel)  # PyTorch's default init range
        with torch.no_grad():
            conv.weight.uniform_(-bound_w, bound_w, generator=generator)
            conv.bias.uniform_(-bound_w, bound_w, generator=generator)
        modules.append(conv)
        if i < config.layers - 1:
            modules.append(nn.ReLU())
        modules.append(nn.BatchNorm2d(config.channels))
        c_in = config.channels
    return nn.Sequential(*modules)


def _resize_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    return max(8, round(shape[0] * scale)), max(8, round(shape[1] * scale))


def _consecutive(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def udc_cluster(
    image: np.ndarray, config: UDCConfig | None = None, seed: int = 0, normalised: bool = False
) -> UDCResult:
    """Cluster one 2D image with SLIC + the clustering CNN (paper 000, 0.3.1-0.3.2).

    Parameters
    ----------
    image : ndarray (C, Y, X)
        Any intensities; scaled with :func:`normalise` unless ``normalised``.
    config : UDCConfig, optional
        Default: :meth:`UDCConfig.faithful` values.
    seed : int
        Seeds the network's initial weights (a local ``torch.Generator``; the global torch RNG is
        restored afterwards). Same seed, image and config -> identical labels.
    normalised : bool
        ``image`` is already in [0, 1].

    Returns
    -------
    UDCResult
    """
    import torch
    import torch.nn.functional as F

    config = config or UDCConfig()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"udc_cluster needs a 2D image (C, Y, X), got shape {image.shape}")
    image01 = image if normalised else normalise(image)
    full_shape = image01.shape[1:]
    timings: dict[str, float] = {}

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            x = torch.from_numpy(np.ascontiguousarray(image01))[None]
            if config.scale < 1:
                small = _resize_shape(full_shape, config.scale)
                x = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
            t0 = time.perf_counter()
            sp = superpixels(x[0].numpy(), config.n_segments, config.compactness)
            timings["superpixels"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            net = build_network(x.shape[1], config, generator)
            net.train()
            optimiser = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum)
            sp_flat = torch.from_numpy(sp.ravel().astype(np.int64))
            n_sp = int(sp.max()) + 1
            n_ch = config.channels
            target_n = config.target_clusters
            pending = sorted({*config.levels, target_n}, reverse=True)
            stop_at = pending[-1]  # levels below N_cl keep training past it (not in paper)
            recorded: dict[int, torch.Tensor] = {}
            n_iters = 0
            while True:
                optimiser.zero_grad(set_to_none=True)
                out = net(x)  # (1, channels, y, x)
                pred = out.detach()[0].reshape(n_ch, -1).argmax(0)  # class per pixel (ties: lowest)
                n_classes = int(torch.bincount(pred, minlength=n_ch).count_nonzero())
                while pending and n_classes <= pending[0]:
                    recorded[pending.pop(0)] = out.detach()[0]
                if n_classes <= stop_at or n_iters >= config.max_iters:
                    break
                counts = torch.bincount(sp_flat * n_ch + pred, minlength=n_sp * n_ch).reshape(n_sp, n_ch)
                target = counts.argmax(1)[sp_flat]  # majority class of each superpixel (ties: lowest)
                loss = F.cross_entropy(out, target.reshape(1, *out.shape[2:]))
                loss.backward()
                optimiser.step()
                n_iters += 1

            def to_labels(features: torch.Tensor) -> np.ndarray:
                if tuple(features.shape[1:]) != tuple(full_shape):
                    features = F.interpolate(features[None], size=full_shape, mode="bilinear", align_corners=False)[0]
                return _consecutive(features.argmax(0).numpy())

            reached = target_n in recorded
            with torch.no_grad():
                labels = to_labels(recorded.pop(target_n) if reached else out.detach()[0])
                levels = {lv: to_labels(feat) for lv, feat in recorded.items()}
            timings["cnn"] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous_threads)
    return UDCResult(
        labels=labels,
        levels=levels,
        superpixels=sp,
        n_iters=n_iters,
        n_clusters=int(labels.max()) + 1,
        reached=reached,
        timings=timings,
    )
