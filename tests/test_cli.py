"""CLI runs with tiny budgets: each command end to end, and one clear line on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from scarceseg.cli import app

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_commands():
    result = _run("--help")
    assert result.exit_code == 0
    for command in ("info", "sample-data", "evaluate", "demo", "bench"):
        assert command in result.output


def test_info_on_png(tmp_path: Path):
    from PIL import Image

    arr = np.zeros((12, 10), dtype=np.uint8)
    arr[2:5, 3:6] = 200
    Image.fromarray(arr).save(tmp_path / "a.png")
    result = _run("info", tmp_path / "a.png")
    assert result.exit_code == 0, result.output
    assert "12 x 10" in result.output
    assert "200" in result.output


@pytest.mark.parametrize("name", ["missing.nii.gz", "notes.txt"])
def test_info_bad_input_one_line(tmp_path: Path, name: str):
    path = tmp_path / name
    if name.endswith(".txt"):
        path.write_text("hello")
    result = _run("info", path)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0]
    assert "Traceback" not in result.output


def test_info_corrupt_tiff(tmp_path: Path):
    import tifffile

    good = tmp_path / "x.tif"
    tifffile.imwrite(good, np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8),
                     compression="lzw")
    data = bytearray(good.read_bytes())
    # garble the middle of the file (strip data), keep the header intact
    for i in range(len(data) // 3, 2 * len(data) // 3):
        data[i] = 0xFF
    good.write_bytes(bytes(data))
    result = _run("info", good)
    assert result.exit_code == 1
    assert result.output.startswith("error:") and "x.tif" in result.output


def test_sample_data_then_evaluate(tmp_path: Path):
    data = tmp_path / "data"
    result = _run("sample-data", "--out", data, "--n", "3", "--seed", "1")
    assert result.exit_code == 0, result.output
    masks = sorted((data / "masks").glob("*_mask.tif"))
    assert len(masks) == 3

    # perfect predictions for two cases, an empty one for the third: exact metric values
    from scarceseg.io import read_mask, write_mask

    pred_dir = tmp_path / "pred"
    stems = [m.name[: -len("_mask.tif")] for m in masks]
    for stem, mask_path in zip(stems[:2], masks[:2], strict=True):
        write_mask(read_mask(mask_path) > 0, pred_dir / f"{stem}.png")
    write_mask(np.zeros_like(read_mask(masks[2]), dtype=bool), pred_dir / f"{stems[2]}.png")
    (pred_dir / "stray.png").write_bytes((pred_dir / f"{stems[0]}.png").read_bytes())

    out = tmp_path / "eval"
    result = _run("evaluate", "--pred", pred_dir, "--gt", data, "--out", out)
    assert result.exit_code == 0, result.output
    assert "match no case" in result.output and "stray" in result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["dice"]["n"] == 3
    assert summary["dice"]["mean"] == pytest.approx(2 / 3)
    rows = (out / "per_case.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 4 and rows[0].startswith("case_id")


def test_evaluate_missing_pred_folder(tmp_path: Path):
    result = _run("evaluate", "--pred", tmp_path / "nope", "--gt", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 1
    assert "nope" in result.output


def test_bench_foundation_tiny(tmp_path: Path):
    data = tmp_path / "data"
    assert _run("sample-data", "--out", data, "--n", "3").exit_code == 0
    result = _run("bench", "foundation", "--data", data)
    assert result.exit_code == 0, result.output
    assert "ms/pair" in result.output and "ms/case" in result.output
