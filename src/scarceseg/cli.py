"""scarceseg: segment medical images when labels are scarce.

Each command is a thin wrapper over a plain function; imports live inside the commands so that
``--help`` is instant. Errors a user can cause print one line and exit with status 1.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks and paper experiments.")
app.add_typer(bench_app, name="bench")
train_app = typer.Typer(no_args_is_help=True,
                        help="Train a selector (DQN), a U-Net baseline, an ACWE ConvNet or PixelDRL-MG.")
app.add_typer(train_app, name="train")


# Model formats that `scarceseg segment` dispatches to (besides the DQN selector, which takes --mode and
# --points): a substring of config.json's "format" -> "module:function". Each function takes
# (model, data, out, layout=..., progress=...) and returns {"written": [paths], "skipped": [(case_id, why)]}.
SEGMENTERS: dict[str, str] = {
    "unet": "scarceseg.methods.unet_baseline:segment_folder_unet",
    "acwe": "scarceseg.methods.acwe_data:segment_folder_acwe",
    "pixeldrl": "scarceseg.methods.pixeldrl_data:segment_folder_pixeldrl",
}


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn scarceseg errors (and a few OS errors) into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from scarceseg.errors import ScarcesegError

        try:
            return func(*args, **kwargs)
        except ScarcesegError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
            typer.echo(f"error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


@app.command()
def version() -> None:
    """Print the scarceseg version."""
    from scarceseg import __version__

    typer.echo(__version__)


@app.command()
@_friendly
def info(path: Path = typer.Argument(..., help="An image file or a DICOM series folder.")) -> None:
    """Print shape, dtype, spacing, intensity range and channels of an image."""
    from scarceseg.io import describe, format_description

    typer.echo(format_description(describe(path)))


@app.command("sample-data")
@_friendly
def sample_data(
    out: Path = typer.Option(..., "--out", help="Folder to write the sample set into (lgg layout)."),
    n: int = typer.Option(20, "--n", min=1, help="Number of slices, one per synthetic patient."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed writes the same files."),
) -> None:
    """Write realistic FLAIR-like brain slices with lesions and their masks (lgg layout)."""
    from scarceseg.datasets.sample import make_sample_data

    make_sample_data(out, n=n, seed=seed)
    typer.echo(f"wrote {n} sample slices with masks to {out}")


@app.command()
@_friendly
def evaluate(
    pred: Path = typer.Option(..., "--pred", help="Folder of predictions named <case_id>.png / .nii.gz."),
    gt: Path = typer.Option(..., "--gt", help="Data set folder holding the ground truth."),
    out: Path = typer.Option(..., "--out", help="Folder for per_case.csv and summary.json."),
    layout: str | None = typer.Option(None, "--layout", help="Data set layout (default: auto-detect)."),
    method: str = typer.Option("", "--method", help="Name written in the method column."),
) -> None:
    """Compare predictions with the truth: per-case CSV, summary JSON and a printed table."""
    from scarceseg.bench.evaluate import evaluate_folder

    result = evaluate_folder(pred, gt, out, layout=layout, method=method, progress=sys.stderr.isatty())
    typer.echo(result.report())


@app.command()
@_friendly
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the sample data and results."),
    n: int = typer.Option(20, "--n", min=4, help="Number of sample slices (half train, half test)."),
    episodes: int | None = typer.Option(None, "--episodes", help="DQN episodes (default: the paper's 300)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The main job on built-in sample data: propose, oracle-pick, train the selector, segment, evaluate, report."""
    from scarceseg.bench.demo import run_demo

    run_demo(out, n=n, seed=seed, episodes=episodes, echo=typer.echo, progress=sys.stderr.isatty())


