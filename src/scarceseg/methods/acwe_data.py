"""ACWE ConvNet (paper 003) on data sets: channel choice, labelled-slice choice, slicing volumes, training
from a data set folder. ``scarceseg segment`` runs ACWE models through the registry
(:class:`scarceseg.methods.adapters.ACWEMethod`).

The model itself (:class:`~scarceseg.methods.acwe_config.ACWEConfig`, :class:`~scarceseg.methods.acwe.ACWESegmenter`)
lives in :mod:`scarceseg.methods.acwe`; this module is what the CLI and the benchmark call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.methods.acwe import ACWESegmenter
from scarceseg.methods.acwe_config import LAYOUT_PRESETS, ACWEConfig


def select_channel(case, channel: str = "auto") -> np.ndarray:
    """The one channel the ACWE ConvNet sees, (Y, X) or (Z, Y, X): see :func:`scarceseg.io.channels.pick_channel`."""
    from scarceseg.io.channels import pick_channel

    return pick_channel(case, channel)


def choose_labelled(case_patient: dict[str, str], n: int | None, seed: int = 0) -> list[str]:
    """``n`` case ids spread over patients: one per patient in a seeded order, then a second round, ...

    Nested: for one seed the 10 cases of mode 2 are among the 80 of mode 3. ``None`` (or ``n`` at
    least the number of cases) returns every case.

    Parameters
    ----------
    case_patient : dict case_id -> patient_id
    n : int or None
    seed : int

    Returns
    -------
    list of str
        In the order of ``case_patient``.
    """
    if n is None or n >= len(case_patient):
        return list(case_patient)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    by_patient: dict[str, list[str]] = {}
    for cid, pid in case_patient.items():
        by_patient.setdefault(pid, []).append(cid)
    patients = sorted(by_patient)
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    queues = {p: [by_patient[p][i] for i in rng.permutation(len(by_patient[p]))] for p in order}
    chosen: list[str] = []
    while len(chosen) < n:
        for p in order:
            if queues[p] and len(chosen) < n:
                chosen.append(queues[p].pop(0))
    keep = set(chosen)
    return [c for c in case_patient if c in keep]


def iter_slices_2d(ds, only_foreground: bool = True, slice_step: int = 1):
    """2D cases of a data set: 2D cases as they are; 3D volumes as axial slices.

    Parameters
    ----------
    ds : Dataset
    only_foreground : bool
        Volumes: only slices whose label has foreground (all slices of an unlabelled volume).
    slice_step : int
        Volumes: every ``slice_step``-th of those slices.

    Yields
    ------
    Case
        2D.
    """
    from scarceseg.datasets.slices import iter_slices

    for case in ds.iter_cases():
        if case.ndim == 2:
            yield case
            continue
        fg = only_foreground and case.label is not None and bool(case.label.any())
        for k, sl in enumerate(iter_slices(case, axis=0, only_foreground=fg)):
            if k % slice_step == 0:
                yield sl


def resolve_config(config: ACWEConfig | None, preset: str, layout: str) -> ACWEConfig:
    """``config`` (default :meth:`ACWEConfig.cpu`) with the data preset (``"auto"``: from the layout)."""
    cfg = config or ACWEConfig.cpu()
    if preset == "auto":
        preset = LAYOUT_PRESETS.get(layout, "lgg")
    return cfg.with_data_preset(preset)


def train_acwe_from_dataset(
    data_dir: str | Path,
    out_dir: str | Path,
    mode: int = 1,
    config: ACWEConfig | None = None,
    preset: str = "auto",
    case_ids: Sequence[str] | None = None,
    n_labels: int | None = None,
    pretrained: str | Path | None = None,
    slice_step: int = 1,
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
) -> dict:
    """Train the ACWE ConvNet on (some cases of) a data set in one mode and save it.

    Parameters
    ----------
    data_dir : path
        A data set folder (2D cases, or volumes served as axial slices that contain the label).
    out_dir : path
        Model folder (``model.safetensors``, ``config.json``, ``history.json``).
    mode : {1, 2, 3, 4}
    config : ACWEConfig, optional
        Default :meth:`ACWEConfig.cpu`; the data preset is applied on top.
    preset : {"auto", "lgg", "la"}
    case_ids : sequence of str, optional
        Training cases (default all); for volumes, volume ids.
    n_labels : int, optional
        Labelled images revealed for modes 2-4 (default: ``n_labels_mode2`` / ``n_labels_mode3`` / all).
    pretrained : path, optional
        Modes 2-3: a mode-1 model folder to fine-tune.
    slice_step, seed, layout, progress :

    Returns
    -------
    dict
        The training history plus ``out_dir``, ``labelled`` (ids) and ``skipped``.
    """
    from scarceseg.datasets import open_dataset

    ds = open_dataset(data_dir, layout=layout)
    if case_ids is not None:
        ds = ds.subset(case_ids)
    cfg = resolve_config(config, preset, ds.layout)
    model = ACWESegmenter(cfg)
    base = ACWESegmenter.load(pretrained) if pretrained is not None else None
    if base is not None and base.config.size != cfg.size:
        raise InputError(pretrained, f"the pretrained model works on {base.config.size}x{base.config.size}, "
                                     f"this config on {cfg.size}x{cfg.size}")
    if base is not None:
        model.config = cfg = replace(base.config, epochs=cfg.epochs, finetune_steps=cfg.finetune_steps, lr=cfg.lr)
    preps, truths, ids, patients = [], [], [], {}
    for case in iter_slices_2d(ds, slice_step=slice_step):
        preps.append(model.prepare(select_channel(case, cfg.channel)))
        truths.append(case.target)
        ids.append(case.case_id)
        patients[case.case_id] = case.patient_id
    if not preps:
        raise InputError(data_dir, "no usable 2D image to train on")
    if n_labels is None:
        n_labels = {1: 0, 2: cfg.n_labels_mode2, 3: cfg.n_labels_mode3, 4: None}[mode]
    have = {cid: patients[cid] for cid, t in zip(ids, truths, strict=True) if t is not None}
    labelled = choose_labelled(have, n_labels, seed=seed) if (mode != 1 and have) else []
    chosen = set(labelled)
    masks = [t if cid in chosen else None for cid, t in zip(ids, truths, strict=True)]
    if mode != 1 and not labelled:
        raise InputError(data_dir, f"mode {mode} needs labels, and these cases have none")
    history = model.fit(preps, masks, mode=mode, seed=seed, pretrained=base, progress=progress)
    model.meta.update(case_ids=ids, labelled=labelled, data_dir=str(data_dir), layout=ds.layout)
    out = model.save(out_dir)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    skipped = [(cid, reason) for cid, _, reason in ds.skipped]
    return {**history, "out_dir": str(out), "labelled": labelled, "skipped": skipped}

