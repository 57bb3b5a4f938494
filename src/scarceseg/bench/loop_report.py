"""The files of ``scarceseg bench loop`` (:mod:`scarceseg.bench.loop_bench`): the per-stage table, CSVs, JSON, the
interactions plot and ``report.md``, computed from the loop's ``state.json``."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scarceseg.bench.loop_bench import LoopSettings

TABLE_FIELDS = ("labelled", "batch", "interactions", "interactions_no_learning", "accepts", "corrected",
                "boxes", "clicks", "label_dice", "test_dice_mean", "test_dice_sd", "train_seconds")
IMAGE_FIELDS = ("stage", "run", "case_id", "patient", "start", "suggestion_dice", "interactions", "clicks",
                "dice")


# ---- summary and files ------------------------------------------------------------------------------------
def summarise(state: dict, settings: LoopSettings | None = None) -> dict:
    """``{"settings", "table": [one row per stage], "accept_counts_as": 0}`` from the finished stages."""
    rows = []
    for key in sorted(state["stages"], key=int):
        r = state["stages"][key]
        batch, plain, test = r["batch"], r["no_learning"], [t["dice"] for t in r["test"]]
        ids = [b["case_id"] for b in batch]
        rows.append({
            "labelled": r["labelled"],
            "batch": f"{r['labelled'] + 1}-{r['labelled'] + len(batch)}" if batch else "",
            "batch_ids": ids,
            "interactions": float(np.mean([b["interactions"] for b in batch])) if batch else None,
            "interactions_accept_as_one": (float(np.mean([b["interactions"] + (b["start"] == "accept")
                                                          for b in batch])) if batch else None),
            "interactions_no_learning": float(np.mean([b["interactions"] for b in plain])) if plain else None,
            "accepts": sum(b["start"] == "accept" for b in batch),
            "corrected": sum(b["start"] == "correct" for b in batch),
            "boxes": sum(b["start"] in ("redraw", "box") for b in batch),
            "redrawn": sum(b["start"] == "redraw" for b in batch),
            "clicks": sum(b["clicks"] for b in batch),
            "label_dice": float(np.mean([b["dice"] for b in batch])) if batch else None,
            "label_dice_no_learning": float(np.mean([b["dice"] for b in plain])) if plain else None,
            "test_dice_mean": float(np.mean(test)) if test else None,
            "test_dice_sd": float(np.std(test, ddof=1)) if len(test) > 1 else (0.0 if test else None),
            "test_slices": len(test),
            "train_seconds": r["train_seconds"],
            "steps": r["steps"],
            "train_cpu_seconds": r["seconds"].get("train_cpu"),
            "stage_seconds": r["seconds"].get("stage"),
        })
    return {"settings": settings.to_dict() if settings else state.get("settings"), "accept_counts_as": 0,
            "table": rows}


def _cell(value, fmt: str = ".2f") -> str:
    """A table cell: ``value`` formatted, or a dash for a missing one."""
    return "—" if value is None else format(value, fmt)


def format_table(rows: Sequence[dict]) -> str:
    """The printed (Markdown) table of :func:`summarise`'s rows."""
    head = ["labelled", "batch", "interactions/image", "no learning", "accepts", "corrected", "boxes",
            "label Dice", "auto Dice on test (mean ± sd)", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        test = "—" if r["test_dice_mean"] is None else f"{r['test_dice_mean']:.3f} ± {r['test_dice_sd']:.3f}"
        cells = [str(r["labelled"]), r["batch"] or "—", _cell(r["interactions"], ".2f"),
                 _cell(r["interactions_no_learning"], ".2f"), str(r["accepts"]), str(r["corrected"]), str(r["boxes"]),
                 _cell(r["label_dice"], ".3f"), test, _cell(r["train_seconds"], ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_outputs(out: Path, summary: dict, state: dict) -> None:
    """``rounds.csv``, ``summary.json``, ``per_image.csv``, ``test_dice.csv``, ``interactions.png``, ``report.md``."""
    rows = summary["table"]
    with (out / "rounds.csv").open("w", newline="", encoding="utf-8") as fh:
        extra = ["interactions_accept_as_one", "redrawn", "label_dice_no_learning", "test_slices", "steps",
                 "train_cpu_seconds", "stage_seconds"]
        w = csv.DictWriter(fh, fieldnames=[*TABLE_FIELDS, *extra], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    with (out / "per_image.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=IMAGE_FIELDS, extrasaction="ignore")
        w.writeheader()
        for key in sorted(state["stages"], key=int):
            r = state["stages"][key]
            for run, recs in (("loop", r["batch"]), ("no-learning", r["no_learning"])):
                w.writerows({**b, "stage": r["labelled"], "run": run} for b in recs)
    with (out / "test_dice.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["labelled", "case_id", "dice"])
        for key in sorted(state["stages"], key=int):
            w.writerows([state["stages"][key]["labelled"], t["case_id"], t["dice"]]
                        for t in state["stages"][key]["test"])
    plot_loop(rows, out / "interactions.png", title=_title(summary.get("settings") or {}))
    s = summary.get("settings") or {}
    text = (f"Label → learn → correct on {s.get('data')}: learner {s.get('learner')} (steps "
            f"{s.get('steps') or 'default'}), refiner {s.get('refiner')}, target Dice {s.get('target')}, at most "
            f"{s.get('clicks')} clicks, seed {s.get('seed')}. An accepted suggestion counts 0 interactions (accepts "
            "are their own column); a box 1; each click 1. 'boxes' counts the images the robot started with a box "
            f"(no model, or a suggestion under Dice {s.get('redraw_below')} redrawn). 'label Dice' is the robot's "
            "masks (the training labels) against the truth.")
    (out / "report.md").write_text(text + "\n\n" + format_table(rows) + "\n", encoding="utf-8")


# ---- several seeds ---------------------------------------------------------------------------------------------
def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def pool_seeds(summaries: Mapping[int, dict]) -> list[dict]:
    """One row per stage over several seeds' summaries (:func:`summarise`) of runs with the same rounds: each
    seed's interactions per image (loop, no learning) and automatic test Dice, and their means."""
    if not summaries:
        raise ValueError("no seeds to pool")
    seeds = sorted(summaries)
    tables = [summaries[s]["table"] for s in seeds]
    stages = [r["labelled"] for r in tables[0]]
    if any([r["labelled"] for r in t] != stages for t in tables):
        raise ValueError("the seeds' runs have different stages; pool runs with the same --rounds")
    rows = []
    for i, n in enumerate(stages):
        loop = [t[i]["interactions"] for t in tables]
        plain = [t[i]["interactions_no_learning"] for t in tables]
        test = [t[i]["test_dice_mean"] for t in tables]
        rows.append({"labelled": n, "batch": tables[0][i]["batch"], "seeds": seeds, "interactions": loop,
                     "interactions_no_learning": plain, "test_dice": test, "interactions_mean": _mean(loop),
                     "interactions_no_learning_mean": _mean(plain), "test_dice_mean": _mean(test)})
    first = rows[0]["interactions_mean"]
    for r in rows:
        r["vs_first_batch"] = (None if r["interactions_mean"] is None or not first
                               else r["interactions_mean"] / first)
    return rows


def format_pooled(rows: Sequence[dict]) -> str:
    """The Markdown table of :func:`pool_seeds`: per seed "loop / no learning", the means, test Dice."""
    seeds = rows[0]["seeds"]
    head = ["labelled", "batch", *[f"seed {s}: loop / no learning" for s in seeds], "mean: loop / no learning",
            "loop / first batch", "auto Dice per seed", "mean auto Dice"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        pairs = zip(r["interactions"], r["interactions_no_learning"], strict=True)
        per_seed = [f"{_cell(a)} / {_cell(b)}" for a, b in pairs]
        cells = [str(r["labelled"]), r["batch"] or "—", *per_seed,
                 f"{_cell(r['interactions_mean'])} / {_cell(r['interactions_no_learning_mean'])}",
                 _cell(r["vs_first_batch"]),
                 " / ".join(_cell(d, ".3f") for d in r["test_dice"]), _cell(r["test_dice_mean"], ".3f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_pooled(out: Path, summaries: Mapping[int, dict]) -> list[dict]:
    """``pooled.json``, ``pooled.csv`` and ``pooled.md`` in ``out`` from the seeds' summaries; returns the rows."""
    rows = pool_seeds(summaries)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pooled.json").write_text(json.dumps({"seeds": rows[0]["seeds"], "table": rows}, indent=1) + "\n",
                                     encoding="utf-8")
    with (out / "pooled.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["labelled", "seed", "interactions", "interactions_no_learning", "test_dice_mean"])
        for r in rows:
            w.writerows([r["labelled"], s, a, b, d] for s, a, b, d in
                        zip(r["seeds"], r["interactions"], r["interactions_no_learning"], r["test_dice"], strict=True))
            w.writerow([r["labelled"], "mean", r["interactions_mean"], r["interactions_no_learning_mean"],
                        r["test_dice_mean"]])
    text = ("Label → learn → correct over seeds " + ", ".join(map(str, rows[0]["seeds"])) + " (each seed's run is in "
            "seed<S>/). Interactions per image of each batch, with the learner and without ('no learning', the same "
            "images); 'loop / first batch' is the mean against the first batch's, which has no model.")
    (out / "pooled.md").write_text(text + "\n\n" + format_pooled(rows) + "\n", encoding="utf-8")
    return rows


def _title(s: dict) -> str:
    return (f"{Path(str(s.get('data', ''))).name}: learner {s.get('learner')}, refiner {s.get('refiner')}, "
            f"seed {s.get('seed')}")


def plot_loop(rows: Sequence[dict], path: Path, title: str = "") -> None:
    """Interactions per image against images labelled (loop and no learning), and test Dice (Okabe-Ito colours)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from scarceseg.bench.interactive_bench import PALETTE

    fig = Figure(figsize=(9, 3.8), dpi=120)
    FigureCanvasAgg(fig)
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    lab = [r for r in rows if r["interactions"] is not None]
    ax.plot([r["labelled"] for r in lab], [r["interactions"] for r in lab], marker="o", color=PALETTE[0],
            label="label → learn → correct")
    ax.plot([r["labelled"] for r in lab], [r["interactions_no_learning"] for r in lab], marker="s", linestyle="--",
            color=PALETTE[1], label="no learning (box + clicks)")
    ax.set_xticks([r["labelled"] for r in lab])
    ax.set_xlabel("images labelled before the batch")
    ax.set_ylabel("interactions per image (accept = 0)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    tested = [r for r in rows if r["test_dice_mean"] is not None]
    bx.errorbar([r["labelled"] for r in tested], [r["test_dice_mean"] for r in tested],
                yerr=[r["test_dice_sd"] for r in tested], marker="^", color=PALETTE[2], capsize=3)
    bx.set_xticks([r["labelled"] for r in tested])
    bx.set_xlabel("images labelled (training set)")
    bx.set_ylabel("automatic Dice on the test set")
    bx.set_ylim(0, 1)
    bx.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(str(path))
