"""The four helpers LiteMedSAM's vendored TinyViT imports from ``timm``, without installing timm.

``timm`` imports ``torchvision`` at import time, and every ``torchvision`` that pip offers beside our
CPU ``torch==2.13.0`` either pulls a CUDA torch (gigabytes) or fails at import. TinyViT only needs
``DropPath``, ``to_2tuple``, ``trunc_normal_`` and ``register_model``; at inference and with
``drop_path_rate=0`` the first is the identity. :func:`timm_stand_in` puts minimal modules with these
names into ``sys.modules`` for the duration of the import, only when a real ``timm`` is not importable,
and removes them afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Callable, Iterator

import torch
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop whole residual branches per sample while training.

    Parameters
    ----------
    drop_prob : float
        Probability of dropping the branch (0 at inference, as LiteMedSAM is built).
    """

    def __init__(self, drop_prob: float | None = None):
        super().__init__()
        self.drop_prob = float(drop_prob or 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * mask / keep


def to_2tuple(value) -> tuple:
    """``(value, value)`` unless ``value`` is already an iterable."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value, value)


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    """Truncated-normal initialisation (torch's own)."""
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def register_model(fn: Callable) -> Callable:
    """timm's model registry decorator; here a no-op."""
    return fn


_NAMES = ("timm", "timm.models", "timm.models.layers", "timm.models.registry")


def _real_timm_importable() -> bool:
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm.models.layers  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken timm (no torchvision) counts as absent
        for name in [n for n in sys.modules if n == "timm" or n.startswith("timm.")]:
            del sys.modules[name]
        return False
    return True


@contextlib.contextmanager
def timm_stand_in() -> Iterator[bool]:
    """Make ``from timm.models.layers import ...`` work for one import; yields whether the stand-in is used."""
    if _real_timm_importable():
        yield False
        return
    saved = {name: sys.modules.get(name) for name in _NAMES}
    root, models = types.ModuleType("timm"), types.ModuleType("timm.models")
    layers, registry = types.ModuleType("timm.models.layers"), types.ModuleType("timm.models.registry")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
    registry.register_model = register_model
    root.models, models.layers, models.registry = models, layers, registry
    sys.modules.update(dict(zip(_NAMES, (root, models, layers, registry), strict=True)))
    try:
        yield True
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
