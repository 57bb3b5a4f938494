"""The mask-selection environment of paper 000 (section 0.4.1), in two variants.

A *state* is the grey image with one region tinted (red for "this region", green for the paper's
complement state), rendered as an RGB byte image ``(3, S, S)``. The fiducial point is not drawn (the
paper does not draw it either; in its environment it is always inside the lesion mask).

``mode="paper"`` -- exactly section 0.4.1: two states per image, ``M`` (the picked mask) in red and its
complement ``M^C`` in green (eq. 1); every episode starts from ``M`` in red; the action (0 = "the fiducial
point lies in M", 1 = "in M^C", eq. 2) chooses the next state (0 -> red ``M``, 1 -> green ``M^C``); the
reward is eq. 3 with the fiducial point inside ``M``, i.e. +1 for action 0 and -1 for action 1 in every
state. A network can therefore score 100 % by always answering "M", whatever it sees, which teaches it
nothing about which candidate of a *new* image is the lesion. It is kept for fidelity.

``mode="candidates"`` (default) -- the paper's ``N_cl``-action generalisation (its Discussion) turned into
a binary question per candidate: each state shows ONE candidate of the image in red; the shown candidate
is a *positive* (the user's pick, or a candidate whose IoU with the picked mask exceeds ``positive_iou``,
which catches near-duplicates among extended candidates) with probability ``p_positive``, else a negative
drawn uniformly (``negatives="uniform"``) or weighted towards candidates that overlap the lesion
(``negatives="hard"``, weight ``1 + 10 * IoU``). Action 0 = "the fiducial point lies in this red region,
this is the lesion", action 1 = "it does not"; reward +1 when right, -1 when wrong (eq. 3). The next state
shows another candidate of the same image, drawn the same way, whatever the action, so
``Q(s, 0) - Q(s, 1)`` estimates the reward gap (+2 for the lesion, -2 otherwise): that is the score used
to rank candidates on a new image.

Both variants run ``steps_per_episode`` (5) steps on one image, drawn at random per episode. The fifth
step ends the episode (``done = True``); the paper does not say whether it bootstraps past it, and ending
there keeps Q values within +-5. Training states can be augmented (seeded flips / quarter-turns, random
gamma; not in the paper), see :class:`MaskSelectEnv`.

References
----------
.. [1] Stember & Shalu, paper 000 in ``shared/papers``, sections 0.4.1-0.4.4, eqs. 1-3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RED = np.array([1.0, 0.0, 0.0], dtype=np.float32)
GREEN = np.array([0.0, 1.0, 0.0], dtype=np.float32)
MODES = ("candidates", "paper")
NEGATIVES = ("uniform", "hard")
AUGMENTS = ("none", "flip", "dihedral")


# ---- images -> small arrays ------------------------------------------------------------------------
def grey_image(image: np.ndarray, channel: int | None = None, percentiles: tuple[float, float] = (0.5, 99.5)
               ) -> np.ndarray:
    """A grey ``(Y, X)`` float32 image in ``[0, 1]`` from ``(Y, X)`` or ``(C, Y, X)``.

    Robust min-max: the ``percentiles`` of the intensities map to 0 and 1, values outside are clipped.
    With several channels and ``channel=None`` the normalised channels are averaged.
    """
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3:
        if channel is not None:
            image = image[channel][None]
        return np.mean([grey_image(c, None, percentiles) for c in image], axis=0).astype(np.float32)
    if image.ndim != 2:
        raise ValueError(f"expected an image (Y, X) or (C, Y, X), got shape {image.shape}")
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros(image.shape, np.float32)
    lo, hi = np.percentile(finite, percentiles)
    if hi <= lo:
        return np.zeros(image.shape, np.float32)
    out = (np.nan_to_num(image, nan=lo) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def area_resize(arrays: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, Y, X)`` float arrays to ``(N, size, size)`` by area averaging (aspect not kept)."""
    t = torch.from_numpy(np.ascontiguousarray(arrays, dtype=np.float32))[:, None]
    if t.shape[-2:] == (size, size):
        return t[:, 0].numpy().copy()
    if t.shape[-2] >= size and t.shape[-1] >= size:
        out = F.adaptive_avg_pool2d(t, (size, size))
    else:  # smaller than the state: bilinear up-sampling
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return out[:, 0].numpy()


