"""An interactive session: a probability map refined click by click, with undo / redo.

The session is the one object a front end (CLI, benchmark, the browser app) needs: it owns the image,
the initial and current probability, the clicks, and a linear history of states. Every edit
(:meth:`InteractiveSession.apply_click`, :meth:`InteractiveSession.apply_step`) pushes a new state and
drops the redo branch, as in any editor. States are kept whole (a probability map each), which is
simple and cheap for a few dozen steps of one slice or crop.

Example
-------
>>> s = InteractiveSession(image, init_prob, MinCutRefiner())          # doctest: +SKIP
>>> s.apply_click(Click((120, 80), positive=True))                      # doctest: +SKIP
>>> s.undo(); s.redo(); s.export("mask.png", like=case)                 # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scarceseg.interactive.clicks import Click, ClickLog
from scarceseg.interactive.refiners import Refiner, check_inputs


@dataclass(frozen=True)
class SessionState:
    """One point of the history: the probability after ``step`` refinements and the clicks so far."""

    prob: np.ndarray
    clicks: tuple[Click, ...]
    step: int
    added: tuple[Click, ...]  # the clicks whose refinement produced this state
    seconds: float  # time that refinement took


class InteractiveSession:
    """Click-to-correct editing of one 2D or 3D image.

    Parameters
    ----------
    image : ndarray, shape (Y, X) or (Z, Y, X)
        One channel, raw.
    init_prob : ndarray, same shape
        Initial object probability (e.g. a U-Net's; zeros for "all background").
    refiner : Refiner
    spacing : sequence of float, optional
    threshold : float
        A voxel is object in :attr:`mask` when its probability is above this.
    on_change : callable, optional
        Called with ``(event, session)`` after every edit, undo, redo and reset (``event`` is one of
        ``"step"``, ``"undo"``, ``"redo"``, ``"reset"``), e.g. to log clicks into the label store.
    """

    def __init__(
        self,
        image: np.ndarray,
        init_prob: np.ndarray,
        refiner: Refiner,
        spacing: Sequence[float] | None = None,
        threshold: float = 0.5,
        on_change: Callable[[str, InteractiveSession], None] | None = None,
    ) -> None:
        image = np.asarray(image)
        init = np.clip(np.asarray(init_prob, dtype=np.float32), 0.0, 1.0)
        check_inputs(image, init, [])
        self.image = image
        self.init = init
        self.refiner = refiner
        self.spacing = tuple(spacing) if spacing is not None else None
        self.threshold = float(threshold)
        self.on_change = on_change
        self._states: list[SessionState] = [SessionState(init.copy(), (), 0, (), 0.0)]
        self._pos = 0

    # ---- current state ---------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._states[self._pos]

    @property
    def prob(self) -> np.ndarray:
        """Current probability, float32, same shape as the image (a copy)."""
        return self.state.prob.copy()

    @property
    def mask(self) -> np.ndarray:
        """Current binary mask: ``prob > threshold``."""
        return self.state.prob > self.threshold

    @property
    def clicks(self) -> list[Click]:
        return list(self.state.clicks)

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def all_steps(self) -> list[tuple[Click, ...]]:
        """The clicks added at each step, redoable (undone) steps included: what replays the whole history."""
        return [s.added for s in self._states[1:]]

    @property
    def can_undo(self) -> bool:
        return self._pos > 0

    @property
    def can_redo(self) -> bool:
        return self._pos < len(self._states) - 1

    # ---- edits -----------------------------------------------------------------------------------
    def apply_step(self, clicks: Sequence[Click]) -> np.ndarray:
        """Add several clicks and refine once (paper 002's step: ``N_click`` clicks, one update).

        Returns the new probability. Clicks with ``step == 0`` get the new step number.
        """
        step = self.step + 1
        added = tuple(c if c.step else dataclasses.replace(c, step=step) for c in clicks)
        all_clicks = self.state.clicks + added
        check_inputs(self.image, self.state.prob, all_clicks)
        t0 = time.perf_counter()
        prob = self.refiner.refine(self.image, self.state.prob, list(all_clicks), init=self.init, spacing=self.spacing)
        seconds = time.perf_counter() - t0
        prob = np.clip(np.asarray(prob, dtype=np.float32), 0.0, 1.0)
        del self._states[self._pos + 1 :]
        self._states.append(SessionState(prob, all_clicks, step, added, seconds))
        self._pos += 1
        self._notify("step")
        return prob.copy()

    def apply_click(self, click: Click) -> np.ndarray:
        """Add one click and refine once."""
        return self.apply_step([click])

    def undo(self) -> bool:
        """Go back one state; False when already at the start."""
        if not self.can_undo:
            return False
        self._pos -= 1
        self._notify("undo")
        return True

    def redo(self) -> bool:
        """Re-apply the state undone last; False when there is none."""
        if not self.can_redo:
            return False
        self._pos += 1
        self._notify("redo")
        return True

    def replace_current(self, prob: np.ndarray) -> None:
        """Replace the current state's probability, keeping its clicks (restoring a stored state exactly when a
        refiner does not replay bit for bit)."""
        prob = np.clip(np.asarray(prob, dtype=np.float32), 0.0, 1.0)
        if prob.shape != self.state.prob.shape:
            raise ValueError(f"probability shape {prob.shape} does not match {self.state.prob.shape}")
        self._states[self._pos] = dataclasses.replace(self.state, prob=prob)

    def reset(self) -> None:
        """Back to the initial probability; the whole history is dropped."""
        self._states = self._states[:1]
        self._pos = 0
        self._notify("reset")

    def _notify(self, event: str) -> None:
        if self.on_change is not None:
            self.on_change(event, self)

    # ---- records ---------------------------------------------------------------------------------
    def history(self) -> list[dict]:
        """Every state up to the current one: step, clicks added, total clicks, object voxels, seconds."""
        return [
            {
                "step": s.step,
                "added": [c.to_dict() for c in s.added],
                "n_clicks": len(s.clicks),
                "object_voxels": int((s.prob > self.threshold).sum()),
                "seconds": s.seconds,
            }
            for s in self._states[: self._pos + 1]
        ]

    def click_log(self, **meta) -> ClickLog:
        """The clicks of the current history, per step, as a replayable :class:`ClickLog`."""
        return ClickLog([list(s.added) for s in self._states[1 : self._pos + 1]], dict(meta))

    def export(self, path: str | Path, like=None) -> Path:
        """Write the current mask: PNG 0/255 for 2D, NIfTI with ``like``'s geometry for 3D.

        Parameters
        ----------
        path : str or Path
        like : Case, optional
            The case the image came from (its geometry is copied into NIfTI output).
        """
        from scarceseg.io import write_mask

        return write_mask(self.mask, path, like=like)
