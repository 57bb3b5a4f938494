"""`scarceseg bench all`: re-run every benchmark the README quotes, then write one self-contained report page.

Each bench is one entry of :data:`SECTIONS`: a name, what it reproduces, and a function giving its
``scarceseg bench ...`` arguments for a budget. Adding a bench to the report is adding one entry. Every section
runs as its own process (``python -m scarceseg.cli bench ...``) into ``DIR/<name>/``, with its output kept in
``DIR/<name>/stdout.txt``; a section that fails is shown as failed in the report and the others still run.

Budgets: ``tiny`` (generated sample data, smallest settings: checks that every section runs and renders),
``small`` (subsets of the real data; 29 min 09 s for all 14 sections on the quiet 2-core machine, measured
2026-11-28), ``paper`` (the README's commands). ``only`` re-runs some sections and keeps the others on the page.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

BUDGETS = ("tiny", "small", "paper")


@dataclass
class Context:
    """What a section's arguments may depend on."""

    out: Path  # DIR
    budget: str
    data: Path  # the shared data root (lgg/, brats2015/, la2018/)
    ray: str | None
    tiny_data: Path | None = None  # DIR/_data when budget == "tiny"

    def section_dir(self, name: str) -> Path:
        return self.out / name


@dataclass(frozen=True)
class Section:
    """One bench of the report.

    Attributes
    ----------
    name : str
        Folder name under DIR and the id of the section in the page.
    title : str
    reproduces : str
        What the README (or a paper) quotes from it.
    args : callable
        ``(Context) -> list of str``: the arguments after ``scarceseg``.
    seeds : callable
        ``(Context) -> list of int``: the seeds the section uses (shown in the report).
    """

    name: str
    title: str
    reproduces: str
    args: Callable[[Context], list[str]]
    seeds: Callable[[Context], list[int]] = field(default=lambda ctx: [0])


def _pick(ctx: Context, tiny: list[str], small: list[str], paper: list[str]) -> list[str]:
    return {"tiny": tiny, "small": small, "paper": paper}[ctx.budget]


def _lgg(ctx: Context) -> str:
    return str(ctx.tiny_data / "sample" if ctx.budget == "tiny" else ctx.data / "lgg")


def _foundation(ctx: Context) -> list[str]:
    return ["bench", "foundation", "--data", _lgg(ctx), *_pick(ctx, [], ["--limit", "200"], [])]


def _propose(ctx: Context) -> list[str]:
    return ["bench", "propose", "--data", _lgg(ctx), "--out", str(ctx.section_dir("propose") / "propose.json"),
            "--n", {"tiny": "1", "small": "2", "paper": "20"}[ctx.budget],
            *_pick(ctx, ["--config", "fast", "--channels", "flair"], [], [])]


def _stember(ctx: Context) -> list[str]:
    base = ["bench", "stember", "--data", _lgg(ctx), "--out", str(ctx.section_dir("stember"))]
    return base + _pick(ctx, ["--n-train", "3", "--max-test", "2", "--episodes", "3", "--no-unet"],
                        ["--max-test", "20", "--episodes", "60", "--no-unet"],
                        ["--seed", "0", "--seed", "1", "--seed", "2", "--max-test", "150", "--no-unet",
                         "--workers", "2"])


def _jule(ctx: Context) -> list[str]:
    out = ["--out", str(ctx.section_dir("jule"))]
    if ctx.budget == "tiny":
        return ["bench", "jule", "--data", str(ctx.tiny_data / "la2018"), *out, "--config",
                str(ctx.tiny_data / "jule_tiny.json"), "--la-limit", "1", "--no-ablation"]
    return ["bench", "jule", "--data", str(ctx.data), *out,
            *_pick(ctx, [], ["--brats-limit", "1", "--la-limit", "1", "--no-ablation"], [])]


