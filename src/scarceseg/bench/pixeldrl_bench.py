"""Paper 004's experiments on LGG slices: Table 2 (full training set), Table 4 (50- and 100-shot), Fig. 7 (Dice
vs steps), Fig. 4 (action maps), and Table 6 (k-fold cross-validation) — on a CPU budget.

Every method gets the same budget of **process CPU seconds** (``time.process_time``) per training, with torch
limited to ``threads`` threads (1 by default), so that methods are compared on the same compute whatever the
load of the machine; the PixelRL refiner gets ``refine_fraction`` of a budget on top of the U-Net it refines
(its training-time column shows the sum). All methods see the same prepared grid (percentile-normalised
channels, area-resized to ``size``) and are scored at the slices' own 256x256 resolution (logits upsampled
bilinearly), with :func:`scarceseg.metrics.compute_all` per slice, averaged over test slices.

Writes ``OUT/table.csv``, ``OUT/per_case.csv``, ``OUT/dice_vs_steps.csv`` + ``.png``, ``OUT/action_maps_*.png``,
``OUT/report.md`` (rewritten after every setting, so an interrupted run still reports what it finished).

PixelDRL-MG is the registered method ``registry.get("pixeldrl")`` (preset cpu), trained by ``fit(cases, Budget)``
on the raw training slices (it prepares them as above) and saved by ``save``; the test slices are scored by its
agents on the prepared grid in one batch (``method.model.predict_prepared``), which returns the mask of every step
for Fig. 7. The U-Net, Attention U-Net and PixelRL refiner are this bench's baselines
(:mod:`scarceseg.methods.pixeldrl_baselines`), trained on the prepared arrays; they are not registered methods.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from scarceseg.metrics import compute_all, dice

METRICS = (("dice", "DICE"), ("ppv", "PPV"), ("sensitivity", "SEN"), ("iou", "IoU"), ("boundary_iou", "BIoU"),
           ("hd95", "HD95"))
METHODS = ("PixelDRL-MG", "U-Net", "Attention U-Net", "PixelRL-U-Net")


@dataclass
class PixelDRLBudget:
    """What the bench runs; CPU seconds are process CPU seconds with ``threads`` torch threads."""

    full_s: float = 480.0
    shot_s: float = 150.0
    shots: tuple[int, ...] = (50, 100)
    refine_fraction: float = 0.5
    size: int = 128
    threads: int = 1
    seed: int = 0
    eval_steps: int = 10  # Fig. 7: Dice after each of 1..10 greedy steps
    n_timing: int = 20  # slices timed one at a time
    n_action_maps: int = 3
    channels: str = "all"
    methods: tuple[str, ...] = field(default=METHODS)


def _masks_metrics(preds: Sequence[np.ndarray], truth: Sequence[np.ndarray]) -> list[dict]:
    import warnings

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p, t in zip(preds, truth, strict=True):
            rows.append(compute_all(p, t))
    return rows


def _mean(rows: list[dict], key: str) -> float:
    vals = np.asarray([r[key] for r in rows], dtype=float)
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def _time_per_slice(fn: Callable[[np.ndarray], object], x: np.ndarray, n: int) -> float:
    """Median wall milliseconds of ``fn`` on single prepared slices (after one warm-up call)."""
    fn(x[:1])
    times = []
    for i in range(min(n, len(x))):
        t = time.perf_counter()
        fn(x[i : i + 1])
        times.append((time.perf_counter() - t) * 1000.0)
    return float(np.median(times))


def train_pixeldrl(cases: Sequence, budget_s: float, seed: int, channels: str = "all"):
    """``registry.get("pixeldrl")`` (preset cpu, ``channels``) fitted on ``cases`` within ``budget_s`` process CPU
    seconds; returns (method, history)."""
    from scarceseg.methods import registry
    from scarceseg.methods.contract import Budget

    method = registry.get("pixeldrl")({"preset": "cpu", "channels": channels})
    return method, method.fit(cases, Budget(cpu_seconds=budget_s), seed=seed)


def run_setting(name: str, x: np.ndarray, g: np.ndarray, xt: np.ndarray, truth: list[np.ndarray],
                budget_s: float, b: PixelDRLBudget, echo: Callable[[str], None] = print,
                load_cases: Callable[[], list] | None = None) -> dict:
    """Train and evaluate every method on one training set; returns rows, per-case values and extras.

    ``x``, ``g``: the prepared training set of the baselines; ``load_cases()``: the same slices as raw cases, for
    the registered PixelDRL-MG (which prepares them itself).
    """
    from scarceseg.methods.pixeldrl_baselines import PixelRLRefiner, predict_probability, train_supervised
    from scarceseg.nets.pixeldrl_net import count_parameters

    out_size = truth[0].shape
    rows, per_case, extra = [], {}, {}
    if "PixelDRL-MG" in b.methods:
        if load_cases is None:
            raise ValueError("PixelDRL-MG trains on the raw cases: give load_cases")
        method, hist = train_pixeldrl(load_cases(), budget_s, b.seed, b.channels)
        model = method.model
        steps = model.predict_prepared(xt, t_max=max(b.eval_steps, model.config.t_max), out_size=out_size)
        pred = steps[model.config.t_max - 1]
        extra["dice_vs_steps"] = [float(np.mean([dice(s[i], truth[i]) for i in range(len(truth))])) for s in steps]
        extra["pixeldrl_model"] = method
        ms = _time_per_slice(lambda v: model.predict_prepared(v, out_size=out_size), xt, b.n_timing)
        per_case["PixelDRL-MG"] = _masks_metrics(list(pred), truth)
        rows.append(_row("PixelDRL-MG", per_case["PixelDRL-MG"], model.n_parameters, hist["cpu_seconds"],
                         hist["steps"], ms, f"{hist['warm_steps']} warm + {hist['steps'] - hist['warm_steps']} PA3C"))
        echo(f"[{name}] PixelDRL-MG Dice {rows[-1]['DICE']:.4f} ({hist['steps']} steps)")
    unet = None
    for method, key in (("U-Net", "unet"), ("Attention U-Net", "attention_unet")):
        if method not in b.methods and not (key == "unet" and "PixelRL-U-Net" in b.methods):
            continue
        net, hist = train_supervised(key, x, g, seed=b.seed, budget_s=budget_s)
        prob = predict_probability(net, xt, out_size=out_size)
        ms = _time_per_slice(lambda v, n=net: predict_probability(n, v, out_size=out_size), xt, b.n_timing)
        per_case[method] = _masks_metrics(list(prob > 0.5), truth)
        rows.append(_row(method, per_case[method], count_parameters(net), hist["cpu_seconds"], hist["steps"], ms,
                         "supervised, Dice + BCE"))
        echo(f"[{name}] {method} Dice {rows[-1]['DICE']:.4f} ({hist['steps']} steps)")
        if key == "unet":
            unet = (net, hist, ms)
    if "PixelRL-U-Net" in b.methods and unet is not None:
        net, uhist, ums = unet
        refiner = PixelRLRefiner()
        rhist = refiner.fit(x, predict_probability(net, x), g, seed=b.seed, budget_s=budget_s * b.refine_fraction)
        coarse_t = predict_probability(net, xt)
        prob = refiner.refine(xt, coarse_t, out_size=out_size)
        ms = _time_per_slice(lambda v: refiner.refine(v, predict_probability(net, v), out_size=out_size), xt,
                             b.n_timing)
        per_case["PixelRL-U-Net"] = _masks_metrics(list(prob > 0.5), truth)
        rows.append(_row("PixelRL-U-Net", per_case["PixelRL-U-Net"],
                         count_parameters(net) + count_parameters(refiner.net),
                         uhist["cpu_seconds"] + rhist["cpu_seconds"], rhist["steps"], ms,
                         "U-Net above + A2C refiner, actions ±0.1/0.2/0.4/1.0"))
        echo(f"[{name}] PixelRL-U-Net Dice {rows[-1]['DICE']:.4f} ({rhist['steps']} refiner steps)")
    for r in rows:
        r["setting"] = name
        r["n_train"] = len(x)
    return {"rows": rows, "per_case": per_case, **extra}


def _row(method: str, per_case: list[dict], params: int, cpu_s: float, steps: int, ms: float, note: str) -> dict:
    row = {"method": method}
    for key, label in METRICS:
        row[label] = _mean(per_case, key)
    row.update({"params": int(params), "train_cpu_s": float(cpu_s), "steps": int(steps), "infer_ms": float(ms),
                "note": note})
    return row


def _fmt_table(rows: list[dict]) -> str:
    head = ("| setting | method | n train | " + " | ".join(label for _, label in METRICS)
            + " | params | train CPU s | updates | inference ms/slice |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        vals = " | ".join(f"{r[label]:.4f}" if label != "HD95" else f"{r[label]:.2f}" for _, label in METRICS)
        lines.append(f"| {r['setting']} | {r['method']} | {r['n_train']} | {vals} | {r['params'] / 1e6:.3f}M | "
                     f"{r['train_cpu_s']:.0f} | {r['steps']} | {r['infer_ms']:.1f} |")
    return "\n".join(lines)


def save_action_map_figure(image: np.ndarray, truth: np.ndarray, steps: np.ndarray, path: str | Path) -> Path:
    """Fig. 4-style figure: row 1 the action map of every step (red = changed), row 2 the mask over the image."""
    from PIL import Image

    from scarceseg.figures.overlays import overlay_rgb
    from scarceseg.methods.pixeldrl_data import action_map_rgb

    maps = action_map_rgb(steps)
    overlays = [overlay_rgb(image, truth, s) for s in steps]
    gap = np.full((maps.shape[1], 3, 3), 255, dtype=np.uint8)
    row1 = np.concatenate([c for m in maps for c in (m, gap)][:-1], axis=1)
    row2 = np.concatenate([c for o in overlays for c in (o.astype(np.uint8), gap)][:-1], axis=1)
    sheet = np.concatenate([row1, np.full((3, row1.shape[1], 3), 255, np.uint8), row2], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path


def _dice_plot(curves: dict[str, list[float]], t_train: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, ys in curves.items():
        ax.plot(range(1, len(ys) + 1), ys, marker="o", label=name)
    ax.axvline(t_train, color="grey", ls=":", label=f"t_max in training ({t_train})")
    ax.set_xlabel("step t (greedy inference)")
    ax.set_ylabel("mean test Dice")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_pixeldrl_bench(data: str | Path, out: str | Path, budget: PixelDRLBudget | None = None,
                       echo: Callable[[str], None] = print, progress: bool = False, command: str = "") -> dict:
    """Full set, then each N-shot set: train and evaluate every method; write the tables, figures and report."""
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.pixeldrl_data import choose_shots, load_prepared, paper_split

    b = budget or PixelDRLBudget()
    torch.set_num_threads(b.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    ds = open_dataset(data)
    split = paper_split(ds, seed=b.seed)
    (out / "split.json").write_text(json.dumps(split, indent=1) + "\n", encoding="utf-8")
    x_tr, g_tr, _, ids_tr = load_prepared(ds, split["train"], b.size, b.channels, progress=progress)
    xt, _, truth, ids_t = load_prepared(ds, split["test"], b.size, b.channels, progress=progress)
    echo(f"train pool {len(ids_tr)} slices / test {len(ids_t)} slices ({len(set(map(ds.patient_of, ids_t)))} "
         f"patients); budget {b.full_s:.0f} CPU s (full) / {b.shot_s:.0f} CPU s (shots), {b.threads} thread(s)")
    settings = [("full", None, b.full_s)] + [(f"{n}-shot", n, b.shot_s) for n in b.shots]
    rows: list[dict] = []
    curves: dict[str, list[float]] = {}
    position = {cid: i for i, cid in enumerate(ids_tr)}
    for name, n, budget_s in settings:
        chosen = choose_shots(ds, ids_tr, n, seed=b.seed)
        idx = np.asarray([position[c] for c in chosen])
        res = run_setting(name, x_tr[idx], g_tr[idx], xt, truth, budget_s, b, echo=echo,
                          load_cases=lambda chosen=chosen: [ds.load(c) for c in chosen])
        rows += res["rows"]
        _write_per_case(out / f"per_case_{name}.csv", ids_t, res["per_case"])
        if "dice_vs_steps" in res:
            curves[f"PixelDRL-MG ({name})"] = res["dice_vs_steps"]
            method = res["pixeldrl_model"]
            if name == "full":
                _action_maps(ds, ids_t, truth, method, b, out)
                method.save(out / "pixeldrl_full_model")
                raw_ms = time_raw_predict(method, ds, ids_t[: b.n_timing])
                echo(f"PixelDRL-MG predict() on raw 256x256 slices incl. normalisation and resizing: "
                     f"median {raw_ms:.1f} ms/slice")
                (out / "raw_inference_ms.json").write_text(json.dumps({"median_ms": raw_ms}) + "\n", encoding="utf-8")
            t_train = method.model.config.t_max
        _write_outputs(out, rows, curves, b, command, time.perf_counter() - t_start, split, ds, t_train)
    return {"rows": rows, "dice_vs_steps": curves}


def time_raw_predict(method, ds, ids: Sequence[str]) -> float:
    """Median wall ms of the registered method's ``predict(case)`` on raw slices (channel choice, normalisation,
    resizing and upsampling included)."""
    cases = [ds.load(cid) for cid in ids]
    method.predict(cases[0])
    times = []
    for case in cases:
        t = time.perf_counter()
        method.predict(case)
        times.append((time.perf_counter() - t) * 1000.0)
    return float(np.median(times))


def _action_maps(ds, ids_t, truth, method, b: PixelDRLBudget, out: Path) -> None:
    """Fig. 4 sheets of ``b.n_action_maps`` test slices, through the registered method's ``predict`` with
    ``action_maps`` and ``t_max = b.eval_steps``."""
    from scarceseg.figures.overlays import window
    from scarceseg.methods.unet_baseline import select_channels

    sizes = np.asarray([t.sum() for t in truth])
    order = np.argsort(sizes)
    picks = [order[int(q * (len(order) - 1))] for q in np.linspace(0.25, 0.95, b.n_action_maps)]
    method.set_inference(action_maps=True, t_max=b.eval_steps)
    try:
        for k, i in enumerate(picks):
            case = ds.load(ids_t[i])
            steps = method.predict(case).extra["steps"]
            flair = case.channel("FLAIR") if "FLAIR" in case.channel_names else select_channels(case, b.channels)[0]
            save_action_map_figure(window(np.asarray(flair, dtype=np.float32)), truth[i], steps,
                                   out / f"action_maps_{k + 1}_{ids_t[i]}.png")
    finally:
        method.set_inference(action_maps=False, t_max=None)


def _write_per_case(path: Path, ids: list[str], per_case: dict[str, list[dict]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "method", *[k for k, _ in METRICS]])
        for method, vals in per_case.items():
            for cid, r in zip(ids, vals, strict=True):
                w.writerow([cid, method, *[f"{r[k]:.6f}" for k, _ in METRICS]])


def _write_outputs(out: Path, rows: list[dict], curves: dict, b: PixelDRLBudget, command: str, seconds: float,
                   split: dict, ds, t_train: int) -> None:
    with (out / "table.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with (out / "dice_vs_steps.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["curve", *[f"t={t}" for t in range(1, b.eval_steps + 1)]])
        for name, ys in curves.items():
            w.writerow([name, *[f"{y:.4f}" for y in ys]])
    if curves:
        _dice_plot(curves, t_train, out / "dice_vs_steps.png")
    n_pat = {k: len({ds.patient_of(c) for c in v}) for k, v in split.items()}
    curve_lines = "\n".join(f"| {name} | " + " | ".join(f"{y:.4f}" for y in ys) + " |" for name, ys in curves.items())
    text = f"""# PixelDRL-MG bench (paper 004) on {ds.root}

