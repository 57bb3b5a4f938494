"""The robot-user benchmark of the prior and its corrective refiners (``scarceseg bench interactive``).

Protocol, per 2D slice with a lesion (issue 13):

1. the first gesture: the truth's bounding box + 5 px given to the prior (``first="box"``), or one click at
   the truth's innermost pixel (largest distance to its border) turned into a mask by
   :func:`scarceseg.methods.prior_click.click_to_mask` (``first="click"``);
2. then up to ``n_clicks`` clicks of the NoC robot (:class:`scarceseg.interactive.clicks.NoCRobot`): one per
   step, at the deepest point of the largest error region; each refiner gets all clicks so far, the
   current probability, and the first gesture's probability as ``init``.

Every refiner runs on the same slices, from the same first gesture, sharing one embedding per slice.
``flat-mincut`` is the app's Min-Cut of today (unaries 0.6 inside the first mask, 0.4 outside).

Per refiner: mean and median Dice after 0, 1, 3, 5, 10 clicks, NoC@85 and NoC@90 (``n_clicks + 1`` when never
reached), the share of slices ending worse than after the first gesture (after every click, and when the robot
stops at the 0.90 target: ``worse@stop90``), the median ms per click.

Volumes (``volumes=True``, 3D data sets): a box (truth + 5 px) on the slice of largest lesion area,
propagated (:func:`scarceseg.prior.prompts.propagate_volume`), then 5 NoC-robot clicks in 3D, each refined
on its slice.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scarceseg.interactive.clicks import Click, NoCRobot
from scarceseg.interactive.refiners import MinCutRefiner
from scarceseg.metrics import dice

REPORT_STEPS = (0, 1, 3, 5, 10)
BOX_MARGIN = 5  # issue 13's protocol: truth box + 5 px
# Okabe & Ito's colour-blind-safe palette
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


@dataclass
class FlatMinCutRefiner:
    """The app's Min-Cut of today: unaries 0.6 inside the first mask and 0.4 outside, no locality."""

    confidence: float = 0.6  # web.state.SessionManager's default
    name: str = "flat-mincut"
    cut: MinCutRefiner = field(default_factory=MinCutRefiner)

    def refine(self, image, prob, clicks, init=None, spacing=None) -> np.ndarray:
        start = np.asarray(prob if init is None else init) > 0.5
        flat = np.where(start, self.confidence, 1 - self.confidence).astype(np.float32)
        return self.cut.refine(image, prob, clicks, init=flat, spacing=spacing)


def make_refiner(name: str, prior, itermrl_model: str | None = None):
    """A refiner of the benchmark by name: ``flat-mincut``, ``prior``, ``prior-mincut``, ``prior-itermrl``,
    ``<name>-global`` for the same without locality (the ablation), or ``app-prior``
    (:class:`scarceseg.prior.refine.PriorRepromptRefiner`)."""
    from scarceseg.methods import prior_refiners

    if name == "flat-mincut":
        return FlatMinCutRefiner()
    if name == "app-prior":  # scarceseg.prior.refine's re-prompting refiner, as the app had it first
        from scarceseg.prior.refine import PriorRepromptRefiner

        refiner = PriorRepromptRefiner(prior=prior)
        refiner.name = name
        return refiner
    options = {"model": itermrl_model} if name.startswith("prior-itermrl") else {}
    try:
        return prior_refiners.make_refiner(name, prior=prior, **options)
    except KeyError as exc:
        raise ValueError(f"{exc.args[0]}; or flat-mincut (the app's Min-Cut of today)") from None


# ---- data -----------------------------------------------------------------------------------------
def _image_of(case) -> np.ndarray:
    names = [n.lower() for n in case.channel_names]
    return np.asarray(case.channel("FLAIR") if "flair" in names else case.image[0], dtype=np.float32)


