"""Paper 002's experiments on our data: click-to-correct refinement, every method with the same robot user.

2D (BRATS 2015 FLAIR whole tumour, the default; LGG-layout folders work too), data from
:mod:`scarceseg.bench.itermrl_data`:

1. Cases are split like paper 002 §4.1: D_train1 trains the initial method (a weak U-Net:
   :class:`scarceseg.methods.unet_baseline.UNetBaseline`, fair recipe, few epochs, on slices resized to half
   size to fit the CPU budget), D_train2 trains the refiners on the initial method's outputs, D_test is only
   evaluated. BRATS: four volumes split by case one / two / one (seeded), training and testing on axial
   slices; LGG: patients split in three. A third start, ``corrupt`` (:func:`corrupted_init`: the truth
   grown/shrunk, a bite taken out, a false blob added, blurred; Dice ~0.75), stands in for a decent
   automatic method like the paper's V-Net (77 Dice); the refiners train on D_train2 with both the U-Net's
   and the corrupted starts (and all-background in a share of the episodes).
2. Refiners: IteR-MRL (:mod:`scarceseg.methods.iter_mrl`, ``IterMRLConfig.cpu()``), Min-Cut, R-Net-style
   and InterCNN (:mod:`scarceseg.methods.interactive_baselines`).
3. Table 2: Dice at steps 0..5 (5 paper-robot clicks per step) from each initial method
   (all-background, weak U-Net, corrupted truth). Table 6: IteR-MRL from the corrupted truth with good /
   no (noise hint maps, as the paper) / random interaction.
   NoC@85 / NoC@90: one NoC-robot click at a time, at most 20. Latency: median milliseconds per refinement
   step (hint maps + forward pass, robot excluded) over all Table 2 steps, and over >= 50 steps on test
   slices resized to 256x256, every method in the same run.

3D (``data3d``: LA 2018 HDF5 volumes or BRATS, optional): one crop per volume around the target resized to
``(32, 64, 64)``, a seeded case split (3/8 of the volumes for testing), IteR-MRL and Min-Cut from
all-background and corrupted starts; and the latency of one step on a 128^3 volume.

Outputs: ``results.json``, ``report.md``, ``curves.png`` (Dice vs step), the models under ``models/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scarceseg.bench.itermrl_data import corrupted_init, crops_3d, slices_2d
from scarceseg.interactive.clicks import NoCRobot, PaperRobot, RandomRobot
from scarceseg.interactive.refiners import IdentityRefiner, MinCutRefiner, zscore
from scarceseg.interactive.session import InteractiveSession
from scarceseg.metrics import dice


@dataclass
class ItermrlBudget:
    """Sizes and budgets of a benchmark run (defaults: ~40 CPU minutes on two shared cores)."""

    n_train1: int = 24  # slices for the initial U-Net (D_train1)
    unet_epochs: int = 40
    unet_scale: float = 0.5  # the U-Net sees slices resized by this (4x cheaper at 0.5); outputs resized back
    n_train2: int = 80  # slices for the refiners (D_train2)
    n_test: int = 30  # slices evaluated (D_test)
    itermrl_iterations: int = 600
    baseline_iterations: int = 200
    steps: int = 5  # paper 002 Table 2: steps 0..5
    noc_max: int = 20  # NoC: at most 20 clicks
    noc_cases: int = 10  # NoC is run on the first N test slices
    latency_steps: int = 50  # refinement steps timed per method on 256x256 slices
    do_3d: bool = True
    iterations_3d: int = 60
    baseline_iterations_3d: int = 60  # R-Net-style and InterCNN in 3D (same number of updates as IteR-MRL)
    crop_3d: tuple[int, int, int] = (32, 64, 64)  # 3D crops around the target are resized to this
    latency_3d_repeats: int = 5  # IteR-MRL / Min-Cut steps timed on a 128^3 volume
    seed: int = 0


# ---- data ---------------------------------------------------------------------------------------------
def _case(case_id: str, image: np.ndarray, target: np.ndarray | None = None, init: np.ndarray | None = None):
    """A one-channel :class:`~scarceseg.io.case.Case` of arrays (unit spacing), ``init`` in ``meta``."""
    from scarceseg.io.case import Case

    meta = {} if init is None else {"init": init}
    return Case(image=image[None], spacing=(1.0,) * image.ndim, case_id=case_id, label=target, meta=meta)


def _train(name: str, items: list, budget, seed: int, progress: bool = False, config: dict | None = None):
    """``registry.get(name)(config)`` fitted on ``items`` ``[(case_id, image, target, init)]``; (method, history)."""
    from scarceseg.methods import registry

    method = registry.get(name)(config or {})
    history = method.fit([_case(*item) for item in items], budget, progress=progress, seed=seed)
    return method, history


def _unet_at_scale(unet, image: np.ndarray, scale: float) -> np.ndarray:
    """The registered U-Net's probability of ``image``, predicted at ``scale`` and resized back."""
    from scipy import ndimage

    if scale == 1.0:
        return unet.predict(_case("", image)).prob
    small = ndimage.zoom(image, scale, order=1)
    prob = unet.predict(_case("", small)).prob
    return np.clip(ndimage.zoom(prob, np.divide(image.shape, prob.shape), order=1), 0, 1).astype(np.float32)


