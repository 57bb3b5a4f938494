"""Paper 002's refiners behind :class:`~scarceseg.methods.contract.TrainableRefiner`: IteR-MRL, R-Net-style,
InterCNN (trained) and min-cut (untrained).

``fit(cases)`` turns labelled cases into :class:`~scarceseg.methods.refine_data.RefineSample` (one channel;
initial probability ``case.meta["init"]`` when the case carries one, else all background;
:func:`scarceseg.methods.refine_entry.train_refiner_from_dataset` adds a U-Net's initial masks) and trains
the wrapped model; the budget's ``steps`` (or ``epochs``) are its gradient updates. ``refine`` is the wrapped
model's, so the interactive session and the benchmark use these objects directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.interactive.refiners import MinCutRefiner
from scarceseg.io.case import Case
from scarceseg.io.channels import pick_channel as image_channel
from scarceseg.methods.adapters import labelled
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Budget, TrainableRefiner
from scarceseg.methods.interactive_baselines import BaselineConfig, SupervisedRefiner
from scarceseg.methods.iter_mrl import IterMRL, IterMRLConfig
from scarceseg.methods.refine_data import RefineSample


def samples_of(cases: Sequence[Case], channel: str | None, method: str) -> tuple[list[RefineSample], int]:
    """Training samples of labelled cases (all 2D or all 3D) and their dimension."""
    samples, dims = [], None
    for case in labelled(cases, method):
        image = image_channel(case, channel)
        dims = dims or image.ndim
        if image.ndim != dims:
            raise InputError(case.source, "mixed 2D and 3D training cases")
        samples.append(RefineSample.make(image, case.target, case.meta.get("init"), case.case_id))
    return samples, int(dims or 2)


def updates(budget: Budget | None, default: int) -> int:
    """Gradient updates of a budget: its ``steps``, else its ``epochs``, else ``default``."""
    if budget is None or (budget.steps is None and budget.epochs is None):
        return default
    return int(budget.steps or budget.epochs)


class _NetRefiner(TrainableRefiner):
    """Shared life cycle of the trained refiners; subclasses say how to build the wrapped model."""

    def __init__(self, config: dict | None = None, model=None) -> None:
        super().__init__(config)
        self.model = model

    def build(self, dims: int):
        raise NotImplementedError

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        samples, dims = samples_of(cases, self.options.channel, self.name)
        dims = self.options.dims or dims
        self.model = self.build(dims)
        self.model.config.iterations = updates(budget, self.model.config.iterations)
        self.model.meta.update(case_ids=[s.case_id for s in samples], channel=self.options.channel)
        if budget is not None and budget.cpu_seconds is not None:
            if not isinstance(self.model, SupervisedRefiner):
                raise InputError(None, f"{self.name}'s budget is in updates (steps), not CPU seconds")
            return self.model.fit(samples, seed=seed, progress=progress, cpu_seconds=budget.cpu_seconds)
        return self.model.fit(samples, seed=seed, progress=progress)

    def _require(self):
        if self.model is None:
            raise RuntimeError(f"the {self.name} refiner is not trained: call fit() or load() first")
        return self.model

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        return self._require().refine(image, prob, clicks, init=init, spacing=spacing)

    def save_files(self, folder: Path) -> None:
        self._require().save(folder)


class IterMRLMethod(_NetRefiner):
    """IteR-MRL; config: ``preset`` (cpu | paper), ``dims`` (default: the cases'), ``channel`` and
    IterMRLConfig fields."""

    name = "itermrl"
    schema = config_model("IterMRLOptions", IterMRLConfig, preset=(str, "cpu"), dims=(int | None, None),
                          channel=(str | None, None))

    def build(self, dims: int) -> IterMRL:
        if self.options.preset not in ("cpu", "paper"):
            raise InputError(None, f"IteR-MRL preset must be cpu or paper, got {self.options.preset!r}")
        base = IterMRLConfig.cpu(dims=dims) if self.options.preset == "cpu" else IterMRLConfig.paper()
        return IterMRL(apply(base, self.options))

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> IterMRLMethod:
        model = IterMRL.load(folder)
        return cls(config or {"dims": model.config.dims, "channel": model.meta.get("channel")}, model=model)


class _BaselineRefiner(_NetRefiner):
    """R-Net-style / InterCNN (:class:`SupervisedRefiner` of kind :attr:`name`)."""

    def build(self, dims: int) -> SupervisedRefiner:
        base = BaselineConfig.for_dims(self.name, dims=dims)
        return SupervisedRefiner(apply(base, self.options))

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> _BaselineRefiner:
        model = SupervisedRefiner.load(folder)
        if model.config.kind != cls.name:
            raise InputError(folder, f"holds a {model.config.kind} refiner, not {cls.name}")
        return cls(config or {"dims": model.config.dims, "channel": model.meta.get("channel")}, model=model)


def _baseline_schema(name: str):
    return config_model(name, BaselineConfig, dims=(int | None, None), channel=(str | None, None),
                        kind=(str | None, None))


class RNetMethod(_BaselineRefiner):
    """R-Net-style supervised refiner (DeepIGeoS); config: ``dims``, ``channel`` and BaselineConfig fields."""

    name = "rnet"
    schema = _baseline_schema("RNetOptions")


class InterCNNMethod(_BaselineRefiner):
    """InterCNN supervised refiner; config: ``dims``, ``channel`` and BaselineConfig fields."""

    name = "intercnn"
    schema = _baseline_schema("InterCNNOptions")


class MinCutMethod(TrainableRefiner):
    """Boykov-Jolly graph cut: nothing to train; config: MinCutRefiner's ``lam``, ``seed_radius``, ``eps``."""

    name = "mincut"
    untrained = True
    schema = config_model("MinCutOptions", None, lam=(float, 2.0), seed_radius=(float, 2.0), eps=(float, 0.05))

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        self.refiner = MinCutRefiner(**self.options.model_dump())

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        return {"trained": False, "reason": "min-cut has no parameters to learn"}

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        return self.refiner.refine(image, prob, clicks, init=init, spacing=spacing)

    def save_files(self, folder: Path) -> None:
        (folder / "README.txt").write_text("min-cut refiner: no weights; method.json holds its settings\n",
                                           encoding="utf-8")

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> MinCutMethod:
        return cls(config)



class PriorMethod(TrainableRefiner):
    """The pretrained prior as a refiner (:func:`scarceseg.methods.prompted.resolve_refiner` ``"prior"``): nothing
    to train; the weights come with the prior's package and are loaded on the first refinement."""

    name = "prior"
    untrained = True
    schema = config_model("PriorOptions", None)

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config)
        self._refiner = None

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        return {"trained": False, "reason": "the prior is pretrained; it is not trained here"}

    def make(self):
        from scarceseg.methods.prompted import resolve_refiner

        return resolve_refiner("prior")

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        if self._refiner is None:
            self._refiner = self.make()
        return self._refiner.refine(image, prob, clicks, init=init, spacing=spacing)

    def save_files(self, folder: Path) -> None:
        (folder / "README.txt").write_text("prior refiner: weights from the prior's package; method.json only\n",
                                           encoding="utf-8")

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> PriorMethod:
        return cls(config)


class PriorMinCutMethod(PriorMethod):
    """Graph cut on the prior's probabilities, local to the newest click (``prior_refiners.PriorMinCutRefiner``)."""

    name = "prior-mincut"
    schema = config_model("PriorMinCutOptions", None)

    def make(self):
        from scarceseg.methods.prior_refiners import PriorMinCutRefiner

        return PriorMinCutRefiner()
