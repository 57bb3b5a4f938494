"""``scarceseg bench propose``: speed and best-candidate Dice of the UDC proposer, configurations side by side.

On ``n`` slices of a labelled 2D data set - one per patient, patients spread evenly over the sorted
patient list, the middle slice (data set order) of each - every configuration (``"faithful"``,
``"fast"`` or a :class:`~scarceseg.cluster.udc.UDCConfig`) is run with every channel choice
(``"flair"``, ``"all"``), and for each run both candidate sets are built from the *same* clustering:

* seconds per slice: normalisation + SLIC + CNN + the configuration's own candidate set (median, mean);
* best-candidate Dice: the highest Dice of any candidate against the truth (``case.target``) - what
  a user who always picks the right candidate gets (an oracle pick) - mean and median, and the
  number of candidates, for the ``"paper"`` and ``"extended"`` sets (a configuration whose own set
  is ``"paper"`` builds its extended column with the fast preset's candidate rules, see
  :func:`mode_config`).

Seconds are wall time (what a user waits; inflated when other processes share the CPU) and CPU
time of the process (``time.process_time``; with the default single torch thread, about the wall
time on an idle core). Each run starts with an untimed one-iteration warm-up: the first clustering
in a process pays about 1 s of one-off library set-up.

The same slices and seed are used for every run, so rows compare pairwise; the first row is the
reference of the paired "vs" line printed under each other row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from scarceseg.cluster.propose import make_candidates, select_channels
from scarceseg.cluster.udc import UDCConfig, normalise, udc_cluster

MODES = ("paper", "extended")
#: Candidate settings of the "extended" column for a configuration whose own set is "paper".
EXTENDED_SETTINGS = ("component_min_area", "fill_holes", "dedupe_iou", "max_candidates")


def mode_config(config: UDCConfig, mode: str) -> UDCConfig:
    """``config`` building candidate set ``mode``; a "paper" configuration borrows the extended
    settings of :meth:`UDCConfig.fast` so that both rows' extended columns use the same rules."""
    if mode == config.candidates:
        return config
    if mode == "extended":
        fast = UDCConfig.fast()
        return replace(config, candidates=mode, **{k: getattr(fast, k) for k in EXTENDED_SETTINGS})
    return replace(config, candidates=mode)


