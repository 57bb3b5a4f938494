"""Clicks and simulated users ("robots") that click on what is wrong.

A :class:`Click` is a voxel position, a polarity (``positive``: "this is object", placed in missed
foreground; negative: "this is background", placed in false foreground) and the refinement step it
belongs to. Robots look at the current binary prediction and the ground truth and return the clicks of
one step:

* :class:`PaperRobot` — paper 002 §4.2: ``N_click`` clicks per step at the centres of the ``N_click``
  largest error regions, each moved by uniform integer noise in ``[-3, 3]`` per axis (``eps_noise``).
* :class:`NoCRobot` — the interactive-segmentation convention for the NoC metric (Xu et al. 2016,
  MONAI Deepgrow): one click at a time, in the largest error region, at its point farthest from the
  region's border.
* :class:`RandomRobot` — paper 002 Table 6's "bad interaction": clicks at uniformly random voxels with
  a random polarity.
* :class:`ReplayRobot` — replays a :class:`ClickLog` recorded from any robot or a person.

Error regions are the connected components (face connectivity) of the false-negative and the
false-positive maps; a region's *centre* is its voxel farthest (Euclidean, in voxels) from the region's
border, which always lies inside the region (a centroid may not). Ties go to the first voxel in
C order, so robots are deterministic apart from their seeded noise.

Seeding follows TorchIO's pattern: a robot owns a ``numpy.random.Generator`` built from its seed; the
noise it draws is kept in the clicks themselves, so a recorded :class:`ClickLog` replays exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from scarceseg.errors import InputError


@dataclass(frozen=True)
class Click:
    """One click.

    Parameters
    ----------
    position : tuple of int
        ``(y, x)`` or ``(z, y, x)`` voxel index.
    positive : bool
        True: the voxel is object (corrects missed foreground); False: background.
    step : int
        Refinement step (1-based; 0 for clicks given before any refinement).
    """

    position: tuple[int, ...]
    positive: bool
    step: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", tuple(int(v) for v in self.position))
        object.__setattr__(self, "positive", bool(self.positive))
        object.__setattr__(self, "step", int(self.step))

    def to_dict(self) -> dict:
        return {"position": list(self.position), "positive": self.positive, "step": self.step}

    @classmethod
    def from_dict(cls, data: dict) -> Click:
        return cls(tuple(data["position"]), bool(data["positive"]), int(data.get("step", 0)))

    @classmethod
    def parse(cls, text: str, step: int = 0) -> Click:
        """From ``"y,x,+"`` / ``"z,y,x,-"`` (what ``scarceseg refine --click`` takes)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (3, 4) or parts[-1] not in ("+", "-"):
            raise ValueError(f"a click is 'y,x,+' or 'z,y,x,-', got {text!r}")
        try:
            pos = tuple(int(p) for p in parts[:-1])
        except ValueError:
            raise ValueError(f"click coordinates must be integers, got {text!r}") from None
        return cls(pos, parts[-1] == "+", step)


def innermost_pixel(mask: np.ndarray) -> tuple[int, ...]:
    """The pixel of a mask farthest from its border (first in raster order on ties): where a person clicks it.

    The Euclidean distance to the outside is taken with the image border counting as outside. An empty mask
    gives the first pixel. Works in 2D ``(y, x)`` and 3D ``(z, y, x)``.
    """
    mask = np.asarray(mask, dtype=bool)
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[(slice(1, -1),) * mask.ndim]
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(depth)), mask.shape))