def load_slices(data: Path, every: int = 1, min_area: int | None = None, limit: int | None = None,
                echo: Callable = print) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(id, image (Y, X) float32, target bool)]``: every ``every``-th 2D slice with a lesion.

    2D data sets (LGG): each image with a non-empty target (``min_area`` 1); 3D data sets: axial slices
    with at least ``min_area`` (default 100) target pixels. FLAIR where the data set has it, else channel 0.
    """
    from scarceseg.datasets import open_dataset

    ds = open_dataset(data)
    out = []
    count = 0
    for cid in ds.case_ids:
        label = ds.load_label(cid)
        if label is None:
            continue
        target = np.asarray(label) > 0
        if target.ndim == 2:
            keys = [None] if target.sum() >= (min_area or 1) else []
        else:
            keys = list(np.flatnonzero(target.reshape(target.shape[0], -1).sum(axis=1) >= (min_area or 100)))
        chosen = [k for i, k in enumerate(keys) if (count + i) % every == 0]
        count += len(keys)
        if chosen:  # the image is read only for a case with a chosen slice
            image = _image_of(ds.load(cid))
            out.extend((cid, image, target) if k is None else (f"{cid}_z{k}", image[k], target[k]) for k in chosen)
        if limit is not None and len(out) >= limit:
            break
    out = out[:limit]
    echo(f"{len(out)} slices (every {every}th of {count} with a lesion) from {data}")
    return out


def load_volumes(data: Path, limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``[(id, volume (Z, Y, X) float32, target bool)]`` of a 3D data set."""
    from scarceseg.datasets import open_dataset

    ds = open_dataset(data)
    out = []
    for cid in list(ds.case_ids)[:limit]:
        case = ds.load(cid)
        image = _image_of(case)
        if image.ndim == 3 and case.target is not None and case.target.any():
            out.append((cid, image, np.asarray(case.target, dtype=bool)))
    return out


# ---- one sequence ---------------------------------------------------------------------------------
def first_gesture(prior, image: np.ndarray, target: np.ndarray, first: str, click_method: str = "vote"):
    """``(prob, logits)`` of the first gesture (``box`` or ``click``) on one slice."""
    from scarceseg.interactive.clicks import innermost_pixel
    from scarceseg.prior.prompts import box_from_mask

    if first == "box":
        out = prior.decode(prior.embed(image), box=box_from_mask(target, BOX_MARGIN))[0]
        return out.prob, out.logits
    if first == "click":
        from scarceseg.methods.prior_click import click_to_mask

        res = click_to_mask(prior, image, innermost_pixel(target), method=click_method)
        return res.prob, res.logits
    raise ValueError(f"first gesture is 'box' or 'click', got {first!r}")


def run_sequence(refiner, image, target, prob0, n_clicks: int, logits0=None) -> tuple[list[float], list[float]]:
    """Dice after 0..``n_clicks`` NoC-robot clicks (a perfect mask stays) and the ms of each refinement."""
    robot = NoCRobot()
    if logits0 is not None and hasattr(refiner, "remember"):
        refiner.remember(prob0, logits0)
    prob, clicks = np.asarray(prob0, np.float32), []
    dices, times = [dice(prob > 0.5, target)], []
    for step in range(1, n_clicks + 1):
        new = robot(prob > 0.5, target, step)
        if not new:
            dices.append(dices[-1])
            continue
        clicks.extend(new)
        t0 = time.perf_counter()
        prob = refiner.refine(image, prob, clicks, init=prob0)
        times.append(1000 * (time.perf_counter() - t0))
        dices.append(dice(prob > 0.5, target))
    return dices, times


def noc(dices: Sequence[float], threshold: float) -> int:
    """Clicks needed to reach ``threshold`` (0 when the first gesture does), ``len(dices)`` when never."""
    return next((k for k, d in enumerate(dices) if d >= threshold), len(dices))


def summarise(curves: np.ndarray, times: list[float]) -> dict:
    """Summary of one refiner: ``curves`` ``(slices, n_clicks + 1)`` Dice."""
    n = curves.shape[1] - 1
    row: dict = {}
    for k in REPORT_STEPS:
        if k <= n:
            row[f"mean_dice_{k}"] = float(curves[:, k].mean())
            row[f"median_dice_{k}"] = float(np.median(curves[:, k]))
    row["noc85"] = float(np.mean([noc(c, 0.85) for c in curves]))
    noc90 = [noc(c, 0.90) for c in curves]
    row["noc90"] = float(np.mean(noc90))
    row["worse_share"] = float(np.mean(curves[:, -1] < curves[:, 0] - 1e-9))
    # the same when the robot stops at the 0.90 target, as a person would (the NoC protocol): the Dice where it stopped
    stopped = np.array([c[min(k, n)] for c, k in zip(curves, noc90, strict=True)])
    row["worse_at_stop90_share"] = float(np.mean(stopped < curves[:, 0] - 1e-9))
    row["median_ms_per_click"] = float(np.median(times)) if times else 0.0
    row["slices"] = int(curves.shape[0])
    return row


