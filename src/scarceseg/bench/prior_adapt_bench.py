"""``scarceseg bench prior-adapt``: the zero-shot prior against the same prior with its decoder adapted on a few slices.

Same slices as ``scarceseg bench fewshot`` (:func:`scarceseg.bench.fewshot_bench.plan`): patients split once
(seed 0, 70 % / 30 %); for each seed, ``shots`` labelled slices from ``shots`` distinct patients of the 70 %
(the largest lesion of each); the test slices are every ``every``-th slice of the 30 %, thinned evenly to at
most ``test_slices``. No patient is in both.

Per seed, a copy of LiteMedSAM's mask decoder is fine-tuned on that seed's slices
(:class:`scarceseg.prior.adapt.AdaptedPrior`). On every test slice both models get the same prompt:

* ``box``: the truth's bounding box + 5 px (issue 13's first gesture);
* ``click`` (with ``click``): one click at the truth's innermost pixel, made a mask by the strategy
  ``click`` of :func:`scarceseg.methods.prior_click.click_to_mask` (as ``bench interactive --first click``).

The zero-shot model is the *unadapted* copy run through the same torch code on the same cached embedding, so
the difference is the fine-tuning alone; it does not depend on the seed, and its rows are repeated under each
seed in ``per_slice.csv``. Reported: mean Dice per seed, mean ± sd over seeds, median; paired differences
adapted - zero-shot (:func:`scarceseg.metrics.stats.paired_comparison`) per seed over the slices, and over the
slices with the adapted Dice averaged over seeds (each slice counted once).

``validate=True`` tunes without the test patients: the test slices come from the 70 % patients that no seed
trains on, and the 30 % are never read.

Embeddings are cached (float16 ``.npy``, :class:`scarceseg.prior.embeddings.EmbeddingStore`) in ``cache_dir``
so every seed and a re-run reuse them; each seed's decoder is saved in ``out/adapted_seed<S>/``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from scarceseg.bench.fewshot_bench import held_out, plan

FIELDS = ("prompt", "model", "seed", "case_id", "dice", "pred_area", "true_area", "seconds")
BOX_MARGIN = 5  # pixels around the truth's box, as bench interactive's first gesture
MODELS = ("zero-shot", "adapted")


def validation_slices(ds, train_ids, every: int = 2, n: int = 100) -> list[str]:
    """Slices of the training pool's patients that hold none of ``train_ids``: every ``every``-th, thinned to
    at most ``n`` (for choosing the recipe without the test patients)."""
    pool, _ = held_out(ds)
    used = {ds.patient_of(c) for c in train_ids}
    ids = [c for c in pool if ds.patient_of(c) not in used][:: max(1, int(every))]
    if len(ids) > n:
        ids = [ids[int(i)] for i in np.linspace(0, len(ids) - 1, n).round()]
    return ids


def _prompt_prob(model, image: np.ndarray, truth: np.ndarray, prompt: str, click: str | None) -> np.ndarray:
    """Probability ``(Y, X)`` of ``model`` (an AdaptedPrior) from the bench's prompt on one slice."""
    from scarceseg.prior.prompts import box_from_mask

    if prompt == "box":
        return model.predict(image, box=box_from_mask(truth, BOX_MARGIN)).prob
    from scarceseg.interactive.clicks import innermost_pixel
    from scarceseg.methods.prior_click import click_to_mask

    return click_to_mask(model, image, innermost_pixel(truth), method=click).prob


def _score(model, name: str, seed: int, slices, prompts, click, rows: list[dict], progress: bool) -> None:
    from scarceseg.metrics import dice
    from scarceseg.progress import track

    for cid, image, truth in track(slices, f"testing the {name} prior (seed {seed})", enabled=progress):
        for prompt in prompts:
            t0 = time.perf_counter()
            mask = _prompt_prob(model, image, truth, prompt, click) > 0.5
            rows.append({"prompt": prompt, "model": name, "seed": seed, "case_id": cid,
                         "dice": float(dice(mask, truth)), "pred_area": int(mask.sum()),
                         "true_area": int(truth.sum()), "seconds": round(time.perf_counter() - t0, 4)})