# ---- evaluation ---------------------------------------------------------------------------------------
class NoisyHintRefiner:
    """Paper 002 Table 6 "without interaction": IteR-MRL whose hint maps are uniform noise (clicks ignored)."""

    name = "itermrl-noise"

    def __init__(self, model, rng: np.random.Generator) -> None:
        self.model, self.rng = model, rng

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        noise = self.rng.random((2, *np.shape(image))).astype(np.float32)
        return self.model.step(zscore(image), prob, noise)


def _no_clicks(pred, target, step=1) -> list:
    return []


def run_sequence(refiner, image, target, init, robot, steps: int) -> tuple[list[float], list]:
    """Dice after 0..steps rounds of robot clicks, and the seconds each refinement took."""
    session = InteractiveSession(image, init, refiner)
    dices = [dice(session.mask, target)]
    for t in range(1, steps + 1):
        session.apply_step(robot(session.mask, target, step=t))
        dices.append(dice(session.mask, target))
    return dices, [s["seconds"] for s in session.history()[1:]]


def run_noc(refiner, image, target, init, max_clicks: int, thresholds=(0.85, 0.90)) -> dict:
    """Clicks (one at a time, NoC robot) until Dice >= each threshold; ``max_clicks`` when never reached."""
    session = InteractiveSession(image, init, refiner)
    robot = NoCRobot()
    d = dice(session.mask, target)
    reached = {th: (0 if d >= th else None) for th in thresholds}
    curve = [d]
    for k in range(1, max_clicks + 1):
        if all(v is not None for v in reached.values()):
            break
        clicks = robot(session.mask, target, step=k)
        if not clicks:
            break
        session.apply_step(clicks)
        d = dice(session.mask, target)
        curve.append(d)
        for th in thresholds:
            if reached[th] is None and d >= th:
                reached[th] = k
    return {f"noc{int(round(th * 100))}": (v if v is not None else max_clicks) for th, v in reached.items()} | {
        "curve": curve}


def _latency_256(methods: dict, tests: list, inits: list, budget: ItermrlBudget, seed: int) -> dict:
    """Median milliseconds per step (hint maps + forward pass / graph cut) on test slices resized to 256x256,
    ``budget.steps`` steps from the corrupted start on enough slices for >= ``budget.latency_steps`` steps."""
    from scipy import ndimage

    n_slices = int(np.ceil(budget.latency_steps / budget.steps))
    out = {}
    for mname, ref in methods.items():
        if mname == "initial":
            continue
        secs = []
        for i in range(n_slices):
            _, img, tgt = tests[i % len(tests)]
            zoom = np.divide((256, 256), img.shape)
            img256 = ndimage.zoom(img, zoom, order=1)
            tgt256 = ndimage.zoom(tgt.astype(np.float32), zoom, order=1) > 0.5
            init256 = np.clip(ndimage.zoom(inits[i % len(tests)], zoom, order=1), 0, 1)
            secs += run_sequence(ref, img256, tgt256, init256, PaperRobot(seed=seed * 10007 + i), budget.steps)[1]
        out[mname] = {"median_ms": 1000 * float(np.median(secs)), "n": len(secs)}
    return out


