"""``scarceseg cluster``: one image clustered into K labels (paper 001): JULE + k-means, k-means or multi-Otsu,
with the label map, a figure of three orthogonal slices and a summary written to a folder."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from scarceseg.cluster.volume_baselines import foreground_region
from scarceseg.errors import InputError
from scarceseg.io.channels import pick_channel
from scarceseg.methods.jule import JULEConfig, get_config, read_region, resolve_region

CLUSTER_METHODS = ("jule", "kmeans", "otsu")


def cluster_image(path: str | Path, out: str | Path, method: str = "jule", k: int = 3, mask: str | Path | None = None,
                  threshold: float | None = None, channel: str | int = 0, config: str | JULEConfig = "cpu",
                  seed: int = 0, echo: Callable[[str], None] | None = None) -> dict:
    """Cluster one image into ``k`` labels and write the label map, a slice figure and a summary.

    Writes ``out/labels.nii.gz`` (3D, with the input's geometry) or ``out/labels.png`` (2D), labels ``1..k``
    by mean intensity and 0 outside the region; ``out/slices.png`` (three orthogonal slices, labels
    coloured, as paper 001's Figure 5); ``out/summary.json``; for JULE also the trained model in
    ``out/model``.

    Parameters
    ----------
    path : str or Path
        Any image :func:`scarceseg.io.read_image` reads.
    out : str or Path
    method : {"jule", "kmeans", "otsu"}
    k : int
    mask : str or Path, optional
        Region to cluster (value > 0.5); else ``image > threshold``, else the Otsu foreground.
    threshold : float, optional
    channel : int or str
    config : str or JULEConfig
        JULE configuration (``cpu`` or ``paper``).
    seed : int

    Returns
    -------
    dict
        ``labels`` and ``figure`` paths, ``seconds``, ``voxels`` per label, ``method``, ``k``.
    """
    from scarceseg.cluster.volume_baselines import kmeans_volume, multi_otsu_volume
    from scarceseg.figures.labels import save_label_slices
    from scarceseg.io import read_image, write_mask

    if method not in CLUSTER_METHODS:
        raise InputError(None, f"unknown method {method!r}; choose one of {', '.join(CLUSTER_METHODS)}")
    case = read_image(path)
    image = pick_channel(case, channel)
    if mask is not None:
        region = read_region(mask, case)
    else:
        region = foreground_region(image, threshold)
    region = resolve_region(image, region)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    extra: dict = {}
    if method == "otsu":
        labels = multi_otsu_volume(image, k, region)
    elif method == "kmeans":
        labels = kmeans_volume(image, k, region, seed=seed)
    else:
        from scarceseg.methods import registry

        cfg = replace(get_config(config), ndim=case.ndim)
        model = registry.get("jule")({**registry.get("jule").options_for(cfg), "ks": [int(k)]})
        one = replace(case, image=image[None], channel_names=("image",), meta={**case.meta, "region": region})
        model.fit([one], progress=echo or False, seed=seed)
        labels = model.predict(one).extra["labels_by_k"][int(k)]
        model.save(out / "model")
        extra = {"jule": model.model.summary, "config": asdict(model.model.config)}
    seconds = time.perf_counter() - t0
    labels_path = write_mask(labels, out / ("labels.nii.gz" if case.ndim == 3 else "labels.png"), like=case)
    figure = save_label_slices(image, [("image", None), (f"{method} K={k}", labels)], out / "slices.png",
                               point=None, spacing=case.spacing, title=Path(path).name)
    summary = {"input": str(path), "method": method, "k": int(k), "seed": int(seed), "labels": str(labels_path),
               "figure": str(figure), "seconds": round(seconds, 2),
               "voxels": {int(v): int(n) for v, n in zip(*np.unique(labels, return_counts=True), strict=True)},
               **extra}
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
