"""Paper 001's experiment on our data: JULE + k-means vs k-means and multi-Otsu, NMI vs K (Figure 4).

Protocol (the same for every method, ``K = 2..5``):

* **BRATS 2015** (``brats`` layout): FLAIR volume, region = the case's ``brainmask`` file (an air
  threshold shipped with the data; Otsu foreground when a case has none). Truth inside the region
  (:func:`brats_truth`): 1 background brain (OT label 0), 2 edema (OT 2), 3 tumour core (OT 1 necrosis,
  3 non-enhancing, 4 enhancing: the BRATS "tumour core" definition).
* **LA 2018** (``h5`` layout, UA-MT form): the whole volume is the region (UA-MT already cropped each
  scan around the heart, so every voxel is kept and every method sees the same ones). Truth: 1 rest,
  2 left-atrium cavity (:func:`la_truth`).
* Scores on every region voxel (the paper used seven annotated slices; our truth is complete):
  NMI (:func:`scarceseg.metrics.nmi`) and per-class Dice after the optimal one-to-one (Hungarian)
  matching of clusters to classes (:func:`matched_dice`; a class left without a cluster scores 0).

Outputs in ``out``: ``rows.csv`` (one row per data set, case, method, K), ``summary.json``,
``report.md`` (tables and times), ``nmi_vs_k.png`` and ``slices_<set>.png`` (Figure 5 style, first case).
"""

from __future__ import annotations

import csv
import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from scarceseg.errors import InputError

KS = (2, 3, 4, 5)
METHODS = ("jule", "kmeans", "otsu")
ABLATION = "random-cnn"  # k-means on the features of the untrained CNN (JULE without any backward pass)
CLASS_NAMES = {"brats": ("brain", "edema", "core"), "la": ("rest", "atrium")}


def brats_truth(label: np.ndarray, region: np.ndarray) -> np.ndarray:
    """BRATS OT labels -> 0 outside the region, 1 background brain, 2 edema, 3 tumour core (1, 3, 4)."""
    truth = np.zeros(label.shape, dtype=np.int32)
    truth[region] = 1
    truth[region & (label == 2)] = 2
    truth[region & np.isin(label, (1, 3, 4))] = 3
    return truth


def la_truth(label: np.ndarray, region: np.ndarray) -> np.ndarray:
    """LA labels -> 0 outside the region, 1 rest, 2 left atrium."""
    truth = np.zeros(label.shape, dtype=np.int32)
    truth[region] = 1
    truth[region & (label > 0)] = 2
    return truth