def _evaluate(methods: dict, tests: list, inits: dict, budget: ItermrlBudget, seed: int, echo, progress) -> dict:
    from scarceseg.progress import track

    res: dict = {"table2": {}, "latency": {}, "noc": {}, "table6": {}}
    for init_name, init_probs in inits.items():
        res["table2"][init_name] = {}
        for mname, ref in methods.items():
            curves, secs = [], []
            for i, (_, img, tgt) in enumerate(track(tests, description=f"{init_name}/{mname}", enabled=progress)):
                d, s = run_sequence(ref, img, tgt, init_probs[i], PaperRobot(seed=seed * 10007 + i), budget.steps)
                curves.append(d)
                secs += s
            mean = np.mean(curves, axis=0)
            res["table2"][init_name][mname] = {"mean": mean.tolist(), "per_case": curves}
            res["latency"].setdefault(mname, []).extend(secs)
            echo(f"  {init_name:>4} {mname:>9}: " + " ".join(f"{100 * v:6.2f}" for v in mean))
    res["latency"] = {m: {"median_ms": 1000 * float(np.median(v)), "n": len(v)} for m, v in res["latency"].items()}
    res["latency_256"] = _latency_256(methods, tests, inits["corrupt"], budget, seed)
    echo("  latency on 256x256: " + ", ".join(f"{m} {r['median_ms']:.1f} ms" for m, r in res["latency_256"].items()))
    # Table 6 (IteR-MRL, from the corrupted truth, ~0.75 Dice like the paper's start): good / no / bad interaction
    ref, init_probs = methods["itermrl"], inits["corrupt"]
    for mode in ("good", "none", "random"):
        curves = []
        for i, (_, img, tgt) in enumerate(tests):
            robot = RandomRobot(seed=seed * 10007 + i) if mode == "random" else PaperRobot(seed=seed * 10007 + i)
            r = ref
            if mode == "none":  # paper 002 §4.3: "always fill the hint maps with random noise"
                r, robot = NoisyHintRefiner(ref, np.random.default_rng(seed * 10007 + i)), _no_clicks
            curves.append(run_sequence(r, img, tgt, init_probs[i], robot, budget.steps)[0])
        res["table6"][mode] = np.mean(curves, axis=0).tolist()
    # NoC
    for init_name, init_probs in inits.items():
        res["noc"][init_name] = {}
        for mname, ref in methods.items():
            if mname == "initial":
                continue
            rows = [run_noc(ref, img, tgt, init_probs[i], budget.noc_max)
                    for i, (_, img, tgt) in enumerate(tests[: budget.noc_cases])]
            res["noc"][init_name][mname] = {k: float(np.mean([r[k] for r in rows])) for k in ("noc85", "noc90")}
            echo(f"  NoC {init_name:>4} {mname:>9}: @85 {res['noc'][init_name][mname]['noc85']:.2f}"
                 f"  @90 {res['noc'][init_name][mname]['noc90']:.2f}")
    return res


