"""scarceseg: segment medical images when labels are scarce.

Each command is a thin wrapper over a plain function; imports live inside the commands so that
``--help`` is instant. Errors a user can cause print one line and exit with status 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from scarceseg.cli_bench import bench_app
from scarceseg.cli_util import friendly as _friendly

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
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
    "prior_fewshot": "scarceseg.methods.prior_fewshot:segment_folder_fewshot",
}


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
        ids = [line.strip() for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
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


def _train_fewshot(data: Path, out: Path, n_shot: int, cases: Path | None, seed: int, budget_seconds: float | None,
                   steps: int | None, layout: str | None) -> None:
    from scarceseg.datasets import n_shot as choose_n_shot
    from scarceseg.datasets import open_dataset
    from scarceseg.methods.prior_fewshot import FewShotConfig, train_fewshot_from_dataset

    if cases is not None:
        ids = [line.strip() for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        ids = choose_n_shot(open_dataset(data, layout=layout), n_shot, seed=seed, pick="largest")
    cfg = FewShotConfig() if steps is None else FewShotConfig(steps=steps)
    result = train_fewshot_from_dataset(data, ids, out, config=cfg, seed=seed, layout=layout,
                                        budget_seconds=budget_seconds, progress=sys.stderr.isatty())
    typer.echo(f"trained the few-shot prior learner on {len(ids)} cases ({result['steps']} steps, "
               f"{result['seconds']:.0f} s); saved to {out}")


_FEWSHOT_HELP = ("Few-shot learner on the pretrained prior: a fine-tuned LiteMedSAM decoder finds the lesion, "
                 "its box prompts the prior.")


@train_app.command("prior-fewshot", help=_FEWSHOT_HELP)
@train_app.command("fewshot", help=_FEWSHOT_HELP + " (the recommended learner for few labels)")
@_friendly
def train_fewshot_cmd(
    data: Path = typer.Option(..., "--data", help="Labelled data set folder."),
    out: Path = typer.Option(..., "--out", help="Model folder."),
    n_shot: int = typer.Option(10, "--n-shot", help="Train on N slices from N distinct patients."),
    cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line "
                                                             "(instead of --n-shot)."),
    seed: int = typer.Option(0, "--seed"),
    budget_seconds: float | None = typer.Option(None, "--budget-seconds", help="Wall-clock limit of training."),
    steps: int | None = typer.Option(None, "--steps", help="Override the number of decoder updates."),
    layout: str | None = typer.Option(None, "--layout"),
) -> None:
    _train_fewshot(data, out, n_shot, cases, seed, budget_seconds, steps, layout)


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
        ids = [line.strip() for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
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
        fmt = str(json.loads(config_path.read_text(encoding="utf-8")).get("format", ""))
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
                                                                 "(default: a user data folder keyed by "
                                                                 "FOLDER's path; FOLDER is never written)."),
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


if __name__ == "__main__":  # pragma: no cover
    app()
