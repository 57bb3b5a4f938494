"""Training data shared by the trained refiners (IteR-MRL, R-Net-style, InterCNN).

A :class:`RefineSample` is one image channel, its binary target and the initial method's probability on
it (paper 002 §4.1: the refiners learn on D_train2 *with the initial method's outputs on it*). Training
works on random crops that contain part of the target (:func:`random_crop`), because the networks are
fully convolutional and whole 256x256 slices or volumes cost too much CPU per step; inference runs on the
whole image or crop. The helpers here also hold the model folder all three share (via :mod:`scarceseg.nets.checkpoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scarceseg.interactive.refiners import zscore
from scarceseg.nets.checkpoint import load_weights, read_checkpoint_info, save_checkpoint
from scarceseg.nets.refine_net import RefineNet, net_kwargs

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class RefineSample:
    """One training / test item.

    Attributes
    ----------
    image : ndarray of float32, shape (Y, X) or (Z, Y, X)
        One channel, z-scored (:func:`scarceseg.interactive.refiners.zscore`).
    target : ndarray of bool, same shape
    init : ndarray of float32, same shape
        Initial probability.
    case_id : str
    """

    image: np.ndarray
    target: np.ndarray
    init: np.ndarray
    case_id: str = ""

    @classmethod
    def make(cls, image: np.ndarray, target: np.ndarray, init: np.ndarray | None = None, case_id: str = ""):
        image = zscore(image)
        init = np.zeros(image.shape, np.float32) if init is None else np.asarray(init, dtype=np.float32)
        target = np.asarray(target, dtype=bool)
        if target.shape != image.shape or init.shape != image.shape:
            raise ValueError(f"image {image.shape}, target {target.shape} and init {init.shape} must agree")
        return cls(image, target, init, case_id)


def random_crop(sample: RefineSample, size: Sequence[int], rng: np.random.Generator) -> RefineSample:
    """A crop of ``size`` (clipped to the image) whose centre is a random target voxel, moved by up to a
    quarter of the crop; any position when the target is empty. Smaller images are returned whole."""
    shape = sample.image.shape
    size = [min(int(s), n) for s, n in zip(size, shape, strict=True)]
    fg = np.argwhere(sample.target)
    if len(fg):
        centre = fg[rng.integers(len(fg))] + np.array([rng.integers(-(s // 4), s // 4 + 1) for s in size])
    else:
        centre = np.array([rng.integers(n) for n in shape])
    lo = [int(np.clip(c - s // 2, 0, n - s)) for c, s, n in zip(centre, size, shape, strict=True)]
    sl = tuple(slice(a, a + s) for a, s in zip(lo, size, strict=True))
    return RefineSample(sample.image[sl], sample.target[sl], sample.init[sl], sample.case_id)


def stack_states(channels: Sequence[Sequence[np.ndarray]]) -> torch.Tensor:
    """``[[ch0, ch1, ...] per image]`` -> float32 tensor (B, C, *spatial)."""
    return torch.from_numpy(np.stack([np.stack(c) for c in channels]).astype(np.float32))


def save_model(path: str | Path, net: RefineNet, info: dict) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (``info`` plus the network's constructor args)."""
    return save_checkpoint(path, net, {**info, "net": net_kwargs(net)}, WEIGHTS_FILE, CONFIG_FILE)


def load_model(path: str | Path, fmt: str) -> tuple[RefineNet, dict]:
    """Read a folder written by :func:`save_model`; checks the format string.

    Raises
    ------
    InputError
        Missing files, another format, or weights that do not fit.
    """
    info, w_path = read_checkpoint_info(path, fmt, "a refiner model folder written by `scarceseg train refiner`",
                                        f"a {fmt} model", WEIGHTS_FILE, CONFIG_FILE)
    kw = dict(info["net"])
    kw["trunk_dilations"] = tuple(kw["trunk_dilations"])
    kw["head_dilations"] = tuple(kw["head_dilations"])
    net = RefineNet(**kw)
    load_weights(net, w_path, "the network")
    return net.eval(), info
