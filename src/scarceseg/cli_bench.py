"""`scarceseg bench ...`: the papers' experiments and the speed benchmarks, each a thin wrapper over a plain
function (imports inside the commands so that ``--help`` is instant)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from scarceseg.cli_util import friendly as _friendly

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks and paper experiments.")


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
    config: list[str] = typer.Option(["faithful", "fast"], "--config", help="Proposer presets (repeat)."),
    channels: list[str] = typer.Option(["flair", "all"], "--channels", help="flair and/or all (repeat)."),
) -> None:
    """Faithful vs fast proposer side by side: seconds per slice and best-candidate Dice."""
    from scarceseg.bench.propose_bench import run_propose_bench

    run_propose_bench(data, n=n, seed=seed, configs=config, channels=channels, echo=typer.echo, out=out)


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
                propose_only=propose_only, echo=typer.echo, progress=True)


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
                   ablation=ablation, echo=typer.echo, progress=True)


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
    baseline_iterations_3d: int = typer.Option(60, "--baseline-iterations-3d", help="R-Net / InterCNN updates in 3D."),
    noc_max: int = typer.Option(20, "--noc-max", min=1, help="NoC: at most this many clicks."),
    latency_steps: int = typer.Option(50, "--latency-steps", min=1, help="Refinement steps timed per method."),
) -> None:
    """Paper 002's tables: Dice per step, interaction ablation, NoC@85/90, latency (2D; 3D with --data3d)."""
    from scarceseg.bench.itermrl_bench import ItermrlBudget, run_itermrl_bench

    budget = ItermrlBudget(n_train1=n_train1, unet_epochs=unet_epochs, unet_scale=unet_scale, n_train2=n_train2,
                           n_test=n_test,
                           itermrl_iterations=itermrl_iterations, baseline_iterations=baseline_iterations,
                           noc_cases=noc_cases, iterations_3d=iterations_3d,
                           baseline_iterations_3d=baseline_iterations_3d, noc_max=noc_max,
                           latency_steps=latency_steps, seed=seed, do_3d=data3d is not None)
    run_itermrl_bench(data, out, budget, data3d=data3d, echo=typer.echo, progress=True,
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
                   progress=True)


@bench_app.command("web")
@_friendly
def bench_web(
    clicks: int = typer.Option(30, "--clicks", min=20, help="Refinement clicks to time (median reported)."),
    boxes: int = typer.Option(10, "--boxes", min=1, help="Box drags to time (median reported)."),
    out: Path = typer.Option(Path("bench_out/web"), "--out", help="Sample data, server files, screenshot."),
    chromium: str = typer.Option("/usr/bin/chromium", "--chromium", help="The Chromium binary."),
) -> None:
    """Time box -> overlay and click -> overlay with the prior in Chromium on a 256x256 sample slice."""
    from scarceseg.web.bench import run_web_bench

    run_web_bench(out, n_clicks=clicks, chromium=chromium, echo=typer.echo, n_boxes=boxes)


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
                        echo=typer.echo, progress=True)
        return
    budget = PixelDRLBudget(full_s=budget_minutes * 60.0, shot_s=shot_minutes * 60.0, shots=tuple(shots),
                            threads=threads, seed=seed)
    run_pixeldrl_bench(data, out, budget, echo=typer.echo, progress=True,
                       command="scarceseg " + " ".join(sys.argv[1:]))