def render_state(grey: np.ndarray, region: np.ndarray, colour: np.ndarray = RED, alpha: float = 0.5) -> np.ndarray:
    """The grey image ``(S, S)`` with ``region`` (``(S, S)`` coverage in [0, 1]) tinted: ``(3, S, S)`` uint8.

    ``pixel = (1 - alpha * m) * grey + alpha * m * colour`` with ``m`` the region's coverage of the pixel.
    """
    m = (alpha * region)[None]
    rgb = (1.0 - m) * grey[None] + m * colour[:, None, None]
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """The pixel of a 2D mask farthest from its boundary (first in raster order on ties), as ``(y, x)``.

    Used as the fiducial point: unlike the centre of mass it always lies inside the mask.
    """
    from scarceseg.interactive.clicks import innermost_pixel

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("interior_point of an empty mask")
    return innermost_pixel(mask)


def iou_with(masks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """IoU of every mask ``(K, Y, X)`` with ``reference`` ``(Y, X)``: ``(K,)`` float (0 when both empty)."""
    masks = np.asarray(masks, dtype=bool)
    ref = np.asarray(reference, dtype=bool)
    inter = (masks & ref).reshape(len(masks), -1).sum(1)
    union = (masks | ref).reshape(len(masks), -1).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


@dataclass
class PreparedImage:
    """One image and its candidates at state resolution.

    Attributes
    ----------
    grey : ndarray, shape (S, S), float32 in [0, 1]
    masks : ndarray, shape (K, S, S), float32 coverage in [0, 1]
    iou : ndarray, shape (K,) or None
        IoU of each candidate with the picked mask (training images only).
    positive : ndarray, shape (K,) bool, or None
        Candidates that count as "the lesion" (training images only).
    picked : int or None
        Index of the user's pick (training images only).
    """

    grey: np.ndarray
    masks: np.ndarray
    iou: np.ndarray | None = None
    positive: np.ndarray | None = None
    picked: int | None = None


def prepare_image(image: np.ndarray, masks: np.ndarray, input_size: int, picked: int | None = None,
                  positive_iou: float = 0.5, channel: int | None = None) -> PreparedImage:
    """Downsample an image ``(C, Y, X)`` / ``(Y, X)`` and its candidates ``(K, Y, X)`` for rendering.

    With ``picked`` given, also marks the positives: the pick and every candidate with IoU > ``positive_iou``
    with it.
    """
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"candidate masks must be (K, Y, X), got shape {masks.shape}")
    grey = grey_image(image, channel)
    if grey.shape != masks.shape[1:]:
        raise ValueError(f"image {grey.shape} and candidate masks {masks.shape[1:]} differ in size")
    small = area_resize(np.concatenate([grey[None], masks.astype(np.float32)]), input_size)
    prep = PreparedImage(grey=small[0], masks=small[1:])
    if picked is not None:
        if not 0 <= picked < len(masks):
            raise ValueError(f"picked index {picked} is not a candidate (0..{len(masks) - 1})")
        prep.iou = iou_with(masks, masks[picked])
        prep.positive = prep.iou > positive_iou
        prep.positive[picked] = True
        prep.picked = int(picked)
    return prep


def render_candidates(prep: PreparedImage, alpha: float = 0.5, indices: np.ndarray | None = None) -> np.ndarray:
    """States ``(K, 3, S, S)`` uint8: each candidate of ``prep`` tinted red."""
    idx = range(len(prep.masks)) if indices is None else indices
    return np.stack([render_state(prep.grey, prep.masks[k], RED, alpha) for k in idx])


