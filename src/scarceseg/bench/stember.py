"""``scarceseg bench stember``: paper 000's experiment on a real data set.

Protocol (Stember & Shalu, "Unsupervised deep clustering and reinforcement learning can accurately
segment MRI brain tumors with very small training sets"):

1. Split by patient: 10 training slices from 10 distinct patients (the largest-lesion slice of each,
   :func:`scarceseg.datasets.splits.n_shot`), and *every* slice of every other patient as the test set.
2. Propose candidates on every slice once (the proposer does not see labels; proposals are cached in
   ``OUT/proposals`` and shared by all seeds).
3. Pick on the training slices with the oracle (best-Dice candidate against the truth; labelled
   ``oracle`` everywhere), train the DQN selector (``registry.get("selector")`` on the cached proposals, its
   ``fit``/``predict``), and segment the test slices
   (a) one-click: the robot click is the truth's interior point farthest from its border (the paper used
       the centre of mass, which can fall outside a non-convex lesion), (b) automatic.
4. Train the paper's U-Net and a fair U-Net (``registry.get("unet")``) on the same 10 images and masks; predict
   the test slices.
5. Report mean ± SD of Dice and HD95 per method, paired p-values against UDC+DQN automatic, a box plot
   (Figure 9), selection accuracy vs episode (Figures 7-8), sample overlays (Figure 6), ``report.md``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

METHODS = ("oracle_best_candidate", "udc_dqn_one_click", "udc_dqn_automatic", "unet_paper", "unet_fair")


def robot_click(truth: np.ndarray) -> tuple[int, int]:
    """The truth's interior pixel farthest from its border (ties: first in raster order).

    Parameters
    ----------
    truth : ndarray (Y, X) bool

    Returns
    -------
    (y, x)
    """
    from scarceseg.interactive.clicks import innermost_pixel

    return innermost_pixel(truth)


def _propose_one(args: tuple) -> object:
    """Worker: propose one case (module-level so a process pool can pickle it)."""
    from scarceseg.cluster.propose import propose_case

    case, config, seed = args
    return propose_case(case, config=config, seed=seed)


def _proposals(cases: dict, ids: list[str], prop_dir: Path, config, seed: int, progress: bool,
               echo: Callable[[str], None], workers: int = 1) -> dict:
    """Load cached proposals from ``prop_dir`` or make and cache them (labels are never used).

    ``workers > 1`` proposes in that many processes (each at one torch thread); the parent writes the cache.
    """
    from scarceseg.progress import track
    from scarceseg.store.proposals import list_proposals, load_proposal, save_proposal

    cached = set(list_proposals(prop_dir)) if prop_dir.exists() else set()
    todo = [cid for cid in ids if cid not in cached]
    name = config if isinstance(config, str) else "custom"
    if todo:
        echo(f"proposing {len(todo)} slices ({len(ids) - len(todo)} cached) with the {name} proposer, "
             f"{workers} worker(s)")
    t0 = time.perf_counter()
    jobs = [(cases[cid], config, seed) for cid in todo]
    if workers > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for prop in track(pool.map(_propose_one, jobs, chunksize=4), description="proposing", enabled=progress,
                              total=len(jobs)):
                save_proposal(prop, prop_dir, pictures=False)
    else:
        for job in track(jobs, description="proposing", enabled=progress):
            save_proposal(_propose_one(job), prop_dir, pictures=False)
    if todo:
        echo(f"  {time.perf_counter() - t0:.0f} s ({(time.perf_counter() - t0) / len(todo):.2f} s/slice wall)")
    return {cid: load_proposal(prop_dir, cid) for cid in ids}


def _save_seed(out: Path, seed: int, run_key: dict, timings: dict, overlays: list) -> None:
    """Mark a seed complete: settings, timings and the overlay panels (the rows are in per_case.csv)."""
    folder = out / f"seed{seed}"
    if overlays:
        np.savez_compressed(folder / "overlays.npz", images=np.stack([o[1] for o in overlays]),
                            truths=np.stack([o[2] for o in overlays]), preds=np.stack([o[3] for o in overlays]))
    done = {"settings": run_key, "timings": timings, "overlay_titles": [o[0] for o in overlays]}
    (folder / "done.json").write_text(json.dumps(done, indent=1), encoding="utf-8")


def _load_seed(out: Path, seed: int, run_key: dict) -> dict | None:
    """The rows, timings and overlays of a completed seed with the same settings, else None."""
    import csv

    folder = out / f"seed{seed}"
    try:
        info = json.loads((folder / "done.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("settings") != json.loads(json.dumps(run_key)):
        return None
    rows = {}
    for m in run_key["methods"]:
        with (folder / m / "per_case.csv").open(newline="", encoding="utf-8") as fh:
            rows[m] = [{**r, "dice": float(r["dice"]), "hd95": float(r["hd95"])} for r in csv.DictReader(fh)]
    overlays = []
    if info.get("overlay_titles"):
        with np.load(folder / "overlays.npz") as z:
            overlays = list(zip(info["overlay_titles"], z["images"], z["truths"], z["preds"], strict=True))
    return {"rows": rows, "timings": info["timings"], "overlays": overlays}


def plot_selection_accuracy(history: dict, path: Path) -> None:
    """Selection accuracy vs episode for every evaluated set of a :class:`TrainingHistory` dict (Figures 7-8)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, acc in history["accuracy"].items():
        ax.plot(history["eval_episodes"], acc, marker="o", label=name)
    ax.set_xlabel("episode")
    ax.set_ylabel("selection accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("DQN selection accuracy vs episode (paper 000, Figures 7-8)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_stember(data: str | Path, out: str | Path, seeds: list[int] | tuple[int, ...] = (0,), n_train: int = 10,
                max_test: int | None = None, episodes: int | None = None, unet_epochs: int | None = None,
                proposer: str | object = "fast", curve_images: int = 40, unet: bool = True, workers: int = 1,
                unet_device: str = "cpu", propose_only: bool = False, echo: Callable[[str], None] = print,
                progress: bool = False) -> dict:
    """Run paper 000's experiment for each seed and write ``OUT/report.md`` with tables and figures.

    Parameters
    ----------
    data : path
        A labelled 2D data set (e.g. ``../shared/data/lgg``).
    out : path
        Output folder; ``OUT/proposals`` caches proposals across runs and seeds.
    seeds : sequence of int
        One split + training run per seed (the split, the oracle picks, the DQN and the U-Nets).
    n_train : int
        Training slices, from distinct patients (paper: 10).
    max_test : int, optional
        Cap the test slices (a seeded random subset of the other patients' slices); default all.
    episodes, unet_epochs : int, optional
        Budget overrides for quick runs (defaults: the configs' own).
    proposer : str or UDCConfig
        Proposer preset (or config) for every slice; the cache ``OUT/proposals`` belongs to one proposer.
    unet : bool
        Also train and test the two U-Net baselines (the slow part on a CPU).
    curve_images : int
        Test slices used for the accuracy-vs-episode curve (Figure 8).
    workers : int
        Processes proposing candidates (the slow part before training).
    unet_device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"`` for the U-Net baselines (the DQN and the proposer run on the CPU).
    propose_only : bool
        Stop once every needed slice has cached proposals (run this before parallel per-seed processes).

    A seed whose results are complete in ``OUT/seed<S>/`` (``done.json`` with the same settings) is not run
    again: its rows are read back, so an interrupted run resumes and several seeds can run in parallel
    processes (one ``--seed`` each) before a final run with every ``--seed`` pools them into the report.

    Returns
    -------
    dict
        ``{"methods": {method: {"dice": [...], "hd95": [...]}}, "stats": ..., "report": path}``
    """
    from scarceseg.datasets import n_shot_split, open_dataset
    from scarceseg.figures.overlays import save_boxplot, save_overlay_grid
    from scarceseg.methods import registry
    from scarceseg.methods.contract import Budget
    from scarceseg.metrics import MetricCollector, paired_comparison
    from scarceseg.store.oracle import oracle_pick

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(data)
    methods = [m for m in METHODS if unet or not m.startswith("unet")]
    all_rows: dict[str, list[dict]] = {m: [] for m in methods}
    timings: dict[str, list[float]] = {"dqn_train_s": [], "unet_paper_train_s": [], "unet_fair_train_s": []}
    overlay_items: list = []
    splits = {}
    for seed in seeds:
        split = n_shot_split(ds, n_train, seed=seed, pick="largest")
        test_ids = list(split["test"])
        if max_test is not None and len(test_ids) > max_test:
            rng = np.random.default_rng(seed)
            test_ids = sorted(rng.choice(test_ids, size=max_test, replace=False).tolist())
        splits[seed] = (list(split["train"]), test_ids)
    run_key = {"data": str(data), "n_train": n_train, "max_test": max_test, "episodes": episodes,
               "unet_epochs": unet_epochs, "methods": methods}
    todo_seeds = [s for s in seeds if _load_seed(out, s, run_key) is None]
    needed = sorted({c for s in todo_seeds for part in splits[s] for c in part})
    cases_all = {cid: ds.load(cid) for cid in needed}
    props_all = _proposals(cases_all, needed, out / "proposals", proposer, 0, progress, echo, workers=workers)
    if propose_only:
        echo(f"proposals for {len(needed)} slices are in {out / 'proposals'}")
        return {"proposed": needed}
    for seed in seeds:
        echo(f"== seed {seed} ==")
        done = _load_seed(out, seed, run_key)
        if done is not None:
            echo(f"results of seed {seed} found in {out / f'seed{seed}'}: reused (delete that folder to recompute)")
            for m in methods:
                all_rows[m].extend(done["rows"][m])
            for k, v in done["timings"].items():
                timings[k].extend(v)
            if seed == seeds[0]:
                overlay_items = done["overlays"]
            continue
        train_ids, test_ids = splits[seed]
        split = {"train": train_ids, "test": test_ids}
        cases = {cid: cases_all[cid] for cid in train_ids + test_ids}
        props = {cid: props_all[cid] for cid in train_ids + test_ids}
        seed_timings: dict[str, list[float]] = {k: [] for k in timings}
        echo(f"train on {len(train_ids)} slices of {len(train_ids)} patients, "
             f"test on {len(test_ids)} slices of the other patients")

        # the registered selector on the cached proposals; SelectorConfig's device ("auto") as before
        options = {"device": "auto"} if episodes is None else {"device": "auto", "n_episodes": episodes}
        selector = registry.get("selector")(options)
        selector.set_inference(proposals=lambda case, props=props: props[case.case_id])
        selector.eval_cases = {"test": [cases[c] for c in test_ids[:curve_images]]}
        t0 = time.perf_counter()
        hist = selector.fit([cases[c] for c in split["train"]], seed=seed, progress=progress)
        hist = {k: v for k, v in hist.items() if k not in ("cases", "skipped")}
        seed_timings["dqn_train_s"].append(hist["seconds"] or time.perf_counter() - t0)
        (out / f"history_seed{seed}.json").write_text(json.dumps(hist), encoding="utf-8")
        plot_selection_accuracy(hist, out / f"selection_accuracy_seed{seed}.png")
        echo(f"DQN trained in {seed_timings['dqn_train_s'][-1]:.1f} s; final selection accuracy "
             + ", ".join(f"{k} {v[-1]:.2f}" for k, v in hist["accuracy"].items() if v))

        unets = {}
        for name, preset in (("unet_paper", "paper"), ("unet_fair", "fair")) if unet else ():
            model = registry.get("unet")({"preset": preset, "device": unet_device})
            t0 = time.perf_counter()
            model.fit([cases[c] for c in split["train"]], None if unet_epochs is None else Budget(epochs=unet_epochs),
                      progress=progress, seed=seed)
            seed_timings[f"{name}_train_s"].append(time.perf_counter() - t0)
            unets[name] = model
            echo(f"{name} trained in {seed_timings[f'{name}_train_s'][-1]:.1f} s on {model.model.device}")

        selected = {}
        for mode in ("automatic", "one_click"):
            selector.set_inference(mode=mode, points={c: robot_click(cases[c].target) for c in test_ids})
            selected[mode] = {c: selector.predict(cases[c]).mask for c in test_ids}
        collectors = {m: MetricCollector() for m in methods}
        for cid in test_ids:
            case, prop = cases[cid], props[cid]
            truth = case.target
            preds = {"oracle_best_candidate": prop.masks[oracle_pick(prop, truth)[0]],
                     "udc_dqn_automatic": selected["automatic"][cid], "udc_dqn_one_click": selected["one_click"][cid]}
            for name, model in unets.items():
                preds[name] = model.predict(case).mask
            for m, mask in preds.items():
                collectors[m].add(cid, mask, truth, spacing=case.spacing, seed=seed, patient_id=case.patient_id)
            if seed == seeds[0] and len(overlay_items) < 10 and len(test_ids) >= 10 \
                    and test_ids.index(cid) % max(1, len(test_ids) // 10) == 0:
                overlay_items.append((f"{cid}\nauto Dice {collectors['udc_dqn_automatic'].rows[-1]['dice']:.2f}",
                                      case.channel("FLAIR"), truth, preds["udc_dqn_automatic"]))
        for m, col in collectors.items():
            col.write(out / f"seed{seed}" / m)
            all_rows[m].extend(col.rows)
            echo(f"  {m:24s} Dice {np.nanmean([r['dice'] for r in col.rows]):.3f}")
        for k, v in seed_timings.items():
            timings[k].extend(v)
        _save_seed(out, seed, run_key, seed_timings, overlay_items if seed == seeds[0] else [])

    return _report(out, all_rows, timings, overlay_items, seeds, n_train, proposer, save_boxplot,
                   save_overlay_grid, paired_comparison, echo)


def _report(out, all_rows, timings, overlay_items, seeds, n_train, proposer, save_boxplot, save_overlay_grid,
            paired_comparison, echo) -> dict:
    """Pool the seeds, write figures and ``report.md``, print the table."""
    methods = {m: {k: np.array([r[k] for r in rows], dtype=float) for k in ("dice", "hd95")}
               for m, rows in all_rows.items()}
    ref = "udc_dqn_automatic"
    stats = {m: {k: paired_comparison(methods[ref][k], v[k]) for k, v in [(k, methods[m]) for k in ("dice", "hd95")]}
             for m in methods if m != ref}
    lines = ["| method | n | Dice mean ± SD | Dice median | HD95 mean ± SD (mm) | p (Dice vs automatic, Wilcoxon) |",
             "|---|---|---|---|---|---|"]
    for m, v in methods.items():
        d, h = v["dice"], v["hd95"]
        p = "—" if m == ref else f"{stats[m]['dice']['p_wilcoxon']:.2g}"
        lines.append(f"| {m} | {len(d)} | {np.nanmean(d):.3f} ± {np.nanstd(d, ddof=1):.3f} | {np.nanmedian(d):.3f} "
                     f"| {np.nanmean(h):.1f} ± {np.nanstd(h, ddof=1):.1f} | {p} |")
    table = "\n".join(lines)
    save_boxplot({m: v["dice"] for m, v in methods.items()}, out / "dice_boxplot.png", ylabel="Dice",
                 title="Test Dice per method (paper 000, Figure 9)")
    if overlay_items:
        save_overlay_grid(overlay_items, out / "overlays.png", ncols=5,
                          title="UDC + DQN automatic: truth vermillion, prediction blue, overlap yellow")
    timing_line = ", ".join(f"{k} {np.mean(v):.1f}" for k, v in timings.items() if v)
    report = out / "report.md"
    report.write_text(
        "# Paper 000 experiment: propose → pick → learn to pick\n\n"
        f"Seeds {list(seeds)}; {n_train} training slices from {n_train} distinct patients per seed (largest-lesion "
        f"slice), oracle picks (best-Dice candidate; labelled oracle), proposer `{proposer}`; every test slice of "
        "the other patients. One-click uses the truth's innermost pixel as the robot click.\n\n"
        f"{table}\n\nMean seconds: {timing_line}.\n\n"
        "![Dice box plot](dice_boxplot.png)\n\n"
        + "".join(f"![selection accuracy seed {s}](selection_accuracy_seed{s}.png)\n" for s in seeds)
        + ("\n![overlays](overlays.png)\n" if overlay_items else ""), encoding="utf-8")
    summary = {m: {k: float(np.nanmean(v[k])) for k in v} for m, v in methods.items()}
    results = {"seeds": list(seeds), "timings": timings, "stats": stats, "summary": summary}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")
    echo(table)
    echo(f"timings (s): {timing_line}")
    echo(f"report: {report}")
    return {"methods": methods, "stats": stats, "report": report, "timings": timings}
