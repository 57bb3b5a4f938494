"""PixelDRL-MG on data sets: loading prepared slices, the paper's split, training from a folder, and the
per-step action maps of the paper's Fig. 4 (``scarceseg segment --action-maps``, through the registry).

The model is :class:`scarceseg.methods.pixeldrl.PixelDRL`; this module is what the CLI and the bench call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError

SPLIT = (0.7, 0.1, 0.2)  # paper 004 §Datasets: training 70 %, validation 10 %, testing 20 %


def load_prepared(ds, case_ids: Sequence[str], size: int, channels: str = "all",
                  normalisation: str = "percentile", progress: bool = False):
    """Read 2D labelled cases and prepare them for the networks.

    Parameters
    ----------
    ds : Dataset
    case_ids : sequence of str
    size : int
        Side of the network grid.
    channels : str
        ``"all"`` or channel names / indices (see :func:`scarceseg.methods.unet_baseline.select_channels`).
    normalisation : str
    progress : bool

    Returns
    -------
    x : ndarray (N, C, size, size) float32
    g : ndarray (N, size, size) bool
        Masks at the network grid (for training).
    truth : list of ndarray (Y, X) bool
        Masks at the slice's own size (for evaluation).
    ids : list of str
    """
    from scarceseg.methods.pixeldrl_inputs import prepare_image, prepare_mask
    from scarceseg.methods.unet_baseline import select_channels
    from scarceseg.progress import track

    xs, gs, truth, ids = [], [], [], []
    for cid in track(list(case_ids), description="loading slices", enabled=progress):
        case = ds.load(cid)
        if case.target is None:
            raise InputError(case.source or cid, f"case {cid} has no label")
        xs.append(prepare_image(select_channels(case, channels), size, normalisation))
        gs.append(prepare_mask(case.target, size))
        truth.append(np.asarray(case.target) != 0)
        ids.append(cid)
    return np.stack(xs), np.stack(gs), truth, ids


def paper_split(ds, seed: int = 0) -> dict[str, list[str]]:
    """Patient-level 70/10/20 train/val/test split (paper 004 §Datasets)."""
    from scarceseg.datasets import split_patients

    return split_patients(ds, SPLIT, seed=seed)


def choose_shots(ds, pool: Sequence[str], shots: int | None, seed: int = 0) -> list[str]:
    """``shots`` training slices from ``pool``, from distinct patients where possible (all of ``pool`` if None)."""
    from scarceseg.methods.acwe_data import choose_labelled

    wanted = set(pool)
    case_patient = {e.case_id: e.patient_id for e in ds.entries if e.case_id in wanted}
    return choose_labelled(case_patient, shots, seed=seed)


def train_pixeldrl_from_dataset(data_dir: str | Path, out_dir: str | Path, config=None, shots: int | None = None,
                                budget_minutes: float | None = None, steps: int | None = None, seed: int = 0,
                                channels: str = "all", layout: str | None = None, resume: bool = True,
                                progress: bool = True) -> dict:
    """Train PixelDRL-MG on the training part of the 70/10/20 patient split of a data set and save it.

    Parameters
    ----------
    data_dir : str or Path
        Labelled 2D data set (e.g. ``../shared/data/lgg``).
    out_dir : str or Path
        Model folder (``model.safetensors``, ``config.json``, ``history.json``, ``split.json``); the training
        state goes to ``out_dir/checkpoint`` and a rerun of the same command resumes from it.
    config : PixelDRLConfig, optional
        CPU configuration by default.
    shots : int, optional
        Train on this many slices of the training part (distinct patients first).
    budget_minutes : float, optional
        Process CPU minutes for training.
    steps : int, optional
        Number of updates (default: the config's epochs).
    seed : int
    channels, layout : str
    resume : bool
    progress : bool

    Returns
    -------
    dict
        The history plus ``out_dir``, ``n_train``, ``n_parameters``.
    """
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.pixeldrl import PixelDRL
    from scarceseg.methods.pixeldrl_config import PixelDRLConfig

    cfg = config or PixelDRLConfig.cpu()
    ds = open_dataset(data_dir, layout=layout)
    split = paper_split(ds, seed=seed)
    ids = choose_shots(ds, split["train"], shots, seed=seed)
    if not ids:
        raise InputError(data_dir, "no training cases")
    x, g, _, ids = load_prepared(ds, ids, cfg.size, channels, cfg.normalisation, progress=progress)
    model = PixelDRL(cfg)
    model.meta.update(channels=channels, data_dir=str(data_dir), layout=ds.layout, shots=shots)
    out = Path(out_dir)
    budget = budget_minutes * 60.0 if budget_minutes is not None else None
    hist = model.fit(x, g, seed=seed, steps=steps, budget_s=budget, checkpoint_dir=out / "checkpoint",
                     resume=resume, progress=progress)
    model.save(out)
    (out / "history.json").write_text(json.dumps(hist) + "\n", encoding="utf-8")
    (out / "split.json").write_text(json.dumps({**split, "trained_on": ids}, indent=1) + "\n", encoding="utf-8")
    return {**{k: v for k, v in hist.items() if k not in ("loss", "reward")}, "out_dir": str(out),
            "n_train": len(ids), "n_parameters": model.n_parameters}


def action_map_rgb(steps: np.ndarray) -> np.ndarray:
    """Fig. 4-style colouring of per-step actions (T, Y, X) bool: light blue = background, navy = keep,
    red = the action changed from the previous step. Returns (T, Y, X, 3) uint8."""
    steps = np.asarray(steps, dtype=bool)
    out = np.empty((*steps.shape, 3), dtype=np.uint8)
    out[:] = (173, 216, 230)
    out[steps] = (20, 30, 110)
    changed = np.zeros_like(steps)
    changed[1:] = steps[1:] != steps[:-1]
    out[changed] = (220, 30, 30)
    return out


def save_action_maps(steps: np.ndarray, path: str | Path) -> Path:
    """One PNG strip with the action map of every step (left to right)."""
    from PIL import Image

    rgb = action_map_rgb(steps)
    gap = np.full((rgb.shape[1], 4, 3), 255, dtype=np.uint8)
    strip = np.concatenate([c for t in range(len(rgb)) for c in (rgb[t], gap)][:-1], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(strip).save(path)
    return path