Command: `{command}`

Split (patients, seed {b.seed}): train {n_pat['train']} / val {n_pat['val']} / test {n_pat['test']}
({len(split['train'])} / {len(split['val'])} / {len(split['test'])} slices; only tumour-positive slices are in the
data). The validation part is not used (fixed budgets, no early stopping).

**Budget: the same {b.full_s:.0f} process CPU seconds per method on the full training set and {b.shot_s:.0f} on the
N-shot sets** (`time.process_time`, torch limited to {b.threads} thread(s)); PixelRL-U-Net adds
{b.refine_fraction:.0%} of a budget for the refiner on top of the U-Net of the same row group. Timings were taken on
2 CPU cores shared with other jobs (under load). Inference: median wall ms per slice, one prepared 3-channel
{b.size}x{b.size} slice at a time, logits upsampled to 256x256, excluding file reading and normalisation.
Metrics at 256x256 on every test slice (mean; HD95 in pixels, NaN slices (empty prediction) left out).

{_fmt_table(rows)}

## Dice vs step t (Fig. 7-style; greedy inference of the trained model, t_max in training = {t_train})

| curve | {' | '.join(f't={t}' for t in range(1, b.eval_steps + 1))} |
|---|{'---|' * b.eval_steps}
{curve_lines}

![dice vs steps](dice_vs_steps.png)

