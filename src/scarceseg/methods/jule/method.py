"""JULE as a registered :class:`~scarceseg.methods.contract.Segmenter` (``registry.get("jule")``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.channels import pick_channel as image_channel
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Prediction, Segmenter
from scarceseg.methods.jule.segmenter import CONFIGS, JULEConfig, JuleSegmenter


class JuleMethod(Segmenter):
    """JULE + k-means; config: ``preset`` (cpu | paper), ``channel`` and JULEConfig fields (``k``: clusters)."""

    name = "jule"
    schema = config_model("JULEOptions", JULEConfig, preset=(str, "cpu"), channel=(str | None, None))

    def __init__(self, config: dict | None = None, model: JuleSegmenter | None = None) -> None:
        super().__init__(config)
        options = self.options
        if options.preset not in CONFIGS:
            raise InputError(None, f"JULE preset must be one of {', '.join(CONFIGS)}, got {options.preset!r}")
        self.model = model

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        if not cases:
            raise InputError(None, "no case for JULE to learn from")
        image = image_channel(cases[0], self.options.channel)
        cfg = apply(replace(CONFIGS[self.options.preset], ndim=image.ndim), self.options)
        if budget is not None and not budget.is_default:
            if budget.epochs is None:
                raise InputError(None, "JULE's budget is in epochs per period (not steps or CPU seconds)")
            cfg = replace(cfg, epochs=int(budget.epochs), final_epochs=int(budget.epochs))
        self.model = JuleSegmenter.fit(image, None, cfg, seed=seed)
        self.model.summary["case_id"] = cases[0].case_id
        return dict(self.model.summary)

    def _require(self) -> JuleSegmenter:
        if self.model is None:
            raise RuntimeError("JULE is not trained: call fit() or load() first")
        return self.model

    def predict(self, case: Case) -> Prediction:
        model = self._require()
        image = image_channel(case, self.options.channel)
        if image.ndim != model.config.ndim:
            raise InputError(case.source, f"this JULE model is {model.config.ndim}D, the case is {image.ndim}D")
        labels = model.segment(image)
        mask = labels == labels.max() if labels.any() else np.zeros(labels.shape, bool)
        return Prediction(mask.astype(np.float32), mask, {"labels": labels})

    def save_files(self, folder: Path) -> None:
        self._require().save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> JuleMethod:
        return cls(config, model=JuleSegmenter.load(folder))
