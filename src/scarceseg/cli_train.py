"""`scarceseg train METHOD` (:data:`train_app`) and `scarceseg methods`.

Every registered segmenter or refiner without a command of its own gets the generic command below, built from
the registry, so adding a method to :data:`scarceseg.methods.registry.METHODS` adds its ``train`` command. The
commands with paper-specific options (``train selector``, ``unet``, ``fewshot``, ``prior-fewshot``, ``acwe``,
``pixeldrl``, ``refiner``) follow it. Imports live inside the commands so that ``--help`` is instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scarceseg.cli_util import friendly as _friendly

#: registered names whose train command is written out below (paper-specific options)
SPECIAL = ("unet", "acwe", "pixeldrl", "selector", "fewshot", "prior-fewshot")


def _generic_train(name: str, summary: str):
    def command(
        data: Path = typer.Option(..., "--data", help="Labelled data set folder."),
        out: Path = typer.Option(..., "--out", help="Model folder to write (method.json + weights)."),
        config: Path | None = typer.Option(None, "--config", help="YAML or JSON config of the method "
                                                                  "(unknown keys are an error)."),
        cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line."),
        epochs: int | None = typer.Option(None, "--epochs", min=1, help="Budget: epochs (RL: episodes)."),
        steps: int | None = typer.Option(None, "--steps", min=1, help="Budget: gradient updates."),
        cpu_seconds: float | None = typer.Option(None, "--cpu-seconds", help="Budget: process CPU seconds."),
        seed: int = typer.Option(0, "--seed"),
        layout: str | None = typer.Option(None, "--layout"),
    ) -> None:
        from scarceseg.methods.contract import Budget
        from scarceseg.methods.training import config_values, read_case_ids, train_method

        budget = Budget(epochs=epochs, steps=steps, cpu_seconds=cpu_seconds)
        values = config_values(config) if config is not None else {}
        result = train_method(name, data, out, config=values, case_ids=read_case_ids(cases), budget=budget,
                              seed=seed, layout=layout, progress=True)
        typer.echo(f"trained {name} on {result['n_cases']} cases; saved to {result['out_dir']}")

    command.__doc__ = f"Train {name}: {summary}."
    return _friendly(command)


def add_generic_train_commands(train_app: typer.Typer) -> None:
    """One ``train NAME`` command per registered segmenter / refiner not in :data:`SPECIAL`."""
    from scarceseg.methods.registry import METHODS

    for name, entry in METHODS.items():
        if entry.kind != "proposer" and name not in SPECIAL:
            train_app.command(name)(_generic_train(name, entry.summary))


train_app = typer.Typer(no_args_is_help=True, help="Train any registered method (see `scarceseg methods`).")
add_generic_train_commands(train_app)


def methods_cmd(kind: str | None = typer.Option(None, "--kind", help="segmenter, refiner or proposer.")) -> None:
    """List the registered methods (what train, segment, refine and the app can use)."""
    from scarceseg.methods.registry import listing, names

    wanted = set(names(kind))
    for row in listing():
        if row["name"] in wanted:
            typer.echo(f"{row['name']:<10} {row['kind']:<10} {row['summary']}")


@train_app.command("selector")
@_friendly
def train_selector_cmd(
    work: Path = typer.Option(..., "--work", help="WORKDIR with proposals and picks."),
    out: Path = typer.Option(..., "--out", help="Model folder (model.safetensors + config.json)."),
    episodes: int | None = typer.Option(None, "--episodes", help="Override the paper's 300 episodes."),
    mode: str | None = typer.Option(None, "--mode", help="candidates (default) or paper (M vs M^C states)."),
    config_file: Path | None = typer.Option(None, "--config", help="YAML/JSON of SelectorConfig fields."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the Deep Q Network that learns to pick the lesion candidate (paper 000)."""
    from scarceseg.methods.selector_method import SelectorMethod
    from scarceseg.methods.training import config_values
    from scarceseg.store.training import train_selector

    values = config_values(config_file, n_episodes=episodes, mode=mode)
    config = SelectorMethod(values).selector_config
    selector, history = train_selector(work, config=config, seed=seed, progress=True)
    path = selector.save(out)
    acc = history.accuracy.get("train") or []
    final = f"{acc[-1]:.2f}" if acc else "not evaluated"
    typer.echo(f"trained selector on {selector.summary.get('n_images', '?')} picked images in "
               f"{history.seconds:.1f} s; final training selection accuracy {final}; saved to {path}")
    if acc and acc[-1] <= 0.0:
        typer.echo("warning: the final training selection accuracy is 0.00: the selector picks no lesion of its "
                   "own training images; check the picks, add more, or train more --episodes", err=True)
    if selector.summary.get("skipped"):
        typer.echo(f"skipped {len(selector.summary['skipped'])} picks: {selector.summary['skipped']}")


