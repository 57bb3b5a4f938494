"""Training data shared by the trained refiners (IteR-MRL, R-Net-style, InterCNN).

A :class:`RefineSample` is one image channel, its binary target and the initial method's probability on
it (paper 002 §4.1: the refiners learn on D_train2 *with the initial method's outputs on it*). Training
works on random crops that contain part of the target (:func:`random_crop`), because the networks are
fully convolutional and whole 256x256 slices or volumes cost too much CPU per step; inference runs on the
whole image or crop. The helpers here also hold the safetensors + JSON persistence all three share.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scarceseg.errors import InputError
from scarceseg.interactive.refiners import zscore
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
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(path / WEIGHTS_FILE))
    (path / CONFIG_FILE).write_text(json.dumps({**info, "net": net_kwargs(net)}, indent=2) + "\n", encoding="utf-8")
    return path


def load_model(path: str | Path, fmt: str) -> tuple[RefineNet, dict]:
    """Read a folder written by :func:`save_model`; checks the format string.

    Raises
    ------
    InputError
        Missing files, another format, or weights that do not fit.
    """
    from safetensors.torch import load_file

    path = Path(path)
    cfg_path, w_path = path / CONFIG_FILE, path / WEIGHTS_FILE
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise InputError(p, "missing: not a refiner model folder written by `scarceseg train refiner`")
    try:
        info = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(cfg_path, f"cannot read the model config ({exc})") from exc
    if info.get("format") != fmt:
        raise InputError(cfg_path, f"expected format {fmt!r}, found {info.get('format')!r}")
    kw = dict(info["net"])
    kw["trunk_dilations"] = tuple(kw["trunk_dilations"])
    kw["head_dilations"] = tuple(kw["head_dilations"])
    net = RefineNet(**kw)
    try:
        net.load_state_dict(load_file(str(w_path)), strict=True)
    except Exception as exc:  # header errors, missing keys, shape mismatches
        raise InputError(w_path, f"weights do not fit the network ({str(exc)[:300]})") from exc
    return net.eval(), info
