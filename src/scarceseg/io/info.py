"""``scarceseg info PATH``: what a file holds, as a dict and as readable text."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarceseg.io.readers import read_image, read_mask

_AXES = {2: "(Y, X)", 3: "(Z, Y, X)"}


def describe(path: str | Path, mask: str | Path | None = None, **options) -> dict:
    """Describe an image file (or DICOM series folder), and optionally its mask.

    Parameters
    ----------
    path : str or Path
    mask : str or Path, optional
        A mask file for this image; its label values are reported (shape checked against the image).
    **options
        Passed to :func:`read_image` (``series_id``, ``h5_axes``).

    Returns
    -------
    dict
        JSON-serialisable: ``path``, ``format``, ``ndim``, ``shape`` (spatial), ``axes``,
        ``channels`` (count), ``channel_names``, ``dtype`` (stored), ``spacing``, ``spacing_known``,
        ``origin``, ``intensity`` (overall ``min``/``max``/``mean``), ``channel_stats`` (one dict with
        ``name``/``min``/``max``/``mean`` per channel), ``has_label``, ``label_source``,
        ``label_values`` (sorted, or None) and ``label_counts`` (voxels per value, or None).
    """
    case = read_image(path, **options)
    image = case.image
    stats = [
        {
            "name": name,
            "min": float(image[i].min()),
            "max": float(image[i].max()),
            "mean": float(image[i].mean(dtype=np.float64)),
        }
        for i, name in enumerate(case.channel_names)
    ]
    label, label_source = case.label, case.label_source
    if mask is not None:
        label, label_source = read_mask(mask, like=case), Path(mask)
    values = counts = None
    if label is not None:
        uniq, cnt = np.unique(label, return_counts=True)
        values = [int(v) for v in uniq]
        counts = {str(int(v)): int(c) for v, c in zip(uniq, cnt, strict=True)}
    return {
        "path": str(path),
        "format": case.meta.get("format", "?"),
        "ndim": case.ndim,
        "shape": [int(s) for s in case.shape],
        "axes": _AXES[case.ndim],
        "channels": int(image.shape[0]),
        "channel_names": list(case.channel_names),
        "channels_from": case.meta.get("channels_from"),
        "dtype": case.meta.get("dtype", "?"),
        "spacing": [float(s) for s in case.spacing],
        "spacing_known": bool(case.meta.get("spacing_known", True)),
        "origin": None if case.origin is None else [float(v) for v in case.origin],
        "intensity": {
            "min": float(image.min()),
            "max": float(image.max()),
            "mean": float(image.mean(dtype=np.float64)),
        },
        "channel_stats": stats,
        "has_label": label is not None,
        "label_source": None if label_source is None else str(label_source),
        "label_values": values,
        "label_counts": counts,
    }


def format_description(info: dict) -> str:
    """Readable multi-line text of a :func:`describe` dict."""
    shape = " x ".join(str(s) for s in info["shape"])
    unit = "mm" if info["spacing_known"] else "pixel units (no physical size in the file)"
    spacing = " x ".join(f"{s:g}" for s in info["spacing"])
    lines = [
        f"path       {info['path']}",
        f"format     {info['format']} (stored as {info['dtype']})",
        f"shape      {shape} {info['axes']}, {info['ndim']}D",
        f"channels   {info['channels']}: {', '.join(info['channel_names'])}"
        + (f" (from {info['channels_from']})" if info.get("channels_from") else ""),
        f"spacing    {spacing} {unit}",
    ]
    if info["origin"] is not None:
        lines.append(f"origin     {', '.join(f'{v:g}' for v in info['origin'])}")
    i = info["intensity"]
    lines.append(f"intensity  min {i['min']:.4g}, max {i['max']:.4g}, mean {i['mean']:.4g}")
    if info["channels"] > 1:
        for s in info["channel_stats"]:
            lines.append(f"  {s['name']:<12} min {s['min']:.4g}, max {s['max']:.4g}, mean {s['mean']:.4g}")
    if info["has_label"]:
        counts = info["label_counts"] or {}
        shown = ", ".join(f"{v} ({counts.get(str(v), 0)} voxels)" for v in info["label_values"])
        lines.append(f"label      yes, from {info['label_source']}: values {shown}")
    else:
        lines.append("label      none")
    return "\n".join(lines)
