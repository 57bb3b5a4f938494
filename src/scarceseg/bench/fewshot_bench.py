"""``scarceseg bench fewshot``: the few-shot prior learner against the fair U-Net on the same few slices.

Patients are split once (seed 0, 70 % / 30 %). For each seed, ``shots`` labelled slices come from ``shots``
distinct patients of the 70 % (the slice with the largest lesion of each, as a user would pick); the test
slices are every ``every``-th slice of the 30 % patients, thinned evenly to at most ``test_slices``. No
patient is ever in both. Both methods see the same training slices; the U-Net gets the fair recipe
(:meth:`scarceseg.methods.unet_baseline.UNetConfig.fair`) with ``unet_epochs`` epochs, chosen to match the
few-shot learner's CPU time. Per seed: mean Dice of each; over all (seed, slice) pairs: a paired
comparison (:func:`scarceseg.metrics.stats.paired_comparison`).

Embeddings are cached (float16 ``.npy``) in ``cache_dir`` so every seed and a re-run reuse them.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from scarceseg.datasets import n_shot, open_dataset, split_patients
from scarceseg.datasets.splits import check_disjoint

METHODS = ("fewshot", "unet", "pixeldrl-prior", "selector-prior")
FIELDS = ("method", "shots", "seed", "case_id", "dice", "pred_area", "true_area", "seconds")


def plan(data: str | Path, shots: int, seeds: Sequence[int], every: int = 2, test_slices: int = 100,
         layout: str | None = None) -> dict:
    """The slices of the bench: ``{"train": {seed: [ids]}, "test": [ids]}``, patient-disjoint."""
    ds = open_dataset(data, layout=layout)
    pool, test = held_out(ds, every=every, test_slices=test_slices)
    train = {int(s): shots_from_pool(ds, shots, int(s), pool) for s in seeds}
    for ids in train.values():
        check_disjoint({"train": ids, "test": test}, ds)
    return {"dataset": ds, "train": train, "test": test}


def shots_from_pool(ds, shots: int, seed: int, pool: Sequence[str]) -> list[str]:
    """``shots`` slices, one per patient (the largest lesion of each, :func:`n_shot`); when the pool has fewer
    patients than ``shots``: every patient's largest slice, then further slices of the pool drawn at random
    (``default_rng([seed, 2])``), so some patients give several."""
    n_patients = len({ds.patient_of(c) for c in pool})
    if shots <= n_patients:
        return n_shot(ds, shots, seed=seed, pool=pool, pick="largest")
    first = n_shot(ds, n_patients, seed=seed, pool=pool, pick="largest")
    rest = [c for c in pool if c not in set(first)]
    extra = np.random.default_rng([seed, 2]).choice(len(rest), size=min(shots - n_patients, len(rest)),
                                                     replace=False)
    keep = set(first) | {rest[int(i)] for i in extra}
    return [c for c in pool if c in keep]


def held_out(ds, every: int = 2, test_slices: int = 100) -> tuple[list[str], list[str]]:
    """``(training pool, test slices)`` of a data set: patients split once (seed 0, 70 % / 30 %); the test
    slices are every ``every``-th slice of the 30 %, thinned evenly to at most ``test_slices``."""
    parts = split_patients(ds, (0.7, 0.3), seed=0)
    test = parts["test"][:: max(1, int(every))]
    if len(test) > test_slices:
        test = [test[int(i)] for i in np.linspace(0, len(test) - 1, test_slices).round()]
    return parts["train"], test


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    from scarceseg.metrics import dice

    return float(dice(pred, truth))


def run_fewshot_bench(data: str | Path, out: str | Path, shots: Sequence[int] = (10,), seeds: int = 3,
                      every: int = 2, test_slices: int = 100, methods: Sequence[str] = METHODS,
                      unet_epochs: int = 40, steps: int | None = None, cache_dir: str | Path | None = None,
                      layout: str | None = None, progress: bool = False, log=print,
                      pixeldrl_seconds: float = 240.0, pixeldrl_config: dict | None = None,
                      selector_config: dict | None = None) -> dict:
    """Train and test every method for every (shots, seed) on a data set; see :func:`bench_cases`."""
    groups = []
    for k in shots:
        p = plan(data, k, range(seeds), every=every, test_slices=test_slices, layout=layout)
        ds = p["dataset"]
        log(f"{k} shots: {len(p['test'])} test slices of {len({ds.patient_of(c) for c in p['test']})} other "
            f"patients")
        groups.append((k, {s: [ds.load(c) for c in ids] for s, ids in p["train"].items()},
                       [ds.load(c) for c in p["test"]]))
    settings = {"data": str(data), "shots": list(shots), "seeds": seeds, "every": every,
                "test_slices": test_slices, "unet_epochs": unet_epochs, "steps": steps}
    if "pixeldrl-prior" in methods:
        settings.update(pixeldrl_seconds=pixeldrl_seconds, pixeldrl_config=pixeldrl_config or {})
    if selector_config:
        settings["selector_config"] = selector_config
    from scarceseg.datasets.slices import NeighbourSlices

    return bench_cases(groups, out, methods=methods, unet_epochs=unet_epochs, steps=steps, cache_dir=cache_dir,
                       progress=progress, log=log, settings=settings, pixeldrl_seconds=pixeldrl_seconds,
                       pixeldrl_config=pixeldrl_config, selector_config=selector_config,
                       neighbours=NeighbourSlices.of_dataset(ds) if groups else None)


def bench_cases(groups, out: str | Path, methods: Sequence[str] = METHODS, unet_epochs: int = 40,
                steps: int | None = None, cache_dir: str | Path | None = None, progress: bool = False, log=print,
                settings: dict | None = None, device: str = "cpu", variants: dict[str, dict] | None = None,
                pixeldrl_seconds: float = 240.0, pixeldrl_config: dict | None = None,
                selector_config: dict | None = None, neighbours=None) -> dict:
    """The bench on cases in hand: ``groups`` is ``[(shots, {seed: [train Case]}, [test Case]), ...]``.

    ``neighbours`` (a :class:`~scarceseg.datasets.slices.NeighbourSlices` of the whole data set) gives the
    few-shot learner the slices around each test slice, as ``scarceseg segment`` does; it is then also tested
    on every slice alone (``fewshot-alone``, the same trained model).

    Writes ``per_slice.csv`` (one row per method, shots, seed and test slice) and ``summary.json``. The
    few-shot learner's localiser alone is reported as ``fewshot-localiser``; ``variants`` (name -> config
    overrides) are other few-shot configs, trained and tested on the first group only. ``pixeldrl-prior``
    (paper 004's pixel agents on the prior's embedding) trains for ``pixeldrl_seconds`` process CPU seconds
    with ``pixeldrl_config`` (its method config: preset, PixelDRLConfig fields) and shares the embedding cache.

    ``selector-prior`` (paper 000 with the prior's candidates, config ``selector_config``) also gets the rows
    ``selector-prior-ceiling`` (the best candidate's Dice: what a perfect selector would reach) and
    ``selector-prior-top-iou`` (the candidate the prior itself scores highest: no learning).
    """
    from scarceseg.methods.prior_fewshot import EmbeddingStore, FewShotConfig, PriorFewShot
    from scarceseg.methods.unet_baseline import UNetBaseline, UNetConfig, select_channels

    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown bench methods {unknown}; choose from {METHODS}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = EmbeddingStore(folder=Path(cache_dir) if cache_dir else out / "emb_cache")
    rows: list[dict] = []
    timings: list[dict] = []
    proposals = (_memo_proposals(store, selector_config, out / "prior_candidates") if "selector-prior" in methods
                 else None)
    for k, train_sets, tests in groups:
        for seed, train in train_sets.items():
            learners = {"fewshot": {}} if "fewshot" in methods else {}
            if groups and k == groups[0][0]:
                learners.update({f"fewshot-{name}": over for name, over in (variants or {}).items()})
            for name, over in learners.items():
                base = FewShotConfig() if steps is None else FewShotConfig(steps=steps)
                model = PriorFewShot(FewShotConfig.from_dict({**base.to_dict(), **over}), store=store, device=device)
                c0 = time.process_time()
                hist = model.fit(train, seed=seed, progress=progress)
                timings.append({"method": name, "shots": k, "seed": seed, "train_seconds": hist["seconds"],
                                "train_cpu_seconds": time.process_time() - c0, "encode_seconds":
                                hist["encode_seconds"], "steps": hist["steps"]})
                stacked = neighbours is not None and model.context > 0
                for case in tests:
                    t1 = time.perf_counter()
                    pred = model.predict(case, neighbours(case, model.context) if stacked else None)
                    rows.append(_row(name, k, seed, case, pred.mask, time.perf_counter() - t1))
                    loc = pred.extra.get("localiser_mask")
                    rows.append(_row(f"{name}-localiser", k, seed, case,
                                     np.zeros_like(pred.mask) if loc is None else loc, 0.0))
                    if stacked:
                        t1 = time.perf_counter()
                        rows.append(_row(f"{name}-alone", k, seed, case, model.predict(case).mask,
                                         time.perf_counter() - t1))
                alone = f", every slice alone {_mean(rows, name + '-alone', k, seed):.3f}" if stacked else ""
                log(f"  {k} shots, seed {seed}, {name}: mean Dice {_mean(rows, name, k, seed):.3f}, localiser "
                    f"{_mean(rows, name + '-localiser', k, seed):.3f}{alone} (trained in {hist['seconds']:.0f} s)")
            if "unet" in methods:
                cfg = UNetConfig.from_dict({**UNetConfig.fair().to_dict(), "epochs": unet_epochs})
                unet = UNetBaseline(cfg, device=device)
                c0 = time.process_time()
                hist = unet.fit([select_channels(c, "flair") for c in train], [c.target for c in train], seed=seed,
                                progress=progress)
                timings.append({"method": "unet", "shots": k, "seed": seed, "train_seconds": hist["seconds"],
                                "train_cpu_seconds": time.process_time() - c0, "steps": hist["steps"]})
                for case in tests:
                    t1 = time.perf_counter()
                    mask = unet.predict(select_channels(case, "flair"))[1]
                    rows.append(_row("unet", k, seed, case, mask, time.perf_counter() - t1))
                log(f"  {k} shots, seed {seed}, unet: mean Dice {_mean(rows, 'unet', k, seed):.3f} "
                    f"(trained in {hist['seconds']:.0f} s)")
            if "pixeldrl-prior" in methods:
                from scarceseg.methods.adapters import PixelDRLPriorMethod
                from scarceseg.methods.contract import Budget

                agents = PixelDRLPriorMethod(dict(pixeldrl_config or {}), store=store)
                c0 = time.process_time()
                hist = agents.fit(train, budget=Budget(cpu_seconds=pixeldrl_seconds), seed=seed, progress=progress)
                timings.append({"method": "pixeldrl-prior", "shots": k, "seed": seed, "train_seconds": hist["seconds"],
                                "train_cpu_seconds": time.process_time() - c0, "steps": hist["steps"]})
                for case in tests:
                    t1 = time.perf_counter()
                    mask = agents.predict(case).mask
                    rows.append(_row("pixeldrl-prior", k, seed, case, mask, time.perf_counter() - t1))
                log(f"  {k} shots, seed {seed}, pixeldrl-prior: mean Dice {_mean(rows, 'pixeldrl-prior', k, seed):.3f} "
                    f"({hist['steps']} updates in {hist['seconds']:.0f} s)")
            if "selector-prior" in methods:
                _bench_selector_prior(k, seed, train, tests, selector_config, store, proposals, rows, timings,
                                      progress, log)
            _write_rows(out / "per_slice.csv", rows)
    summary = summarise(rows, timings)
    summary["settings"] = settings or {}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log(format_table(summary))
    return summary


def _memo_proposals(store, selector_config: dict | None, folder: Path | None = None):
    """``case -> Proposal`` of the prior's candidates, computed once per case id (every seed reuses them) and,
    with ``folder``, saved in the proposal store under ``folder/<config hash>/`` (:mod:`scarceseg.store.proposals`,
    without pictures) so a rerun with the same candidate settings reuses them."""
    import dataclasses
    import hashlib

    from scarceseg.methods.selector_method import SelectorPriorMethod
    from scarceseg.store.proposals import case_dir, load_proposal, save_proposal

    proposer = SelectorPriorMethod(selector_config, store=store)
    tag = hashlib.sha1(json.dumps(dataclasses.asdict(proposer.proposer), sort_keys=True).encode()).hexdigest()[:10]
    workdir = folder / tag if folder is not None else None
    memo: dict[str, object] = {}

    def proposals(case):
        if case.case_id not in memo:
            if workdir is not None and (case_dir(workdir, case.case_id) / "candidates.json").is_file():
                memo[case.case_id] = load_proposal(workdir, case.case_id)
            else:
                memo[case.case_id] = proposer.propose(case)
                if workdir is not None:
                    save_proposal(memo[case.case_id], workdir, pictures=False)
        return memo[case.case_id]

    return proposals


def _bench_selector_prior(k, seed, train, tests, selector_config, store, proposals, rows, timings, progress,
                          log) -> None:
    """Train ``selector-prior`` on one seed's slices; rows for it, its candidate ceiling and the prior's top-IoU."""
    from scarceseg.cluster.candidates import best_candidate
    from scarceseg.methods.selector_method import SelectorPriorMethod

    method = SelectorPriorMethod(selector_config, store=store)
    method.proposals = proposals
    t0, c0 = time.perf_counter(), time.process_time()
    hist = method.fit(train, seed=seed, progress=progress)
    timings.append({"method": "selector-prior", "shots": k, "seed": seed, "train_seconds": hist["seconds"],
                    "train_cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - t0,
                    "cases": len(hist["cases"]), "skipped": len(hist["skipped"])})
    for case in tests:
        t1 = time.perf_counter()
        pred = method.predict(case)
        rows.append(_row("selector-prior", k, seed, case, pred.mask, time.perf_counter() - t1))
        masks = proposals(case).masks
        empty = np.zeros(case.shape, bool)
        best = masks[best_candidate(masks, case.target, case.case_id)[0]] if len(masks) else empty
        rows.append(_row("selector-prior-ceiling", k, seed, case, best, 0.0))
        top = int(np.argmax([c["prior_iou"] for c in proposals(case).candidates])) if len(masks) else None
        rows.append(_row("selector-prior-top-iou", k, seed, case, empty if top is None else masks[top], 0.0))
    log(f"  {k} shots, seed {seed}, selector-prior: mean Dice {_mean(rows, 'selector-prior', k, seed):.3f}, "
        f"ceiling {_mean(rows, 'selector-prior-ceiling', k, seed):.3f}, prior's top IoU "
        f"{_mean(rows, 'selector-prior-top-iou', k, seed):.3f} (trained in {hist['seconds']:.0f} s)")


def evaluate_volume(model, volume, spacing=(1.0, 1.0, 1.0), progress: bool = False, context: bool = True) -> dict:
    """Segment every axial slice of a volume and measure what an automatic method must get right.

    Parameters
    ----------
    model : Segmenter (or anything with ``predict(case) -> .mask``)
    volume : Case
        3D case, image ``(C, Z, Y, X)`` (the prior's channel is picked by the model) and label ``(Z, Y, X)``.
    context : bool
        Give a model that reads neighbouring slices (``context_slices``) its neighbours in the volume
        (:func:`~scarceseg.methods.contract.predict_case`); ``False``: every slice alone.

    Returns
    -------
    dict
        ``dice`` (3D, whole volume), ``n_slices``, ``n_lesion_free``, ``fp_slices`` (lesion-free slices with
        any predicted voxel), ``fp_voxels`` and ``fp_ml`` (predicted volume on lesion-free slices).
    """
    return volume_scores(segment_slices(model, volume, progress, context), volume, spacing)


def segment_slices(model, volume, progress: bool = False, context: bool = True) -> np.ndarray:
    """The mask ``(Z, Y, X)`` of every axial slice of a volume, each segmented as a 2D slice (with its neighbours
    when ``context`` and the model reads them)."""
    from scarceseg.datasets.slices import NeighbourSlices, slice_case
    from scarceseg.methods.contract import predict_case
    from scarceseg.progress import track

    pred = np.zeros(volume.shape, dtype=bool)
    neighbours = NeighbourSlices.of_volume(volume) if context else None
    for z in track(range(volume.shape[0]), description=f"segmenting {volume.case_id}", enabled=progress):
        pred[z] = predict_case(model, slice_case(volume, z), neighbours).mask
    return pred


def volume_scores(pred: np.ndarray, volume, spacing=(1.0, 1.0, 1.0)) -> dict:
    """:func:`evaluate_volume`'s figures of a predicted mask ``(Z, Y, X)`` against the volume's label."""
    truth = np.asarray(volume.target, dtype=bool)
    free = ~truth.any(axis=(1, 2))
    fp_voxels = int(pred[free].sum())
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {"case_id": volume.case_id, "dice": _dice(pred, truth), "n_slices": int(truth.shape[0]),
            "n_lesion_free": int(free.sum()), "fp_slices": int(pred[free].any(axis=(1, 2)).sum()),
            "fp_voxels": fp_voxels, "fp_ml": round(fp_voxels * voxel_ml, 3),
            "pred_ml": round(float(pred.sum()) * voxel_ml, 3), "true_ml": round(float(truth.sum()) * voxel_ml, 3)}


def _row(method: str, shots: int, seed: int, case, mask: np.ndarray, seconds: float) -> dict:
    truth = case.target
    return {"method": method, "shots": shots, "seed": seed, "case_id": case.case_id,
            "dice": _dice(mask, truth), "pred_area": int(np.count_nonzero(mask)),
            "true_area": int(np.count_nonzero(truth)), "seconds": round(seconds, 4)}


def _mean(rows, method, shots, seed) -> float:
    return float(np.mean([r["dice"] for r in rows if (r["method"], r["shots"], r["seed"]) == (method, shots, seed)]))


def _write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def summarise(rows: Sequence[dict], timings: Sequence[dict] = ()) -> dict:
    """Per (method, shots): per-seed mean Dice, their mean ± sd; paired fewshot - unet over (seed, slice)."""
    from scarceseg.metrics.stats import paired_comparison

    table = []
    keys = sorted({(r["method"], int(r["shots"])) for r in rows})
    for method, k in keys:
        mine = [r for r in rows if r["method"] == method and int(r["shots"]) == k]
        seeds = sorted({int(r["seed"]) for r in mine})
        per_seed = [float(np.mean([float(r["dice"]) for r in mine if int(r["seed"]) == s])) for s in seeds]
        secs = [float(r["seconds"]) for r in mine]
        train = [t for t in timings if t["method"] == method and t["shots"] == k]
        sd = float(np.std(per_seed, ddof=1)) if len(seeds) > 1 else 0.0
        table.append({"method": method, "shots": k, "seeds": seeds, "per_seed": per_seed,
                      "mean": float(np.mean(per_seed)), "sd": sd,
                      "n_slices": len(mine) // max(len(seeds), 1),
                      "slices_per_second": len(secs) / sum(secs) if sum(secs) > 0 else None,
                      "train_seconds": [round(t["train_seconds"], 1) for t in train],
                      "train_cpu_seconds": [round(t["train_cpu_seconds"], 1) for t in train]})
    paired = {}
    for k in sorted({int(r["shots"]) for r in rows}):
        a = {(int(r["seed"]), r["case_id"]): float(r["dice"]) for r in rows
             if r["method"] == "fewshot" and int(r["shots"]) == k}
        b = {(int(r["seed"]), r["case_id"]): float(r["dice"]) for r in rows
             if r["method"] == "unet" and int(r["shots"]) == k}
        common = sorted(a.keys() & b.keys())
        if len(common) >= 2:
            paired[str(k)] = paired_comparison([a[c] for c in common], [b[c] for c in common], n_boot=2000)
    return {"table": table, "paired_fewshot_minus_unet": paired, "timings": list(timings)}


def format_table(summary: dict) -> str:
    """A plain-text table of :func:`summarise`'s output."""
    lines = ["method         shots  mean Dice ± sd (per seed)                 slices/s  train s (per seed)"]
    for t in summary["table"]:
        per = ", ".join(f"{v:.3f}" for v in t["per_seed"])
        sps = f"{t['slices_per_second']:.2f}" if t["slices_per_second"] else "-"
        lines.append(f"{t['method']:<14} {t['shots']:>5}  {t['mean']:.3f} ± {t['sd']:.3f} ({per})".ljust(64)
                     + f" {sps:>8}  {t['train_seconds']}")
    for k, p in summary["paired_fewshot_minus_unet"].items():
        lines.append(f"{k} shots, fewshot - unet over {p['n']} (seed, slice) pairs: {p['mean_diff']:+.3f} "
                     f"[{p['ci_low']:+.3f}, {p['ci_high']:+.3f}], Wilcoxon p = {p['p_wilcoxon']:.2g}, "
                     f"t-test p = {p['p_ttest']:.2g}")
    return "\n".join(lines)