def summary_from_csv(path: Path) -> dict:
    """Summaries (without timings) from a ``per_slice.csv`` or an interrupted run's ``per_slice.partial.csv``."""
    with Path(path).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    curves: dict = {}
    for row in rows:
        steps = sorted((int(k.split("_")[1]), float(v)) for k, v in row.items() if k.startswith("dice_"))
        curves.setdefault(row["refiner"], []).append([v for _, v in steps])
    out = {}
    for name, c in curves.items():
        row = summarise(np.asarray(c), [])
        row.pop("median_ms_per_click")
        out[name] = row
    return out


def write_outputs(out: Path, summary: dict, per_slice: list[dict], curves: dict, meta: dict) -> None:
    """summary.csv, summary.json, per_slice.csv and dice_vs_clicks.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for row in summary.values() for k in row}, key=lambda k: (k[0] != "m", k))
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["refiner", *keys])
        for name, row in summary.items():
            w.writerow([name, *(row.get(k, "") for k in keys)])
    if per_slice:
        with (out / "per_slice.csv").open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(per_slice[0]))
            w.writeheader()
            w.writerows(per_slice)
    (out / "summary.json").write_text(json.dumps({"meta": meta, "summary": summary}, indent=1) + "\n",
                                      encoding="utf-8")
    plot_curves(curves, out / "dice_vs_clicks.png", title=meta.get("title", ""))


def plot_curves(curves: dict, path: Path, title: str = "") -> None:
    """Mean Dice against clicks, one line per refiner (Okabe-Ito colours, distinct markers)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, c) in enumerate(curves.items()):
        arr = np.asarray(c)
        ax.plot(range(arr.shape[1]), arr.mean(axis=0), marker="os^vDP*X"[i % 8], color=PALETTE[i % len(PALETTE)],
                label=name)
    ax.set_xlabel("corrective clicks (NoC robot)")
    ax.set_ylabel("mean Dice")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path))


def format_table(summary: dict) -> str:
    """The printed table: one row per refiner."""
    steps = [k for k in REPORT_STEPS if any(f"mean_dice_{k}" in r for r in summary.values())]
    head = ["refiner", *(f"D@{k} mean/med" for k in steps), "NoC85", "NoC90", "worse", "worse@stop90", "ms/click"]
    lines = [" | ".join(head)]
    for name, r in summary.items():
        cells = [name, *(f"{r[f'mean_dice_{k}']:.3f}/{r[f'median_dice_{k}']:.3f}" for k in steps),
                 f"{r['noc85']:.2f}", f"{r['noc90']:.2f}", f"{100 * r['worse_share']:.1f}%",
                 f"{100 * r['worse_at_stop90_share']:.1f}%" if "worse_at_stop90_share" in r else "-",
                 f"{r['median_ms_per_click']:.0f}" if "median_ms_per_click" in r else "-"]
        lines.append(" | ".join(cells))
    lines = [f"| {line} |" for line in lines]
    lines.insert(1, "|" + "---|" * len(head))
    return "\n".join(lines)


@dataclass
class SequenceJob:
    """The shared object of the robot bench's tasks: the protocol's settings, and the prior and refiners, built
    once per worker (the prior given to this process is used only here; a worker loads its own)."""

    refiners: tuple[str, ...]
    first: str = "box"
    n_clicks: int = 10
    click_method: str = "vote"
    itermrl_model: str | None = None
    seed: int = 0
    prior: object = field(default=None, repr=False, compare=False)
    _made: object = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["prior"] = state["_made"] = None
        return state

    def made(self) -> tuple[object, dict]:
        """``(prior, {name: refiner})``, built on first use in this process."""
        if self._made is None:
            prior = self.prior
            if prior is None:
                from scarceseg.prior import get_prior

                prior = get_prior()
            self._made = (prior, {name: make_refiner(name, prior, self.itermrl_model) for name in self.refiners})
        return self._made

    def key(self) -> str:
        """A short hash of the settings that decide a task's result (markers of other settings are not reused)."""
        import hashlib

        text = json.dumps([list(self.refiners), self.first, self.n_clicks, self.click_method, self.itermrl_model,
                           self.seed])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def slice_task(job: SequenceJob, item) -> object:
    """One slice: the first gesture, then every refiner's click sequence; the record holds curves and ms."""
    import torch

    from scarceseg.bench.runner import CaseResult

    image, target = item.data
    prior, refiners = job.made()
    torch.manual_seed(job.seed)  # per slice: the same result in any worker, in any order
    prob0, logits0 = first_gesture(prior, image, target, job.first, job.click_method)
    curves, times = {}, {}
    for name, refiner in refiners.items():
        curves[name], times[name] = run_sequence(refiner, image, target, prob0, job.n_clicks, logits0)
    return CaseResult(record={"curves": curves, "ms": times})


