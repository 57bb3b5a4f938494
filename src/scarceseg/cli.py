"""The ``scarceseg`` command line: each command a thin wrapper over a plain function.

Imports live inside the commands so that ``--help`` is instant. Errors a user can cause print one line and
exit with status 1; details go to a log file (:mod:`scarceseg.cli_util`). Help texts are shown as written
(``rich_markup_mode=None``), so ``[y, x]`` is not taken for rich markup.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scarceseg.cli_bench import bench_app
from scarceseg.cli_train import methods_cmd, train_app
from scarceseg.cli_util import friendly as _friendly

HELP = """Segment medical images when labels are scarce.

Propose candidate regions, pick the lesion, learn to pick, refine with clicks, and measure.
Start with `scarceseg demo`, or `scarceseg serve FOLDER` to label your own images in the browser.
"""

app = typer.Typer(no_args_is_help=True, add_completion=False, help=HELP, rich_markup_mode=None)
app.add_typer(bench_app, name="bench")
app.add_typer(train_app, name="train")
app.command("methods")(methods_cmd)


def _print_version(value: bool) -> None:
    if value:
        from scarceseg import __version__

        typer.echo(f"scarceseg {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(False, "--version", help="Print the version and exit.",
                                      callback=_print_version, is_eager=True),
) -> None:
    """Segment medical images when labels are scarce."""


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

    result = evaluate_folder(pred, gt, out, layout=layout, method=method, progress=True)
    typer.echo(result.report())


@app.command()
@_friendly
def demo(
    out: Path = typer.Option(Path("demo_out"), "--out", help="Folder for the sample data and results."),
    n: int = typer.Option(20, "--n", min=4, help="Number of sample slices (half train, half test)."),
    episodes: int | None = typer.Option(None, "--episodes",
                                        help="DQN episodes (demo default 100; the paper's 300)."),
    fewshot_steps: int | None = typer.Option(None, "--fewshot-steps", min=1,
                                             help="Updates of the fewshot learner (default: its config's)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """On built-in sample data: box-prompted labels, the fewshot learner, paper 000's selector, baselines, report."""
    from scarceseg.bench.demo import run_demo

    run_demo(out, n=n, seed=seed, episodes=episodes, fewshot_steps=fewshot_steps, echo=typer.echo, progress=True)


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
    force: bool = typer.Option(False, "--force", help="Propose again cases already in WORKDIR (default: keep "
                                                      "them, so a rerun resumes)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local processes (default: 1, this one)."),
    ray: str | None = typer.Option(None, "--ray", help="Run on Ray: auto (running cluster, else a local one) "
                                                      "or a cluster ADDRESS. Needs scarceseg[ray]."),
) -> None:
    """Split each image into candidate regions (SLIC + clustering CNN) and write them into WORKDIR."""
    from scarceseg.cluster.udc import UDCConfig
    from scarceseg.store.propose_many import propose_inputs

    cfg = UDCConfig.preset(config)
    if candidates is not None:
        cfg = UDCConfig.from_dict({**cfg.__dict__, "candidates": candidates})
    if (workers or 1) == 1 and ray is None:
        propose_inputs(list(inputs), out, config=cfg, channels=channels, seed=seed, layout=layout,
                       progress=True, echo=typer.echo, force=force)
        return
    from scarceseg.bench.cohort import propose_cohort

    summary = propose_cohort(list(inputs), out, config=cfg, channels=channels, seed=seed, layout=layout,
                             workers=workers, ray=ray, resume=not force, progress=True)
    for name, where, reason in summary["skipped"]:
        typer.echo(f"  skipped {name}: {where}: {reason}")
    kept = summary["kept"]
    again = f"; kept {len(kept)} finished before (--force redoes them)" if kept else ""
    typer.echo(f"proposed {len(summary['proposed'])} case(s) into {out / 'proposals'} "
               f"(median {summary['median_seconds']:.2f} s per case){again}; skipped {len(summary['skipped'])}")
    _report_failed(summary["failed"])