def _itermrl(ctx: Context) -> list[str]:
    out = ["--out", str(ctx.section_dir("itermrl"))]
    if ctx.budget == "tiny":
        return ["bench", "itermrl", "--data", _lgg(ctx), *out, "--n-train1", "2", "--unet-epochs", "1",
                "--n-train2", "2", "--n-test", "2", "--itermrl-iterations", "2", "--baseline-iterations", "2",
                "--noc-cases", "1", "--noc-max", "2", "--latency-steps", "2"]
    return ["bench", "itermrl", "--data", str(ctx.data / "brats2015"), *out,
            *_pick(ctx, [], ["--unet-epochs", "5", "--n-train2", "10", "--n-test", "4", "--itermrl-iterations",
                             "30", "--baseline-iterations", "15", "--noc-cases", "2", "--latency-steps", "10"],
                   ["--data3d", str(ctx.data / "la2018")])]


def _acwe(ctx: Context) -> list[str]:
    out = ["--out", str(ctx.section_dir("acwe"))]
    if ctx.budget == "tiny":
        return ["bench", "acwe", "--data", _lgg(ctx), *out, "--n-train", "4", "--n-test", "2", "--paper-timing",
                "0", "--epochs", "1", "--finetune-steps", "2", "--size", "32"]
    data = ["--data", str(ctx.data / "lgg"), "--data", str(ctx.data / "la2018")]
    return ["bench", "acwe", *data, *out,
            *_pick(ctx, [], ["--n-train", "30", "--n-test", "10", "--epochs", "1", "--paper-timing", "0"], [])]


def _pixeldrl(ctx: Context) -> list[str]:
    out = ["--out", str(ctx.section_dir("pixeldrl"))]
    return ["bench", "pixeldrl", "--data", _lgg(ctx), *out,
            *_pick(ctx, ["--budget-minutes", "0.02", "--shot-minutes", "0.01", "--shots", "4"],
                   ["--budget-minutes", "0.25", "--shot-minutes", "0.1", "--shots", "50"],
                   ["--budget-minutes", "5", "--shot-minutes", "1.5", "--shots", "50", "--shots", "100"])]


def _web(ctx: Context) -> list[str]:
    return ["bench", "web", "--out", str(ctx.section_dir("web")), "--clicks", _pick(ctx, ["20"], ["30"], ["30"])[0]]


def _scale(ctx: Context) -> list[str]:
    ray = ["--ray", ctx.ray or "none"]
    if ctx.budget == "tiny":
        return ["bench", "scale", "--data", _lgg(ctx), "--out", str(ctx.section_dir("scale")), "--slices", "6",
                "--workers", "2", "--noop", "20", *ray]
    return ["bench", "scale", "--data", str(ctx.data / "lgg"), "--volumes", str(ctx.data / "brats2015"),
            "--out", str(ctx.section_dir("scale")), *ray, *_pick(ctx, [], ["--slices", "100", "--n-volumes", "2"], [])]


def _loop(ctx: Context) -> list[str]:
    base = ["bench", "loop", "--data", _lgg(ctx), "--out", str(ctx.section_dir("loop"))]
    return base + _pick(ctx, ["--rounds", "1,2", "--test-slices", "1", "--every", "1", "--steps", "1"],
                        ["--rounds", "2,5", "--test-slices", "10", "--steps", "30"],
                        ["--rounds", "5,10,20", "--test-slices", "100"])


def _interactive(ctx: Context) -> list[str]:
    base = ["bench", "interactive", "--data", _lgg(ctx), "--out", str(ctx.section_dir("interactive")),
            "--first", "box", "--refiner", "flat-mincut", "--refiner", "prior-mincut"]
    return base + _pick(ctx, ["--clicks", "2", "--limit", "2"], ["--every", "64"],
                        ["--refiner", "prior", "--every", "16", "--threads", "1"])


def _prior_speed(ctx: Context) -> list[str]:
    return ["bench", "prior-speed", *_pick(ctx, ["--repeats", "1", "--size", "64"], ["--repeats", "3"],
                                           ["--repeats", "5", "--threads", "2", "--backend", "onnx", "--backend",
                                            "openvino"])]


def _fewshot(ctx: Context) -> list[str]:
    base = ["bench", "fewshot", "--data", _lgg(ctx), "--out", str(ctx.section_dir("fewshot"))]
    return base + _pick(ctx, ["--shots", "2", "--seeds", "1", "--every", "1", "--test-slices", "2", "--steps", "2",
                              "--unet-epochs", "1"],
                        ["--shots", "10", "--seeds", "1", "--test-slices", "40"],
                        ["--shots", "10", "--shots", "50", "--seeds", "3", "--test-slices", "100"])