# ---- 3D -----------------------------------------------------------------------------------------------
def _run_3d(data3d: Path, out: Path, budget: ItermrlBudget, echo) -> dict:
    """3D: crops around the target (bounding box + 8 voxels, resized to ``budget.crop_3d``); a seeded case split
    (3/8 of the volumes, at least one, for testing); IteR-MRL, Min-Cut, R-Net-style and InterCNN from
    all-background and corrupted starts; the latency of one IteR-MRL step on a 128^3 volume."""
    from scarceseg.interactive.clicks import Click
    from scarceseg.methods.contract import Budget
    from scarceseg.methods.interactive_baselines import BaselineConfig
    from scarceseg.methods.iter_mrl import IterMRLConfig

    crops = crops_3d(data3d, size=tuple(budget.crop_3d))
    order = np.random.default_rng(budget.seed).permutation(len(crops))
    n_test = max(1, int(np.ceil(0.375 * len(crops))))
    test = [crops[i] for i in sorted(order[:n_test])]
    train = [crops[i] for i in sorted(order[n_test:])]
    crng = np.random.default_rng(budget.seed + 2)
    items = [(cid, img, tgt, corrupted_init(tgt, crng)) for cid, img, tgt in train for _ in (0, 1)]
    cfg = IterMRLConfig.cpu(dims=3)
    echo(f"  3D IteR-MRL: {len(train)} training crops, {budget.iterations_3d} updates of {cfg.batch_size} crops "
         f"{cfg.crop}")
    method, h = _train("itermrl", items, Budget(steps=budget.iterations_3d), budget.seed)
    method.save(out / "models" / "itermrl_3d")
    model = method.model
    refiners = {"initial": IdentityRefiner(), "mincut": MinCutRefiner(), "itermrl": model}
    seconds = {"itermrl": h["seconds"]}
    for kind in ("rnet", "intercnn"):  # the supervised baselines on the same 3D crops and budget
        bcfg = BaselineConfig.for_dims(kind, dims=3)
        echo(f"  3D {kind}: {budget.baseline_iterations_3d} updates of {bcfg.batch_size} crops {bcfg.crop}")
        method, h = _train(kind, items, Budget(steps=budget.baseline_iterations_3d), budget.seed)
        refiners[kind], seconds[kind] = method.model, h["seconds"]
    res: dict = {"data": str(data3d), "train": [c[0] for c in train], "test": [c[0] for c in test],
                 "train_seconds": seconds, "crop_size": list(test[0][1].shape), "table2": {}}
    inits = {"bg": [np.zeros(img.shape, np.float32) for _, img, _ in test],
             "corrupt": [corrupted_init(tgt, crng) for _, _, tgt in test]}
    for init_name, probs in inits.items():
        res["table2"][init_name] = {}
        for mname, ref in refiners.items():
            curves = [run_sequence(ref, img, tgt, probs[i], PaperRobot(seed=budget.seed * 10007 + i), budget.steps)
                      for i, (_, img, tgt) in enumerate(test)]
            res["table2"][init_name][mname] = {
                "mean": np.mean([c[0] for c in curves], axis=0).tolist(),
                "median_ms": 1000 * float(np.median([s for c in curves for s in c[1]]))}
            echo(f"  3D {init_name:>7} {mname:>9}: "
                 + " ".join(f"{100 * v:6.2f}" for v in res["table2"][init_name][mname]["mean"]))
    # latency of one IteR-MRL step on a 128^3 volume (hints + forward pass) against Min-Cut's
    vol = np.random.default_rng(0).normal(size=(128, 128, 128)).astype(np.float32)
    prob = np.zeros(vol.shape, np.float32)
    prob[40:90, 40:90, 40:90] = 0.8
    clicks = [Click((64, 64, 64), True), Click((20, 30, 40), False), Click((100, 64, 30), True)]
    for mname, ref in (("itermrl", model), ("mincut", MinCutRefiner())):
        times = []
        for _ in range(budget.latency_3d_repeats):
            t0 = time.perf_counter()
            ref.refine(vol, prob, clicks, init=prob)
            times.append(time.perf_counter() - t0)
        res[f"latency_128cubed_ms_{mname}"] = 1000 * float(np.median(times))
        echo(f"  3D latency, 128^3 volume, {mname}: {res[f'latency_128cubed_ms_{mname}']:.0f} ms per step "
             f"(median of {len(times)})")
    return res