def split_clicks(clicks: Sequence[Click]) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Positions of the positive and of the negative clicks."""
    return [c.position for c in clicks if c.positive], [c.position for c in clicks if not c.positive]


# ---- error regions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorRegion:
    """One connected error region: its size, its centre and the click polarity that corrects it."""

    size: int
    centre: tuple[int, ...]
    depth: float  # distance of the centre to the region's border, in voxels
    positive: bool


def error_regions(pred: np.ndarray, target: np.ndarray) -> list[ErrorRegion]:
    """Connected false-negative and false-positive regions, largest first.

    Parameters
    ----------
    pred, target : ndarray of bool, shape (Y, X) or (Z, Y, X)

    Returns
    -------
    list of ErrorRegion
        Sorted by size (descending), then by depth, then by position (C order) — deterministic.
    """
    pred = np.asarray(pred, dtype=bool)
    target = np.asarray(target, dtype=bool)
    if pred.shape != target.shape:
        raise ValueError(f"prediction {pred.shape} and target {target.shape} differ in shape")
    regions: list[ErrorRegion] = []
    for positive, err in ((True, target & ~pred), (False, pred & ~target)):
        if not err.any():
            continue
        labels, n = ndimage.label(err)
        # distance to the nearest non-region voxel; padding makes the image border a border too
        dist = ndimage.distance_transform_edt(np.pad(err, 1))[(slice(1, -1),) * err.ndim]
        sizes = np.bincount(labels.ravel(), minlength=n + 1)
        objects = ndimage.find_objects(labels)
        for k, sl in enumerate(objects, start=1):
            local = np.where(labels[sl] == k, dist[sl], -1.0)
            flat = int(np.argmax(local))
            idx = np.unravel_index(flat, local.shape)
            centre = tuple(int(s.start + i) for s, i in zip(sl, idx, strict=True))
            regions.append(ErrorRegion(int(sizes[k]), centre, float(local[idx]), positive))
    regions.sort(key=lambda r: (-r.size, -r.depth, r.centre))
    return regions


def _jitter(position: tuple[int, ...], noise: int, shape: tuple[int, ...], rng: np.random.Generator) -> tuple:
    if noise <= 0:
        return position
    moved = np.asarray(position) + rng.integers(-noise, noise + 1, size=len(position))
    return tuple(int(v) for v in np.clip(moved, 0, np.asarray(shape) - 1))


# ---- robots -----------------------------------------------------------------------------------------
@dataclass
class PaperRobot:
    """Paper 002 §4.2: ``n_clicks`` clicks per step at the centres of the largest error regions, with noise.

    Parameters
    ----------
    n_clicks : int
        ``N_click`` (paper: 5).
    noise : int
        Uniform integer displacement in ``[-noise, noise]`` per axis (paper: ``eps_noise = [-3, 3]^3``).
        The displaced click keeps the polarity of its region, as a slightly careless user's would.
    seed : int
    """

    n_clicks: int = 5  # paper 002 §4.2: N_click = 5
    noise: int = 3  # paper 002 §4.2: eps_noise = [-3, 3]^3
    seed: int = 0
    name: str = "paper"
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, pred: np.ndarray, target: np.ndarray, step: int = 1) -> list[Click]:
        """Clicks of one step. ``pred`` and ``target``: bool arrays (Y, X) or (Z, Y, X)."""
        regions = error_regions(pred, target)[: self.n_clicks]
        shape = np.shape(target)
        return [Click(_jitter(r.centre, self.noise, shape, self.rng), r.positive, step) for r in regions]


@dataclass
class NoCRobot:
    """One click per step at the deepest point of the largest error region (no noise)."""

    name: str = "noc"

    def __call__(self, pred: np.ndarray, target: np.ndarray, step: int = 1) -> list[Click]:
        regions = error_regions(pred, target)
        return [Click(regions[0].centre, regions[0].positive, step)] if regions else []


@dataclass
class RandomRobot:
    """Paper 002 Table 6 "bad interaction": ``n_clicks`` uniformly random voxels with random polarity."""

    n_clicks: int = 5
    seed: int = 0
    name: str = "random"
    rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def __call__(self, pred: np.ndarray, target: np.ndarray, step: int = 1) -> list[Click]:
        shape = np.shape(target)
        return [
            Click(tuple(int(self.rng.integers(n)) for n in shape), bool(self.rng.integers(2)), step)
            for _ in range(self.n_clicks)
        ]


# ---- recording and replay ---------------------------------------------------------------------------
@dataclass
class ClickLog:
    """The clicks of one interactive sequence, per step, with who produced them.

    Attributes
    ----------
    steps : list of list of Click
        ``steps[t]`` holds the clicks given before refinement step ``t + 1``.
    meta : dict
        E.g. ``{"robot": "paper", "seed": 0, "case_id": ...}``.
    """

    steps: list[list[Click]] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def record(self, clicks: Sequence[Click]) -> None:
        self.steps.append(list(clicks))

    @property
    def clicks(self) -> list[Click]:
        return [c for step in self.steps for c in step]

    def to_dict(self) -> dict:
        return {"meta": self.meta, "steps": [[c.to_dict() for c in step] for step in self.steps]}

    @classmethod
    def from_dict(cls, data: dict) -> ClickLog:
        return cls([[Click.from_dict(c) for c in step] for step in data.get("steps", [])], dict(data.get("meta", {})))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClickLog:
        """Read a log written by :meth:`save`, or a plain JSON list of clicks (one step).

        Raises
        ------
        InputError
            Unreadable JSON or entries that are not clicks.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, list):
                return cls([[Click.from_dict(c) for c in data]])
            return cls.from_dict(data)
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"not a clicks JSON file ({exc})") from exc


@dataclass
class ReplayRobot:
    """Gives back the clicks of a :class:`ClickLog`, step by step (nothing after its last step)."""

    log: ClickLog
    name: str = "replay"

    def __call__(self, pred: np.ndarray, target: np.ndarray | None = None, step: int = 1) -> list[Click]:
        if 1 <= step <= len(self.log.steps):
            return list(self.log.steps[step - 1])
        return []


def make_robot(name: str, seed: int = 0, n_clicks: int = 5, noise: int = 3):
    """``"paper"``, ``"noc"`` or ``"random"`` robot."""
    if name == "paper":
        return PaperRobot(n_clicks=n_clicks, noise=noise, seed=seed)
    if name == "noc":
        return NoCRobot()
    if name == "random":
        return RandomRobot(n_clicks=n_clicks, seed=seed)
    raise ValueError(f"unknown robot {name!r}; choose 'paper', 'noc' or 'random'")