def _fewshot_volumes(ctx: Context) -> list[str]:
    out = ["--out", str(ctx.section_dir("fewshot-volumes"))]
    if ctx.budget == "tiny":
        return ["bench", "fewshot-volumes", "--data", str(ctx.tiny_data / "la2018"), *out, "--shots", "2",
                "--steps", "2"]
    return ["bench", "fewshot-volumes", "--data", str(ctx.data / "brats2015"), *out, "--test-volumes", "1",
            *_pick(ctx, [], ["--negatives", "0"], ["--negatives", "0", "--negatives", "5"])]


# The report's sections, in page order.
SECTIONS: list[Section] = [
    Section("foundation", "Loading and metrics speed", "README: load/metric timings, multi-Otsu baseline",
            _foundation, lambda ctx: []),
    Section("propose", "Proposer: faithful vs fast", "README: seconds per slice, best-candidate Dice (paper 000)",
            _propose),
    Section("stember", "Paper 000: UDC + DQN vs U-Net", "README: paper 000 table and Dice box plot", _stember,
            lambda ctx: [0, 1, 2] if ctx.budget == "paper" else [0]),
    Section("jule", "Paper 001: JULE + k-means vs k-means and multi-Otsu", "docs/jule.md: NMI vs K", _jule),
    Section("itermrl", "Paper 002: IteR-MRL and interactive baselines", "docs/itermrl.md: Dice per step, NoC",
            _itermrl),
    Section("acwe", "Paper 003: ACWE ConvNet modes vs Chan-Vese", "docs/acwe.md: Table 1", _acwe),
    Section("pixeldrl", "Paper 004: PixelDRL-MG vs U-Nets", "README: Table 2 / Table 4", _pixeldrl),
    Section("interactive", "Prior: one box, then corrective clicks (robot user)",
            "docs/prior.md: Dice after 0-10 clicks, NoC@85/90, slices ending worse, ms per click (issue 13)",
            _interactive),
    Section("prior-speed", "Prior: embedding and prompt speed per backend",
            "docs/prior.md: embedding s, box/click -> mask ms, torch vs ONNX Runtime vs OpenVINO", _prior_speed,
            lambda ctx: []),
    Section("fewshot", "Learn from ten: few-shot learner vs U-Net on the same slices",
            "docs/fewshot.md: LGG Dice at 10 and 50 shots over 3 seeds, paired test (issue 15)", _fewshot,
            lambda ctx: [0, 1, 2] if ctx.budget == "paper" else [0]),
    Section("fewshot-volumes", "Learn from ten on whole volumes: 'no lesion' slices",
            "docs/fewshot.md: BRATS per-volume Dice, false positives on lesion-free slices (issue 15)",
            _fewshot_volumes),
    Section("web", "Browser app latency", "README: click -> overlay latency", _web, lambda ctx: []),
    Section("scale", "Cohorts: process pool vs Ray", "docs/scale.md: cases/s, Ray overhead", _scale),
    Section("loop", "Learn from ten: label → learn → correct (robot user)",
            "docs/loop.md: interactions per image against images labelled, test Dice per round (issue 15)", _loop),
]


def prepare_tiny_data(root: Path) -> None:
    """Sample slices (``root/sample``), a tiny LA-layout HDF5 set (``root/la2018``) and a tiny JULE config."""
    import h5py
    import numpy as np

    from scarceseg.datasets.sample import make_sample_data

    if not (root / "sample").is_dir():
        make_sample_data(root / "sample", n=8, seed=0)
    rng = np.random.default_rng(0)
    for k in range(2):
        folder = root / "la2018" / "cases" / f"LA{k:04d}"
        if (folder / "mri_norm2.h5").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        # UA-MT's (H, W, D); 8 slices deep, so that the few-shot volume section encodes few slices with the prior
        image = rng.normal(0, 0.3, (24, 24, 8)).astype(np.float32)
        label = np.zeros(image.shape, dtype=np.uint8)
        label[8:16, 7:15, 2:6] = 1
        image[label > 0] += 2.0
        with h5py.File(folder / "mri_norm2.h5", "w") as f:
            f["image"], f["label"] = image, label
    tiny = {"n_patches": 150, "patch": 13, "kernel": 3, "channels": 4, "hidden": 16, "out_features": 8,
            "n_final_clusters": 3, "stride": 3, "k": 2, "k_s": 8, "epochs": 1, "final_epochs": 1, "batch_size": 32,
            "kmeans_n_init": 2, "name": "tiny"}
    (root / "jule_tiny.json").write_text(json.dumps(tiny), encoding="utf-8")