# ---- report -------------------------------------------------------------------------------------------
def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inits = list(res["table2"])
    fig, axes = plt.subplots(1, len(inits), figsize=(5 * len(inits), 4), squeeze=False)
    for ax, init in zip(axes[0], inits, strict=True):
        for mname, row in res["table2"][init].items():
            ax.plot(range(len(row["mean"])), 100 * np.asarray(row["mean"]), marker="o", label=mname)
        ax.set_xlabel("step (5 clicks each)")
        ax.set_ylabel("mean Dice (%)")
        ax.set_title(f"initial: {init}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _report(res: dict, path: Path) -> None:
    lines = ["# IteR-MRL benchmark (paper 002)", "", f"Command: `{res['command']}`", "",
             f"Data: {res['data']}; D_train1/D_train2/D_test slices: {res['sizes']}; seed {res['seed']}.", "",
             f"Budget: {json.dumps(res['budget'])}", "", f"Training seconds: {json.dumps(res['train_seconds'])}", ""]
    for init, rows in res["table2"].items():
        n = len(next(iter(rows.values()))["mean"])
        lines += [f"## Table 2 — Dice (%) per step, initial = {init}", "",
                  "| method | " + " | ".join(f"step {t} ({5 * t} clicks)" for t in range(n)) + " |",
                  "|---" * (1 + n) + "|"]
        for m, r in rows.items():
            lines.append(f"| {m} | " + " | ".join(f"{100 * v:.2f}" for v in r["mean"]) + " |")
        lines.append("")
    n = len(res["table6"]["good"])
    lines += ["## Table 6 — IteR-MRL, initial = corrupt", "",
              "| interaction | " + " | ".join(f"step {t}" for t in range(n)) + " |", "|---" * (1 + n) + "|"]
    for mode, row in res["table6"].items():
        lines.append(f"| {mode} | " + " | ".join(f"{100 * v:.2f}" for v in row) + " |")
    lines += ["", f"## NoC (NoC robot, max {res['budget']['noc_max']} clicks, first {res['budget']['noc_cases']} "
              "test slices)", "", "| initial | method | NoC@85 | NoC@90 |", "|---|---|---|---|"]
    for init, rows in res["noc"].items():
        for m, r in rows.items():
            lines.append(f"| {init} | {m} | {r['noc85']:.2f} | {r['noc90']:.2f} |")
    lines += ["", "## Latency per step (hint maps + forward pass / graph cut; median ms)", "",
              "| method | test slices (Table 2 steps) | steps | 256x256 slices | steps |", "|---|---|---|---|---|"]
    for m, r in res["latency"].items():
        r256 = res.get("latency_256", {}).get(m)
        tail = f"{r256['median_ms']:.1f} | {r256['n']}" if r256 else "— | —"
        lines.append(f"| {m} | {r['median_ms']:.1f} | {r['n']} | {tail} |")
    if "3d" in res:
        r3 = res["3d"]
        seconds = {k: round(v) for k, v in r3["train_seconds"].items()}
        lines += ["", f"## 3D — crops around the target {r3['crop_size']} ({r3['data']})", "",
                  f"train volumes {r3['train']}, test volumes {r3['test']}, training seconds {json.dumps(seconds)}"]
        for init, rows in r3["table2"].items():
            n = len(rows["itermrl"]["mean"])
            lines += ["", f"initial = {init}", "", "| method | " + " | ".join(f"step {t}" for t in range(n))
                      + " | ms/step |", "|---" * (2 + n) + "|"]
            for m, r in rows.items():
                lines.append(f"| {m} | " + " | ".join(f"{100 * v:.2f}" for v in r["mean"])
                             + f" | {r['median_ms']:.0f} |")
        lines += ["", "One step on a 128^3 volume (hint maps + forward pass / graph cut): "
                  + ", ".join(f"{m} {r3[f'latency_128cubed_ms_{m}']:.0f} ms" for m in ("itermrl", "mincut")
                              if f"latency_128cubed_ms_{m}" in r3)]
    lines += ["", "![Dice vs step](curves.png)", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def run_itermrl_bench(data: str | Path, out: str | Path, budget: ItermrlBudget | None = None,
                      data3d: str | Path | None = None, echo: Callable[[str], None] = print,
                      progress: bool = False, command: str = "") -> dict:
    """Train the initial U-Net and the refiners, evaluate every method, write ``OUT/report.md``.

    Parameters
    ----------
    data : str or Path
        LGG-layout folder (or a BRATS folder, sliced).
    out : str or Path
    budget : ItermrlBudget, optional
    data3d : str or Path, optional
        BRATS folder for the 3D part (skipped when None or ``budget.do_3d`` is False).
    echo, progress, command

    Returns
    -------
    dict
        Everything written to ``results.json``.
    """
    from scarceseg.methods.contract import Budget
    from scarceseg.methods.iter_mrl import IterMRLConfig

    budget = budget or ItermrlBudget()
    seed = budget.seed
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    echo(f"data {data}: patient split D_train1 / D_train2 / D_test")
    parts = slices_2d(Path(data), seed, {"train1": budget.n_train1, "train2": budget.n_train2,
                                         "test": budget.n_test}, echo)
    train_s: dict = {}

    from scipy import ndimage

    sc = budget.unet_scale
    echo(f"initial method: weak U-Net (fair recipe, {budget.unet_epochs} epochs on {len(parts['train1'])} slices"
         f" resized by {sc})")
    t0 = time.perf_counter()
    small = [(cid, ndimage.zoom(im, sc, order=1), ndimage.zoom(t.astype(np.float32), sc, order=1) > 0.5, None)
             for cid, im, t in parts["train1"]]
    unet, _ = _train("unet", small, Budget(epochs=budget.unet_epochs), seed, progress,
                     {"preset": "fair", "channels": "all"})
    train_s["unet"] = time.perf_counter() - t0
    unet.save(out / "models" / "unet")

    def init_of(items):
        return [_unet_at_scale(unet, im, sc) for _, im, _ in items]

    init_train2, init_test = init_of(parts["train2"]), init_of(parts["test"])
    crng = np.random.default_rng(seed + 1)
    corrupt_train2 = [corrupted_init(t, crng) for _, _, t in parts["train2"]]
    corrupt_test = [corrupted_init(t, crng) for _, _, t in parts["test"]]
    items = [(cid, im, t, p) for (cid, im, t), p in zip(parts["train2"], init_train2, strict=True)]
    items += [(cid, im, t, p) for (cid, im, t), p in zip(parts["train2"], corrupt_train2, strict=True)]
    d2 = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(init_train2, parts["train2"], strict=True)])
    dt = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(init_test, parts["test"], strict=True)])
    dc = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(corrupt_test, parts["test"], strict=True)])
    echo(f"  U-Net Dice on D_train2 {d2:.3f}, on D_test {dt:.3f}; corrupted truth on D_test {dc:.3f}")

    cfg = IterMRLConfig.cpu()
    echo(f"training IteR-MRL (A2C, {budget.itermrl_iterations} updates of {cfg.batch_size} crops {cfg.crop})")
    itermrl, h = _train("itermrl", items, Budget(steps=budget.itermrl_iterations), seed, progress)
    train_s["itermrl"] = h["seconds"]
    itermrl.save(out / "models" / "itermrl")
    (out / "models" / "itermrl" / "history.json").write_text(json.dumps(h) + "\n", encoding="utf-8")
    methods = {"initial": IdentityRefiner(), "mincut": MinCutRefiner(), "itermrl": itermrl.model}
    for kind in ("rnet", "intercnn"):
        echo(f"training {kind} ({budget.baseline_iterations} updates)")
        model, h = _train(kind, items, Budget(steps=budget.baseline_iterations), seed, progress)
        train_s[kind] = h["seconds"]
        model.save(out / "models" / kind)
        methods[kind] = model.model

    echo("evaluating on D_test (Dice % at steps 0..5)")
    inits = {"bg": [np.zeros(im.shape, np.float32) for _, im, _ in parts["test"]], "unet": init_test,
             "corrupt": corrupt_test}
    res = _evaluate(methods, parts["test"], inits, budget, seed, echo, progress)
    res.update(command=command, data=str(data), seed=seed, budget=asdict(budget), train_seconds=train_s,
               sizes={k: len(v) for k, v in parts.items()}, test_ids=[c for c, _, _ in parts["test"]])
    if budget.do_3d and data3d is not None and Path(data3d).is_dir():
        echo(f"3D: crops around the target ({data3d})")
        res["3d"] = _run_3d(Path(data3d), out, budget, echo)
    res["total_seconds"] = time.perf_counter() - t_all
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    _plot(res, out / "curves.png")
    _report(res, out / "report.md")
    echo(f"wrote {out / 'report.md'} ({res['total_seconds'] / 60:.1f} min)")
    return res
