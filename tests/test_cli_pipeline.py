"""CLI runs of propose -> pick -> picks on two sample slices (tiny budget)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from scarceseg.cli import app

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_propose_pick_history(tmp_path: Path):
    data, work = tmp_path / "data", tmp_path / "work"
    assert _run("sample-data", "--out", data, "--n", "2").exit_code == 0
    result = _run("propose", data, "--out", work)
    assert result.exit_code == 0, result.output
    index = json.loads((work / "proposals" / "index.json").read_text())
    assert len(index) == 2
    case_id = sorted(index)[0]
    cands = json.loads((work / "proposals" / case_id / "candidates.json").read_text())
    assert cands and (work / "proposals" / case_id / "contact_sheet.png").stat().st_size > 0

    assert _run("pick", work, case_id, "--candidate", "0", "--who", "alice").exit_code == 0
    y, x = cands[-1]["centroid"]
    result = _run("pick", work, case_id, "--point", f"{int(y)},{int(x)}", "--who", "bob")
    # a centroid may fall outside a non-convex candidate: either a pick or one clear line
    assert result.exit_code in (0, 1) and "Traceback" not in result.output
    result = _run("pick", work, "--oracle", data)
    assert result.exit_code == 0, result.output
    assert "oracle" in result.output

    # re-running propose keeps every pick
    assert _run("propose", data, "--out", work).exit_code == 0
    result = _run("picks", work, "--history")
    assert result.exit_code == 0
    assert "alice" in result.output and "oracle" in result.output


def test_pick_errors_are_one_line(tmp_path: Path):
    result = _run("pick", tmp_path, "nosuchcase", "--candidate", "1")
    assert result.exit_code == 1 and result.output.startswith("error:")
    result = _run("pick", tmp_path, "x", "--candidate", "1", "--point", "3,4")
    assert result.exit_code == 1 and "Traceback" not in result.output
