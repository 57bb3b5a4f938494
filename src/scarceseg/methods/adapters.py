"""The supervised / semi-supervised segmenters behind :class:`~scarceseg.methods.contract.Segmenter`.

Thin adapters: each keeps the paper model class it wraps (:class:`~scarceseg.methods.unet_baseline.UNetBaseline`,
:class:`~scarceseg.methods.acwe.ACWESegmenter`, :class:`~scarceseg.methods.pixeldrl.PixelDRL`) and adds what
the contract needs: training on :class:`~scarceseg.io.case.Case` objects within a
:class:`~scarceseg.methods.contract.Budget`, channel choice from the case, a
:class:`~scarceseg.methods.contract.Prediction` per case, and a model folder that names its method. The wrapped
class still writes its own ``config.json`` + ``model.safetensors``, so folders stay readable by older code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.io.case import Case
from scarceseg.methods.acwe import ACWESegmenter
from scarceseg.methods.acwe_config import ACWEConfig
from scarceseg.methods.config import apply, config_model
from scarceseg.methods.contract import Budget, Prediction, Segmenter
from scarceseg.methods.pixeldrl import PixelDRL
from scarceseg.methods.pixeldrl_config import PixelDRLConfig
from scarceseg.methods.pixeldrl_inputs import prepare_mask
from scarceseg.methods.unet_baseline import UNetBaseline, UNetConfig, select_channels


def labelled(cases: Sequence[Case], method: str) -> list[Case]:
    """``cases`` when every one has a label, else an :class:`InputError` naming the first that has none."""
    if not cases:
        raise InputError(None, f"no training cases for {method}")
    for case in cases:
        if case.target is None:
            raise InputError(case.source, f"case {case.case_id} has no label: {method} cannot train on it")
    return list(cases)


def epochs_for(budget: Budget | None, default: int, n_items: int, batch_size: int) -> int:
    """Epochs a budget allows: its ``epochs``, or its ``steps`` turned into whole epochs, else ``default``."""
    if budget is None or budget.is_default:
        return default
    if budget.epochs is not None:
        return int(budget.epochs)
    if budget.steps is not None:
        return max(1, math.ceil(budget.steps / max(1, math.ceil(n_items / batch_size))))
    return default  # a CPU-seconds budget: the configured epochs at most


def from_preset(model_cls: type, config_cls: type, options, **kwargs):
    """``model_cls(config, **kwargs)`` with the config of ``options.preset`` and the fields ``options`` sets."""
    try:
        return model_cls(apply(config_cls.named(options.preset), options), **kwargs)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None


# ---- U-Net baseline (paper 000 §1.2) ------------------------------------------------------------------
class UNetMethod(Segmenter):
    """The supervised 2D U-Net baseline; config: ``preset`` (paper | fair), ``channels``, ``device`` (cpu, cuda or
    auto; default cpu) and any UNetConfig field."""

    name = "unet"
    schema = config_model("UNetOptions", UNetConfig, preset=(str, "paper"), channels=(str, "flair"),
                          device=(str | None, None))

    def __init__(self, config: dict | None = None, model: UNetBaseline | None = None) -> None:
        super().__init__(config)
        self.model = model if model is not None else from_preset(UNetBaseline, UNetConfig, self.options,
                                                                 device=self.options.device or "cpu")

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        cases = labelled(cases, "the U-Net")
        cfg = self.model.config
        cfg.epochs = epochs_for(budget, cfg.epochs, len(cases), cfg.batch_size)
        self.model.meta.update(channels=self.options.channels, case_ids=[c.case_id for c in cases])
        return self.model.fit([select_channels(c, self.options.channels) for c in cases], [c.target for c in cases],
                              seed=seed, progress=progress, cpu_seconds=budget.cpu_seconds if budget else None)

    def predict(self, case: Case) -> Prediction:
        prob, mask = self.model.predict(select_channels(case, self.options.channels))
        return Prediction(prob, mask)

    def save_files(self, folder: Path) -> None:
        self.model.save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> UNetMethod:
        model = UNetBaseline.load(folder)
        config = config or {"channels": model.meta.get("channels", "flair")}
        return cls(config, model=model)


# ---- ACWE ConvNet (paper 003) -------------------------------------------------------------------------
class ACWEMethod(Segmenter):
    """The ACWE ConvNet; config: ``mode`` (1-4), ``preset`` (cpu | paper), ``data_preset``, ``device`` (cpu, cuda
    or auto; default cpu), ``pretrained`` and ACWEConfig fields.

    Mode 1 ignores the labels; modes 2-4 use the label of every case that has one (choose which cases to pass):
    modes 2 and 3 fine-tune on the labelled cases only, mode 4 adds the label loss on them and trains ``L_ACWE``
    on all. ``pretrained`` (modes 2 and 3): the folder of a mode-1 ACWE model to fine-tune (paper 003 §3);
    without it, mode 1 is trained first on the given cases. Volumes are predicted slice by slice; to train on
    volumes, pass their slices (as :func:`scarceseg.methods.acwe_data.train_acwe_from_dataset` does).
    """

    name = "acwe"
    schema = config_model("ACWEOptions", ACWEConfig, mode=(int, 1), preset=(str, "cpu"), data_preset=(str, "lgg"),
                          device=(str | None, None), pretrained=(str | None, None))

    def __init__(self, config: dict | None = None, model: ACWESegmenter | None = None) -> None:
        super().__init__(config)
        options = self.options
        if options.mode not in (1, 2, 3, 4):
            raise InputError(None, f"ACWE mode must be 1, 2, 3 or 4, got {options.mode}")
        if model is None:
            if options.preset not in ("cpu", "paper"):
                raise InputError(None, f"ACWE preset must be cpu or paper, got {options.preset!r}")
            base = ACWEConfig.cpu() if options.preset == "cpu" else ACWEConfig()
            try:
                base = base.with_data_preset(options.data_preset)
            except ValueError as exc:
                raise InputError(None, str(exc)) from None
            model = ACWESegmenter(apply(base, options), device=options.device or "cpu")
        self.model = model

    def _image(self, case: Case) -> np.ndarray:
        from scarceseg.methods.acwe_data import select_channel

        return select_channel(case, self.model.config.channel)

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        mode = self.options.mode
        if budget is not None and budget.cpu_seconds is not None:
            raise InputError(None, "the ACWE ConvNet's budget is in epochs or fine-tuning steps, not CPU seconds")
        cases = list(cases)
        if not cases:
            raise InputError(None, "no training cases for ACWE")
        masks = [c.target if mode != 1 else None for c in cases]
        if mode != 1 and all(m is None for m in masks):
            raise InputError(cases[0].source, f"ACWE mode {mode} needs labelled cases; none of the {len(cases)} has "
                                              "a label")
        pretrained = None
        if mode in (2, 3) and self.options.pretrained is not None:
            pretrained = ACWESegmenter.load(self.options.pretrained, device=str(self.model.device))
        cfg = self.model.config
        cfg.epochs = epochs_for(budget, cfg.epochs, len(cases), cfg.batch_size)
        if budget is not None and budget.steps is not None:
            cfg.finetune_steps, cfg.finetune_epochs = int(budget.steps), 0
        self.model.meta.update(case_ids=[c.case_id for c in cases])
        return self.model.fit([self._image(c) for c in cases], masks, mode=mode, seed=seed, pretrained=pretrained,
                              progress=progress)

    def predict(self, case: Case) -> Prediction:
        image = self._image(case)
        if image.ndim == 2:
            return Prediction(*self.model.predict(image))
        masks = np.stack(self.model.predict_prepared([self.model.prepare(sl) for sl in image]))  # slice by slice
        return Prediction(masks.astype(np.float32), masks)

    def save_files(self, folder: Path) -> None:
        self.model.save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> ACWEMethod:
        model = ACWESegmenter.load(folder)
        return cls(config or {"mode": model.mode or 1}, model=model)


# ---- PixelDRL-MG (paper 004) --------------------------------------------------------------------------
class PixelDRLMethod(Segmenter):
    """PixelDRL-MG; config: ``preset`` (cpu | paper), ``channels`` and PixelDRLConfig fields.

    The budget's ``steps`` and ``cpu_seconds`` go to :meth:`PixelDRL.fit` as they are; ``epochs`` sets the
    config's epochs. The prediction's probability is the final mask (the agents write a mask, not a
    probability).
    """

    name = "pixeldrl"
    schema = config_model("PixelDRLOptions", PixelDRLConfig, preset=(str, "cpu"), channels=(str, "all"))

    def __init__(self, config: dict | None = None, model: PixelDRL | None = None) -> None:
        super().__init__(config)
        self.model = model if model is not None else from_preset(PixelDRL, PixelDRLConfig, self.options)

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        cases = labelled(cases, "PixelDRL-MG")
        cfg = self.model.config
        x = self.model.prepare_batch([select_channels(c, self.options.channels) for c in cases])
        g = np.stack([prepare_mask(c.target, cfg.size) for c in cases])
        budget = budget or Budget()
        if budget.epochs is not None:
            cfg.epochs = int(budget.epochs)
        self.model.meta.update(channels=self.options.channels, case_ids=[c.case_id for c in cases])
        return self.model.fit(x, g, seed=seed, steps=budget.steps, budget_s=budget.cpu_seconds, progress=progress)

    inference_options = ("action_maps", "t_max")
    action_maps = False
    t_max: int | None = None  # steps of the greedy episode (None: the config's t_max)

    def predict(self, case: Case) -> Prediction:
        mask, steps = self.model.predict(select_channels(case, self.options.channels), t_max=self.t_max,
                                         return_steps=True)
        return Prediction(mask.astype(np.float32), mask, {"steps": steps} if self.action_maps else {})

    def after_predict(self, out: Path, case: Case, prediction: Prediction) -> None:
        """With ``action_maps``: ``out/action_maps/<case_id>.png``, the action map of every step (Fig. 4)."""
        if self.action_maps:
            from scarceseg.methods.pixeldrl_data import save_action_maps

            save_action_maps(prediction.extra.pop("steps"), out / "action_maps" / f"{case.case_id}.png")

    def save_files(self, folder: Path) -> None:
        self.model.save(folder)

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> PixelDRLMethod:
        model = PixelDRL.load(folder)
        return cls(config or {"channels": model.meta.get("channels", "all")}, model=model)


class PixelDRLPriorMethod(PixelDRLMethod):
    """PixelDRL-MG's pixel agents on the frozen LiteMedSAM embedding (config ``prior``); only the heads train.

    Config as :class:`PixelDRLMethod` with preset ``prior`` and channels ``flair`` (the prior sees one channel).
    ``store`` (an :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore`) shares cached embeddings.
    """

    name = "pixeldrl-prior"
    schema = config_model("PixelDRLPriorOptions", PixelDRLConfig, preset=(str, "prior"), channels=(str, "flair"))

    def __init__(self, config: dict | None = None, model: PixelDRL | None = None, store=None) -> None:
        Segmenter.__init__(self, config)
        if model is None:
            model = from_preset(PixelDRL, PixelDRLConfig, self.options)
            model._store = store
        self.model = model

    @classmethod
    def load_files(cls, folder: Path, config: dict) -> PixelDRLPriorMethod:
        from scarceseg.methods.prior_fewshot import EmbeddingStore

        model = PixelDRL.load(folder, store=EmbeddingStore(folder=Path(folder) / "cache", write=False))
        return cls(config or {"channels": model.meta.get("channels", "flair")}, model=model)
