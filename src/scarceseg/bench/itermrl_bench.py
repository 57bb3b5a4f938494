"""Paper 002's experiments on our data: click-to-correct refinement, every method with the same robot user.

2D (LGG FLAIR slices, the default; BRATS volumes are sliced when ``--data`` is a BRATS folder):

1. Patients are split into three equal parts (paper 002 §4.1): D_train1 trains the initial method (a
   weak U-Net: :class:`scarceseg.methods.unet_baseline.UNetBaseline`, fair recipe, few epochs, on
   slices resized to half size to fit the CPU budget), D_train2 trains the refiners on the initial
   method's outputs, D_test is only evaluated. A third start, ``corrupt`` (:func:`corrupted_init`: the
   truth grown/shrunk, a bite taken out, a false blob added, blurred; Dice ~0.75), stands in for a
   decent automatic method like the paper's V-Net (77 Dice); the refiners train on D_train2 with both the
   U-Net's and the corrupted starts (and all-background in 30 % of the episodes).
2. Refiners: IteR-MRL (:mod:`scarceseg.methods.iter_mrl`, ``IterMRLConfig.cpu()``), Min-Cut, R-Net-style
   and InterCNN (:mod:`scarceseg.methods.interactive_baselines`).
3. Table 2: Dice at steps 0..5 (5 paper-robot clicks per step) from each initial method
   (all-background, weak U-Net, corrupted truth). Table 6: IteR-MRL from the corrupted truth with good /
   no / random interaction.
   NoC@85 / NoC@90: one NoC-robot click at a time, at most 20. Latency: median seconds per refinement
   step (hint maps + forward pass, robot excluded) over all Table 2 steps on the test slices.

3D (BRATS 2015, optional): crops around the whole tumour resized to ``(32, 64, 64)``, IteR-MRL and
Min-Cut from an all-background start, two volumes for training and two for testing; and the latency of
one IteR-MRL step on a 128^3 volume.

Outputs: ``results.json``, ``report.md``, ``curves.png`` (Dice vs step), the models under ``models/``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scarceseg.interactive.clicks import NoCRobot, PaperRobot, RandomRobot
from scarceseg.interactive.refiners import IdentityRefiner, MinCutRefiner, zscore
from scarceseg.interactive.session import InteractiveSession
from scarceseg.metrics import dice


@dataclass
class ItermrlBudget:
    """Sizes and budgets of a benchmark run (defaults: ~40 CPU minutes on two shared cores)."""

    n_train1: int = 24  # slices for the initial U-Net (D_train1)
    unet_epochs: int = 60
    unet_scale: float = 0.5  # the U-Net sees slices resized by this (4x cheaper at 0.5); outputs resized back
    n_train2: int = 80  # slices for the refiners (D_train2)
    n_test: int = 30  # slices evaluated (D_test)
    itermrl_iterations: int = 300
    baseline_iterations: int = 200
    steps: int = 5  # paper 002 Table 2: steps 0..5
    noc_max: int = 20  # NoC: at most 20 clicks
    noc_cases: int = 10  # NoC is run on the first N test slices
    do_3d: bool = True
    iterations_3d: int = 60
    seed: int = 0


# ---- data ---------------------------------------------------------------------------------------------
def _pick(ds, ids: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Up to ``n`` case ids, round-robin over patients in a random order (spreads slices over patients)."""
    by_patient: dict[str, list[str]] = {}
    for cid in ids:
        by_patient.setdefault(ds.patient_of(cid), []).append(cid)
    queues = [list(rng.permutation(v)) for _, v in sorted(by_patient.items())]
    queues = [queues[i] for i in rng.permutation(len(queues))]
    out: list[str] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(str(q.pop()))
    return out


def _slices_2d(data: Path, seed: int, budget: ItermrlBudget, echo) -> dict:
    """``{"train1"|"train2"|"test": [(case_id, flair (Y, X), target (Y, X))]}`` with a patient-level split."""
    from scarceseg.datasets import open_dataset, split_patients

    ds = open_dataset(data)
    if ds.layout == "brats":
        return _brats_slices(ds, seed, budget)
    parts = split_patients(ds, (1 / 3, 1 / 3, 1 / 3), seed=seed)
    rng = np.random.default_rng(seed)
    sizes = {"train": budget.n_train1, "val": budget.n_train2, "test": budget.n_test}
    out = {}
    for part, name in (("train", "train1"), ("val", "train2"), ("test", "test")):
        ids = _pick(ds, parts[part], sizes[part], rng)
        out[name] = [(cid, ds.load(cid).channel("FLAIR").astype(np.float32), ds.load_label(cid) > 0) for cid in ids]
        echo(f"  {name}: {len(ids)} slices of {len({ds.patient_of(c) for c in ids})} patients")
    return out


