"""What ``make demo``'s report says: the table of methods and the explanation written from the measured facts
(:func:`scarceseg.bench.demo.run_demo` measures them)."""

from __future__ import annotations

import numpy as np

#: method -> what the user gives per test image (the table's "input" column)
METHODS = {
    "fewshot_automatic": "none (learned from the box-prompted masks)",
    "prior_box_prompt": "1 box (interactive reference)",
    "udc_dqn_automatic": "none (selector learned from oracle picks)",
    "udc_dqn_one_click": "1 click",
    "oracle_best_candidate": "the truth (ceiling of the candidates)",
    "multi_otsu": "none",
    "kmeans": "none",
}
REF = "fewshot_automatic"
#: the robot user's box: the truth's bounding box + this many pixels
BOX_MARGIN = 5


def fmt_p(p: float) -> str:
    """A p-value with two significant digits, or a dash when there is none."""
    return "—" if p is None or not np.isfinite(p) else f"{p:.2g}"


def table(dice: dict, hd95: dict) -> str:
    """The report's table: per method of :data:`METHODS`, Dice and HD95 over the test images, p against :data:`REF`."""
    from scarceseg.metrics import paired_comparison

    lines = ["| method | user input per test image | Dice mean ± SD | Dice median | HD95 mean ± SD (mm) | "
             f"p vs {REF} (Wilcoxon, Dice) |", "|---|---|---|---|---|---|"]
    for m, what in METHODS.items():
        p = "—" if m == REF else fmt_p(paired_comparison(dice[REF], dice[m])["p_wilcoxon"])
        d, h = dice[m], hd95[m]
        undefined = int(np.isnan(h).sum())
        hd = (f"{np.nanmean(h):.1f} ± {np.nanstd(h, ddof=1):.1f}" if (~np.isnan(h)).sum() > 1 else
              (f"{np.nanmean(h):.1f}" if (~np.isnan(h)).any() else "—"))
        if undefined:
            hd += f" ({undefined} empty)"
        lines.append(f"| {m} | {what} | {np.mean(d):.3f} ± {np.std(d, ddof=1):.3f} | {np.median(d):.3f} | {hd} | {p} |")
    return "\n".join(lines)