def volume_task(job: SequenceJob, item) -> object:
    """One volume: box + propagation, then ``n_clicks`` 3D NoC-robot clicks per refiner, each on its slice."""
    import torch

    from scarceseg.bench.runner import CaseResult
    from scarceseg.prior.prompts import box_from_mask, propagate_volume

    volume, target = item.data
    prior, refiners = job.made()
    torch.manual_seed(job.seed)
    z = int(np.argmax(target.reshape(target.shape[0], -1).sum(axis=1)))
    prob0 = propagate_volume(prior, volume, z, box_from_mask(target[z], BOX_MARGIN))
    record = {"propagation": dice(prob0 > 0.5, target)}
    for name, refiner in refiners.items():
        prob, clicks, robot = prob0.copy(), [], NoCRobot()
        for step in range(1, job.n_clicks + 1):
            new = robot(prob > 0.5, target, step)
            if not new:
                break
            clicks.extend(new)
            zc = new[0].position[0]
            on_slice = [Click(c.position[1:], c.positive, c.step) for c in clicks if c.position[0] == zc]
            prob[zc] = refiner.refine(volume[zc], prob[zc], on_slice, init=prob0[zc])
        record[name] = dice(prob > 0.5, target)
    return CaseResult(record=record)


def finished_records(markers: Path, case_ids: Sequence[str]) -> dict[str, dict]:
    """``{case_id: record}`` of the cases whose runner marker is in ``markers`` (in ``case_ids`` order)."""
    from scarceseg.bench.runner import finished_record

    found = {cid: finished_record(markers, cid) for cid in case_ids}
    return {cid: info.get("record", {}) for cid, info in found.items() if info is not None}


def _run_tasks(task, job: SequenceJob, cases, out: Path | None, workers: int | None, ray: str | None,
               description: str, on_result=None):
    """Run ``task`` once per ``(id, *arrays)`` of ``cases`` with the cohort runner; ``{id: record}`` in order.

    Markers go to ``out/.runs/<settings hash>/`` (without ``out``: a temporary folder), so a rerun of the same
    settings keeps the finished cases, and a failed case is retried, then reported.
    """
    import tempfile

    from scarceseg.bench.runner import CohortItem, run_cohort

    items = [CohortItem(cid, tuple(arrays)) for cid, *arrays in cases]
    with tempfile.TemporaryDirectory(prefix="scarceseg-bench-") as tmp:
        where = Path(tmp) if out is None else Path(out) / ".runs" / job.key()
        report = run_cohort(task, items, where, shared=job, workers=workers or 1, ray=ray, progress=False,
                            description=description, on_result=on_result)
    return report.records_of_all(items, description), report


def bench_slices(prior, slices, refiners: Sequence[str], first: str = "box", n_clicks: int = 10,
                 click_method: str = "vote", echo: Callable = print, out: Path | None = None,
                 itermrl_model: str | None = None, seed: int = 0, workers: int | None = None,
                 ray: str | None = None) -> tuple[dict, list[dict], dict]:
    """Run every refiner on every slice, one task per slice; ``(summary, per_slice rows, curves)``.

    With ``out``, finished slices are kept under ``out/.runs/`` (a rerun resumes) and the rows so far are
    rewritten to ``out/per_slice.partial.csv`` as slices finish (an interrupted run keeps its table).
    """
    job = SequenceJob(tuple(refiners), first, n_clicks, click_method, itermrl_model, seed, prior)
    partial = None if out is None else Path(out) / "per_slice.partial.csv"
    # slices an earlier run with these settings finished count from the start (the counter, the partial table)
    done: dict[str, dict] = {} if out is None else finished_records(Path(out) / ".runs" / job.key(),
                                                                      [sid for sid, *_ in slices])
    t_start = time.perf_counter()

    def rows_of(sid: str, record: dict) -> list[dict]:
        return [{"refiner": name, "slice": sid, **{f"dice_{k}": round(v, 5) for k, v in enumerate(d)}}
                for name, d in record["curves"].items()]

    def on_result(sid: str, record: dict) -> None:
        done[sid] = record
        echo(f"  {len(done)}/{len(slices)} slices, {time.perf_counter() - t_start:.0f} s")
        if partial is not None:
            partial.parent.mkdir(parents=True, exist_ok=True)
            rows = [row for key, rec in done.items() for row in rows_of(key, rec)]
            with partial.open("w", newline="", encoding="utf-8") as fh:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)

    records, report = _run_tasks(slice_task, job, slices, out, workers, ray, "robot clicks", on_result)
    if report.reused:
        echo(f"  kept {len(report.reused)} slices finished by an earlier run ({report.summary()})")
    curves = {name: [records[sid]["curves"][name] for sid, *_ in slices] for name in refiners}
    times = {name: [t for sid, *_ in slices for t in records[sid]["ms"][name]] for name in refiners}
    rows = [row for sid, *_ in slices for row in rows_of(sid, records[sid])]
    summary = {name: summarise(np.asarray(curves[name]), times[name]) for name in refiners}
    return summary, rows, curves


