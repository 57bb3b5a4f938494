"""JULE as a registered :class:`~scarceseg.methods.contract.Segmenter` (``registry.get("jule")``).

The region to cluster is ``case.meta["region"]`` (bool, the case's spatial shape) when the case carries
one, else the Otsu foreground. With the ``ks`` option, :meth:`JuleMethod.predict` also returns the label
maps of several ``K`` from one feature extraction in ``Prediction.extra["labels_by_k"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.io.channels import pick_channel as image_channel
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Prediction, Segmenter
from scarceseg.methods.jule.segmenter import CONFIGS, JULEConfig, JuleSegmenter


class JuleMethod(Segmenter):
    """JULE + k-means; config: ``preset`` (cpu | paper), ``channel``, ``ks`` and JULEConfig fields (``k``: clusters).

    ``fit``'s ``progress`` may be a callable: it then receives JULE's progress lines.
    """

    name = "jule"
    schema = config_model("JULEOptions", JULEConfig, preset=(str, "cpu"), channel=(str | None, None),
                          ks=(list[int] | None, None))

    @staticmethod
    def options_for(config: JULEConfig) -> dict:
        """The registered method's config that trains exactly ``config`` (e.g. one from :func:`get_config`).

        The ``paper`` preset is the base because its unset fields are ``None`` as in a fresh config; only
        ``threads=None`` (leave torch's threads alone) cannot be expressed and becomes the preset's 1.
        """
        return {"preset": "paper", **{k: v for k, v in asdict(config).items() if v is not None}}

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
        echo: Callable[[str], None] | None = progress if callable(progress) else None
        self.model = JuleSegmenter.fit(image, cases[0].meta.get("region"), cfg, seed=seed, echo=echo)
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
        k = int(model.config.k)
        ks = [int(v) for v in self.options.ks or ()]
        maps = model.segment_many(image, list(dict.fromkeys([*ks, k])), case.meta.get("region"))
        labels = maps[k]
        mask = labels == labels.max() if labels.any() else np.zeros(labels.shape, bool)
        extra = {"labels": labels}
        if ks:
            extra["labels_by_k"] = {v: maps[v] for v in ks}
        return Prediction(mask.astype(np.float32), mask, extra)

    def save_files(self, folder: Path) -> None:
        self._require().save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> JuleMethod:
        return cls(config, model=JuleSegmenter.load(folder))