# ---- the environment -------------------------------------------------------------------------------
class MaskSelectEnv:
    """Episodes of ``steps_per_episode`` steps on training images (see the module docstring).

    Parameters
    ----------
    images : list of PreparedImage
        Training images with ``positive`` and ``picked`` set.
    mode : {"candidates", "paper"}
    steps_per_episode : int
    rng : numpy Generator
        Draws the image, the shown candidates and the flips.
    p_positive : float
        Candidates mode: probability that a state shows a positive.
    negatives : {"uniform", "hard"}
        Candidates mode: how negatives are drawn.
    alpha : float
        Overlay opacity.
    augment : {"none", "flip", "dihedral"}
        Seeded augmentation of every rendered training state: none, a left-right flip with probability
        0.5, or one of the 8 flips/quarter-turns of the square (the state is square, so all keep its shape).
    gamma_jitter : float
        If > 0, the grey image of each state is raised to a power ``exp(u)``, ``u ~ U(-g, g)`` (seeded).
    """

    def __init__(self, images: list[PreparedImage], mode: str = "candidates", steps_per_episode: int = 5,
                 rng: np.random.Generator | None = None, p_positive: float = 0.5, negatives: str = "uniform",
                 alpha: float = 0.5, augment: str = "none", gamma_jitter: float = 0.0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if negatives not in NEGATIVES:
            raise ValueError(f"unknown negatives {negatives!r}; choose one of {NEGATIVES}")
        if augment not in AUGMENTS:
            raise ValueError(f"unknown augment {augment!r}; choose one of {AUGMENTS}")
        if not images:
            raise ValueError("the environment needs at least one training image")
        if any(p.positive is None or p.picked is None for p in images):
            raise ValueError("training images need a pick (prepare_image(..., picked=k))")
        self.images = images
        self.mode = mode
        self.steps_per_episode = steps_per_episode
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.p_positive = p_positive
        self.negatives = negatives
        self.alpha = alpha
        self.augment = augment
        self.gamma_jitter = gamma_jitter
        self.image_index = 0
        self.t = 0
        self.shown: int | str = 0  # candidate index (candidates mode) or "M" / "MC" (paper mode)

    # the state currently shown ---------------------------------------------------------------------
    def _render(self) -> np.ndarray:
        prep = self.images[self.image_index]
        grey = prep.grey
        if self.gamma_jitter > 0:
            grey = grey ** np.exp(self.rng.uniform(-self.gamma_jitter, self.gamma_jitter))
        if self.mode == "paper":
            m = prep.masks[prep.picked]
            obs = render_state(grey, m, RED, self.alpha) if self.shown == "M" else \
                render_state(grey, 1.0 - m, GREEN, self.alpha)
        else:
            obs = render_state(grey, prep.masks[self.shown], RED, self.alpha)
        if self.augment == "flip" and self.rng.random() < 0.5:
            obs = obs[:, :, ::-1]
        elif self.augment == "dihedral":
            k = int(self.rng.integers(8))
            obs = np.rot90(obs, k % 4, axes=(1, 2))
            obs = obs[:, :, ::-1] if k >= 4 else obs
        return np.ascontiguousarray(obs)

    def _draw_candidate(self) -> int:
        prep = self.images[self.image_index]
        pos = np.flatnonzero(prep.positive)
        neg = np.flatnonzero(~prep.positive)
        if len(neg) == 0 or self.rng.random() < self.p_positive:
            return int(pos[self.rng.integers(len(pos))])
        if self.negatives == "hard":
            w = 1.0 + 10.0 * prep.iou[neg]
            return int(self.rng.choice(neg, p=w / w.sum()))
        return int(neg[self.rng.integers(len(neg))])

    @property
    def correct_action(self) -> int:
        """The action eq. 3 rewards in the current state (0 = "the point is in the red region / in M").

        Paper mode: the fiducial point is an interior point of ``M`` (section 0.3.3), so "M" is right in
        both states. Candidates mode: 0 when the shown candidate is a positive, else 1.
        """
        if self.mode == "paper":
            return 0
        return 0 if self.images[self.image_index].positive[self.shown] else 1

    # gym-like interface ----------------------------------------------------------------------------
    def reset(self, image_index: int | None = None) -> np.ndarray:
        """Start an episode on ``image_index`` (random when None); returns the first state ``(3, S, S)``."""
        self.image_index = int(self.rng.integers(len(self.images))) if image_index is None else int(image_index)
        self.t = 0
        self.shown = "M" if self.mode == "paper" else self._draw_candidate()
        return self._render()

    def reward(self, action: int) -> float:
        """Eq. 3: +1 for the right answer about the fiducial point, -1 otherwise."""
        return 1.0 if action == self.correct_action else -1.0

    def step(self, action: int) -> tuple[np.ndarray, float, bool, dict]:
        """Apply ``action`` (0 or 1); returns ``(next_state, reward, done, info)``."""
        if action not in (0, 1):
            raise ValueError(f"action must be 0 or 1, got {action}")
        info = {"image": self.image_index, "shown": self.shown, "correct_action": self.correct_action}
        r = self.reward(action)
        self.t += 1
        done = self.t >= self.steps_per_episode
        if self.mode == "paper":
            self.shown = "M" if action == 0 else "MC"  # eq. 1: the action picks the next state
        else:
            self.shown = self._draw_candidate()
        return self._render(), r, done, info
