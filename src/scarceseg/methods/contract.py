"""The contracts every method meets, so the CLI, the app and the benches reach all of them the same way.

* :class:`Segmenter` — ``fit(cases, budget, progress) / predict(case) -> Prediction / save(dir) / load(dir)``.
* :class:`TrainableRefiner` — the same life cycle for click-to-correct models, whose inference is
  ``refine(image, prob, clicks) -> prob`` (the :class:`~scarceseg.interactive.refiners.Refiner` protocol of
  the interactive session).
* :class:`Proposer` — ``propose(case) -> candidates`` (candidate masks to pick from).
* :class:`Budget` — how much training a ``fit`` may spend: epochs, updates, or process CPU seconds.

A model folder written by ``save`` holds ``method.json`` (:data:`METHOD_FILE`): which registered method,
its kind and its config (see :mod:`scarceseg.methods.registry`), next to the method's own files.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from scarceseg.interactive.clicks import Click
from scarceseg.interactive.refiners import Refiner
from scarceseg.io.case import Case
from scarceseg.nets.checkpoint import json_default

__all__ = ["METHOD_FILE", "Budget", "Case", "Click", "Method", "Prediction", "Proposer", "Refiner", "Segmenter",
           "TrainableRefiner", "write_method_file"]

METHOD_FILE = "method.json"
METHOD_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Budget:
    """How much a ``fit`` may train; ``None`` everywhere means the method's configured default.

    Parameters
    ----------
    epochs : int, optional
        Passes over the training set (for RL methods: episodes).
    steps : int, optional
        Gradient updates (for RL methods: updates of the learner).
    cpu_seconds : float, optional
        Process CPU seconds (``time.process_time``) of training; honoured by the methods whose loop checks
        the clock, the others train their epochs / steps.
    """

    epochs: int | None = None
    steps: int | None = None
    cpu_seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "steps", "cpu_seconds"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"Budget.{name} must be positive, got {value}")

    @property
    def is_default(self) -> bool:
        return self.epochs is None and self.steps is None and self.cpu_seconds is None


@dataclass
class Prediction:
    """What a :class:`Segmenter` returns for one case.

    Attributes
    ----------
    prob : ndarray of float32, spatial shape ``(Y, X)`` or ``(Z, Y, X)``
        Foreground probability in [0, 1] (a method without a graded output gives its mask as 0/1).
    mask : ndarray of bool, same shape
    extra : dict
        Method-specific outputs (e.g. JULE's label map, the selector's candidate index and scores).
    """

    prob: np.ndarray
    mask: np.ndarray
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.prob = np.asarray(self.prob, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.prob.shape != self.mask.shape:
            raise ValueError(f"Prediction.prob {self.prob.shape} and mask {self.mask.shape} differ in shape")


class Method(ABC):
    """What every registered, trainable method shares: a name, a kind, a config, fit, save and load.

    Subclasses set :attr:`name` (the registry key) and :attr:`kind`, keep their config as a dict of plain
    JSON values in :attr:`config`, and implement :meth:`fit`, :meth:`save_files` and :meth:`load_files`.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    #: the pydantic schema of the config (:mod:`scarceseg.methods.config`); unknown keys are an error
    schema: ClassVar[Any] = None

    def __init__(self, config: dict | None = None) -> None:
        if self.schema is not None:
            from scarceseg.methods.config import validate

            self.options = validate(self.schema, config)
            config = self.options.model_dump(mode="json", exclude_none=True)
        self.config: dict = dict(config or {})

    @abstractmethod
    def fit(self, cases: Sequence[Case], budget: Budget | None = None, progress: bool = False,
            seed: int = 0) -> dict:
        """Train on labelled ``cases`` within ``budget``; returns the training history (JSON-able dict)."""

    @abstractmethod
    def save_files(self, folder: Path) -> None:
        """Write the method's own files (weights, legacy ``config.json``) into ``folder``."""

    @classmethod
    @abstractmethod
    def load_files(cls, folder: Path, config: dict) -> Method:
        """Rebuild a trained method from the files :meth:`save_files` wrote."""

    def save(self, folder: str | Path) -> Path:
        """Write the model folder: the method's files plus ``method.json``; returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.save_files(folder)
        write_method_file(folder, self.name, self.kind, self.config)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Method:
        """Read a folder written by :meth:`save` (its ``method.json`` must name this method)."""
        from scarceseg.methods.registry import read_method_file

        info = read_method_file(folder)
        if info["method"] != cls.name:
            from scarceseg.errors import InputError

            raise InputError(Path(folder) / METHOD_FILE, f"holds method {info['method']!r}, not {cls.name!r}")
        return cls.load_files(Path(folder), dict(info.get("config") or {}))


class Segmenter(Method):
    """A method that segments a case by itself: ``predict(case) -> Prediction``."""

    kind: ClassVar[str] = "segmenter"
    #: options :meth:`set_inference` accepts (e.g. the selector's ``mode`` and ``points``)
    inference_options: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def predict(self, case: Case) -> Prediction:
        """Probability and mask of one case (spatial shape of ``case``)."""

    #: slices on each side of a 2D slice that :meth:`predict_in_stack` reads (0: the slice alone)
    context_slices: int = 0

    def predict_in_stack(self, case: Case, neighbours: Mapping[int, Case]) -> Prediction:
        """Probability and mask of a 2D slice, reading the slices around it in its volume: ``neighbours`` maps an
        offset (``-k..-1, 1..k``, ``k`` = :attr:`context_slices`) to that slice where it exists. Default: the
        slice alone (:meth:`predict`)."""
        return self.predict(case)

    def set_inference(self, **options: Any) -> None:
        """Set how :meth:`predict` runs; an option the method does not have is a :class:`ScarcesegError`."""
        from scarceseg.errors import ScarcesegError

        unknown = sorted(set(options) - set(self.inference_options))
        if unknown:
            known = ", ".join(self.inference_options) or "none"
            raise ScarcesegError(f"{', '.join(unknown)}: not an option of {self.name} models (they take: {known})")
        for key, value in options.items():
            setattr(self, key, value)

    def after_predict(self, out: Path, case: Case, prediction: Prediction) -> None:
        """Hook of :func:`scarceseg.methods.folder.segment_folder` after each case (default: nothing)."""

    def finish(self, out: Path, summary: dict) -> None:
        """Hook of :func:`scarceseg.methods.folder.segment_folder` after the last case (default: nothing)."""


class TrainableRefiner(Method):
    """A click-to-correct method: trained by :meth:`fit`, used through ``refine`` (the session's protocol)."""

    kind: ClassVar[str] = "refiner"

    @abstractmethod
    def refine(self, image: np.ndarray, prob: np.ndarray, clicks: Sequence[Click], init: np.ndarray | None = None,
               spacing: Sequence[float] | None = None) -> np.ndarray:
        """One refinement step (see :class:`~scarceseg.interactive.refiners.Refiner`)."""


@runtime_checkable
class Proposer(Protocol):
    """Splits a case into candidate regions to pick from."""

    name: str

    def propose(self, case: Case) -> Any:
        """Candidates of ``case``: an object with ``masks`` ``(K, Y, X)`` bool and the ``image`` they belong to."""
        ...


def write_method_file(folder: str | Path, name: str, kind: str, config: dict) -> Path:
    """Write ``folder/method.json``: ``{"method", "kind", "config", "format_version", "scarceseg_version"}``."""
    from scarceseg import __version__

    path = Path(folder) / METHOD_FILE
    info = {"method": name, "kind": kind, "format_version": METHOD_FORMAT_VERSION, "scarceseg_version": __version__,
            "config": config}
    path.write_text(json.dumps(info, indent=2, default=json_default) + "\n", encoding="utf-8")
    return path



def predict_case(model: Segmenter, case: Case,
                 neighbours: Callable[[Case, int], Mapping[int, Case]] | None = None) -> Prediction:
    """``model``'s prediction of ``case``, with the slices around it when the model reads them and
    ``neighbours`` (e.g. a :class:`~scarceseg.datasets.slices.NeighbourSlices`) can give them: what every loop
    that segments a data set calls instead of ``model.predict``."""
    k = int(getattr(model, "context_slices", 0) or 0)
    if k > 0 and neighbours is not None and case.ndim == 2:
        return model.predict_in_stack(case, neighbours(case, k))
    return model.predict(case)