def run_prior_adapt_bench(data: str | Path, out: str | Path, shots: int = 10, seeds: int = 3,
                          steps: int | None = None, lr: float | None = None, test_slices: int = 100, every: int = 2,
                          click: str | None = None, validate: bool = False, cache_dir: str | Path | None = None,
                          layout: str | None = None, progress: bool = False, log=print) -> dict:
    """Adapt the prior per seed and compare it with the zero-shot prior; writes ``per_slice.csv``,
    ``summary.json`` and ``dice_zero_shot_vs_adapted.png`` in ``out``. Returns the summary."""
    from scarceseg.methods.prior_fewshot import prior_channel
    from scarceseg.prior.adapt import AdaptConfig, AdaptedPrior
    from scarceseg.prior.embeddings import EmbeddingStore
    from scarceseg.progress import track

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    p = plan(data, shots, range(seeds), every=every, test_slices=test_slices, layout=layout)
    ds = p["dataset"]
    test_ids = (validation_slices(ds, [c for ids in p["train"].values() for c in ids], every, test_slices)
                if validate else p["test"])
    config = AdaptConfig.from_dict({**AdaptConfig().to_dict(), **({"steps": steps} if steps is not None else {}),
                                    **({"lr": lr} if lr is not None else {})})
    prompts = ("box", "click") if click else ("box",)
    store = EmbeddingStore(folder=Path(cache_dir) if cache_dir else out / "emb_cache")
    slices, skipped = [], []
    for cid in test_ids:
        case = ds.load(cid)
        truth = np.asarray(case.target, dtype=bool) if case.target is not None else None
        if truth is None or not truth.any():
            skipped.append(cid)  # no box (or click) can be drawn on a slice without the object
            continue
        slices.append((cid, prior_channel(case, "flair"), truth))
    n_patients = len({ds.patient_of(c) for c, _, _ in slices})
    log(f"{shots} shots, {len(slices)} {'validation' if validate else 'test'} slices of {n_patients} other patients"
        + (f" ({len(skipped)} without a lesion skipped)" if skipped else "") + f"; prompts: {', '.join(prompts)}")
    t0 = time.perf_counter()
    for _, image, _ in track(slices, "encoding the test slices", enabled=progress):
        store.get(image)
    encode_seconds = time.perf_counter() - t0
    rows: list[dict] = []
    zero = AdaptedPrior(config, store=store)
    zero_rows: list[dict] = []
    t0 = time.perf_counter()
    _score(zero, "zero-shot", -1, slices, prompts, click, zero_rows, progress)
    timings: dict = {"encode_test_seconds": round(encode_seconds, 1), "zero_shot_seconds":
                     round(time.perf_counter() - t0, 1), "seeds": []}
    for seed, ids in p["train"].items():
        train = [ds.load(c) for c in ids]
        model = AdaptedPrior(config, store=store)
        hist = model.fit([(prior_channel(c, "flair"), c.target) for c in train], seed=seed, progress=progress)
        model.meta.update(case_ids=list(ids), data_dir=str(data))
        model.save(out / f"adapted_seed{seed}")
        t1 = time.perf_counter()
        rows += [{**r, "seed": seed} for r in zero_rows]
        _score(model, "adapted", seed, slices, prompts, click, rows, progress)
        timings["seeds"].append({"seed": seed, "adapt_seconds": round(hist["seconds"], 1),
                                 "encode_train_seconds": round(hist["encode_seconds"], 1),
                                 "test_seconds": round(time.perf_counter() - t1, 1), "first_loss": hist["loss"][:1],
                                 "last_loss": hist["loss"][-1:]})
        per = {(pr, m): _mean(rows, pr, m, seed) for pr in prompts for m in MODELS}
        log(f"  seed {seed}: " + "; ".join(f"{pr} zero-shot {per[(pr, 'zero-shot')]:.3f}, adapted "
                                           f"{per[(pr, 'adapted')]:.3f}" for pr in prompts)
            + f" (adapted in {hist['seconds']:.0f} s, {hist['steps']} updates)")
        _write_rows(out / "per_slice.csv", rows)
    summary = summarise(rows)
    summary.update(timings=timings, skipped=skipped, settings={
        "data": str(data), "shots": shots, "seeds": seeds, "test_slices": test_slices, "every": every,
        "click": click, "validate": validate, "box_margin": BOX_MARGIN, "adapt_config": config.to_dict(),
        "backend": getattr(store.prior, "backend", None),
        "train": {str(s): ids for s, ids in p["train"].items()}, "test": [c for c, _, _ in slices]})
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plot_pairs(rows, out / "dice_zero_shot_vs_adapted.png", prompts)
    log(format_table(summary))
    return summary


def _mean(rows, prompt, model, seed) -> float:
    vals = [r["dice"] for r in rows if (r["prompt"], r["model"], r["seed"]) == (prompt, model, seed)]
    return float(np.mean(vals)) if vals else float("nan")


