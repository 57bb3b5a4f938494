"""Replay memory: a ring of preallocated arrays of transitions ``(s_t, a_t, r_t, s_t+1, done)``.

After ``capacity`` rows the oldest row is overwritten, which is the paper's "new rows are added while
earlier rows are removed" with ``N_memory = 1,800`` (paper 000, section 0.4.4). Samples come back as a
:class:`ReplaySample` of torch tensors on the buffer's device; observations keep the stored dtype (store
``uint8`` images and let the network scale them, as :class:`scarceseg.nets.dqn_cnn.DQNCNN` does).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from scarceseg.rl.dqn import resolve_device


class ReplaySample(NamedTuple):
    """A batch of transitions; ``B`` rows, tensors on the buffer's device.

    Attributes
    ----------
    obs, next_obs : Tensor, shape (B, *obs_shape), the stored dtype
    actions : Tensor, shape (B,), int64
    rewards : Tensor, shape (B,), float32
    dones : Tensor, shape (B,), float32 (1.0 where ``next_obs`` ends the episode)
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    dones: torch.Tensor


class ReplayBuffer:
    """Fixed-size replay memory over preallocated numpy arrays.

    Parameters
    ----------
    capacity : int
        Number of rows kept; the oldest is overwritten once full.
    obs_shape : tuple of int
        Shape of one observation, e.g. ``(3, 128, 128)``.
    dtype : numpy dtype
        Storage dtype of observations (``np.uint8`` keeps 1,800 rows of 3x128x128 states under 200 MB).
    device : str or torch.device
        Where sampled tensors go; ``"auto"`` is CUDA when available, else CPU.
    seed : int or numpy Generator
        Seeds the sampling; the same seed and the same additions give the same batches.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], dtype: np.dtype | type = np.float32,
                 device: str | torch.device = "auto", seed: int | np.random.Generator = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs_shape = tuple(obs_shape)
        self.device = resolve_device(device)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.obs = np.zeros((self.capacity, *self.obs_shape), dtype=dtype)
        self.next_obs = np.zeros((self.capacity, *self.obs_shape), dtype=dtype)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0  # next row to write
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, done: bool) -> None:
        """Store one transition, overwriting the oldest row when the memory is full."""
        self.obs[self.pos] = obs
        self.next_obs[self.pos] = next_obs
        self.actions[self.pos] = action
        self.rewards[self.pos] = reward
        self.dones[self.pos] = float(done)
        self.pos += 1
        if self.pos == self.capacity:
            self.full, self.pos = True, 0

    def sample(self, batch_size: int) -> ReplaySample:
        """Draw ``batch_size`` rows uniformly with replacement (as SB3 and CleanRL do).

        Raises
        ------
        ValueError
            The memory is empty.
        """
        n = len(self)
        if n == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, n, size=batch_size)
        return self._get(idx)

    def _get(self, idx: np.ndarray) -> ReplaySample:
        def to(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a[idx]).to(self.device)

        return ReplaySample(to(self.obs), to(self.actions), to(self.rewards), to(self.next_obs), to(self.dones))
