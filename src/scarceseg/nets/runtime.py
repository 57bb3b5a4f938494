"""Torch run-time helpers every trainer shares: device choice, seeding, thread count, determinism.

They used to live in :mod:`scarceseg.rl.dqn` (which still re-exports them) and as private copies in
the U-Net and ACWE trainers; supervised and RL methods alike import them from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else is passed to ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)`` (``None``: unchanged); the old value is restored.

    One thread is the robust choice for small networks on a shared 2-core machine: with 2 threads and
    other processes on the cores, OpenMP synchronisation made a DQN update 3-4x *slower* (measured).
    """
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def deterministic() -> Iterator[None]:
    """Run the block with :func:`torch.use_deterministic_algorithms` on (warn-only); restore afterwards.

    On CPU this plus a fixed seed gives bit-identical weights; on CUDA, kernels without a deterministic
    implementation warn instead of failing.
    """
    was, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn)


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch for a reproducible run and return a dedicated CPU ``torch.Generator``.

    Calls ``torch.manual_seed(seed)`` (CPU and all CUDA devices), because ``nn.Module`` initialises its
    weights from torch's global generator. numpy's and Python's global generators are *not* touched:
    scarceseg code draws its random numbers from explicit ``np.random.Generator`` objects instead.

    Parameters
    ----------
    seed : int

    Returns
    -------
    torch.Generator
        A fresh CPU generator seeded with ``seed``, for any torch sampling the caller does itself.
    """
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
