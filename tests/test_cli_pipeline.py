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
    index = json.loads((work / "proposals" / "index.json").read_text(encoding="utf-8"))
    assert len(index) == 2
    case_id = sorted(index)[0]
    cands = json.loads((work / "proposals" / case_id / "candidates.json").read_text(encoding="utf-8"))
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


def test_train_selector_and_segment_both_modes(tmp_path: Path):
    data, work, model = tmp_path / "data", tmp_path / "work", tmp_path / "model"
    assert _run("sample-data", "--out", data, "--n", "3").exit_code == 0
    assert _run("propose", data, "--out", work).exit_code == 0
    assert _run("pick", work, "--oracle", data).exit_code == 0
    result = _run("train", "selector", "--work", work, "--out", model, "--episodes", "4", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()

    auto = tmp_path / "auto"
    result = _run("segment", "--model", model, "--data", data, "--out", auto)
    assert result.exit_code == 0, result.output
    assert "wrote 3 masks" in result.output
    selection = json.loads((auto / "selection.json").read_text(encoding="utf-8"))
    assert selection["mode"] == "automatic" and len(selection["cases"]) == 3
    # the default runs one task per case on all cores; --workers 1 runs in this process: the same masks and picks
    serial = tmp_path / "serial"
    result = _run("segment", "--model", model, "--data", data, "--out", serial, "--workers", "1")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in auto.glob("*.png")) == sorted(p.name for p in serial.glob("*.png"))
    for mask in auto.glob("*.png"):
        assert mask.read_bytes() == (serial / mask.name).read_bytes(), mask.name
    assert json.loads((serial / "selection.json").read_text(encoding="utf-8"))["cases"] == selection["cases"]

    # one-click: the click is each truth's innermost pixel; the chosen candidate must contain it
    from scarceseg.bench.stember import robot_click
    from scarceseg.datasets import open_dataset
    from scarceseg.io import read_mask

    ds = open_dataset(data)
    points = {cid: list(robot_click(ds.load(cid).target)) for cid in ds.case_ids}
    (tmp_path / "points.json").write_text(json.dumps(points))
    click = tmp_path / "click"
    result = _run("segment", "--model", model, "--data", data, "--out", click, "--mode", "one-click",
                  "--points", tmp_path / "points.json", "--workers", "1")
    assert result.exit_code == 0, result.output
    for cid, (y, x) in points.items():
        mask = read_mask(click / f"{cid}.png", like=ds.load(cid))
        assert mask[y, x], cid

    result = _run("evaluate", "--pred", click, "--gt", data, "--out", tmp_path / "eval")
    assert result.exit_code == 0 and "dice" in result.output


def test_selector_cli_errors_are_one_line(tmp_path: Path):
    result = _run("train", "selector", "--work", tmp_path / "missing", "--out", tmp_path / "m")
    assert result.exit_code == 1 and result.output.startswith("error:"), result.output
    (tmp_path / "work").mkdir()
    result = _run("train", "selector", "--work", tmp_path / "work", "--out", tmp_path / "m")
    assert result.exit_code == 1 and "no usable picks" in result.output
    result = _run("train", "selector", "--work", tmp_path / "work", "--out", tmp_path / "m", "--mode", "bogus")
    assert result.exit_code == 1 and "mode" in result.output
    result = _run("segment", "--model", tmp_path, "--data", tmp_path, "--out", tmp_path / "o")
    assert result.exit_code == 1 and "no config.json" in result.output


def test_bench_stember_tiny(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "bench"
    assert _run("sample-data", "--out", data, "--n", "5").exit_code == 0
    result = _run("bench", "stember", "--data", data, "--out", out, "--seed", "0", "--n-train", "3",
                  "--max-test", "2", "--episodes", "3", "--unet-epochs", "1")
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    for method in ("oracle_best_candidate", "udc_dqn_one_click", "udc_dqn_automatic", "unet_paper", "unet_fair"):
        assert method in report
    assert (out / "dice_boxplot.png").stat().st_size > 0
    assert (out / "selection_accuracy_seed0.png").stat().st_size > 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    # the oracle's best candidate is, by construction, at least as good as any selected candidate
    assert results["summary"]["oracle_best_candidate"]["dice"] >= results["summary"]["udc_dqn_automatic"]["dice"]

    # a second run finds the finished seed and pools the same rows (resume / parallel seeds)
    again = _run("bench", "stember", "--data", data, "--out", out, "--seed", "0", "--n-train", "3",
                 "--max-test", "2", "--episodes", "3", "--unet-epochs", "1")
    assert again.exit_code == 0 and "reused" in again.output
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["summary"] == results["summary"]


def test_demo_pipeline_tiny(tmp_path: Path, prior, monkeypatch):
    """The whole demo on 4 slices (2 train, 2 test) with tiny budgets: every step, every method, the report."""
    import scarceseg.prior.model as prior_model

    monkeypatch.setattr(prior_model, "_SHARED", prior)  # the fixture's prior (from the wheel), no second load
    out = tmp_path / "demo"
    result = _run("demo", "--out", out, "--n", "4", "--episodes", "3", "--fewshot-steps", "2")
    assert result.exit_code == 0, result.output
    for k in range(1, 9):
        assert f"[{k}/8]" in result.output
    assert "report:" in result.output
    report = (out / "report.md").read_text(encoding="utf-8")
    for method in ("fewshot_automatic", "prior_box_prompt", "oracle_best_candidate", "udc_dqn_one_click",
                   "udc_dqn_automatic", "multi_otsu", "kmeans"):
        assert f"| {method} |" in report
        assert len(list((out / "pred" / method).glob("*.png"))) == 2
    assert "synthetic" in report and "scarceseg bench fewshot" in report and "3 episodes" in report
    # the labels are the prior's box-prompted masks, not the truth; the explanation is built from these facts
    facts = json.loads((out / "facts.json").read_text(encoding="utf-8"))
    assert len(facts["label_dice"]) == 2 and all(0 <= d <= 1 for d in facts["label_dice"].values())
    assert f"{facts['label_dice_mean']:.3f}" in report
    assert facts["steps"] == 2 and facts["n_empty"] + facts["n_found"] == 2
    assert len(list((out / "labels_prior_box").glob("*.png"))) == 2
    # the learner went through the registry and its folder opens through it again
    from scarceseg.methods.registry import read_method_file

    assert read_method_file(out / "fewshot")["method"] == "fewshot"
    for figure in ("dice_boxplot.png", "overlays.png", "selection_accuracy.png"):
        assert (out / figure).stat().st_size > 0
    # the oracle picks went through the label store, labelled as oracle
    from scarceseg.store import open_store

    with open_store(out / "work") as store:
        picks = store.current_picks(include_oracle=True)
    assert len(picks) == 2
