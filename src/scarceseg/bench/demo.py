"""``make demo``: the main job (paper 000) on built-in sample data, through the same functions as the CLI.

1. Write ``n`` realistic sample FLAIR slices (one per synthetic patient, :mod:`scarceseg.datasets.sample`)
   and split the patients in half: training and test folders.
2. Propose candidates on every slice into a WORKDIR (``scarceseg propose``).
3. Oracle picks on the training half (``scarceseg pick --oracle``; labelled oracle in the store).
4. Train the DQN selector on those picks (``scarceseg train selector``).
5. Segment the test half (``scarceseg segment``): automatic, and one-click with a robot click at each
   truth's innermost pixel; the classical baselines (multi-threshold Otsu, k-means) and the best
   candidate (oracle ceiling) on the same slices.
6. Evaluate every method (``scarceseg evaluate``), paired Wilcoxon tests against UDC+DQN automatic,
   a box plot, overlays, the selection-accuracy curve and ``report.md``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

BASELINES = ("multi_otsu", "kmeans")
METHODS = ("oracle_best_candidate", "udc_dqn_one_click", "udc_dqn_automatic", *BASELINES)


def segment_baseline(name: str, flair: np.ndarray, seed: int = 0) -> np.ndarray:
    """Run one classical baseline on a FLAIR slice ``(Y, X)``; returns a bool mask ``(Y, X)``."""
    from scarceseg.cluster.classical import kmeans_lesion, multi_otsu_lesion

    if name == "multi_otsu":
        return multi_otsu_lesion(flair)
    if name == "kmeans":
        return kmeans_lesion(flair, seed=seed)
    raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")


def _split_folder(data_dir: Path, out: Path, train_ids: list[str], test_ids: list[str]) -> tuple[Path, Path]:
    """Copy the lgg-layout sample set into ``out/train`` and ``out/test`` (images and masks)."""
    folders = {}
    for name, ids in (("train", train_ids), ("test", test_ids)):
        dest = out / name
        for sub in ("images", "masks"):
            (dest / sub).mkdir(parents=True, exist_ok=True)
        for cid in ids:
            for sub in ("images", "masks"):
                for f in (data_dir / sub).glob(f"{cid}*"):
                    shutil.copy2(f, dest / sub / f.name)
        folders[name] = dest
    return folders["train"], folders["test"]


def run_demo(out: str | Path, n: int = 20, seed: int = 0, episodes: int | None = None,
             echo: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Run the pipeline above under ``out`` and write ``out/report.md``.

    Parameters
    ----------
    out : path
        Output folder (created); reruns overwrite its results but keep nothing stale in ``work``'s picks
        (the oracle picks are simply added again, which the store's history keeps).
    n : int
        Sample slices (>= 4); half train, half test.
    seed : int
        Sample data, split, selector and baselines.
    episodes : int, optional
        DQN episodes (default: the paper's 300).

    Returns
    -------
    dict
        ``{"summaries": {method: summary}, "report": path, "seconds": float}``.
    """
    from scarceseg.bench.stember import plot_selection_accuracy, robot_click
    from scarceseg.cluster.propose import load_proposal
    from scarceseg.cluster.propose_many import propose_inputs
    from scarceseg.datasets import n_shot_split, open_dataset
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.errors import ScarcesegError
    from scarceseg.figures.overlays import save_boxplot, save_overlay_grid
    from scarceseg.io import write_mask
    from scarceseg.methods.udc_rl import SelectorConfig, segment_folder
    from scarceseg.metrics import MetricCollector, paired_comparison
    from scarceseg.store.picking import oracle_pick, oracle_pick_dataset
    from scarceseg.store.training import train_selector

    if n < 4:
        raise ScarcesegError(f"the demo needs at least 4 sample slices, got {n}")
    out = Path(out)
    t0 = time.perf_counter()

    def step(k: int, text: str) -> None:
        echo(f"[{k}/6] {text} ({time.perf_counter() - t0:.0f} s)")

    data_dir = out / "sample_data"
    make_sample_data(data_dir, n=n, seed=seed)
    ds = open_dataset(data_dir, layout="lgg")
    split = n_shot_split(ds, n // 2, seed=seed)
    train_ids, test_ids = sorted(split["train"]), sorted(split["test"])
    train_dir, test_dir = _split_folder(data_dir, out / "split", train_ids, test_ids)
    step(1, f"wrote {n} sample slices; {len(train_ids)} patients to train on, {len(test_ids)} to test on")

    work = out / "work"
    propose_inputs([data_dir], work, seed=seed, layout="lgg", progress=progress, echo=lambda _: None)
    step(2, f"proposed candidates for {n} slices into {work} (contact sheets in {work / 'proposals'})")

    picked = oracle_pick_dataset(work, data_dir, layout="lgg", case_ids=train_ids)
    step(3, f"oracle picked the best candidate on {picked['n_picked']} training slices "
            f"(mean best-candidate Dice {picked['mean_dice']:.3f})")

    cases = {cid: ds.load(cid) for cid in ds.case_ids}
    props = {cid: load_proposal(work, cid) for cid in ds.case_ids}
    test_eval = ([props[c].image for c in test_ids], [props[c].masks for c in test_ids],
                 [oracle_pick(props[c], cases[c].target)[0] for c in test_ids])
    config = SelectorConfig() if episodes is None else SelectorConfig(n_episodes=episodes)
    selector, history = train_selector(work, config=config, seed=seed, progress=progress,
                                       eval_sets={"test (oracle picks, for the curve only)": test_eval})
    model = selector.save(out / "selector")
    hist = history.as_dict()
    plot_selection_accuracy(hist, out / "selection_accuracy.png")
    step(4, f"trained the DQN selector ({config.n_episodes} episodes) in {history.seconds:.0f} s -> {model}")

    pred = out / "pred"
    segment_folder(model, test_dir, pred / "udc_dqn_automatic", mode="automatic", layout="lgg", seed=seed,
                   progress=progress)
    points = {cid: list(robot_click(cases[cid].target)) for cid in test_ids}
    (out / "robot_clicks.json").write_text(json.dumps(points, indent=1), encoding="utf-8")
    segment_folder(model, test_dir, pred / "udc_dqn_one_click", mode="one_click", points=out / "robot_clicks.json",
                   layout="lgg", seed=seed, progress=progress)
    for cid in test_ids:
        case, prop = cases[cid], props[cid]
        write_mask(prop.masks[oracle_pick(prop, case.target)[0]], pred / "oracle_best_candidate" / f"{cid}.png",
                   like=case)
        for name in BASELINES:
            write_mask(segment_baseline(name, case.channel("FLAIR"), seed=seed), pred / name / f"{cid}.png",
                       like=case)
    step(5, f"segmented the {len(test_ids)} test slices: UDC+DQN automatic and one-click (robot clicks), "
            "oracle best candidate, multi-Otsu, k-means")

    from scarceseg.io import read_mask

    collectors = {m: MetricCollector() for m in METHODS}
    for m, col in collectors.items():
        for cid in test_ids:
            case = cases[cid]
            col.add(cid, read_mask(pred / m / f"{cid}.png", like=case) > 0, case.target, spacing=case.spacing)
        col.write(out / "eval" / m)
    dice = {m: np.array([r["dice"] for r in col.rows]) for m, col in collectors.items()}
    hd95 = {m: np.array([r["hd95"] for r in col.rows]) for m, col in collectors.items()}
    ref = "udc_dqn_automatic"
    lines = ["| method | Dice mean ± SD | Dice median | HD95 mean ± SD (mm) | p vs automatic (Wilcoxon, Dice) |",
             "|---|---|---|---|---|"]
    for m in METHODS:
        p = "—" if m == ref else f"{paired_comparison(dice[ref], dice[m])['p_wilcoxon']:.2g}"
        d, h = dice[m], hd95[m]
        lines.append(f"| {m} | {np.nanmean(d):.3f} ± {np.nanstd(d, ddof=1):.3f} | {np.nanmedian(d):.3f} | "
                     f"{np.nanmean(h):.1f} ± {np.nanstd(h, ddof=1):.1f} | {p} |")
    table = "\n".join(lines)
    save_boxplot(dice, out / "dice_boxplot.png", ylabel="Dice", title="Demo: test Dice per method")
    auto = {r["case_id"]: r["dice"] for r in collectors[ref].rows}
    overlays = [(f"{cid}\nauto Dice {auto[cid]:.2f}", cases[cid].channel("FLAIR"), cases[cid].target,
                 read_mask(pred / ref / f"{cid}.png", like=cases[cid]) > 0) for cid in test_ids[:10]]
    save_overlay_grid(overlays, out / "overlays.png", ncols=5,
                      title="UDC + DQN automatic: truth vermillion, prediction blue, overlap yellow")
    seconds = time.perf_counter() - t0
    report = out / "report.md"
    report.write_text(
        "# scarceseg demo: propose → pick → learn to pick (paper 000) on sample data\n\n"
        f"{n} synthetic FLAIR slices, one per patient; oracle picks (best-Dice candidate, labelled oracle) on "
        f"{len(train_ids)} training patients; DQN selector trained on them ({config.n_episodes} episodes, "
        f"{history.seconds:.0f} s); tested on the other {len(test_ids)} patients. One-click uses a robot click at "
        "each truth's innermost pixel (`robot_clicks.json`). Figures in this report are from sample data, not "
        "from patients: see `scarceseg bench stember` for the LGG experiment.\n\n"
        f"{table}\n\n"
        f"Total time {seconds:.0f} s. Files: `work/` (proposals, contact sheets, label store), `selector/` (model), "
        "`pred/<method>/` (masks), `eval/<method>/` (per-case CSV, summary JSON).\n\n"
        "![Dice box plot](dice_boxplot.png)\n\n![selection accuracy](selection_accuracy.png)\n\n"
        "![overlays](overlays.png)\n", encoding="utf-8")
    step(6, "evaluated every method")
    echo("\n" + table + "\n")
    echo(f"report: {report}")
    return {"summaries": {m: col.summary() for m, col in collectors.items()}, "report": report, "seconds": seconds}
