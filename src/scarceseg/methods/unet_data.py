"""The U-Net baseline on data sets: training on some labelled cases of a folder and segmenting a folder (what
``scarceseg train unet`` and the tests call). The model is :class:`scarceseg.methods.unet_baseline.UNetBaseline`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from scarceseg.errors import InputError
from scarceseg.methods.unet_baseline import UNetBaseline, UNetConfig, select_channels


def train_unet_from_dataset(
    data_dir: str | Path,
    case_ids: Sequence[str],
    out_dir: str | Path,
    config: UNetConfig | None = None,
    channels: str = "flair",
    seed: int = 0,
    layout: str | None = None,
    progress: bool = True,
) -> dict:
    """Train the U-Net on some labelled cases of a data set and save it.

    Parameters
    ----------
    data_dir : str or Path
        A folder :func:`scarceseg.datasets.open_dataset` understands (2D cases with labels).
    case_ids : sequence of str
        The training cases (e.g. an N-shot split).
    out_dir : str or Path
        Model folder: ``model.safetensors``, ``config.json`` (recipe, channels, case ids, seed) and
        ``history.json`` (loss per epoch, seconds).
    config : UNetConfig, optional
        Paper recipe by default.
    channels : str
        See :func:`select_channels`; stored so :func:`segment_folder_unet` picks the same.
    seed : int
    layout : str, optional
        Data-set layout; detected when None.
    progress : bool

    Returns
    -------
    dict
        The training history (see :meth:`UNetBaseline.fit`) plus ``out_dir``.

    Raises
    ------
    InputError
        An unknown case id, a case without label, or a file that cannot be read.
    """
    from scarceseg.datasets import open_dataset

    ids = list(case_ids)
    if not ids:
        raise InputError(data_dir, "no training cases given")
    ds = open_dataset(data_dir, layout=layout)
    images, masks = [], []
    for cid in ids:
        case = ds.load(cid)
        if case.target is None:
            raise InputError(case.source or data_dir, f"case {cid} has no label: cannot train on it")
        images.append(select_channels(case, channels))
        masks.append(case.target)
    model = UNetBaseline(config)
    model.meta.update(channels=channels, case_ids=ids, data_dir=str(data_dir), layout=ds.layout)
    history = model.fit(images, masks, seed=seed, progress=progress)
    out = model.save(out_dir)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n", encoding="utf-8")
    return {**history, "out_dir": str(out)}


def segment_folder_unet(
    model_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    case_ids: Sequence[str] | None = None,
    layout: str | None = None,
    progress: bool = True,
    mask_format: str = "auto",
    force: bool = False,
) -> dict:
    """Segment every (or the given) case of a data set with a saved U-Net; writes ``<case_id>.png``.

    Cases that cannot be loaded or segmented (3D, missing channel, corrupt file) are skipped and
    listed; the others are still written.

    Parameters
    ----------
    model_dir : str or Path
        Folder written by :func:`train_unet_from_dataset` / :meth:`UNetBaseline.save`.
    data_dir : str or Path
    out_dir : str or Path
        Receives one 0/255 PNG mask per case.
    case_ids : sequence of str, optional
        Only these cases (default: all).
    layout : str, optional
    progress : bool
    force : bool
        Segment again cases whose mask exists (default: keep them; see :func:`~scarceseg.methods.folder.segment_cases`).
    mask_format : {"auto", "dicom-seg"}
        See :func:`scarceseg.methods.folder.segment_cases`.

    Returns
    -------
    dict
        ``written``: list of mask paths; ``kept``: ids whose mask existed; ``skipped``: list of ``(case_id, reason)``.
    """
    from scarceseg.methods.adapters import UNetMethod
    from scarceseg.methods.folder import segment_folder

    model = UNetMethod.load_files(Path(model_dir), {})
    return segment_folder(model, data_dir, out_dir, case_ids, layout, progress, force=force, mask_format=mask_format)