def _write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _by_slice(rows, prompt, model, seed=None) -> dict[str, float]:
    """``case_id -> Dice`` (averaged over seeds when ``seed`` is None)."""
    acc: dict[str, list[float]] = {}
    for r in rows:
        if r["prompt"] == prompt and r["model"] == model and (seed is None or int(r["seed"]) == seed):
            acc.setdefault(r["case_id"], []).append(float(r["dice"]))
    return {c: float(np.mean(v)) for c, v in acc.items()}


def summarise(rows) -> dict:
    """Per (prompt, model): per-seed mean Dice, mean ± sd over seeds, median over (seed, slice); per prompt: paired
    adapted - zero-shot per seed, and over slices with the adapted Dice averaged over seeds."""
    from scarceseg.metrics.stats import paired_comparison

    table, paired = [], {}
    seeds = sorted({int(r["seed"]) for r in rows})
    for prompt in sorted({r["prompt"] for r in rows}):
        for model in MODELS:
            per_seed = [_mean(rows, prompt, model, s) for s in seeds]
            vals = [float(r["dice"]) for r in rows if r["prompt"] == prompt and r["model"] == model]
            secs = [float(r["seconds"]) for r in rows if r["prompt"] == prompt and r["model"] == model]
            table.append({"prompt": prompt, "model": model, "seeds": seeds, "per_seed": per_seed,
                          "mean": float(np.mean(per_seed)), "sd": float(np.std(per_seed, ddof=1)) if len(seeds) > 1
                          else 0.0, "median": float(np.median(vals)), "n_slices": len(vals) // max(len(seeds), 1),
                          "seconds_per_slice": float(np.mean(secs))})
        comp = {}
        for s in [*seeds, None]:
            a, z = _by_slice(rows, prompt, "adapted", s), _by_slice(rows, prompt, "zero-shot", s)
            common = sorted(a.keys() & z.keys())
            comp["over_seeds" if s is None else f"seed{s}"] = paired_comparison(
                [a[c] for c in common], [z[c] for c in common], n_boot=2000)
        paired[prompt] = comp
    return {"table": table, "paired_adapted_minus_zero_shot": paired}


def format_table(summary: dict) -> str:
    """A plain-text table of :func:`summarise`'s output (with the timings, when present)."""
    lines = ["prompt  model      mean Dice ± sd over seeds (per seed)          median  s/slice"]
    for t in summary["table"]:
        per = ", ".join(f"{v:.3f}" for v in t["per_seed"])
        lines.append(f"{t['prompt']:<7} {t['model']:<10} {t['mean']:.3f} ± {t['sd']:.3f} ({per})".ljust(65)
                     + f" {t['median']:.3f}  {t['seconds_per_slice']:.2f}")
    for prompt, comp in summary["paired_adapted_minus_zero_shot"].items():
        for key, c in comp.items():
            what = "slices, adapted averaged over seeds" if key == "over_seeds" else f"slices, {key}"
            lines.append(f"{prompt}: adapted - zero-shot over {c['n']} {what}: {c['mean_diff']:+.3f} "
                         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}], median {c['median_diff']:+.3f}, "
                         f"Wilcoxon p = {c['p_wilcoxon']:.2g}")
    for t in summary.get("timings", {}).get("seeds", []):
        lines.append(f"seed {t['seed']}: adapted in {t['adapt_seconds']:.0f} s (encoding "
                     f"{t['encode_train_seconds']:.0f} s), tested in {t['test_seconds']:.0f} s")
    return "\n".join(lines)


def plot_pairs(rows, path: Path, prompts) -> None:
    """Per-slice Dice, zero-shot (x) against adapted (y), one marker per seed; one panel per prompt."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from scarceseg.bench.interactive_bench import PALETTE

    fig = Figure(figsize=(4.2 * len(prompts), 4.2), dpi=120)
    FigureCanvasAgg(fig)
    seeds = sorted({int(r["seed"]) for r in rows})
    for k, prompt in enumerate(prompts):
        ax = fig.add_subplot(1, len(prompts), k + 1)
        ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--")
        for i, s in enumerate(seeds):
            a, z = _by_slice(rows, prompt, "adapted", s), _by_slice(rows, prompt, "zero-shot", s)
            common = sorted(a.keys() & z.keys())
            ax.scatter([z[c] for c in common], [a[c] for c in common], s=14, alpha=0.7, marker="os^vD"[i % 5],
                       color=PALETTE[i % len(PALETTE)], label=f"seed {s}")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("Dice, zero-shot prior")
        ax.set_ylabel("Dice, adapted decoder")
        ax.set_title(f"{prompt} prompt, one point per slice and seed", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path))
