"""Data-set and file level entry points of the refiners (what ``scarceseg train refiner`` / ``refine`` call)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError
from scarceseg.interactive.clicks import Click, ClickLog
from scarceseg.io.channels import pick_channel as image_channel

METHODS = ("itermrl", "rnet", "intercnn")


def train_refiner_from_dataset(
    data_dir: str | Path,
    out_dir: str | Path,
    method: str = "itermrl",
    init_model: str | Path | None = None,
    iterations: int | None = None,
    n_train: int | None = None,
    channel: str | None = None,
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
    config: dict | None = None,
) -> dict:
    """Train a refiner on the labelled cases of a data set (paper 002's D_train2) and save it.

    Parameters
    ----------
    data_dir : str or Path
        2D slices (LGG, pairs) or 3D volumes (BRATS, LA HDF5, MSD); the dimension picks 2D / 3D training.
    out_dir : str or Path
    method : {"itermrl", "rnet", "intercnn"}
    init_model : path, optional
        A U-Net folder (``scarceseg train unet``) whose outputs are the initial probabilities (2D only,
        trained on *other* patients: D_train1). None: all-background initial masks.
    iterations : int, optional
        Gradient updates (default: the CPU preset's).
    n_train : int, optional
        Use only the first N cases.
    channel : str, optional
        Image channel (default FLAIR when the data has one).
    seed : int
    layout : str, optional
    progress : bool
    config : dict, optional
        Fields of the method's config (its registry schema; unknown keys are an error) over the CPU preset.

    Returns
    -------
    dict
        Training history plus ``out_dir``.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.interactive_baselines import BaselineConfig, SupervisedRefiner
    from scarceseg.methods.iter_mrl import IterMRL, IterMRLConfig
    from scarceseg.methods.refine_data import RefineSample

    if method not in METHODS:
        raise InputError(None, f"unknown refiner method {method!r}; choose one of {METHODS}")
    ds = open_dataset(data_dir, layout=layout)
    ids = ds.case_ids[:n_train] if n_train else ds.case_ids
    unet = None
    if init_model is not None:
        from scarceseg.methods.unet_baseline import UNetBaseline

        unet = UNetBaseline.load(init_model)
    samples, dims = [], None
    for cid in ids:
        case = ds.load(cid)
        if case.target is None:
            raise InputError(case.source or data_dir, f"case {cid} has no label: cannot train on it")
        image = image_channel(case, channel)
        dims = dims or image.ndim
        if image.ndim != dims:
            raise InputError(case.source, f"mixed 2D and 3D cases in {data_dir}")
        init = None
        if unet is not None:
            if image.ndim != 2:
                raise InputError(init_model, "the U-Net initial method is 2D; 3D refiners start from all-background")
            init = unet.predict(image[None])[0]
        samples.append(RefineSample.make(image, case.target, init, cid))
    if not samples:
        raise InputError(data_dir, "no labelled cases to train on")
    if method == "itermrl":
        cfg = IterMRLConfig.cpu(dims=dims)
        model = IterMRL(cfg)
    else:
        cfg = BaselineConfig.for_dims(method, dims=dims)
        model = SupervisedRefiner(cfg)
    if config:
        from scarceseg.methods.config import apply, validate
        from scarceseg.methods.registry import get

        model.config = cfg = apply(cfg, validate(get(method).schema, config))
    if iterations is not None:
        cfg.iterations = int(iterations)
    model.meta.update(data_dir=str(data_dir), case_ids=list(ids), init_model=str(init_model) if init_model else None,
                      channel=channel)
    history = model.fit(samples, seed=seed, progress=progress)
    out = model.save(out_dir)
    (Path(out) / "history.json").write_text(json.dumps(history) + "\n", encoding="utf-8")
    return {**history, "out_dir": str(out)}


def refine_file(
    model: str | Path,
    image_path: str | Path,
    out_path: str | Path,
    init_path: str | Path | None = None,
    clicks: Sequence[str] = (),
    clicks_json: str | Path | None = None,
    channel: str | None = None,
) -> dict:
    """Refine one image's mask with clicks and write the result.

    Each step of ``clicks_json`` (a :class:`ClickLog`, or a plain list of clicks = one step) is one
    refinement; the ``clicks`` strings (``"y,x,+"``) form one more step after them.

    Returns
    -------
    dict
        ``out`` (written path), ``steps``, ``clicks``, ``object_voxels``, ``history``.
    """
    from scarceseg.interactive.session import InteractiveSession
    from scarceseg.io import read_image, read_mask
    from scarceseg.methods.prompted import resolve_refiner

    refiner = resolve_refiner(model)
    case = read_image(image_path)
    image = image_channel(case, channel)
    if init_path is not None:
        init = (read_mask(init_path, like=case) > 0).astype(np.float32)
    else:
        init = np.zeros(image.shape, np.float32)
    steps: list[list[Click]] = []
    if clicks_json is not None:
        steps += [s for s in ClickLog.load(clicks_json).steps if s]
    if clicks:
        try:
            steps.append([Click.parse(c) for c in clicks])
        except ValueError as exc:
            raise InputError(None, str(exc)) from None
    if not steps:
        raise InputError(None, "no clicks given: use --click Y,X,+ (or Z,Y,X,-) or --clicks FILE.json")
    session = InteractiveSession(image, init, refiner, spacing=case.spacing)
    for step in steps:
        try:
            session.apply_step(step)
        except ValueError as exc:
            raise InputError(image_path, str(exc)) from None
    out = session.export(out_path, like=case)
    return {"out": str(out), "steps": len(steps), "clicks": len(session.clicks),
            "object_voxels": int(session.mask.sum()), "history": session.history()}