def explain(facts: dict) -> str:
    """The report's explanation, written from the measured ``facts`` (see :func:`run_demo`)."""
    f = facts
    lines = []
    lines.append(
        f"**Labels.** The {f['n_train']} training labels are the prior's masks from one box each (truth's bounding "
        f"box + {BOX_MARGIN} px), not the truth: their Dice against the truth is {f['label_dice_mean']:.3f} on "
        f"average (lowest {f['label_dice_min']:.3f}). "
        + ("So the learner was taught almost the truth. " if f["label_dice_mean"] >= 0.9 else
           "So the learner was taught masks that already differ from the truth, which caps what it can reach. "))
    gap = f["prior_box_mean"] - f["fewshot_mean"]
    loc = (f"Its localiser found a blob on {f['n_test'] - f['n_empty']} of {f['n_test']} test images "
           f"({f['n_empty']} called empty)")
    if f["n_found"]:
        loc += (f"; the box drawn around it held lesion on {f['n_hit']} of them, and its area was a median "
                f"{f['area_ratio_median']:.2f}× the lesion's")
    loc += ". "
    if gap <= 0.05:
        verdict = (f"**Learning.** Trained on those {f['n_train']} masks ({f['steps']} updates, "
                   f"{f['fit_seconds']:.0f} s), `fewshot` segments the test images with no input at Dice "
                   f"{f['fewshot_mean']:.3f}, within {max(gap, 0):.3f} of one box per image "
                   f"({f['prior_box_mean']:.3f}). " + loc +
                   "Once the localiser puts a box on the lesion, the pretrained decoder draws it as well as from a "
                   "user's box. ")
    else:
        why = []
        if f["n_empty"]:
            sizes = ", ".join(str(a) for a in f["empty_truth_area"])
            why.append(f"{f['n_empty']} test image(s) were called lesion-free (Dice 0; lesion area {sizes} px, "
                       f"median of all test lesions {f['truth_area_median']:.0f} px)")
        if f["n_found"] - f["n_hit"] > 0:
            why.append(f"{f['n_found'] - f['n_hit']} blob(s) lay off the lesion, so the box prompted the wrong place")
        if f["n_hit"] and f["area_ratio_median"] < 0.8 and f["truth_outside_box_median"] >= 0.02:
            why.append(f"the blobs were smaller than the lesions, so even grown by {BOX_MARGIN} px their boxes left "
                       f"out a median {100 * f['truth_outside_box_median']:.0f} % of the lesion, which the decoder, "
                       "prompted with the box, mostly leaves out")
        elif f["n_hit"] and f["area_ratio_median"] > 2.0:
            why.append("the blobs were larger than the lesions, so boxes took in surrounding tissue")
        if f["n_found"] and f["prior_box_found_mean"] - f["fewshot_found_mean"] > 0.05:
            why.append(f"on the {f['n_found']} images where it found a blob, the boxes drawn from the blobs fit less "
                       f"well than the user's boxes (Dice {f['fewshot_found_mean']:.3f} vs "
                       f"{f['prior_box_found_mean']:.3f})")
        elif f["n_found"] and f["n_empty"]:
            why.append(f"on the {f['n_found']} images where it found a blob it is close to the user's box (Dice "
                       f"{f['fewshot_found_mean']:.3f} vs {f['prior_box_found_mean']:.3f}), so the empty calls make "
                       "most of the gap")
        if not why:
            why.append("the boxes drawn from the localiser's blobs fit the lesions less well than the user's boxes")
        verdict = (f"**Learning.** Trained on those {f['n_train']} masks ({f['steps']} updates, "
                   f"{f['fit_seconds']:.0f} s), `fewshot` reaches Dice {f['fewshot_mean']:.3f} with no input, "
                   f"{gap:.3f} below one box per image ({f['prior_box_mean']:.3f}). " + loc +
                   "The gap comes from localisation: " + "; ".join(why) + ". ")
    if f["steps"] < f["steps_configured"]:
        verdict += (f"The demo trains {f['steps']} of the learner's configured {f['steps_configured']} updates to "
                    "stay near 5 minutes on 2 shared CPU cores; more updates may localise better. ")
    lines.append(verdict)
    diff = f["fewshot_mean"] - f["dqn_auto_mean"]
    p = f["p_dqn_auto"]
    sig = np.isfinite(p) and p < 0.05
    if diff > 0:
        cmp_ = (f"`fewshot` is {diff:.3f} Dice above paper 000's automatic selector ({f['dqn_auto_mean']:.3f}), "
                + (f"a paired difference unlikely by chance (Wilcoxon p = {p:.2g}, n = {f['n_test']}). " if sig else
                   f"but with n = {f['n_test']} this is not significant (Wilcoxon p = {fmt_p(p)}). "))
    else:
        cmp_ = (f"`fewshot` is {-diff:.3f} Dice below paper 000's automatic selector ({f['dqn_auto_mean']:.3f}) "
                f"(Wilcoxon p = {fmt_p(p)}, n = {f['n_test']}). ")
    cmp_ += (f"The selector can only pick among the proposer's candidates, whose best (an oracle pick) averages "
             f"{f['oracle_mean']:.3f}; the automatic selector got {f['dqn_auto_mean']:.3f} and one click "
             f"{f['dqn_click_mean']:.3f}")
    if f["oracle_mean"] - f["dqn_auto_mean"] > 0.2:
        cmp_ += (" — the selector, trained for only " f"{f['episodes']} episodes on {f['n_train']} picks, mostly "
                 "picked the wrong candidate, and the click, which leaves only the candidates that hold it, "
                 + ("repairs most of that" if f["oracle_mean"] - f["dqn_click_mean"] < 0.1 else "repairs part of it"))
    cmp_ += ". "
    if f["fewshot_mean"] > f["oracle_mean"]:
        cmp_ += ("`fewshot` is above even that ceiling: the prior draws the lesion from a box rather than choosing "
                 "among the proposer's candidates. ")
    free = max(("multi-Otsu", f["otsu_mean"]), ("k-means", f["kmeans_mean"]), key=lambda kv: kv[1])
    if free[1] >= f["fewshot_mean"]:
        cmp_ += (f"Label-free {free[0]} ({free[1]:.3f}) does as well as or better than `fewshot` here: these "
                 "synthetic lesions are easy to threshold, which makes the sample data a test that the pipeline "
                 "runs, not a ranking of the methods — use the real-data benches named above for that. ")
    else:
        ps = (f["p_otsu"], f["p_kmeans"])
        cmp_ += (f"The label-free baselines, multi-Otsu ({f['otsu_mean']:.3f}, p = {fmt_p(ps[0])}) and k-means "
                 f"({f['kmeans_mean']:.3f}, p = {fmt_p(ps[1])}), are below `fewshot` in mean Dice"
                 + ("." if all(np.isfinite(q) and q < 0.05 for q in ps) else
                    f", but not significantly with n = {f['n_test']}: their medians ({f['otsu_median']:.3f}, "
                    f"{f['kmeans_median']:.3f}; `fewshot` {f['fewshot_median']:.3f}) show they match it on most "
                    "images and fail badly on a few.") + " ")
    lines.append("**Against the other methods.** " + cmp_)
    return "\n\n".join(lines)