def run_all(out: str | Path, budget: str = "small", data: str | Path = Path("../shared/data"),
            ray: str | None = None, only: Sequence[str] | None = None, timeout_s: float | None = None,
            echo: Callable[[str], None] = print) -> Path:
    """Run the sections (all, or ``only``) and write ``out/report.html``; returns its path.

    With ``only``, the other sections that an earlier run wrote into ``out`` stay on the page (marked as kept),
    so a failed or changed section can be re-run alone.
    """
    from scarceseg.bench.html_report import write_report
    from scarceseg.errors import ScarcesegError

    if budget not in BUDGETS:
        raise ScarcesegError(f"--budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    names = [s.name for s in SECTIONS]
    unknown = [n for n in only or [] if n not in names]
    if unknown:
        raise ScarcesegError(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(names)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out.resolve(), budget=budget, data=Path(data).resolve(), ray=ray)
    if budget == "tiny":
        ctx.tiny_data = ctx.out / "_data"
        prepare_tiny_data(ctx.tiny_data)
    results = []
    start = time.perf_counter()
    for section in SECTIONS:
        if only and section.name not in only:
            earlier = _earlier_result(ctx.section_dir(section.name))
            if earlier is not None:  # run before into this DIR: the page keeps it (and says so)
                results.append(earlier)
            continue
        results.append(run_section(section, ctx, timeout_s=timeout_s, echo=echo))
    total = time.perf_counter() - start
    kept = [r["name"] for r in results if r.get("kept")]
    if kept:
        echo(f"kept from an earlier run in {out}: {', '.join(kept)}")
    page = write_report(out, results, budget=budget, total_seconds=total,
                        command="scarceseg " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "")
    echo(f"wrote {page} ({len(results)} sections, {sum(r['ok'] for r in results)} ok, {total:.0f} s)")
    return page


def _earlier_result(folder: Path) -> dict | None:
    """The ``section.json`` an earlier run wrote into ``folder`` (marked ``kept``), or None."""
    try:
        result = json.loads((folder / "section.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return {**result, "kept": True} if isinstance(result, dict) and "name" in result else None


def run_section(section: Section, ctx: Context, timeout_s: float | None = None,
                echo: Callable[[str], None] = print) -> dict:
    """Run one section as its own process; returns what the report needs about it."""
    folder = ctx.section_dir(section.name)
    folder.mkdir(parents=True, exist_ok=True)
    args = section.args(ctx)
    command = "scarceseg " + " ".join(args)
    echo(f"[{section.name}] {command}")
    # the section's process must import this scarceseg (a source tree on PYTHONPATH, maybe relative, included)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *[str(Path(p).resolve()) for p in
                                                               os.environ.get("PYTHONPATH", "").split(os.pathsep)
                                                               if p]])}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "scarceseg.cli", *args], capture_output=True, text=True,
                              timeout=timeout_s, cwd=ctx.out, env=env, encoding="utf-8", errors="replace")
        code, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout = -1, exc.stdout if isinstance(exc.stdout, str) else ""
        stderr = f"stopped after {timeout_s} s"
    seconds = time.perf_counter() - t0
    (folder / "stdout.txt").write_text(stdout or "", encoding="utf-8")
    (folder / "stderr.txt").write_text(stderr or "", encoding="utf-8")
    result = {"name": section.name, "title": section.title, "reproduces": section.reproduces,
              "command": command, "seeds": section.seeds(ctx), "seconds": round(seconds, 1), "ok": code == 0,
              "returncode": code}
    (folder / "section.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    echo(f"[{section.name}] {'ok' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s")
    return result
