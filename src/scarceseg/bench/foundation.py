"""``scarceseg bench foundation``: how long loading a data set and computing every metric take.

Prints seconds for (1) loading every case of an LGG-layout folder (decode TIFF image + mask into a
Case) and (2) computing every metric (Dice, PPV, sensitivity, IoU, boundary IoU, HD95, ASSD) for every
pair of (prediction, truth), the predictions being the multi-Otsu baseline's masks (computed before
the clock starts, so only the metrics are timed). As a same-run baseline for the load figure it also
times the bare TIFF decoding with tifffile, so the overhead of the Case machinery is a ratio.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def run_foundation_bench(data: str | Path, limit: int | None = None,
                         echo: Callable[[str], None] = print) -> dict:
    """Run the benchmark and print its figures; returns them as a dict."""
    import tifffile

    from scarceseg.cluster.classical import multi_otsu_lesion
    from scarceseg.datasets import open_dataset
    from scarceseg.metrics import compute_all

    ds = open_dataset(data)
    ids = ds.case_ids[:limit] if limit else ds.case_ids
    ds = ds.subset(ids)

    t0 = time.perf_counter()
    cases = list(ds)
    t_load = time.perf_counter() - t0

    t0 = time.perf_counter()
    for case in cases:
        tifffile.imread(case.source)
        tifffile.imread(case.label_source)
    t_raw = time.perf_counter() - t0

    preds = [multi_otsu_lesion(c.channel("FLAIR")) for c in cases]
    t0 = time.perf_counter()
    per_metric: dict[str, list[float]] = {}
    for case, pred in zip(cases, preds, strict=True):
        for key, value in compute_all(pred, case.target, spacing=case.spacing).items():
            per_metric.setdefault(key, []).append(value)
    t_metrics = time.perf_counter() - t0

    n = len(cases)
    figures = {
        "cases": n,
        "skipped": len(ds.skipped),
        "load_s": t_load,
        "raw_tiff_decode_s": t_raw,
        "load_over_raw_ratio": t_load / t_raw if t_raw else float("nan"),
        "metrics_s": t_metrics,
        "metrics_ms_per_pair": 1000 * t_metrics / max(n, 1),
    }
    echo(f"data: {data} ({n} cases, {len(ds.skipped)} skipped)")
    echo(f"load all cases into Case objects : {t_load:7.2f} s  ({1000 * t_load / max(n, 1):.1f} ms/case)")
    echo(f"bare tifffile decode, same files : {t_raw:7.2f} s  (Case loading = {figures['load_over_raw_ratio']:.2f}x)")
    echo(f"all metrics for {n} pairs        : {t_metrics:7.2f} s  ({figures['metrics_ms_per_pair']:.1f} ms/pair)")
    means = {k: float(np.nanmean(v)) for k, v in per_metric.items()}
    echo("multi-Otsu baseline, mean over pairs: " + ", ".join(f"{k} {v:.3f}" for k, v in means.items()))
    figures["baseline_means"] = means
    return figures
