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
    n: int = typer.Option(20, "--n", min=2, help="Number of sample slices."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """The main job on built-in sample data: generate, segment, evaluate, report."""
    from scarceseg.bench.demo import run_demo

    run_demo(out, n=n, seed=seed, echo=typer.echo)


@bench_app.command("foundation")
@_friendly
def bench_foundation(
    data: Path = typer.Option(Path("../shared/data/lgg"), "--data", help="An LGG-layout folder."),
    limit: int | None = typer.Option(None, "--limit", help="Use only the first N cases."),
) -> None:
    """Time loading every slice of a data set and computing every metric on each pair."""
    from scarceseg.bench.foundation import run_foundation_bench

    run_foundation_bench(data, limit=limit, echo=typer.echo)


if __name__ == "__main__":  # pragma: no cover
    app()