@app.command()
@_friendly
def propose(
    inputs: list[Path] = typer.Argument(..., help="Data set folders and/or image files."),
    out: Path = typer.Option(..., "--out", help="WORKDIR receiving proposals (picks in it are never touched)."),
    config: str = typer.Option("fast", "--config", help="Proposer preset: fast (default) or faithful (paper 000)."),
    candidates: str | None = typer.Option(None, "--candidates", help="paper | extended (default: the preset's)."),
    channels: str = typer.Option("flair", "--channels", help="flair (default) or all."),
    layout: str | None = typer.Option(None, "--layout", help="Data set layout (default: auto-detect)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Split each image into candidate regions (SLIC + clustering CNN) and write them into WORKDIR."""
    from scarceseg.cluster.propose import propose_inputs
    from scarceseg.cluster.udc import UDCConfig

    cfg = UDCConfig.preset(config)
    if candidates is not None:
        cfg = UDCConfig.from_dict({**cfg.__dict__, "candidates": candidates})
    propose_inputs(list(inputs), out, config=cfg, channels=channels, seed=seed, layout=layout,
                   progress=sys.stderr.isatty(), echo=typer.echo)


@app.command()
@_friendly
def pick(
    workdir: Path = typer.Argument(..., help="WORKDIR written by `scarceseg propose`."),
    case_id: str | None = typer.Argument(None, help="The case to pick for (all cases with --oracle)."),
    point: str | None = typer.Option(None, "--point", help="A click inside the lesion, as Y,X."),
    candidate: int | None = typer.Option(None, "--candidate", help="A candidate index from candidates.json."),
    oracle: Path | None = typer.Option(None, "--oracle", help="Data set with truth: pick the best-Dice candidate."),
    layout: str | None = typer.Option(None, "--layout"),
    who: str | None = typer.Option(None, "--who", help="Who picks (default: your user name)."),
    note: str = typer.Option("", "--note"),
) -> None:
    """Record which candidate is the lesion: by click point, by index, or by the oracle (experiments)."""
    from scarceseg.errors import ScarcesegError
    from scarceseg.store.picking import format_oracle_summary, format_pick, oracle_pick_dataset, parse_point
    from scarceseg.store.picking import pick as do_pick

    if oracle is not None:
        if point is not None or candidate is not None:
            raise ScarcesegError("--oracle cannot be combined with --point or --candidate")
        summary = oracle_pick_dataset(workdir, oracle, layout=layout,
                                      case_ids=[case_id] if case_id else None, who=who or "oracle")
        typer.echo(format_oracle_summary(summary))
        return
    if case_id is None:
        raise ScarcesegError("name the case to pick for (or use --oracle DATASET for every case)")
    result = do_pick(workdir, case_id, point=parse_point(point) if point else None, candidate=candidate,
                     who=who, note=note)
    typer.echo(format_pick(result))


@app.command()
@_friendly
def picks(
    workdir: Path = typer.Argument(..., help="WORKDIR holding store.sqlite."),
    export: Path | None = typer.Option(None, "--export", help="Also write every pick to this JSON file."),
    history: bool = typer.Option(False, "--history", help="List every pick, not only the latest per case."),
) -> None:
    """List the picks recorded in a WORKDIR."""
    from scarceseg.store import open_store
    from scarceseg.store.picking import format_pick

    with open_store(workdir) as store:
        rows = store.all_picks() if history else list(store.current_picks().values())
        for row in rows:
            typer.echo(format_pick(row))
        typer.echo(f"{len(rows)} picks")
        if export is not None:
            typer.echo(f"exported to {store.export_json(export)}")


@train_app.command("selector")
@_friendly
def train_selector_cmd(
    work: Path = typer.Option(..., "--work", help="WORKDIR with proposals and picks."),
    out: Path = typer.Option(..., "--out", help="Model folder (model.safetensors + config.json)."),
    episodes: int | None = typer.Option(None, "--episodes", help="Override the paper's 300 episodes."),
    mode: str | None = typer.Option(None, "--mode", help="candidates (default) or paper (M vs M^C states)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the Deep Q Network that learns to pick the lesion candidate (paper 000)."""
    from scarceseg.errors import ScarcesegError
    from scarceseg.methods.udc_rl import SelectorConfig, train_selector

    changes = {k: v for k, v in {"n_episodes": episodes, "mode": mode}.items() if v is not None}
    try:
        config = SelectorConfig(**changes)
    except ValueError as exc:
        raise ScarcesegError(str(exc)) from None
    selector, history = train_selector(work, config=config, seed=seed, progress=sys.stderr.isatty())
    path = selector.save(out)
    acc = history.accuracy.get("train") or []
    final = f"{acc[-1]:.2f}" if acc else "not evaluated"
    typer.echo(f"trained selector on {selector.summary.get('n_images', '?')} picked images in "
               f"{history.seconds:.1f} s; final training selection accuracy {final}; saved to {path}")
    if selector.summary.get("skipped"):
        typer.echo(f"skipped {len(selector.summary['skipped'])} picks: {selector.summary['skipped']}")


@train_app.command("unet")
@_friendly
def train_unet_cmd(
    data: Path = typer.Option(..., "--data", help="Labelled data set folder."),
    out: Path = typer.Option(..., "--out", help="Model folder."),
    cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line."),
    n_shot: int | None = typer.Option(None, "--n-shot", help="Train on N slices from N distinct patients."),
    config: str = typer.Option("paper", "--config", help="paper (paper 000's settings) or fair."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the number of epochs."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the supervised U-Net baseline on a few labelled images."""
    from scarceseg.datasets import n_shot as choose_n_shot
    from scarceseg.datasets import open_dataset
    from scarceseg.errors import ScarcesegError
    from scarceseg.methods.unet_baseline import UNetConfig, train_unet_from_dataset

    if (cases is None) == (n_shot is None):
        raise ScarcesegError("give exactly one of --cases FILE or --n-shot N")
    if cases is not None:
        ids = [line.strip() for line in cases.read_text().splitlines() if line.strip()]
    else:
        ids = choose_n_shot(open_dataset(data, layout=layout), n_shot, seed=seed, pick="largest")
    cfg = UNetConfig.named(config)
    if epochs is not None:
        cfg = UNetConfig.from_dict({**cfg.to_dict(), "epochs": epochs})
    result = train_unet_from_dataset(data, ids, out, config=cfg, seed=seed, layout=layout,
                                     progress=sys.stderr.isatty())
    typer.echo(f"trained U-Net ({config}) on {len(ids)} cases; saved to {out}")
    if isinstance(result, dict) and result.get("final_loss") is not None:
        typer.echo(f"final training loss {result['final_loss']:.4f}")


@train_app.command("acwe")
@_friendly
def train_acwe_cmd(
    data: Path = typer.Option(..., "--data", help="Data set folder (2D slices, or volumes: slices with the label)."),
    mode: int = typer.Option(1, "--mode", help="1 unsupervised; 2/3 mode 1 + fine-tuning on 10/80 labels; "
                                               "4 ACWE + label loss from the start (paper 003)."),
    out: Path = typer.Option(..., "--out", help="Model folder (model.safetensors + config.json)."),
    config: str = typer.Option("cpu", "--config", help="cpu (64x64, short budget; default) or paper (192x192)."),
    preset: str = typer.Option("auto", "--preset", help="auto (from the layout), lgg (brain ROI) or la (central box)."),
    cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line."),
    labels: int | None = typer.Option(None, "--labels", help="Labelled images for modes 2-4 (default 10/80/all)."),
    init: Path | None = typer.Option(None, "--init", help="Modes 2-3: a mode-1 model to fine-tune."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the epochs of modes 1 and 4."),
    finetune_steps: int | None = typer.Option(None, "--finetune-steps",
                                              help="Exact fine-tuning steps of modes 2-3 (default: 150 or 40 "
                                                   "passes over the labels, whichever is more)."),
    size: int | None = typer.Option(None, "--size", help="Override the side of the network grid."),
    slice_step: int = typer.Option(1, "--slice-step", min=1, help="Volumes: every N-th slice."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's)."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the ACWE ConvNet: Chan-Vese's energy as the loss, optionally with a few labels (paper 003)."""
    from dataclasses import replace

    from scarceseg.errors import ScarcesegError
    from scarceseg.methods.acwe import MODES, ACWEConfig
    from scarceseg.methods.acwe_data import train_acwe_from_dataset

    if mode not in MODES:
        raise ScarcesegError(f"--mode must be 1, 2, 3 or 4, got {mode}")
    if config not in ("cpu", "paper"):
        raise ScarcesegError(f"--config must be cpu or paper, got {config!r}")
    if init is not None and mode not in (2, 3):
        raise ScarcesegError("--init is for modes 2 and 3 (fine-tuning a mode-1 model)")
    changes = {k: v for k, v in {"epochs": epochs, "finetune_steps": finetune_steps, "size": size}.items()
               if v is not None}
    if finetune_steps is not None:
        changes["finetune_epochs"] = 0  # an explicit step count is exact
    try:
        cfg = replace(ACWEConfig.cpu() if config == "cpu" else ACWEConfig(), **changes)
    except ValueError as exc:
        raise ScarcesegError(str(exc)) from None
    ids = None
    if cases is not None:
        ids = [line.strip() for line in cases.read_text().splitlines() if line.strip()]
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    result = train_acwe_from_dataset(data, out, mode=mode, config=cfg, preset=preset, case_ids=ids, n_labels=labels,
                                     pretrained=init, slice_step=slice_step, seed=seed, layout=layout,
                                     progress=sys.stderr.isatty())
    typer.echo(f"trained ACWE ConvNet (mode {mode}) on {result['n_images']} images, {len(result['labelled'])} "
               f"labelled, in {result['seconds']:.1f} s (polarity {result['polarity']:+d}); saved to {out}")
    for case_id, reason in result.get("skipped") or []:
        typer.echo(f"skipped {case_id}: {reason}")


@train_app.command("pixeldrl")
@_friendly
def train_pixeldrl_cmd(
    data: Path = typer.Option(..., "--data", help="Labelled 2D data set (trains on its 70 % patient split)."),
    out: Path = typer.Option(..., "--out", help="Model folder; a rerun resumes from OUT/checkpoint."),
    shots: int | None = typer.Option(None, "--shots", min=1, help="Train on N slices (distinct patients first)."),
    config: str = typer.Option("cpu", "--config", help="cpu (128x128, narrow, warm start + PA3C) or paper."),
    budget_minutes: float | None = typer.Option(None, "--budget-minutes", help="Process CPU minutes of training."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Number of updates (default: the epochs)."),
    channels: str = typer.Option("all", "--channels", help="all, or channel names/indices (e.g. flair)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint in OUT."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train PixelDRL-MG: pixel agents that write the mask with PA3C (paper 004)."""
    from scarceseg.errors import ScarcesegError
    from scarceseg.methods.pixeldrl import PixelDRLConfig
    from scarceseg.methods.pixeldrl_data import train_pixeldrl_from_dataset

    try:
        cfg = PixelDRLConfig.named(config)
    except ValueError as exc:
        raise ScarcesegError(str(exc)) from None
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    r = train_pixeldrl_from_dataset(data, out, config=cfg, shots=shots, budget_minutes=budget_minutes, steps=steps,
                                    seed=seed, channels=channels, layout=layout, resume=not fresh,
                                    progress=sys.stderr.isatty())
    typer.echo(f"trained PixelDRL-MG ({config}) on {r['n_train']} slices: {r['steps']} updates "
               f"({r['warm_steps']} warm start), {r['cpu_seconds']:.0f} CPU s, {r['n_parameters']} parameters; "
               f"saved to {out}")


@app.command()
@_friendly
def segment(
    model: Path = typer.Option(..., "--model", help="A selector, U-Net, ACWE or PixelDRL-MG model folder."),
    data: Path = typer.Option(..., "--data", help="Data set folder (or folder of images) to segment."),
    out: Path = typer.Option(..., "--out", help="Folder for <case_id>.png masks."),
    mode: str = typer.Option("automatic", "--mode", help="Selector: automatic (default) or one-click."),
    points: Path | None = typer.Option(None, "--points", help="One-click: JSON {case_id: [y, x]} or CSV."),
    action_maps: bool = typer.Option(False, "--action-maps", help="PixelDRL-MG: also write the action map of "
                                                                    "every step to OUT/action_maps/."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Segment new images: propose candidates, let the trained agent pick (or run a U-Net, ACWE or PixelDRL model)."""
    import json

    from scarceseg.errors import InputError, ScarcesegError

    config_path = model / "config.json"
    if not config_path.is_file():
        raise InputError(model, "not a model folder (no config.json)")
    try:
        fmt = str(json.loads(config_path.read_text()).get("format", ""))
    except (json.JSONDecodeError, AttributeError) as exc:
        raise InputError(config_path, f"unreadable model config: {exc}") from None
    if "selector" in fmt.lower():
        from scarceseg.methods.udc_rl import SEGMENT_MODES, segment_folder

        if mode.replace("-", "_") not in SEGMENT_MODES:
            raise ScarcesegError(f"--mode must be automatic or one-click, got {mode!r}")
        summary = segment_folder(model, data, out, mode=mode.replace("-", "_"), points=points, layout=layout,
                                 seed=seed, progress=sys.stderr.isatty())
    else:
        segmenter = next((target for key, target in SEGMENTERS.items() if key in fmt.lower()), None)
        if segmenter is None:
            known = ", ".join(["selector", *SEGMENTERS])
            raise InputError(model, f"unknown model format {fmt!r} (expected one of: {known})")
        import importlib

        module, func = segmenter.split(":")
        extra = {}
        if action_maps:
            if "pixeldrl" not in fmt.lower():
                raise ScarcesegError("--action-maps is for PixelDRL-MG models")
            extra["action_maps"] = True
        summary = getattr(importlib.import_module(module), func)(model, data, out, layout=layout,
                                                                 progress=sys.stderr.isatty(), **extra)
    typer.echo(f"wrote {len(summary['written'])} masks to {out}")
    for case_id, reason in summary.get("skipped") or []:
        typer.echo(f"skipped {case_id}: {reason}")


@bench_app.command("foundation")
@_friendly
def bench_foundation(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="An LGG-layout folder."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N cases."),
) -> None:
    """Time loading every slice of a data set and computing every metric on each pair."""
    from scarceseg.bench.foundation import run_foundation_bench

    run_foundation_bench(data, limit=limit, echo=typer.echo)


@bench_app.command("propose")
@_friendly
def bench_propose(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data"),
    n: int = typer.Option(20, "--n", help="Number of slices (spread over patients)."),
    out: Path | None = typer.Option(None, "--out", help="Also write the figures as JSON here."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Faithful vs fast proposer side by side: seconds per slice and best-candidate Dice."""
    from scarceseg.bench.propose_bench import run_propose_bench

    run_propose_bench(data, n=n, seed=seed, echo=typer.echo, out=out)


@bench_app.command("stember")
@_friendly
def bench_stember(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG-layout data set."),
    out: Path = typer.Option(Path("bench_out/stember"), "--out"),
    seed: list[int] = typer.Option([0], "--seed", help="Split/training seed; repeat for several."),
    n_train: int = typer.Option(10, "--n-train", help="Training images, one per patient."),
    max_test: int | None = typer.Option(None, "--max-test", help="Cap on test slices (default: all)."),
    episodes: int | None = typer.Option(None, "--episodes", help="Override the DQN's 300 episodes."),
    unet_epochs: int | None = typer.Option(None, "--unet-epochs", help="Override U-Net epochs (both configs)."),
    unet: bool = typer.Option(True, "--unet/--no-unet", help="Also train and test the two U-Net baselines."),
    unet_device: str = typer.Option("cpu", "--unet-device", help="cpu, cuda or auto for the U-Nets."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for proposing candidates."),
    propose_only: bool = typer.Option(False, "--propose-only", help="Only fill the proposal cache, then stop."),
) -> None:
    """Paper 000's experiment: UDC + DQN (one-click, automatic) vs U-Net, with figures and report.md.

    Finished seeds are kept in OUT/seed<S>/ and reused, so an interrupted run resumes and seeds can run in
    parallel processes; a last run with every --seed writes the pooled report.
    """
    from scarceseg.bench.stember import run_stember

    run_stember(data, out, seeds=seed, n_train=n_train, max_test=max_test, episodes=episodes,
                unet_epochs=unet_epochs, unet=unet, unet_device=unet_device, workers=workers,
                propose_only=propose_only, echo=typer.echo, progress=sys.stderr.isatty())


@app.command("cluster")
@_friendly
def cluster_cmd(
    volume: Path = typer.Argument(..., help="Image to cluster (NIfTI/NRRD/... volume, or a 2D image)."),
    out: Path = typer.Option(..., "--out", help="Folder for labels.nii.gz (labels.png in 2D), slices.png, summary."),
    method: str = typer.Option("jule", "--method", help="jule | kmeans | otsu."),
    k: int = typer.Option(3, "--k", min=2, help="Number of clusters K (paper 001: 3)."),
    mask: Path | None = typer.Option(None, "--mask", help="Region to cluster (default: Otsu foreground)."),
    threshold: float | None = typer.Option(None, "--threshold", help="Region = intensity above this (no --mask)."),
    channel: str = typer.Option("0", "--channel", help="Channel index or name (e.g. FLAIR)."),
    config: str = typer.Option("cpu", "--config", help="JULE config: cpu | paper | a JSON file."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same labels."),
) -> None:
    """Unsupervised clustering of one image into K labels (paper 001): JULE + k-means, k-means or multi-Otsu."""
    from scarceseg.methods.jule import cluster_image

    summary = cluster_image(volume, out, method=method, k=k, mask=mask, threshold=threshold, channel=channel,
                            config=config, seed=seed, echo=typer.echo)
    typer.echo(f"wrote {summary['labels']} and {summary['figure']} ({summary['seconds']:.1f} s)")


@bench_app.command("jule")
@_friendly
def bench_jule(
    data: Path = typer.Option(Path("../shared/data"), "--data",
                              help="Folder holding brats2015/ and/or la2018/, or one such data set."),
    out: Path = typer.Option(Path("bench_out/jule"), "--out"),
    config: str = typer.Option("cpu", "--config", help="JULE config: cpu | paper | a JSON file."),
    brats_limit: int | None = typer.Option(None, "--brats-limit", help="First N BRATS volumes (default: all)."),
    la_limit: int | None = typer.Option(4, "--la-limit", help="First N LA volumes (0: all)."),
    seed: int = typer.Option(0, "--seed"),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation",
                                  help="Also score k-means on the untrained (random) CNN's features."),
) -> None:
    """Paper 001's experiment: NMI and matched Dice vs K for JULE, k-means and multi-Otsu; figure and report."""
    from scarceseg.bench.jule_bench import run_jule_bench

    run_jule_bench(data, out, config=config, brats_limit=brats_limit, la_limit=la_limit or None, seed=seed,
                   ablation=ablation, echo=typer.echo, progress=sys.stderr.isatty())


# ---- interactive refinement (paper 002: IteR-MRL, min-cut, R-Net-style, InterCNN) ---------------------
@train_app.command("refiner")
@_friendly
def train_refiner(
    data: Path = typer.Option(..., "--data", help="Labelled 2D slices or 3D volumes (paper 002's D_train2)."),
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    method: str = typer.Option("itermrl", "--method", help="itermrl, rnet or intercnn."),
    init_model: Path | None = typer.Option(None, "--init-model",
                                           help="U-Net folder giving the initial masks (default: all background)."),
    iterations: int | None = typer.Option(None, "--iterations", help="Gradient updates (default 300)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Use only the first N cases."),
    channel: str | None = typer.Option(None, "--channel", help="Image channel (default FLAIR when present)."),
    seed: int = typer.Option(0, "--seed"),
    layout: str | None = typer.Option(None, "--layout"),
) -> None:
    """Train a click-to-correct refiner: IteR-MRL (A2C, synchronous) or a supervised baseline."""
    from scarceseg.methods.refine_entry import train_refiner_from_dataset

    h = train_refiner_from_dataset(data, out, method=method, init_model=init_model, iterations=iterations,
                                   n_train=n_train, channel=channel, seed=seed, layout=layout,
                                   progress=sys.stderr.isatty())
    typer.echo(f"trained {method} in {h['seconds']:.0f} s; wrote {h['out_dir']}")


@app.command("refine")
@_friendly
def refine(
    model: str = typer.Option(..., "--model", help="Refiner folder (scarceseg train refiner) or 'mincut'."),
    image: Path = typer.Option(..., "--image", help="The image (2D or 3D)."),
    out: Path = typer.Option(..., "--out", help="Refined mask to write (PNG for 2D, NIfTI for 3D)."),
    init: Path | None = typer.Option(None, "--init", help="Initial mask (default: all background)."),
    click: list[str] = typer.Option([], "--click", help="Y,X,+ or Z,Y,X,- ; repeat; together one step."),
    clicks: Path | None = typer.Option(None, "--clicks", help="Clicks JSON (a click log or a list of clicks)."),
    channel: str | None = typer.Option(None, "--channel", help="Image channel (default FLAIR when present)."),
) -> None:
    """Refine a mask with clicks and write it."""
    from scarceseg.methods.refine_entry import refine_file

    r = refine_file(model, image, out, init_path=init, clicks=click, clicks_json=clicks, channel=channel)
    typer.echo(f"{r['steps']} step(s), {r['clicks']} click(s): {r['object_voxels']} object voxels; wrote {r['out']}")


@bench_app.command("itermrl")
@_friendly
def bench_itermrl(
    data: Path = typer.Option(Path("../shared/data/brats2015"), "--data",
                              help="2D data: BRATS volumes (split by case, sliced) or LGG-layout slices."),
    out: Path = typer.Option(Path("bench_out/itermrl"), "--out"),
    data3d: Path | None = typer.Option(None, "--data3d",
                                       help="3D data: LA 2018 (HDF5) or BRATS volumes; crops around the target."),
    seed: int = typer.Option(0, "--seed"),
    n_train1: int = typer.Option(24, "--n-train1", help="Slices for the initial U-Net (D_train1)."),
    unet_epochs: int = typer.Option(40, "--unet-epochs"),
    unet_scale: float = typer.Option(0.5, "--unet-scale", help="U-Net input resize factor (CPU budget)."),
    n_train2: int = typer.Option(80, "--n-train2", help="Slices for the refiners (D_train2)."),
    n_test: int = typer.Option(30, "--n-test", help="Test slices (D_test)."),
    itermrl_iterations: int = typer.Option(600, "--itermrl-iterations"),
    baseline_iterations: int = typer.Option(200, "--baseline-iterations"),
    noc_cases: int = typer.Option(10, "--noc-cases"),
    iterations_3d: int = typer.Option(60, "--iterations-3d"),
) -> None:
    """Paper 002's tables: Dice per step, interaction ablation, NoC@85/90, latency (2D; 3D with --data3d)."""
    from scarceseg.bench.itermrl_bench import ItermrlBudget, run_itermrl_bench

    budget = ItermrlBudget(n_train1=n_train1, unet_epochs=unet_epochs, unet_scale=unet_scale, n_train2=n_train2,
                           n_test=n_test,
                           itermrl_iterations=itermrl_iterations, baseline_iterations=baseline_iterations,
                           noc_cases=noc_cases, iterations_3d=iterations_3d, seed=seed, do_3d=data3d is not None)
    run_itermrl_bench(data, out, budget, data3d=data3d, echo=typer.echo, progress=sys.stderr.isatty(),
                      command="scarceseg " + " ".join(sys.argv[1:]))


@bench_app.command("acwe")
@_friendly
def bench_acwe(
    data: list[Path] = typer.Option([Path("../shared/data/lgg"), Path("../shared/data/la2018")], "--data",
                                    help="Labelled data set; repeat for several (default: LGG and LA 2018)."),
    out: Path = typer.Option(Path("bench_out/acwe"), "--out"),
    seed: int = typer.Option(0, "--seed"),
    n_train: int | None = typer.Option(400, "--n-train", help="Cap on training slices per data set (0 = all)."),
    n_test: int | None = typer.Option(150, "--n-test", help="Cap on test slices per data set (0 = all)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Epochs of modes 1 and 4 (default 8)."),
    finetune_steps: int | None = typer.Option(None, "--finetune-steps",
                                              help="Exact modes 2-3 steps (default: max(150, 40 label passes))."),
    size: int | None = typer.Option(None, "--size", help="Network grid side (default 64; the paper's 192)."),
    slice_step: int = typer.Option(2, "--slice-step", min=1, help="Volumes: every N-th slice with the label."),
    mode4_labels: int | None = typer.Option(None, "--mode4-labels", help="Labels for mode 4 (default: all)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads (1: same core count as chan_vese)."),
    paper_timing: int = typer.Option(10, "--paper-timing", min=0,
                                     help="Test images also timed at the paper's 192x192 grid (0: skip)."),
    device: str = typer.Option("cpu", "--device", help="ConvNet device: cpu (default), cuda or auto."),
) -> None:
    """Paper 003's Table 1: ACWE ConvNet modes 1-4 vs scikit-image Chan-Vese, Dice and seconds per image."""
    from scarceseg.bench.acwe_bench import run_acwe_bench

    run_acwe_bench(data, out, seed=seed, n_train=n_train or None, n_test=n_test or None, epochs=epochs,
                   finetune_steps=finetune_steps, size=size, slice_step=slice_step, mode4_labels=mode4_labels,
                   threads=threads, paper_timing=paper_timing, device=device, echo=typer.echo,
                   progress=sys.stderr.isatty())


# ---- the browser app ---------------------------------------------------------------------------------
@app.command("serve")
@_friendly
def serve_cmd(
    folder: Path = typer.Argument(..., help="Folder of images / volumes (any layout or format scarceseg reads)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs a token."),
    port: int = typer.Option(8765, "--port", min=1, max=65535),
    user: str | None = typer.Option(None, "--user", help="Name recorded with every action (default: OS user)."),
    token: str | None = typer.Option(None, "--token", help="Require this token (generated and printed when "
                                                            "--host is not loopback)."),
    workdir: Path | None = typer.Option(None, "--workdir", help="Proposals, label store and saved masks "
                                                                 "(default: FOLDER/.scarceseg)."),
    refiner: str = typer.Option("mincut", "--refiner", help="Trained refiner folder, or mincut (default)."),
    episodes: int = typer.Option(100, "--episodes", min=1, help="Episodes of the 'train selector' button."),
    layout: str | None = typer.Option(None, "--layout", help="Data set layout (default: detect, else plain files)."),
) -> None:
    """Open FOLDER in the browser: propose, pick, refine with clicks, undo, save, train, segment the rest."""
    from scarceseg.store.picking import default_user
    from scarceseg.web.app import ServerConfig, serve

    config = ServerConfig(folder=folder, workdir=workdir, user=user or default_user(), token=token,
                          refiner=refiner, episodes=episodes, layout=layout)
    serve(config, host=host, port=port, echo=typer.echo)


@bench_app.command("web")
@_friendly
def bench_web(
    clicks: int = typer.Option(30, "--clicks", min=20, help="Refinement clicks to time (median reported)."),
    out: Path = typer.Option(Path("bench_out/web"), "--out", help="Sample data, server files, screenshot."),
    chromium: str = typer.Option("/usr/bin/chromium", "--chromium", help="The Chromium binary."),
) -> None:
    """Time click -> updated overlay in Chromium on a 256x256 sample slice (the browser app's latency)."""
    from scarceseg.web.bench import run_web_bench

    run_web_bench(out, n_clicks=clicks, chromium=chromium, echo=typer.echo)


@bench_app.command("pixeldrl")
@_friendly
def bench_pixeldrl(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG-layout slices."),
    out: Path = typer.Option(Path("bench_out/pixeldrl"), "--out"),
    budget_minutes: float = typer.Option(8.0, "--budget-minutes", help="CPU minutes per method, full training set."),
    shot_minutes: float = typer.Option(2.5, "--shot-minutes", help="CPU minutes per method on the N-shot sets."),
    shots: list[int] = typer.Option([50, 100], "--shots", help="N-shot sets (repeat)."),
    folds: int = typer.Option(0, "--folds", help="Run k-fold CV of PixelDRL-MG and U-Net instead (e.g. 5)."),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads per training (budget is CPU seconds)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Paper 004: Table 2 / Table 4 (PixelDRL-MG vs U-Net, Attention U-Net, PixelRL-U-Net), Fig. 7, Fig. 4."""
    from scarceseg.bench.pixeldrl_bench import PixelDRLBudget, run_pixeldrl_bench, run_pixeldrl_cv

    if folds:
        run_pixeldrl_cv(data, out, folds=folds, budget_s=budget_minutes * 60.0, seed=seed, threads=threads,
                        echo=typer.echo, progress=sys.stderr.isatty())
        return
    budget = PixelDRLBudget(full_s=budget_minutes * 60.0, shot_s=shot_minutes * 60.0, shots=tuple(shots),
                            threads=threads, seed=seed)
    run_pixeldrl_bench(data, out, budget, echo=typer.echo, progress=sys.stderr.isatty(),
                       command="scarceseg " + " ".join(sys.argv[1:]))


if __name__ == "__main__":  # pragma: no cover
    app()