@bench_app.command("interactive")
@_friendly
def bench_interactive(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG, BRATS, LA 2018 or pairs folder."),
    first: str = typer.Option("box", "--first", help="First gesture: box (truth box + 5 px) or click."),
    refiner: list[str] = typer.Option(["flat-mincut", "prior", "prior-mincut"], "--refiner",
                                      help="flat-mincut, prior, prior-mincut, prior-itermrl (+ '-global': "
                                           "without locality); repeat for several."),
    clicks: int = typer.Option(10, "--clicks", min=0, help="NoC-robot clicks after the first gesture."),
    out: Path | None = typer.Option(None, "--out", help="Write CSV, JSON and the plot here."),
    every: int = typer.Option(1, "--every", min=1, help="Use every K-th slice with a lesion."),
    limit: int | None = typer.Option(None, "--limit", help="At most N slices."),
    volumes: bool = typer.Option(False, "--volumes", help="Also box + propagation + 5 clicks per volume (3D)."),
    volume_limit: int | None = typer.Option(None, "--volume-limit", help="At most N volumes."),
    click_method: str = typer.Option("vote", "--click-method", help="Click -> mask strategy for --first click."),
    itermrl_model: str | None = typer.Option(None, "--itermrl-model", help="IteR-MRL folder for prior-itermrl."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads (1 is faster on a loaded machine)."),
    seed: int = typer.Option(0, "--seed"),
    workers: int = typer.Option(1, "--workers", min=1, help="Local processes, one slice (or volume) per task "
                                                            "(default 1: this process, for clean ms/click)."),
    ray: str | None = typer.Option(None, "--ray", help="Run the tasks on Ray: auto or a cluster ADDRESS."),
) -> None:
    """Robot-user benchmark of the prior's refiners (issue 13's protocol): Dice per click, NoC, worse share.

    With --out, a rerun with the same settings keeps the slices an earlier run finished.
    """
    from scarceseg.bench.interactive_bench import run_interactive_bench

    run_interactive_bench(data, out=out, first=first, refiners=refiner, n_clicks=clicks, every=every, limit=limit,
                          volumes=volumes, volume_limit=volume_limit, click_method=click_method,
                          itermrl_model=itermrl_model, threads=threads, seed=seed, echo=typer.echo,
                          workers=workers, ray=ray)


@bench_app.command("prior-click")
@_friendly
def bench_prior_click(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data"),
    every: int = typer.Option(8, "--every", min=1, help="Use every K-th slice with a lesion."),
    limit: int | None = typer.Option(None, "--limit"),
    method: list[str] = typer.Option([], "--method", help="Strategies to compare (default: all)."),
    out: Path | None = typer.Option(None, "--out"),
    threads: int = typer.Option(1, "--threads", min=1),
) -> None:
    """One click at the truth's innermost pixel -> mask, by each strategy; the truth box + 5 px beside."""
    from scarceseg.bench.prior_speed import run_click_bench

    run_click_bench(data, every=every, limit=limit, methods=method or None, out=out, threads=threads,
                    echo=typer.echo)


@bench_app.command("prior-speed")
@_friendly
def bench_prior_speed(
    repeats: int = typer.Option(5, "--repeats", min=1),
    threads: int = typer.Option(2, "--threads", min=1),
    size: int = typer.Option(256, "--size", min=16),
    backend: list[str] = typer.Option(
        [], "--backend",
        help="Encoder backend to time beside torch: onnx (onnxruntime) or openvino; repeatable. "
             "torch always runs first, as the reference.",
    ),
) -> None:
    """The prior's speed: embedding, box -> mask and click -> mask, with the load average beside."""
    from scarceseg.bench.prior_speed import run_speed_bench

    run_speed_bench(repeats=repeats, threads=threads, size=size, backends=["torch", *backend], echo=typer.echo)


@bench_app.command("fewshot")
@_friendly
def bench_fewshot(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG-layout data set."),
    out: Path = typer.Option(Path("bench_out/fewshot"), "--out"),
    shots: list[int] = typer.Option([10], "--shots", help="Labelled slices (one per patient); repeat for several."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds 0..N-1 (each a different set of training patients)."),
    every: int = typer.Option(2, "--every", help="Every K-th slice of the held-out patients is a test slice."),
    test_slices: int = typer.Option(100, "--test-slices", help="At most N test slices (thinned evenly)."),
    methods: str = typer.Option("fewshot,unet", "--methods",
                                help="Comma-separated: fewshot, unet, pixeldrl-prior, selector-prior (paper 000 on "
                                     "the prior's candidates; also reports their ceiling)."),
    unet_epochs: int = typer.Option(40, "--unet-epochs", help="Epochs of the fair U-Net (its CPU budget)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the few-shot learner's localiser updates."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache folder (default OUT/emb_cache)."),
    pixeldrl_seconds: float = typer.Option(240.0, "--pixeldrl-seconds",
                                           help="pixeldrl-prior: process CPU seconds of training per model."),
    pixeldrl_config: str | None = typer.Option(None, "--pixeldrl-config",
                                               help="pixeldrl-prior: JSON of its config (PixelDRLConfig fields)."),
    selector_config: str | None = typer.Option(None, "--selector-config",
                                               help="selector-prior's config: a JSON object or a YAML/JSON file."),
) -> None:
    """The few-shot prior learner vs the fair U-Net on the same slices: per-seed Dice, paired test, timing."""
    from scarceseg.bench.fewshot_bench import run_fewshot_bench

    run_fewshot_bench(data, out, shots=shots, seeds=seeds, every=every, test_slices=test_slices,
                      methods=[m.strip() for m in methods.split(",") if m.strip()], unet_epochs=unet_epochs,
                      steps=steps, cache_dir=cache, progress=True, log=typer.echo,
                      pixeldrl_seconds=pixeldrl_seconds,
                      pixeldrl_config=json.loads(pixeldrl_config) if pixeldrl_config else None,
                      selector_config=_json_or_file(selector_config))


@bench_app.command("prior-adapt")
@_friendly
def bench_prior_adapt(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG-layout data set."),
    out: Path = typer.Option(Path("bench_out/prior_adapt"), "--out"),
    shots: int = typer.Option(10, "--shots", min=1, help="Labelled slices to adapt on (one per patient)."),
    seeds: int = typer.Option(3, "--seeds", min=1, help="Seeds 0..N-1 (each a different set of training patients)."),
    steps: int | None = typer.Option(None, "--steps", min=0, help="Override the decoder's updates (AdaptConfig)."),
    lr: float | None = typer.Option(None, "--lr", help="Override the decoder's learning rate (AdaptConfig)."),
    test_slices: int = typer.Option(100, "--test-slices", min=1, help="At most N test slices (thinned evenly)."),
    every: int = typer.Option(2, "--every", min=1, help="Every K-th slice of the held-out patients is a test slice."),
    click: str | None = typer.Option(None, "--click", help="Also one click at the truth's innermost pixel, made a "
                                                           "mask by this prior-click strategy (e.g. grow, vote)."),
    validate: bool = typer.Option(False, "--validate", help="Tune: test on training-pool patients no seed trains "
                                                            "on; the held-out patients are not read."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache folder (default OUT/emb_cache)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads (1 is faster on a loaded machine)."),
) -> None:
    """The zero-shot prior against the same prior with its mask decoder fine-tuned on a few slices (same box)."""
    import torch

    from scarceseg.bench.prior_adapt_bench import run_prior_adapt_bench

    if lr is not None and not lr > 0:
        raise typer.BadParameter(f"--lr must be above 0, got {lr}")
    if click is not None:
        from scarceseg.methods.prior_click import CLICK_METHODS

        if click not in CLICK_METHODS:
            raise typer.BadParameter(f"--click takes one of {', '.join(CLICK_METHODS)}, got {click!r}")
    torch.set_num_threads(threads)
    run_prior_adapt_bench(data, out, shots=shots, seeds=seeds, steps=steps, lr=lr, test_slices=test_slices,
                          every=every, click=click, validate=validate, cache_dir=cache,
                          progress=True, log=typer.echo)


def _json_or_file(text: str | None) -> dict | None:
    """A config given on the command line: a JSON object, or the path of a YAML/JSON file holding one."""
    if not text:
        return None
    if text.lstrip().startswith("{"):
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not a JSON object: {exc}") from None
    from scarceseg.methods.config import read_config_file

    return read_config_file(Path(text))


@bench_app.command("fewshot-volumes")
@_friendly
def bench_fewshot_volumes(
    data: Path = typer.Option(Path("../shared/data/brats2015"), "--data", help="A folder of labelled 3D volumes."),
    out: Path = typer.Option(Path("bench_out/fewshot_volumes"), "--out"),
    shots: int = typer.Option(10, "--shots", help="Labelled lesion slices, spread over the training volumes."),
    negatives: list[int] = typer.Option([0], "--negatives", help="Lesion-free training slices; repeat to "
                                        "compare (each setting trains its own model)."),
    test_volumes: int = typer.Option(1, "--test-volumes", help="Held-out volumes, segmented slice by slice."),
    seed: int = typer.Option(0, "--seed"),
    steps: int | None = typer.Option(None, "--steps", help="Override the few-shot learner's localiser updates."),
    channel: str = typer.Option("flair", "--channel", help="Channel given to the prior (a 1-channel image: it)."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache folder (default OUT/emb_cache)."),
) -> None:
    """The few-shot learner on every slice of held-out volumes: per-volume Dice and false positives on
    lesion-free slices."""
    from scarceseg.bench.fewshot_volumes import run_fewshot_volumes

    run_fewshot_volumes(data, out, shots=shots, negatives=negatives, test_volumes=test_volumes, seed=seed,
                        steps=steps, cache_dir=cache, channel=channel, progress=True,
                        log=typer.echo)


@bench_app.command("loop")
@_friendly
def bench_loop(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="LGG-layout data set."),
    out: Path = typer.Option(Path("bench_out/loop"), "--out", help="Tables, plot, and the state a rerun resumes."),
    rounds: str = typer.Option("5,10,20", "--rounds", help="Images labelled at which the learner is retrained."),
    test_slices: int = typer.Option(100, "--test-slices", min=1, help="Held-out test slices (thinned evenly)."),
    every: int = typer.Option(2, "--every", min=1, help="Every K-th slice of the held-out patients is a test slice."),
    pick: str = typer.Option("largest", "--pick", help="Pool slice per patient: largest (lesion) or random."),
    clicks: int = typer.Option(10, "--clicks", min=0, help="At most this many robot clicks per image."),
    target: float = typer.Option(0.90, "--target", help="Dice at which the robot accepts / stops clicking."),
    redraw_below: float = typer.Option(0.5, "--redraw-below",
                                       help="A suggestion under this Dice is redrawn with a box, not corrected."),
    refiner: str = typer.Option("prior-mincut", "--refiner", help="Corrective refiner (see bench interactive)."),
    learner: str = typer.Option("fewshot", "--learner", help="Registered segmenter retrained each round."),
    steps: int | None = typer.Option(None, "--steps", help="Override the learner's training updates."),
    seed: list[int] = typer.Option([0], "--seed", help="Pool order and training seed; repeat for several (each run "
                                                      "in OUT/seed<S>, then a pooled table in OUT)."),
    cache: Path | None = typer.Option(None, "--cache", help="Embedding cache folder (default OUT/emb_cache)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads (1 is faster on a loaded machine)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Local processes for each stage's test slices and "
                                                            "labelled images, one per task (default 1: here)."),
    ray: str | None = typer.Option(None, "--ray", help="Run those tasks on Ray: auto or a cluster ADDRESS."),
) -> None:
    """Label -> learn -> correct with the robot user: interactions per image and test Dice per round."""
    from scarceseg.bench.loop_bench import run_loop_bench, run_loop_seeds

    try:
        counts = [int(r) for r in rounds.split(",") if r.strip()]
    except ValueError:
        raise typer.BadParameter(f"--rounds takes comma-separated image counts, got {rounds!r}") from None
    kwargs = dict(rounds=counts, test_slices=test_slices, every=every, pick=pick, clicks=clicks, target=target,
                  redraw_below=redraw_below, refiner=refiner, learner=learner, steps=steps, cache_dir=cache,
                  threads=threads, progress=True, log=typer.echo, workers=workers, ray=ray)
    if len(set(seed)) > 1:
        run_loop_seeds(data, out, seeds=seed, **kwargs)
    else:
        run_loop_bench(data, out, seed=seed[0], **kwargs)


@bench_app.command("scale")
@_friendly
def bench_scale(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="2D slices (LGG layout): one task each."),
    volumes: Path | None = typer.Option(None, "--volumes", help="3D volumes (BraTS layout): one task each."),
    out: Path = typer.Option(Path("bench_out/scale"), "--out"),
    slices: int = typer.Option(200, "--slices", min=1, help="Slices, spread over the data set."),
    n_volumes: int = typer.Option(4, "--n-volumes", min=1, help="First N volumes."),
    workers: list[int] = typer.Option([1, 2], "--workers", help="Worker counts to measure (repeat)."),
    ray: str = typer.Option("auto", "--ray", help="auto (running cluster, else a local one), ADDRESS, or none."),
    noop: int = typer.Option(200, "--noop", min=2, help="No-op tasks for the per-task overhead."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Cohort throughput (cases/s) for 1 and 2 workers, process pool against Ray; Ray's start-up and overhead."""
    from scarceseg.bench.scale_bench import run_scale_bench

    run_scale_bench(data, out, volumes=volumes, n_slices=slices, n_volumes=n_volumes, workers=workers,
                    ray=None if ray == "none" else ray, n_noop=noop, seed=seed, echo=typer.echo,
                    progress=True, command="scarceseg " + " ".join(sys.argv[1:]))


@bench_app.command("all")
@_friendly
def bench_all(
    out: Path = typer.Option(..., "--out", help="Folder: one sub-folder per section and report.html."),
    budget: str = typer.Option("paper", "--budget", help="tiny (sample data, checks), small (< 30 min) or "
                                                         "paper (the README's commands)."),
    data: Path = typer.Option(Path("../shared/data"), "--data", help="Root holding lgg/, brats2015/, la2018/."),
    ray: str | None = typer.Option(None, "--ray", help="The scale section on Ray: auto or ADDRESS (default: none)."),
    only: list[str] = typer.Option([], "--only", help="Run only this section (repeat)."),
    section_timeout: float | None = typer.Option(None, "--section-timeout", help="Stop a section after N s."),
) -> None:
    """Re-run every benchmark the README quotes and write OUT/report.html (tables, figures, commands, versions)."""
    from scarceseg.bench.bench_all import run_all

    run_all(out, budget=budget, data=data, ray=ray, only=only or None, timeout_s=section_timeout, echo=typer.echo)