def matched_dice(pred: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """Dice per truth class after the one-to-one matching of clusters to classes that maximises total Dice.

    Parameters
    ----------
    pred, truth : ndarray, int, same shape
        Cluster labels and class labels of the evaluated voxels (e.g. ``labels[region]``); every value is
        a cluster / class (pass only region voxels).

    Returns
    -------
    dict of int to float
        Class -> Dice of its matched cluster (0.0 when there are fewer clusters than classes and the class
        got none).
    """
    from scipy.optimize import linear_sum_assignment

    pred, truth = np.asarray(pred).ravel(), np.asarray(truth).ravel()
    clusters, p_idx = np.unique(pred, return_inverse=True)
    classes, t_idx = np.unique(truth, return_inverse=True)
    joint = np.zeros((clusters.size, classes.size))
    np.add.at(joint, (p_idx, t_idx), 1)
    dice = 2 * joint / (joint.sum(1, keepdims=True) + joint.sum(0, keepdims=True))
    rows, cols = linear_sum_assignment(-dice)
    out = {int(c): 0.0 for c in classes}
    for r, c in zip(rows, cols, strict=True):
        out[int(classes[c])] = float(dice[r, c])
    return out


def _brainmask(case) -> np.ndarray | None:
    from scarceseg.methods.jule import read_region

    folder = Path(case.source).parent if case.source is not None else None
    found = sorted(folder.glob("*brainmask*")) if folder is not None else []
    return read_region(found[0], case) if found else None


def _cases(root: Path, kind: str, limit: int | None, progress: bool) -> Iterator[tuple]:
    """Yield ``(case, image, region, truth)`` of one data set."""
    from scarceseg.cluster.volume_baselines import foreground_region
    from scarceseg.datasets import open_dataset

    ds = open_dataset(root)
    ids = ds.case_ids[:limit] if limit else ds.case_ids
    for case in ds.subset(ids).iter_cases(progress=progress, description=kind):
        if case.label is None or case.ndim != 3:
            continue
        image = case.channel("FLAIR") if kind == "brats" else case.image[0]
        if kind == "brats":
            region = _brainmask(case)
            region = foreground_region(image) if region is None else region
            truth = brats_truth(case.label, region)
        else:
            region = np.ones(case.shape, dtype=bool)
            truth = la_truth(case.label, region)
        yield case, image, region, truth


def _find_sets(data: Path) -> list[tuple[str, Path]]:
    """``[(kind, folder)]``: ``brats2015/`` and ``la2018/`` under ``data``, or ``data`` itself."""
    from scarceseg.datasets import open_dataset

    sets = [(k, data / sub) for k, sub in (("brats", "brats2015"), ("la", "la2018")) if (data / sub).is_dir()]
    if sets:
        return sets
    layout = open_dataset(data).layout
    if layout == "brats":
        return [("brats", data)]
    if layout == "h5":
        return [("la", data)]
    raise InputError(data, f"expected BRATS (brats layout) or LA 2018 (h5 layout) data, found layout {layout!r}")


def run_jule_bench(data: str | Path, out: str | Path, config: str = "cpu", ks: Sequence[int] = KS,
                   brats_limit: int | None = None, la_limit: int | None = 4, seed: int = 0, ablation: bool = True,
                   echo: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Run the experiment and write the report (see the module docstring); returns the summary."""
    from scarceseg.cluster.volume_baselines import kmeans_volume, multi_otsu_volume
    from scarceseg.figures.labels import save_label_slices, save_nmi_vs_k
    from scarceseg.methods import registry
    from scarceseg.methods.jule import get_config
    from scarceseg.metrics import nmi

    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = get_config(config)
    options = registry.get("jule").options_for(cfg)
    methods = METHODS + ((ABLATION,) if ablation else ())
    rows: list[dict] = []
    timings: list[dict] = []
    for kind, root in _find_sets(data):
        limit = brats_limit if kind == "brats" else la_limit
        for n_case, (case, image, region, truth) in enumerate(_cases(root, kind, limit, progress)):
            t_region = truth[region]
            maps: dict[str, dict[int, np.ndarray]] = {m: {} for m in methods}
            times = {"set": kind, "case": case.case_id, "voxels": int(region.sum())}
            t0 = time.perf_counter()
            for k in ks:
                maps["otsu"][k] = multi_otsu_volume(image, k, region)
            times["otsu_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            for k in ks:
                maps["kmeans"][k] = kmeans_volume(image, k, region, seed=seed)
            times["kmeans_s"] = round(time.perf_counter() - t0, 2)
            one = replace(case, image=image[None], channel_names=("image",), meta={**case.meta, "region": region})
            t0 = time.perf_counter()
            model = registry.get("jule")({**options, "ks": list(ks)})
            model.fit([one], seed=seed)
            times["jule_fit_s"] = round(time.perf_counter() - t0, 2)
            t0 = time.perf_counter()
            maps["jule"] = model.predict(one).extra["labels_by_k"]
            times["jule_segment_s"] = round(time.perf_counter() - t0, 2)
            times["jule_total_s"] = round(times["jule_fit_s"] + times["jule_segment_s"], 2)
            if ablation:
                t0 = time.perf_counter()
                untrained = registry.get("jule")({**options, "ks": list(ks), "epochs": 0, "final_epochs": 0})
                untrained.fit([one], seed=seed)
                maps[ABLATION] = untrained.predict(one).extra["labels_by_k"]
                times["random_cnn_s"] = round(time.perf_counter() - t0, 2)
            timings.append(times)
            for method in methods:
                for k in ks:
                    pred = maps[method][k][region]
                    dice = matched_dice(pred, t_region)
                    row = {"set": kind, "case": case.case_id, "method": method, "k": k,
                           "nmi": round(nmi(pred, t_region), 4)}
                    for cls, name in enumerate(CLASS_NAMES[kind], start=1):
                        row[f"dice_{name}"] = round(dice.get(cls, float("nan")), 4)
                    rows.append(row)
            echo(f"{kind} {case.case_id}: " + ", ".join(
                f"{m} NMI@K=3 {next(r['nmi'] for r in rows[::-1] if r['method'] == m and r['k'] == 3):.3f}"
                for m in methods if 3 in ks) + f"; JULE {times['jule_total_s']:.0f} s")
            if n_case == 0:
                k_show = len(CLASS_NAMES[kind])
                save_label_slices(image, [("truth", truth)] + [(f"{m} K={k_show}", maps[m][k_show]) for m in methods
                                                              if k_show in maps[m]],
                                  out / f"slices_{kind}.png", point=_lesion_point(truth), spacing=case.spacing,
                                  title=f"{kind} {case.case_id}")
    if not rows:
        raise InputError(data, "no labelled 3D case found")
    summary = _summarise(rows, timings, cfg, ks, seed, data, brats_limit, la_limit)
    _write(out, rows, timings, summary)
    save_nmi_vs_k({s: {m: {int(k): v for k, v in by_k.items()} for m, by_k in t.items()}
                   for s, t in summary["mean_nmi"].items()}, out / "nmi_vs_k.png",
                  title=f"NMI vs K (JULE config {cfg.name!r})")
    echo((out / "report.md").read_text(encoding="utf-8"))
    return summary


def _lesion_point(truth: np.ndarray) -> tuple[int, ...]:
    from scarceseg.figures.labels import centre_of

    top = truth.max()
    return centre_of(truth == top) if top > 1 else centre_of(truth > 0)


def _mean(values: list[float]) -> float:
    return round(float(np.mean(values)), 4) if values else float("nan")


def _summarise(rows, timings, cfg, ks, seed, data, brats_limit, la_limit) -> dict:
    sets = sorted({r["set"] for r in rows})
    methods = tuple(dict.fromkeys(r["method"] for r in rows))
    mean_nmi = {s: {m: {k: _mean([r["nmi"] for r in rows if r["set"] == s and r["method"] == m and r["k"] == k])
                        for k in ks} for m in methods} for s in sets}
    mean_dice = {s: {m: {k: {name: _mean([r[f"dice_{name}"] for r in rows if r["set"] == s and r["method"] == m
                                          and r["k"] == k]) for name in CLASS_NAMES[s]} for k in ks}
                     for m in methods} for s in sets}
    wins = {s: {k: max(METHODS, key=lambda m, s=s, k=k: mean_nmi[s][m][k]) for k in ks} for s in sets}
    time_stats = {s: {key: _mean([t[key] for t in timings if t["set"] == s and key in t])
                      for key in ("jule_fit_s", "jule_segment_s", "jule_total_s", "kmeans_s", "otsu_s",
                                  "random_cnn_s") if any(key in t for t in timings)}
                  for s in sets}
    return {"config": asdict(cfg), "ks": list(ks), "seed": seed, "data": str(data), "brats_limit": brats_limit,
            "la_limit": la_limit, "cases": {s: [t["case"] for t in timings if t["set"] == s] for s in sets},
            "mean_nmi": mean_nmi, "mean_dice": mean_dice, "best_by_nmi": wins, "mean_seconds": time_stats,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip()}


def _write(out: Path, rows, timings, summary) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with (out / "rows.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    with (out / "timings.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(timings[0]))
        writer.writeheader()
        writer.writerows(timings)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    ks = summary["ks"]
    lines = [f"# JULE + k-means vs k-means and multi-Otsu (config `{summary['config']['name']}`, seed "
             f"{summary['seed']})", ""]
    for s, by_method in summary["mean_nmi"].items():
        lines += [f"## {s}: mean NMI over {len(summary['cases'][s])} volumes", "",
                  "| method | " + " | ".join(f"K={k}" for k in ks) + " |", "|---" * (len(ks) + 1) + "|"]
        for m, by_k in by_method.items():
            best = [summary["best_by_nmi"][s][k] == m for k in ks]
            cells = [f"**{by_k[k]:.3f}**" if b else f"{by_k[k]:.3f}" for k, b in zip(ks, best, strict=True)]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        names = CLASS_NAMES[s]
        k_show = len(names)
        lines += ["", f"Mean Dice per class at K={k_show} after Hungarian matching:", "",
                  "| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for m in by_method:
            d = summary["mean_dice"][s][m][k_show]
            lines.append(f"| {m} | " + " | ".join(f"{d[n]:.3f}" for n in names) + " |")
        t = summary["mean_seconds"][s]
        lines += ["", f"Mean seconds per volume: JULE fit {t['jule_fit_s']:.1f}, JULE segment (features + k-means "
                      f"for all K) {t['jule_segment_s']:.1f}, JULE total {t['jule_total_s']:.1f}; k-means (all K) "
                      f"{t['kmeans_s']:.1f}; multi-Otsu (all K) {t['otsu_s']:.1f}.", ""]
    lines += ["Cases: " + "; ".join(f"{s}: {', '.join(c)}" for s, c in summary["cases"].items()), ""]
    (out / "report.md").write_text("\n".join(lines), encoding="utf-8")