def _brats_slices(ds, seed: int, budget: ItermrlBudget) -> dict:
    """BRATS volumes split by case (1 / 2 / 1 with four volumes); axial slices with >= 100 tumour voxels."""
    ids = [ds.case_ids[i] for i in np.random.default_rng(seed).permutation(len(ds.case_ids))]
    k = max(1, len(ids) // 4)
    groups = {"train1": ids[:k], "train2": ids[k : len(ids) - k], "test": ids[len(ids) - k :]}
    sizes = {"train1": budget.n_train1, "train2": budget.n_train2, "test": budget.n_test}
    rng = np.random.default_rng(seed)
    out = {}
    for name, vols in groups.items():
        items = []
        for cid in vols:
            case = ds.load(cid)
            flair, target = case.channel("FLAIR"), case.target
            for z in np.flatnonzero(target.sum(axis=(1, 2)) >= 100):
                items.append((f"{cid}_z{z}", flair[z].astype(np.float32), target[z]))
        pick = rng.permutation(len(items))[: sizes[name]]
        out[name] = [items[i] for i in sorted(pick)]
    return out


def corrupted_init(target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A stand-in for a decent automatic method (Dice ~0.75): the truth grown or shrunk by 1-3 pixels, with a
    disc cut out at its border and a false disc added beside it, then blurred into a probability.

    Parameters
    ----------
    target : ndarray of bool, shape (Y, X)
    rng : numpy Generator

    Returns
    -------
    ndarray of float32, shape (Y, X), in [0, 1]
    """
    from scipy import ndimage

    m = np.asarray(target, bool).copy()
    if not m.any():
        return np.zeros(m.shape, np.float32)
    r = int(rng.integers(1, 4))
    m = ndimage.binary_dilation(m, iterations=r) if rng.random() < 0.5 else ndimage.binary_erosion(m, iterations=r)
    radius = max(2.0, np.sqrt(target.sum() / np.pi))
    yy, xx = np.indices(m.shape)
    border = np.argwhere(target & ~ndimage.binary_erosion(target))
    cy, cx = border[rng.integers(len(border))]
    m &= (yy - cy) ** 2 + (xx - cx) ** 2 > (0.5 * radius) ** 2
    cy, cx = border[rng.integers(len(border))]
    m |= (yy - cy) ** 2 + (xx - cx) ** 2 <= (0.35 * radius) ** 2
    return np.clip(ndimage.gaussian_filter(m.astype(np.float32), 1.0), 0.0, 1.0)


def _unet_at_scale(unet, image: np.ndarray, scale: float) -> np.ndarray:
    from scipy import ndimage

    if scale == 1.0:
        return unet.predict(image[None])[0]
    small = ndimage.zoom(image, scale, order=1)
    prob = unet.predict(small[None])[0]
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


def _evaluate(methods: dict, tests: list, inits: dict, budget: ItermrlBudget, seed: int, echo, progress) -> dict:
    from scarceseg.bench.progress import track

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
    # Table 6 (IteR-MRL, from the corrupted truth, ~0.75 Dice like the paper's start): good / no / bad interaction
    ref, init_probs = methods["itermrl"], inits["corrupt"]
    for mode in ("good", "none", "random"):
        curves = []
        for i, (_, img, tgt) in enumerate(tests):
            robot = RandomRobot(seed=seed * 10007 + i) if mode == "random" else PaperRobot(seed=seed * 10007 + i)
            r = ref
            if mode == "none":
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
def _brats_crops(data: Path, size=(32, 64, 64), margin: int = 8) -> list:
    """Whole-tumour crops (bounding box + ``margin``) of every BRATS volume, resized to ``size``."""
    from scipy import ndimage

    from scarceseg.datasets import open_dataset

    ds = open_dataset(data, layout="brats")
    out = []
    for cid in ds.case_ids:
        case = ds.load(cid)
        target = case.target
        idx = np.argwhere(target)
        lo = np.maximum(idx.min(0) - margin, 0)
        hi = np.minimum(idx.max(0) + margin + 1, target.shape)
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        img, tgt = case.channel("FLAIR")[sl], target[sl]
        zoom = [s / n for s, n in zip(size, img.shape, strict=True)]
        out.append((cid, ndimage.zoom(img, zoom, order=1).astype(np.float32),
                    ndimage.zoom(tgt.astype(np.float32), zoom, order=1) > 0.5))
    return out


def _run_3d(data3d: Path, out: Path, budget: ItermrlBudget, echo) -> dict:
    from scarceseg.methods.iter_mrl import IterMRL, IterMRLConfig
    from scarceseg.methods.refine_data import RefineSample

    crops = _brats_crops(data3d)
    train, test = crops[: len(crops) // 2], crops[len(crops) // 2 :]
    cfg = IterMRLConfig.cpu(dims=3)
    cfg.iterations = budget.iterations_3d
    cfg.batch_size = 2
    cfg.bg_fraction = 1.0
    model = IterMRL(cfg)
    t0 = time.perf_counter()
    model.fit([RefineSample.make(img, tgt, None, cid) for cid, img, tgt in train], seed=budget.seed)
    train_s = time.perf_counter() - t0
    model.save(out / "models" / "itermrl_3d")
    res: dict = {"train": [c[0] for c in train], "test": [c[0] for c in test], "train_seconds": train_s,
                 "crop_size": list(test[0][1].shape), "table2": {}}
    for mname, ref in (("initial", IdentityRefiner()), ("mincut", MinCutRefiner()), ("itermrl", model)):
        curves = [run_sequence(ref, img, tgt, np.zeros(img.shape, np.float32), PaperRobot(seed=i), budget.steps)
                  for i, (_, img, tgt) in enumerate(test)]
        res["table2"][mname] = {"mean": np.mean([c[0] for c in curves], axis=0).tolist(),
                                "median_ms": 1000 * float(np.median([s for c in curves for s in c[1]]))}
        echo(f"  3D bg {mname:>9}: " + " ".join(f"{100 * v:6.2f}" for v in res["table2"][mname]["mean"]))
    # latency of one IteR-MRL step on a 128^3 volume (hints + forward pass)
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(128, 128, 128)).astype(np.float32)
    from scarceseg.interactive.clicks import Click

    clicks = [Click((64, 64, 64), True), Click((20, 30, 40), False)]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.refine(vol, np.zeros(vol.shape, np.float32), clicks)
        times.append(time.perf_counter() - t0)
    res["latency_128cubed_ms"] = 1000 * float(np.median(times))
    echo(f"  3D latency, 128^3 volume: {res['latency_128cubed_ms']:.0f} ms per step (median of 3)")
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
    lines += ["", "## Latency per step (hint maps + forward pass; median)", "",
              "| method | ms | steps |", "|---|---|---|"]
    for m, r in res["latency"].items():
        lines.append(f"| {m} | {r['median_ms']:.1f} | {r['n']} |")
    if "3d" in res:
        r3 = res["3d"]
        lines += ["", f"## 3D — BRATS whole-tumour crops {r3['crop_size']}, all-background start", "",
                  f"train volumes {r3['train']}, test volumes {r3['test']}, training {r3['train_seconds']:.0f} s", "",
                  "| method | " + " | ".join(f"step {t}" for t in range(len(r3["table2"]["itermrl"]["mean"])))
                  + " | ms/step |", "|---" * (2 + len(r3["table2"]["itermrl"]["mean"])) + "|"]
        for m, r in r3["table2"].items():
            lines.append(f"| {m} | " + " | ".join(f"{100 * v:.2f}" for v in r["mean"]) + f" | {r['median_ms']:.0f} |")
        lines += ["", f"IteR-MRL step on a 128^3 volume: {r3['latency_128cubed_ms']:.0f} ms"]
    lines += ["", "![Dice vs step](curves.png)", ""]
    path.write_text("\n".join(lines))


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
    from scarceseg.methods.interactive_baselines import BaselineConfig, SupervisedRefiner
    from scarceseg.methods.iter_mrl import IterMRL, IterMRLConfig
    from scarceseg.methods.refine_data import RefineSample
    from scarceseg.methods.unet_baseline import UNetBaseline, UNetConfig

    budget = budget or ItermrlBudget()
    seed = budget.seed
    out = Path(out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    echo(f"data {data}: patient split D_train1 / D_train2 / D_test")
    parts = _slices_2d(Path(data), seed, budget, echo)
    train_s: dict = {}

    from scipy import ndimage

    sc = budget.unet_scale
    echo(f"initial method: weak U-Net (fair recipe, {budget.unet_epochs} epochs on {len(parts['train1'])} slices"
         f" resized by {sc})")
    ucfg = UNetConfig.fair()
    ucfg.epochs = budget.unet_epochs
    unet = UNetBaseline(ucfg)
    t0 = time.perf_counter()
    unet.fit([ndimage.zoom(im, sc, order=1)[None] for _, im, _ in parts["train1"]],
             [ndimage.zoom(t.astype(np.float32), sc, order=1) > 0.5 for _, _, t in parts["train1"]], seed=seed,
             progress=progress)
    train_s["unet"] = time.perf_counter() - t0
    unet.save(out / "models" / "unet")

    def init_of(items):
        return [_unet_at_scale(unet, im, sc) for _, im, _ in items]

    init_train2, init_test = init_of(parts["train2"]), init_of(parts["test"])
    crng = np.random.default_rng(seed + 1)
    corrupt_train2 = [corrupted_init(t, crng) for _, _, t in parts["train2"]]
    corrupt_test = [corrupted_init(t, crng) for _, _, t in parts["test"]]
    samples = [RefineSample.make(im, t, p, cid) for (cid, im, t), p in zip(parts["train2"], init_train2, strict=True)]
    samples += [RefineSample.make(im, t, p, cid) for (cid, im, t), p in zip(parts["train2"], corrupt_train2,
                                                                             strict=True)]
    d2 = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(init_train2, parts["train2"], strict=True)])
    dt = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(init_test, parts["test"], strict=True)])
    dc = np.mean([dice(p > 0.5, t) for p, (_, _, t) in zip(corrupt_test, parts["test"], strict=True)])
    echo(f"  U-Net Dice on D_train2 {d2:.3f}, on D_test {dt:.3f}; corrupted truth on D_test {dc:.3f}")

    cfg = IterMRLConfig.cpu()
    cfg.iterations = budget.itermrl_iterations
    echo(f"training IteR-MRL (A2C, {cfg.iterations} updates of {cfg.batch_size} crops {cfg.crop})")
    itermrl = IterMRL(cfg)
    h = itermrl.fit(samples, seed=seed, progress=progress)
    train_s["itermrl"] = h["seconds"]
    itermrl.save(out / "models" / "itermrl")
    (out / "models" / "itermrl" / "history.json").write_text(json.dumps(h) + "\n")
    methods = {"initial": IdentityRefiner(), "mincut": MinCutRefiner(), "itermrl": itermrl}
    for kind in ("rnet", "intercnn"):
        bcfg = BaselineConfig.for_dims(kind)
        bcfg.iterations = budget.baseline_iterations
        echo(f"training {kind} ({bcfg.iterations} updates)")
        model = SupervisedRefiner(bcfg)
        train_s[kind] = model.fit(samples, seed=seed, progress=progress)["seconds"]
        model.save(out / "models" / kind)
        methods[kind] = model

    echo("evaluating on D_test (Dice % at steps 0..5)")
    inits = {"bg": [np.zeros(im.shape, np.float32) for _, im, _ in parts["test"]], "unet": init_test,
             "corrupt": corrupt_test}
    res = _evaluate(methods, parts["test"], inits, budget, seed, echo, progress)
    res.update(command=command, data=str(data), seed=seed, budget=asdict(budget), train_seconds=train_s,
               sizes={k: len(v) for k, v in parts.items()}, test_ids=[c for c, _, _ in parts["test"]])
    if budget.do_3d and data3d is not None and Path(data3d).is_dir():
        echo("3D: BRATS whole-tumour crops")
        res["3d"] = _run_3d(Path(data3d), out, budget, echo)
    res["total_seconds"] = time.perf_counter() - t_all
    (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    _plot(res, out / "curves.png")
    _report(res, out / "report.md")
    echo(f"wrote {out / 'report.md'} ({res['total_seconds'] / 60:.1f} min)")
    return res