def bench_volumes(prior, volumes, refiners: Sequence[str], n_clicks: int = 5, echo: Callable = print,
                  out: Path | None = None, itermrl_model: str | None = None, seed: int = 0,
                  workers: int | None = None, ray: str | None = None) -> dict:
    """Per volume (one task each): Dice after box + propagation and after ``n_clicks`` 3D NoC-robot clicks per
    refiner."""
    job = SequenceJob(tuple(refiners), "box", n_clicks, "vote", itermrl_model, seed, prior)

    def on_result(vid: str, record: dict) -> None:
        echo(f"  {vid}: propagation {record['propagation']:.3f}, "
             + ", ".join(f"{n} {record[n]:.3f}" for n in refiners))

    records, _ = _run_tasks(volume_task, job, volumes, out, workers, ray, "volumes", on_result)
    return {name: {vid: records[vid][name] for vid, *_ in volumes} for name in ("propagation", *refiners)}


def run_interactive_bench(data: Path, out: Path | None = None, first: str = "box",
                          refiners: Sequence[str] = ("flat-mincut", "prior", "prior-mincut"), n_clicks: int = 10,
                          every: int = 1, limit: int | None = None, volumes: bool = False,
                          volume_limit: int | None = None, click_method: str = "vote",
                          itermrl_model: str | None = None, threads: int | None = 1, seed: int = 0,
                          prior=None, echo: Callable = print, workers: int | None = None,
                          ray: str | None = None) -> dict:
    """The whole benchmark; returns ``{"meta", "summary", "volumes"?}`` and writes it to ``out`` when given.

    One task per slice (and per volume) on the cohort runner: in this process (``workers`` 1, the default), on
    a local process pool (``workers`` N) or on Ray (``ray``); each worker loads the prior once. With ``out``, a
    rerun with the same settings keeps the slices an earlier run finished.
    """
    import os

    from scarceseg.nets.runtime import torch_threads

    for name in refiners:  # an unknown refiner (or a missing IteR-MRL model) fails here, before any work
        make_refiner(name, None, itermrl_model)
    in_process = ray is None and (workers or 1) == 1
    if prior is None and in_process:
        from scarceseg.prior import get_prior

        prior = get_prior()
    meta = {"data": str(data), "first": first, "n_clicks": n_clicks, "every": every, "limit": limit,
            "click_method": click_method, "refiners": list(refiners), "seed": seed, "threads": threads,
            "workers": workers or 1, "ray": ray, "load_average": list(os.getloadavg()),
            "title": f"{Path(data).name}, first gesture: {first}, every {every}th slice"}
    common = dict(echo=echo, out=out, itermrl_model=itermrl_model, seed=seed, workers=workers, ray=ray)
    with torch_threads(threads if in_process else None):
        slices = load_slices(Path(data), every=every, limit=limit, echo=echo)
        summary, rows, curves = bench_slices(prior, slices, refiners, first, n_clicks, click_method, **common)
        result: dict = {"meta": meta, "summary": summary}
        echo(format_table(summary))
        if volumes:
            vols = load_volumes(Path(data), limit=volume_limit)
            if vols:
                per_volume = bench_volumes(prior, vols, refiners, **common)
                result["volumes"] = per_volume
                echo("volumes, mean Dice: " + ", ".join(f"{k} {np.mean(list(v.values())):.3f}"
                                                        for k, v in per_volume.items()))
    if out is not None:
        write_outputs(Path(out), summary, rows, curves, meta)
        if "volumes" in result:
            (Path(out) / "volumes.json").write_text(json.dumps(result["volumes"], indent=1) + "\n",
                                                    encoding="utf-8")
        echo(f"written to {out}")
    return result
