"""`scarceseg train METHOD` for every registered method that has no command of its own, and `scarceseg methods`.

The commands with paper-specific options (``train unet``, ``acwe``, ``pixeldrl``, ``selector``, ``refiner``) live
in :mod:`scarceseg.cli`; every other registered segmenter or refiner gets the generic command below, built from
the registry, so adding a method to :data:`scarceseg.methods.registry.METHODS` adds its ``train`` command.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scarceseg.cli_util import friendly as _friendly

#: registered names whose train command is written out in scarceseg.cli (paper-specific options)
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


def methods_cmd(kind: str | None = typer.Option(None, "--kind", help="segmenter, refiner or proposer.")) -> None:
    """List the registered methods (what train, segment, refine and the app can use)."""
    from scarceseg.methods.registry import listing, names

    wanted = set(names(kind))
    for row in listing():
        if row["name"] in wanted:
            typer.echo(f"{row['name']:<10} {row['kind']:<10} {row['summary']}")