def _report_failed(failed: list) -> None:
    """Cases that failed after their retries: listed, and the command exits with status 1."""
    for case_id, reason in failed:
        typer.echo(f"failed {case_id}: {reason}", err=True)
    if failed:
        typer.echo(f"error: {len(failed)} case(s) failed after retries; run the command again to retry them "
                   "(finished cases are kept)", err=True)
        raise typer.Exit(1)


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
    from scarceseg.store.oracle import format_oracle_summary, oracle_pick_dataset
    from scarceseg.store.picking import format_pick, parse_point, pick_warnings
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
    for warning in pick_warnings(workdir, result):
        typer.echo(f"warning: {warning}", err=True)


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


@app.command()
@_friendly
def segment(
    model: Path | None = typer.Option(None, "--model", help="A model folder of any registered segmenter "
                                                             "(with --prompt: default the LiteMedSAM prior)."),
    data: Path = typer.Option(..., "--data", help="Data set folder (or folder of images) to segment."),
    out: Path = typer.Option(..., "--out", help="Folder for <case_id>.png (2D) / .nii.gz (3D) masks."),
    mask_format: str = typer.Option("auto", "--format", help="Mask files: auto (PNG for 2D, NIfTI for 3D) or "
                                                             "dicom-seg (<case_id>.dcm; the input must be DICOM)."),
    prompt: Path | None = typer.Option(None, "--prompt", help="boxes.json {case: {y0,x0,y1,x1[,z]}} or clicks.json "
                                                              "{case: [y, x]}: prompted segmentation with the prior."),
    mode: str = typer.Option("automatic", "--mode", help="Selector: automatic (default) or one-click."),
    points: Path | None = typer.Option(None, "--points", help="One-click: JSON {case_id: [y, x]} or CSV."),
    action_maps: bool = typer.Option(False, "--action-maps", help="PixelDRL-MG: also write the action map of "
                                                                    "every step to OUT/action_maps/."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
    force: bool = typer.Option(False, "--force", help="Segment again cases whose mask is already in OUT "
                                                      "(default: keep them, so a rerun resumes)."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="--model: local processes, one case per task "
                                                                      "(default: all cores; 1: this process)."),
    ray: str | None = typer.Option(None, "--ray", help="Run on Ray: auto (running cluster, else a local one) "
                                                      "or a cluster ADDRESS. Needs scarceseg[ray]."),
) -> None:
    """Segment new images: from a box or click per case with the prior (--prompt), or with a trained model.

    With --model, one task per case on a local process pool (all cores unless --workers says otherwise) or a
    Ray cluster (--ray); masks are written as they finish, and a rerun keeps the cases that are finished.
    """
    from scarceseg.errors import ScarcesegError
    from scarceseg.io.writers import MASK_FORMATS

    if mask_format not in MASK_FORMATS:
        raise ScarcesegError(f"--format must be one of {', '.join(MASK_FORMATS)}, got {mask_format!r}")
    if prompt is not None:
        if model is not None:
            raise ScarcesegError("--prompt uses the LiteMedSAM prior; leave out --model")
        from scarceseg.methods.prompted import segment_prompted

        summary = segment_prompted(data, out, prompt, layout=layout, progress=True, force=force,
                                   mask_format=mask_format)
    elif model is None:
        raise ScarcesegError("give --model MODEL_FOLDER, or --prompt FILE to segment from boxes or clicks")
    elif mask_format == "auto" and (ray is not None or (workers or _all_cores()) > 1):
        from scarceseg.bench.cohort import segment_cohort  # one task per case on a process pool or Ray

        summary = segment_cohort(model, data, out, options=_inference_options(mode, points, action_maps, seed),
                                 layout=layout, workers=workers, ray=ray, resume=not force, progress=True)
    elif ray is not None or (workers or 1) > 1:
        raise ScarcesegError("--workers/--ray write PNG / NIfTI masks only (leave out --format, or --workers 1)")
    else:
        summary = _segment_with_model(model, data, out, _inference_options(mode, points, action_maps, seed), layout,
                                      force, mask_format)
    for case_id, reason in summary.get("skipped") or []:
        typer.echo(f"  skipped {case_id}: {reason}")
    for note in summary.get("notes") or []:
        typer.echo(f"  note: {note}")
    kept = summary.get("kept") or []
    again = f"; kept {len(kept)} written before (--force redoes them)" if kept else ""
    if not summary["written"] and not kept and not summary.get("failed"):
        raise ScarcesegError(f"no case of {data} could be segmented; nothing was written")
    typer.echo(f"wrote {len(summary['written'])} masks to {out}{again}; skipped {len(summary.get('skipped') or [])}")
    _report_failed(summary.get("failed") or [])


def _all_cores() -> int:
    from scarceseg.bench.runner import default_workers

    return default_workers()


def _inference_options(mode: str, points, action_maps: bool, seed: int) -> dict:
    """`segment --model`'s inference options (the registered method's ``set_inference``); ``seed`` is applied
    only by methods that draw at inference (the proposals)."""
    options: dict = {"seed": seed}
    if mode != "automatic":
        options["mode"] = mode
    if points is not None:
        options["points"] = points
    if action_maps:
        options["action_maps"] = True
    return options


def _segment_with_model(model: Path, data: Path, out: Path, options: dict, layout, force: bool,
                        mask_format: str = "auto") -> dict:
    """`segment --model --workers 1`: the registered method that the folder's method.json names (old folders:
    config.json), in this process."""
    from scarceseg.methods.folder import segment_folder
    from scarceseg.methods.registry import load_model

    segmenter = load_model(model, kind="segmenter")
    segmenter.set_inference(**{k: v for k, v in options.items() if k != "seed" or k in segmenter.inference_options})
    return segment_folder(segmenter, data, out, layout=layout, progress=True, force=force, mask_format=mask_format)


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
    from scarceseg.bench.cluster_image import cluster_image

    summary = cluster_image(volume, out, method=method, k=k, mask=mask, threshold=threshold, channel=channel,
                            config=config, seed=seed, echo=typer.echo)
    typer.echo(f"wrote {summary['labels']} and {summary['figure']} ({summary['seconds']:.1f} s)")


@app.command("refine")
@_friendly
def refine(
    model: str = typer.Option("prior-mincut", "--model", help="prior-mincut (default: Min-Cut on the prior's "
                                                              "probabilities, local to the click), prior (re-prompts "
                                                              "LiteMedSAM), mincut, or a refiner folder."),
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
    refiner: str = typer.Option("prior-mincut", "--refiner", help="Default corrective refiner: prior-mincut "
                                                                  "(default), prior, mincut, or a trained refiner "
                                                                  "folder."),
    episodes: int = typer.Option(300, "--episodes", min=1, help="Episodes of the 'train selector' button "
                                                                "(the paper's 300, as `train selector`)."),
    layout: str | None = typer.Option(None, "--layout", help="Data set layout (default: detect, else plain files)."),
    save_format: str = typer.Option("auto", "--format", help="What 'save' writes: auto (PNG/NIfTI) or dicom-seg "
                                                             "(a DICOM SEG; the input must be DICOM)."),
) -> None:
    """Open FOLDER in the browser: propose, pick, refine with clicks, undo, save, train, segment the rest."""
    from scarceseg.errors import ScarcesegError
    from scarceseg.io.writers import MASK_FORMATS
    from scarceseg.store.picking import default_user
    from scarceseg.web.app import ServerConfig, serve

    if save_format not in MASK_FORMATS:
        raise ScarcesegError(f"--format must be one of {', '.join(MASK_FORMATS)}, got {save_format!r}")
    config = ServerConfig(folder=folder, workdir=workdir, user=user or default_user(), token=token,
                          refiner=refiner, episodes=episodes, layout=layout, save_format=save_format)
    serve(config, host=host, port=port, echo=typer.echo)


if __name__ == "__main__":  # pragma: no cover
    app()
