"""Exploration schedules: epsilon as a function of the episode (or step) number.

Pure functions of the count, so a schedule never carries state and replays exactly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearSchedule:
    """``value(t) = max(end, start - decrement_per_step * t)`` (or ``min`` when increasing).

    Paper 000 (section 0.4.3) uses ``start=0.7``, ``decrement_per_step=1e-4`` per episode and
    ``end=1e-4``: after its 300 episodes epsilon is still 0.67.

    Parameters
    ----------
    start : float
        Value at ``t = 0``.
    end : float
        Floor (or ceiling, when ``end > start``) that the value never passes.
    decrement_per_step : float
        Amount removed per unit of ``t`` (use a negative value to increase towards ``end``).
    """

    start: float
    end: float
    decrement_per_step: float

    def __call__(self, t: int) -> float:
        value = self.start - self.decrement_per_step * t
        return max(self.end, value) if self.end <= self.start else min(self.end, value)


@dataclass(frozen=True)
class LinearDecay:
    """CleanRL's form: go from ``start`` to ``end`` linearly over ``duration`` steps, then stay at ``end``."""

    start: float
    end: float
    duration: int

    def __call__(self, t: int) -> float:
        if self.duration <= 0:
            return self.end
        frac = min(1.0, max(0.0, t / self.duration))
        return self.start + frac * (self.end - self.start)


@dataclass(frozen=True)
class ConstantSchedule:
    """The same value for every ``t``."""

    value: float

    def __call__(self, t: int) -> float:
        return self.value
