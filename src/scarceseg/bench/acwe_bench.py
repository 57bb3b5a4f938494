"""``scarceseg bench acwe``: paper 003's Table 1 (four modes of the ACWE ConvNet) plus the classical baselines.

For each data set (default ``../shared/data/lgg`` and ``../shared/data/la2018``):

1. Split by *patient* (:func:`scarceseg.datasets.split_patients`, 75 % train / 25 % test, seeded). 2D
   slices: LGG as stored (tumour-positive FLAIR slices); LA 2018 volumes as the axial slices that
   contain the atrium, every ``slice_step``-th (default 2: neighbouring slices are near copies).
2. Prepare every slice once with the data set's preset (:mod:`scarceseg.preprocess.roi`: brain ROI and
   median window for LGG, central box and percentile window for LA); every method sees that input.
3. Train mode 1 on the training slices without labels; fine-tune it with 10 (mode 2) and 80 (mode 3)
   labelled training slices spread over patients (:func:`scarceseg.methods.acwe_data.choose_labelled`, the
   10 among the 80); train mode 4 with ``L_ACWE + 0.4 L_label`` and the labels of every training slice.
   Each mode is the registered method ``registry.get("acwe")(config)``, trained by ``fit(cases)`` and saved
   by ``save``; the test slices are scored by its network on the prepared grid (``method.model.scores``),
   where the ACWE energy is measured and the forward pass timed.
4. Segment the test slices with the four models and with scikit-image's ``chan_vese`` and
   ``morphological_chan_vese`` (same grid image, same ROI, foreground = brighter phase).
5. Time, on the same prepared test images and in the same run: ``chan_vese`` per image, and the
   ConvNet's forward pass per image, one image at a time and in batches of 32; print the ratios.
   Torch runs on ``threads`` threads (default 1: numpy's ``chan_vese`` uses one core too, and on a
   shared 2-core machine one thread is also the fastest).
6. Write ``OUT/<data set>/<method>/per_case.csv`` and ``summary.json``, models in ``OUT/<data set>/models``,
   overlays, ``OUT/results.json`` and ``OUT/report.md`` (Table 1 for each data set, timings, settings).

Budget: :meth:`scarceseg.methods.acwe_config.ACWEConfig.cpu` (64 x 64 grid, 8 epochs, 150 fine-tuning steps)
with at most ``n_train = 400`` training and ``n_test = 150`` test slices per data set: the whole run
took 6.7 minutes of one core on a quiet 2-core machine and 17.9 minutes while other jobs shared it;
``--n-train``, ``--n-test``, ``--epochs``, ``--finetune-steps``, ``--size`` and ``--device`` buy more.
Results and their reading: ``docs/acwe.md``.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

CLASSICAL_METHODS = ("chan_vese", "morphological_chan_vese")
CNN_METHODS = ("mode1", "mode2", "mode3", "mode4")
METRICS = ("dice", "iou", "ppv", "sensitivity", "hd95")


@dataclass
class Slice:
    """One prepared 2D slice of the benchmark."""

    case_id: str
    patient_id: str
    image: np.ndarray  # (Y, X) float32, the raw channel (training slices, and the overlays of test slices)
    prep: object  # scarceseg.preprocess.roi.RoiInput of a test slice (None for a training slice)
    truth: np.ndarray  # (Y, X) bool
    spacing: tuple[float, ...]

    def case(self, channel: str, labelled: bool):
        """The slice as a one-channel :class:`~scarceseg.io.case.Case` (the truth as label when ``labelled``);
        the channel is named ``channel`` unless that is ``auto`` or an index, so the method selects it again."""
        from scarceseg.io.case import Case

        named = channel != "auto" and not str(channel).strip().lstrip("-").isdigit()
        return Case(image=self.image[None], spacing=self.spacing, case_id=self.case_id, patient_id=self.patient_id,
                    label=self.truth if labelled else None, channel_names=(str(channel),) if named else ())


def _subsample(ids: list[str], n: int | None, seed: int) -> list[str]:
    if n is None or len(ids) <= n:
        return ids
    keep = set(np.random.default_rng(seed).choice(len(ids), size=n, replace=False).tolist())
    return [c for i, c in enumerate(ids) if i in keep]


def _load_slices(ds, volume_ids: list[str], channel: str, slice_step: int) -> list[Slice]:
    """The labelled 2D slices of ``volume_ids`` (their ``channel``), not yet prepared."""
    from scarceseg.methods.acwe_data import iter_slices_2d, select_channel

    out = []
    for case in iter_slices_2d(ds.subset(volume_ids), only_foreground=True, slice_step=slice_step):
        if case.target is None:
            continue
        out.append(Slice(case.case_id, case.patient_id, select_channel(case, channel), None, case.target,
                         tuple(case.spacing)))
    return out


def _time_cnn(model, preps: list, batch: int) -> float:
    """Seconds per image of the forward pass (one warm-up batch first)."""
    model.scores(preps[:batch], batch=batch)
    t0 = time.perf_counter()
    for i in range(0, len(preps), batch):
        model.scores(preps[i : i + batch], batch=batch)
    return (time.perf_counter() - t0) / len(preps)


def time_inference(model, images: list[np.ndarray], foreground: str = "bright", size: int | None = None) -> dict:
    """Seconds per image of ``chan_vese`` and of the ConvNet, timed in turns on the same prepared images.

    Taking turns image by image exposes both to the same load on a shared machine. The ConvNet is
    fully convolutional, so ``size`` (default: the model's grid) may differ from its training grid:
    the cost of a forward pass does not depend on the weights.

    Parameters
    ----------
    model : ACWESegmenter
    images : list of ndarray (Y, X)
        Raw 2D images (prepared here with the model's rule at ``size``).
    foreground : str
    size : int, optional

    Returns
    -------
    dict
        ``size``, ``n``, ``chan_vese`` and ``cnn_batch1`` (seconds per image, taken in turns),
        ``cnn_batch32`` (seconds per image in batches of 32), ``speedup_batch1``, ``speedup_batch32``.
    """
    import torch

    from scarceseg.cluster.acwe import classical_acwe
    from scarceseg.preprocess.roi import prepare

    c = model.config
    size = size or c.size
    preps = [prepare(im, size=size, roi=c.roi, window=c.window, rim=c.rim, centre_fraction=c.centre_fraction)
             for im in images]
    x = torch.from_numpy(np.stack([p.x for p in preps])[:, None].astype(np.float32)).to(model.device)
    net = model.net.eval()
    cv, cnn = [], []
    with torch.inference_mode():
        net(x[:1])  # warm-up
        for i, p in enumerate(preps):
            t0 = time.perf_counter()
            classical_acwe(p.x, p.roi, method="chan_vese", foreground=foreground)
            t1 = time.perf_counter()
            (model.polarity * net(x[i : i + 1])).cpu().numpy()  # .cpu() waits for a GPU
            cnn.append(time.perf_counter() - t1)
            cv.append(t1 - t0)
        t0 = time.perf_counter()
        for i in range(0, len(preps), 32):
            (model.polarity * net(x[i : i + 32])).cpu().numpy()
        batched = (time.perf_counter() - t0) / len(preps)
    out = {"size": size, "n": len(preps), "chan_vese": float(np.mean(cv)), "cnn_batch1": float(np.mean(cnn)),
           "cnn_batch32": batched}
    out["speedup_batch1"] = out["chan_vese"] / out["cnn_batch1"]
    out["speedup_batch32"] = out["chan_vese"] / out["cnn_batch32"]
    return out


def run_dataset(data: str | Path, out: Path, seed: int = 0, n_train: int | None = 400, n_test: int | None = 150,
                config=None, slice_step: int = 2, mode4_labels: int | None = None, timing_images: int = 40,
                paper_size_images: int = 10, device: str = "cpu", echo: Callable[[str], None] = print,
                progress: bool = False) -> dict:
    """The experiment on one data set; returns its summary (see :func:`run_acwe_bench`)."""
    from scarceseg.cluster.acwe import acwe_energy_numpy, classical_acwe
    from scarceseg.datasets import open_dataset, split_patients
    from scarceseg.figures.overlays import save_overlay_grid
    from scarceseg.methods import registry
    from scarceseg.methods.acwe_config import PAPER_SIZE
    from scarceseg.methods.acwe_data import choose_labelled, resolve_config
    from scarceseg.metrics import EmptyMaskWarning, MetricCollector
    from scarceseg.preprocess.roi import to_image_grid

    ds = open_dataset(data)
    cfg = resolve_config(config, "auto", ds.layout)
    name = Path(data).name or ds.layout
    out = out / name
    echo(f"== {name}: {ds.summary()}; ROI {cfg.roi}, window {cfg.window}, grid {cfg.size}x{cfg.size}")
    parts = split_patients(ds, (0.75, 0.25), seed=seed)
    probe = registry.get("acwe")(cfg.to_dict()).model  # prepares the test slices with cfg's rule
    t0 = time.perf_counter()
    train = _load_slices(ds, parts["train"], cfg.channel, slice_step)
    test = _load_slices(ds, parts["test"], cfg.channel, slice_step)
    train_ids = set(_subsample([s.case_id for s in train], n_train, seed))
    test_ids = set(_subsample([s.case_id for s in test], n_test, seed + 1))
    train = [s for s in train if s.case_id in train_ids]
    test = [s for s in test if s.case_id in test_ids]
    for s in test:
        s.prep = probe.prepare(s.image)
    if not train or not test:
        raise ValueError(f"{data}: no labelled slices for a train/test split")
    n_pat = (len({s.patient_id for s in train}), len({s.patient_id for s in test}))
    echo(f"train {len(train)} slices of {n_pat[0]} patients, test {len(test)} slices of {n_pat[1]} other patients "
         f"(prepared in {time.perf_counter() - t0:.0f} s)")

    preds: dict[str, list[np.ndarray]] = {}
    energy: dict[str, list[float]] = {}
    seconds: dict[str, float] = {}
    for method in CLASSICAL_METHODS:
        masks, en, t_all = [], [], 0.0
        for s in test:
            t1 = time.perf_counter()
            grid = classical_acwe(s.prep.x, s.prep.roi, method=method, foreground=cfg.foreground)
            dt = time.perf_counter() - t1
            t_all += dt
            en.append(acwe_energy_numpy(grid, s.prep.x, s.prep.roi, nu=cfg.nu, normalise=True))
            masks.append(to_image_grid(grid.astype(np.float32) - 0.5, s.prep))
        preds[method], energy[method], seconds[f"{method}_per_image"] = masks, en, t_all / len(test)
        echo(f"{method}: {seconds[f'{method}_per_image'] * 1000:.1f} ms per image")

    patients = {s.case_id: s.patient_id for s in train}
    labelled = {2: choose_labelled(patients, cfg.n_labels_mode2, seed),
                3: choose_labelled(patients, cfg.n_labels_mode3, seed),
                4: choose_labelled(patients, mode4_labels, seed)}
    models: dict = {}  # mode -> the trained ACWESegmenter (scores, timing)
    histories: dict[str, dict] = {}
    for mode in (1, 2, 3, 4):
        chosen = set(labelled.get(mode, []))
        options = {**cfg.to_dict(), "mode": mode, "device": device}
        if mode in (2, 3):  # fine-tune the mode-1 model saved above (paper 003 §3)
            options["pretrained"] = str(out / "models" / "mode1")
        method = registry.get("acwe")(options)
        t1 = time.perf_counter()
        hist = method.fit([s.case(cfg.channel, s.case_id in chosen) for s in train], seed=seed, progress=progress)
        seconds[f"mode{mode}_train"] = time.perf_counter() - t1
        model = method.model
        model.meta.update(labelled=sorted(chosen), data_dir=str(data))
        method.save(out / "models" / f"mode{mode}")
        models[f"mode{mode}"], histories[f"mode{mode}"] = model, hist
        scores = model.scores([s.prep for s in test])
        preds[f"mode{mode}"] = [to_image_grid(sc, s.prep) for sc, s in zip(scores, test, strict=True)]
        energy[f"mode{mode}"] = [acwe_energy_numpy(sc > 0, s.prep.x, s.prep.roi, nu=cfg.nu, normalise=True)
                                 for sc, s in zip(scores, test, strict=True)]
        echo(f"mode {mode}: trained on {len(train)} slices ({len(chosen)} labelled) in "
             f"{seconds[f'mode{mode}_train']:.0f} s, polarity {model.polarity:+d}")

    timing = []
    for size, n in ((cfg.size, timing_images), (PAPER_SIZE, paper_size_images)):
        if n <= 0 or (timing and size == cfg.size):
            continue
        spread = np.unique(np.linspace(0, len(test) - 1, num=min(n, len(test))).astype(int))  # over patients
        t = time_inference(models["mode1"], [test[i].image for i in spread], cfg.foreground, size=size)
        timing.append(t)
        echo(f"inference per image at {size}x{size} ({t['n']} test images, in turns): chan_vese "
             f"{t['chan_vese'] * 1000:.1f} ms, ConvNet {t['cnn_batch1'] * 1000:.2f} ms one at a time "
             f"({t['speedup_batch1']:.1f}x faster) / {t['cnn_batch32'] * 1000:.2f} ms in batches of 32 "
             f"({t['speedup_batch32']:.1f}x faster)")
    ratios = {"batch1": timing[0]["speedup_batch1"], "batch32": timing[0]["speedup_batch32"]}

    summary: dict = {"name": name, "layout": ds.layout, "n_train": len(train), "n_test": len(test),
                     "patients": {"train": n_pat[0], "test": n_pat[1]}, "config": cfg.to_dict(),
                     "labelled": {f"mode{k}": len(v) for k, v in labelled.items()}, "seconds": seconds,
                     "speedup_vs_chan_vese": ratios, "timing": timing, "methods": {}}
    for method, masks in preds.items():
        col = MetricCollector(metrics=METRICS)
        with warnings.catch_warnings():  # empty predictions: NaN HD95, counted as n_nan in summary.json
            warnings.simplefilter("ignore", EmptyMaskWarning)
            for s, mask in zip(test, masks, strict=True):
                col.add(s.case_id, mask, s.truth, spacing=s.spacing, patient_id=s.patient_id)
        col.write(out / method)
        summary["methods"][method] = {**{m: v for m, v in col.summary().items()},
                                      "acwe_energy": float(np.mean(energy[method]))}
    (out / "histories.json").write_text(json.dumps(histories, indent=2) + "\n", encoding="utf-8")
    picks = np.linspace(0, len(test) - 1, num=min(8, len(test))).astype(int)
    items = []
    for i in picks:
        s = test[i]
        for method in ("chan_vese", "mode1", "mode3", "mode4"):
            d = summary_dice(preds[method][i], s.truth)
            items.append((f"{method} Dice {d:.2f}", s.image, s.truth, preds[method][i]))
    save_overlay_grid(items, out / "overlays.png", ncols=4, title=f"{name}: truth vermillion, prediction blue")
    return summary


def summary_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    from scarceseg.metrics import dice

    return float(dice(pred, truth))


def _table(summary: dict) -> str:
    lines = ["| method | Dice mean ± SD | Dice median | HD95 mean (mm) | ACWE energy (per ROI pixel) |",
             "|---|---|---|---|---|"]
    for method, s in summary["methods"].items():
        d, h = s["dice"], s["hd95"]
        sd = "—" if d["sd"] is None else f"{d['sd']:.3f}"
        hd = "—" if h["mean"] is None else f"{h['mean']:.1f}"
        lines.append(f"| {method} | {d['mean']:.3f} ± {sd} | {d['median']:.3f} | {hd} | {s['acwe_energy']:.4f} |")
    return "\n".join(lines)


def _timing_table(timing: list[dict]) -> str:
    lines = ["| grid | images | `chan_vese` (ms) | ConvNet one at a time (ms) | faster | ConvNet batch 32 (ms) "
             "| faster |", "|---|---|---|---|---|---|---|"]
    for t in timing:
        lines.append(f"| {t['size']}x{t['size']} | {t['n']} | {t['chan_vese'] * 1000:.1f} "
                     f"| {t['cnn_batch1'] * 1000:.2f} | {t['speedup_batch1']:.1f}x | {t['cnn_batch32'] * 1000:.2f} "
                     f"| {t['speedup_batch32']:.1f}x |")
    return "Inference per image, `chan_vese` and the mode-1 ConvNet timed in turns on the same inputs:\n\n" \
        + "\n".join(lines)


def run_acwe_bench(data: Sequence[str | Path], out: str | Path, seed: int = 0, n_train: int | None = 400,
                   n_test: int | None = 150, epochs: int | None = None, finetune_steps: int | None = None,
                   size: int | None = None, slice_step: int = 2, mode4_labels: int | None = None, threads: int = 1,
                   paper_timing: int = 10, device: str = "cpu", echo: Callable[[str], None] = print,
                   progress: bool = False) -> dict:
    """Paper 003's Table 1 on each data set, with the classical baselines and the inference timing.

    Parameters
    ----------
    data : sequence of path
        Labelled data sets (2D slices, or volumes served as the axial slices with foreground).
    out : path
        Output folder (``report.md``, ``results.json``, one folder per data set).
    seed : int
        Split, label choice, subsampling and training seed.
    n_train, n_test : int or None
        Caps on training and test slices per data set (seeded subsets; None = all).
    epochs, finetune_steps, size : int, optional
        Override :meth:`ACWEConfig.cpu`'s budget.
    slice_step : int
        Volumes: every ``slice_step``-th slice that contains the label.
    mode4_labels : int, optional
        Labelled slices for mode 4 (default: every training slice).
    threads : int
        ``torch.set_num_threads`` while the benchmark runs (restored afterwards).
    paper_timing : int
        Test images on which inference is also timed at the paper's 192 x 192 grid (0: skip).
    device : str
        Where the ConvNet trains and runs (``"cpu"``, ``"cuda"``, ``"auto"``); ``chan_vese`` is numpy.

    Returns
    -------
    dict
        ``{"datasets": [summary, ...], "report": path}``.
    """
    import torch

    from scarceseg.methods.acwe_config import ACWEConfig

    changes = {k: v for k, v in {"epochs": epochs, "finetune_steps": finetune_steps, "size": size}.items()
               if v is not None}
    if finetune_steps is not None:
        changes["finetune_epochs"] = 0  # an explicit step count is exact
    config = replace(ACWEConfig.cpu(), **changes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    try:
        summaries = [run_dataset(d, out, seed=seed, n_train=n_train, n_test=n_test, config=config,
                                 slice_step=slice_step, mode4_labels=mode4_labels, paper_size_images=paper_timing,
                                 device=device, echo=echo, progress=progress)
                     for d in data]
    finally:
        torch.set_num_threads(before)
    total = time.perf_counter() - t0
    parts = ["# Paper 003: Chan-Vese as a loss (ACWE ConvNet), Table 1\n",
             f"Seed {seed}; budget: grid {config.size}x{config.size}, {config.epochs} epochs (modes 1 and 4), "
             f"max({config.finetune_steps} steps, {config.finetune_epochs} passes over the labels) of fine-tuning "
             f"(modes 2 and 3), batch {config.batch_size}, Adam "
             f"{config.lr:g}; ConvNet on {device}, torch on {threads} thread(s). Whole run {total / 60:.1f} min.\n",
             "Paper 003 (SPECT bone, 8000 training slices): mode 1 0.593, mode 2 0.661, mode 3 0.732, mode 4 0.856.\n"]
    for s in summaries:
        sec = s["seconds"]
        parts += [f"## {s['name']} ({s['layout']})\n",
                  f"{s['n_train']} training slices of {s['patients']['train']} patients, {s['n_test']} test slices of "
                  f"{s['patients']['test']} other patients; ROI `{s['config']['roi']}`, window "
                  f"`{s['config']['window']}`; labelled: mode 2 {s['labelled']['mode2']}, mode 3 "
                  f"{s['labelled']['mode3']}, mode 4 {s['labelled']['mode4']}.\n",
                  _table(s) + "\n",
                  f"Segmentation time per test image in the Dice pass: `chan_vese` "
                  f"{sec['chan_vese_per_image'] * 1000:.1f} ms, `morphological_chan_vese` "
                  f"{sec['morphological_chan_vese_per_image'] * 1000:.1f} ms.\n",
                  _timing_table(s["timing"]) + "\n",
                  "Training seconds: " + ", ".join(f"mode {m} {sec[f'mode{m}_train']:.0f}" for m in (1, 2, 3, 4))
                  + ".\n", f"![overlays]({s['name']}/overlays.png)\n"]
        echo(f"-- {s['name']} --\n{_table(s)}")
    report = out / "report.md"
    report.write_text("\n".join(parts), encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"seed": seed, "minutes": total / 60, "datasets": summaries},
                                                 indent=2, default=float) + "\n", encoding="utf-8")
    echo(f"whole run {total / 60:.1f} min; report: {report}")
    return {"datasets": summaries, "report": report}