@train_app.command("unet")
@_friendly
def train_unet_cmd(
    data: Path = typer.Option(..., "--data", help="Labelled data set folder."),
    out: Path = typer.Option(..., "--out", help="Model folder."),
    cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line."),
    n_shot: int | None = typer.Option(None, "--n-shot", help="Train on N slices from N distinct patients."),
    config: str = typer.Option("paper", "--config", help="paper (paper 000's settings), fair, or a YAML/JSON "
                                                        "file (preset, channels, UNetConfig fields)."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override the number of epochs."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train the supervised U-Net baseline on a few labelled images."""
    from scarceseg.datasets import n_shot as choose_n_shot
    from scarceseg.datasets import open_dataset
    from scarceseg.errors import ScarcesegError
    from scarceseg.methods.adapters import UNetMethod
    from scarceseg.methods.training import config_values
    from scarceseg.methods.unet_data import train_unet_from_dataset

    if (cases is None) == (n_shot is None):
        raise ScarcesegError("give exactly one of --cases FILE or --n-shot N")
    if cases is not None:
        ids = [line.strip() for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        ids = choose_n_shot(open_dataset(data, layout=layout), n_shot, seed=seed, pick="largest")
    method = UNetMethod(config_values(config, epochs=epochs))
    result = train_unet_from_dataset(data, ids, out, config=method.model.config, channels=method.options.channels,
                                     seed=seed, layout=layout, progress=True)
    typer.echo(f"trained U-Net ({config}) on {len(ids)} cases; saved to {out}")
    if isinstance(result, dict) and result.get("final_loss") is not None:
        typer.echo(f"final training loss {result['final_loss']:.4f}")


def _fewshot_command(name: str, help_text: str):
    """``train prior-fewshot`` / ``train fewshot``: N-shot choice, a wall-clock budget, the model folder."""

    @_friendly
    def command(
        data: Path = typer.Option(..., "--data", help="Labelled data set folder."),
        out: Path = typer.Option(..., "--out", help="Model folder."),
        n_shot: int = typer.Option(10, "--n-shot", help="Train on N slices from N distinct patients (the slice "
                                                        "with the largest lesion of each)."),
        cases: Path | None = typer.Option(None, "--cases", help="Text file with one training case id per line "
                                                                 "(instead of --n-shot)."),
        seed: int = typer.Option(0, "--seed"),
        budget_seconds: float | None = typer.Option(None, "--budget-seconds", help="Wall-clock limit of training "
                                                                                   "(encoding included)."),
        steps: int | None = typer.Option(None, "--steps", min=1, help="Override the number of decoder updates."),
        layout: str | None = typer.Option(None, "--layout"),
    ) -> None:
        from scarceseg.datasets import n_shot as choose_n_shot
        from scarceseg.datasets import open_dataset
        from scarceseg.methods.prior_fewshot import FewShotConfig, train_fewshot_from_dataset

        if cases is not None:
            ids = [line.strip() for line in cases.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            ids = choose_n_shot(open_dataset(data, layout=layout), n_shot, seed=seed, pick="largest")
        cfg = FewShotConfig() if steps is None else FewShotConfig(steps=steps)
        result = train_fewshot_from_dataset(data, ids, out, config=cfg, seed=seed, layout=layout,
                                            budget_seconds=budget_seconds, progress=True,
                                            method_name=name)
        typer.echo(f"trained {name} on {len(ids)} cases ({result['steps']} steps, {result['seconds']:.0f} s); "
                   f"saved to {out}")

    command.__doc__ = help_text
    return command


_FEWSHOT_HELP = ("Few-shot learner on the pretrained prior: a fine-tuned LiteMedSAM decoder finds the lesion, "
                 "its box prompts the prior.")
train_app.command("fewshot")(_fewshot_command("fewshot", _FEWSHOT_HELP + " The recommended learner for few labels."))
train_app.command("prior-fewshot")(_fewshot_command("prior-fewshot", _FEWSHOT_HELP))


@train_app.command("acwe")
@_friendly
def train_acwe_cmd(
    data: Path = typer.Option(..., "--data", help="Data set folder (2D slices, or volumes: slices with the label)."),
    mode: int = typer.Option(1, "--mode", help="1 unsupervised; 2/3 mode 1 + fine-tuning on 10/80 labels; "
                                               "4 ACWE + label loss from the start (paper 003)."),
    out: Path = typer.Option(..., "--out", help="Model folder (model.safetensors + config.json)."),
    config: str = typer.Option("cpu", "--config", help="cpu (64x64, short budget; default), paper (192x192), "
                                                      "or a YAML/JSON file (ACWEConfig fields)."),
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
    from scarceseg.methods.acwe_config import MODES, ACWEConfig
    from scarceseg.methods.acwe_data import train_acwe_from_dataset

    if mode not in MODES:
        raise ScarcesegError(f"--mode must be 1, 2, 3 or 4, got {mode}")
    from scarceseg.methods.training import FILE_SUFFIXES, config_values

    values = config_values(config) if Path(config).suffix.lower() in FILE_SUFFIXES else {}
    if not values and config not in ("cpu", "paper"):
        raise ScarcesegError(f"--config must be cpu, paper or a YAML/JSON file, got {config!r}")
    if init is not None and mode not in (2, 3):
        raise ScarcesegError("--init is for modes 2 and 3 (fine-tuning a mode-1 model)")
    changes = {k: v for k, v in {"epochs": epochs, "finetune_steps": finetune_steps, "size": size}.items()
               if v is not None}
    if finetune_steps is not None:
        changes["finetune_epochs"] = 0  # an explicit step count is exact
    if values:
        from scarceseg.methods.adapters import ACWEMethod
        from scarceseg.methods.config import apply, validate

        options = validate(ACWEMethod.schema, values, config)
        base = ACWEConfig.cpu() if options.preset == "cpu" else ACWEConfig()
        base = apply(base, options)
    else:
        base = ACWEConfig.cpu() if config == "cpu" else ACWEConfig()
    try:
        cfg = replace(base, **changes)
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
                                     progress=True)
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
    config: str = typer.Option("cpu", "--config", help="cpu (128x128, narrow, warm start + PA3C), paper, or a "
                                                      "YAML/JSON file (preset, PixelDRLConfig fields)."),
    budget_minutes: float | None = typer.Option(None, "--budget-minutes", help="Process CPU minutes of training."),
    steps: int | None = typer.Option(None, "--steps", min=1, help="Number of updates (default: the epochs)."),
    channels: str = typer.Option("all", "--channels", help="all, or channel names/indices (e.g. flair)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="torch threads (default: torch's)."),
    fresh: bool = typer.Option(False, "--fresh", help="Ignore an existing checkpoint in OUT."),
    layout: str | None = typer.Option(None, "--layout"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Train PixelDRL-MG: pixel agents that write the mask with PA3C (paper 004)."""
    from scarceseg.methods.adapters import PixelDRLMethod
    from scarceseg.methods.pixeldrl_data import train_pixeldrl_from_dataset
    from scarceseg.methods.training import config_values

    cfg = PixelDRLMethod(config_values(config)).model.config
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    r = train_pixeldrl_from_dataset(data, out, config=cfg, shots=shots, budget_minutes=budget_minutes, steps=steps,
                                    seed=seed, channels=channels, layout=layout, resume=not fresh,
                                    progress=True)
    typer.echo(f"trained PixelDRL-MG ({config}) on {r['n_train']} slices: {r['steps']} updates "
               f"({r['warm_steps']} warm start), {r['cpu_seconds']:.0f} CPU s, {r['n_parameters']} parameters; "
               f"saved to {out}")


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
    config: Path | None = typer.Option(None, "--config", help="YAML/JSON of the refiner's config fields."),
    seed: int = typer.Option(0, "--seed"),
    layout: str | None = typer.Option(None, "--layout"),
) -> None:
    """Train a click-to-correct refiner: IteR-MRL (A2C, synchronous) or a supervised baseline."""
    from scarceseg.methods.refine_entry import train_refiner_from_dataset
    from scarceseg.methods.training import config_values

    h = train_refiner_from_dataset(data, out, method=method, init_model=init_model, iterations=iterations,
                                   n_train=n_train, channel=channel, seed=seed, layout=layout,
                                   progress=True, config=config_values(config))
    typer.echo(f"trained {method} in {h['seconds']:.0f} s; wrote {h['out_dir']}")