def spread_cases(ds, n: int) -> list[str]:
    """``n`` case ids, one per patient: patients evenly spaced over the sorted list, middle slice each.

    With fewer patients than ``n``, every patient's middle slice (so fewer than ``n`` ids).
    """
    by_patient = ds.cases_by_patient()
    patients = sorted(by_patient)
    if not patients or n <= 0:
        return []
    picks = np.unique(np.linspace(0, len(patients) - 1, min(n, len(patients))).round().astype(int))
    out = []
    for i in picks:
        cases = by_patient[patients[i]]
        out.append(cases[len(cases) // 2])
    return out


def best_dice(masks: np.ndarray, truth: np.ndarray) -> float:
    """Highest Dice of any mask in ``masks`` (K, Y, X) against ``truth`` (Y, X); 0.0 without masks."""
    truth = np.asarray(truth, dtype=bool)
    if len(masks) == 0:
        return 0.0
    flat = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    t = truth.ravel()
    inter = (flat & t).sum(1)
    denom = flat.sum(1) + t.sum()
    return float(np.max(np.where(denom > 0, 2.0 * inter / np.maximum(denom, 1), 1.0)))


def _stats(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "median": float(np.median(a))} if a.size else {"mean": 0.0, "median": 0.0}


def run_one(cases: list, config: UDCConfig, channels: str, seed: int = 0) -> dict:
    """Per-slice figures of one configuration and channel choice (see the module docstring)."""
    slices = []
    if cases:  # untimed warm-up: the first run in a process pays one-off library set-up (about 1 s)
        udc_cluster(normalise(select_channels(cases[0], channels)[0]), replace(config, max_iters=1), seed=seed)
    for case in cases:
        t0, c0 = time.perf_counter(), time.process_time()
        image, _ = select_channels(case, channels)
        result = udc_cluster(normalise(image), config, seed=seed, normalised=True)
        t_cluster, c_cluster = time.perf_counter() - t0, time.process_time() - c0
        row: dict = {
            "case_id": case.case_id,
            "cluster_s": t_cluster,
            "cluster_cpu_s": c_cluster,
            "n_iters": result.n_iters,
            "n_clusters": result.n_clusters,
            "reached": result.reached,
            "lesion_px": int(case.target.sum()),
        }
        for mode in MODES:
            t0, c0 = time.perf_counter(), time.process_time()
            masks, _ = make_candidates(result.labels, result.levels, mode_config(config, mode))
            row[f"{mode}_s"] = time.perf_counter() - t0
            row[f"{mode}_cpu_s"] = time.process_time() - c0
            row[f"{mode}_dice"] = best_dice(masks, case.target)
            row[f"{mode}_k"] = int(len(masks))
        row["seconds"] = t_cluster + row[f"{config.candidates}_s"]
        row["cpu_seconds"] = c_cluster + row[f"{config.candidates}_cpu_s"]
        slices.append(row)
    summary = {
        "seconds": _stats([r["seconds"] for r in slices]),
        "cpu_seconds": _stats([r["cpu_seconds"] for r in slices]),
        "n_iters": _stats([r["n_iters"] for r in slices]),
        **{f"{mode}_dice": _stats([r[f"{mode}_dice"] for r in slices]) for mode in MODES},
        **{f"{mode}_k": _stats([r[f"{mode}_k"] for r in slices]) for mode in MODES},
    }
    return {"slices": slices, "summary": summary}


def _row(name: str, channels: str, s: dict) -> str:
    seconds = f"{s['seconds']['median']:>11.2f} {s['seconds']['mean']:>6.2f} {s['cpu_seconds']['median']:>7.2f}"
    paper = f"{s['paper_dice']['mean']:>15.3f} {s['paper_dice']['median']:>5.3f} {s['paper_k']['mean']:>5.1f}"
    ext = f"{s['extended_dice']['mean']:>18.3f} {s['extended_dice']['median']:>5.3f} {s['extended_k']['mean']:>5.1f}"
    return f"{name:<10} {channels:<8} {seconds} {s['n_iters']['mean']:>5.1f} | {paper} | {ext}"


def _name(config: str | UDCConfig) -> str:
    return config if isinstance(config, str) else "custom"


def run_propose_bench(
    data_dir: str | Path,
    n: int = 20,
    seed: int = 0,
    configs: Sequence[str | UDCConfig] = ("faithful", "fast"),
    channels: Sequence[str] = ("flair", "all"),
    echo: Callable[[str], None] = print,
    out: str | Path | None = None,
) -> dict:
    """Run every configuration x channel choice on the same ``n`` slices and print a table.

    Parameters
    ----------
    data_dir : str or Path
        A labelled 2D data set folder (e.g. the LGG layout).
    n : int
        Number of slices (one per patient, see :func:`spread_cases`).
    seed : int
    configs : sequence of {"faithful", "fast"} or UDCConfig
    channels : sequence of {"flair", "all"}
    echo : callable
        Where lines are printed.
    out : str or Path, optional
        Also write all figures (per slice too) to this JSON file.

    Returns
    -------
    dict
        ``{"data", "n", "seed", "cases", "runs": [{"config", "channels", "settings", "slices",
        "summary"}]}``.
    """
    import torch

    from scarceseg.datasets import open_dataset

    ds = open_dataset(data_dir)
    ids = spread_cases(ds, n)
    cases = [ds.load(i) for i in ids]
    cases = [c for c in cases if c.ndim == 2 and c.label is not None]
    echo(
        f"propose bench: {data_dir}, {len(cases)} slices of {len(cases)} patients, seed {seed}, "
        f"torch threads per run as configured (process default {torch.get_num_threads()})"
    )
    runs = []
    header = (
        f"{'config':<10} {'channels':<8} {'s/slice med':>11} {'mean':>6} {'cpu med':>7} {'iters':>5} | "
        f"{'paper Dice mean':>15} {'med':>5} {'K':>5} | {'extended Dice mean':>18} {'med':>5} {'K':>5}"
    )
    echo(header)
    echo("-" * len(header))
    for config in configs:
        cfg = UDCConfig.preset(config)
        for ch in channels:
            res = run_one(cases, cfg, ch, seed=seed)
            echo(_row(_name(config), ch, res["summary"]))
            runs.append({"config": _name(config), "channels": ch, "settings": asdict(cfg), **res})
    if len(runs) > 1:
        ref = runs[0]
        echo(
            f"paired vs {ref['config']}/{ref['channels']} ({ref['config']}'s own candidate set "
            f"'{ref['settings']['candidates']}'), same slices:"
        )
        ref_d = np.array([r[f"{ref['settings']['candidates']}_dice"] for r in ref["slices"]])
        for run in runs[1:]:
            mode = run["settings"]["candidates"]
            d = np.array([r[f"{mode}_dice"] for r in run["slices"]])
            diff = d - ref_d
            speed = ref["summary"]["seconds"]["median"] / max(run["summary"]["seconds"]["median"], 1e-9)
            echo(
                f"  {run['config']}/{run['channels']} ({mode}): best Dice {diff.mean():+.3f} on average "
                f"(better on {int((diff > 1e-9).sum())}, worse on {int((diff < -1e-9).sum())} of {diff.size}); "
                f"{speed:.1f}x faster (median)"
            )
    result = {"data": str(data_dir), "n": len(cases), "seed": seed, "cases": [c.case_id for c in cases], "runs": runs}
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result