Action maps (Fig. 4-style; top: light blue background, navy keep, red = changed since the previous step;
bottom: truth vermillion / prediction blue / overlap yellow): `action_maps_*.png`.

Wall time so far: {seconds / 60:.1f} min. Settings: `{json.dumps({k: v for k, v in asdict(b).items()})}`
"""
    (out / "report.md").write_text(text, encoding="utf-8")


def run_pixeldrl_cv(data: str | Path, out: str | Path, folds: int = 5, budget_s: float = 480.0, seed: int = 0,
                    threads: int = 1, echo: Callable[[str], None] = print, progress: bool = False) -> dict:
    """k-fold cross-validation (Table 6): PixelDRL-MG and U-Net, each with ``budget_s`` CPU seconds per fold."""
    from scarceseg.datasets import kfold, open_dataset
    from scarceseg.methods.pixeldrl_baselines import predict_probability, train_supervised
    from scarceseg.methods.pixeldrl_config import PixelDRLConfig
    from scarceseg.methods.pixeldrl_data import load_prepared

    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = open_dataset(data)
    size = PixelDRLConfig.cpu().size
    results: dict[str, list[dict]] = {"PixelDRL-MG": [], "U-Net": []}
    for k, (train_ids, test_ids) in enumerate(kfold(ds, folds, seed=seed)):
        x, g, _, _ = load_prepared(ds, train_ids, size, progress=progress)
        xt, _, truth, _ = load_prepared(ds, test_ids, size, progress=progress)
        method, _ = train_pixeldrl([ds.load(c) for c in train_ids], budget_s, seed)
        pred = method.model.predict_prepared(xt, out_size=truth[0].shape)[-1]
        per = _masks_metrics(list(pred), truth)
        results["PixelDRL-MG"].append({"dice": _mean(per, "dice"), "biou": _mean(per, "boundary_iou")})
        net, _ = train_supervised("unet", x, g, seed=seed, budget_s=budget_s)
        per = _masks_metrics(list(predict_probability(net, xt, out_size=truth[0].shape) > 0.5), truth)
        results["U-Net"].append({"dice": _mean(per, "dice"), "biou": _mean(per, "boundary_iou")})
        echo(f"fold {k + 1}/{folds}: " + ", ".join(f"{m} Dice {v[-1]['dice']:.4f}" for m, v in results.items()))
    lines = ["| method | mean Dice ± SD | mean BIoU ± SD |", "|---|---|---|"]
    for m, v in results.items():
        d, bi = np.asarray([r["dice"] for r in v]), np.asarray([r["biou"] for r in v])
        lines.append(f"| {m} | {d.mean():.4f} ± {d.std(ddof=1):.4f} | {bi.mean():.4f} ± {bi.std(ddof=1):.4f} |")
    table = "\n".join(lines)
    (out / "cv.md").write_text(f"# {folds}-fold cross-validation, {budget_s:.0f} CPU s per method and fold\n\n"
                               f"{table}\n", encoding="utf-8")
    (out / "cv.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    echo(table)
    return results
