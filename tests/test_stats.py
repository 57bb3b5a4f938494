"""MetricCollector files and paired statistics on known inputs."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from scarceseg.metrics import STANDARD_METRICS, MetricCollector, compare_methods, paired_comparison
from scarceseg.metrics.collector import SUMMARY_FIELDS, summarize


def square(shape=(10, 10), y=2, x=2, size=3):
    m = np.zeros(shape, dtype=bool)
    m[y : y + size, x : x + size] = True
    return m


@pytest.fixture
def collector() -> MetricCollector:
    col = MetricCollector()
    gt = square()
    with pytest.warns(UserWarning):  # the empty prediction warns once
        col.add("c1", gt, gt, method="unet", patient="p1")
        col.add("c2", square(x=3), gt, (0.5, 0.5), method="unet", patient="p1")
        col.add("c3", np.zeros_like(gt), gt, method="unet", patient="p2")
    return col


# ---------------------------------------------------------------- collector


def test_collector_rows(collector):
    assert len(collector) == 3
    assert collector.rows[0]["dice"] == 1.0 and collector.rows[0]["hd95"] == 0.0
    assert collector.rows[1]["dice"] == pytest.approx(2 * 6 / 18)
    assert math.isnan(collector.rows[2]["hd95"]) and collector.rows[2]["dice"] == 0.0


def test_collector_writes_csv_and_json(collector, tmp_path):
    csv_path, json_path = collector.write(tmp_path / "out")
    assert csv_path.name == "per_case.csv" and json_path.name == "summary.json"
    with csv_path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["case_id", "method", "patient", *STANDARD_METRICS]
    assert [r["case_id"] for r in rows] == ["c1", "c2", "c3"]
    assert float(rows[1]["dice"]) == collector.rows[1]["dice"]  # full precision round trip
    assert rows[2]["hd95"] == "nan" and rows[2]["patient"] == "p2"

    summary = json.loads(json_path.read_text(encoding="utf-8"))
    assert list(summary) == list(STANDARD_METRICS)
    for fields in summary.values():
        assert tuple(fields) == SUMMARY_FIELDS
    assert summary["dice"]["n"] == 3 and summary["dice"]["n_nan"] == 0
    assert summary["dice"]["mean"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert summary["dice"]["median"] == pytest.approx(2 / 3)
    assert summary["dice"]["min"] == 0.0 and summary["dice"]["max"] == 1.0
    for metric in ("ppv", "hd95", "assd"):  # undefined for the empty prediction
        assert summary[metric]["n"] == 2 and summary[metric]["n_nan"] == 1
    assert summary["hd95"]["mean"] == pytest.approx(0.5 / 2)  # 0 and one voxel of 0.5 mm
    assert summary == collector.summary()


def test_format_table(collector):
    table = collector.format_table()
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["metric", "mean"]
    assert len(lines) == 2 + len(STANDARD_METRICS)
    dice_line = next(line for line in lines if line.startswith("dice"))
    assert "±" in dice_line and dice_line.split()[-2:] == ["3", "0"]
    hd_line = next(line for line in lines if line.startswith("hd95"))
    assert hd_line.split()[-2:] == ["2", "1"]


def test_collector_rejects_bad_input():
    col = MetricCollector(metrics=["dice", "iou"])
    gt = square()
    col.add("a", gt, gt)
    assert col.columns() == ["case_id", "dice", "iou"]
    with pytest.raises(ValueError, match="already added"):
        col.add("a", gt, gt)
    with pytest.raises(ValueError, match="clash"):
        col.add("b", gt, gt, dice=3)
    with pytest.raises(ValueError, match="lack metrics"):
        col.add_values("b", {"dice": 0.5})
    col.add_values("b", {"dice": 0.5, "iou": 1 / 3, "hd95": 2.0}, method="x")
    assert col.rows[-1] == {"case_id": "b", "method": "x", "dice": 0.5, "iou": 1 / 3}
    assert len(col) == 2  # failed adds left nothing behind
    with pytest.raises(ValueError, match="unknown metrics"):
        MetricCollector(metrics=["dice", "volume"])


def test_summarize_edge_cases():
    assert summarize([]) == {"mean": None, "sd": None, "median": None, "min": None, "max": None, "n": 0, "n_nan": 0}
    one = summarize([float("nan"), 2.0])
    assert one["mean"] == 2.0 and one["sd"] is None and one["n"] == 1 and one["n_nan"] == 1
    assert summarize([1.0, 3.0])["sd"] == pytest.approx(math.sqrt(2))


def test_empty_summary_is_valid_json(tmp_path):
    col = MetricCollector()
    _, json_path = col.write(tmp_path)
    assert json.loads(json_path.read_text(encoding="utf-8"))["dice"]["mean"] is None


# ---------------------------------------------------------------- paired statistics


def test_identical_arrays():
    a = np.array([0.7, 0.8, 0.9, 0.6])
    out = paired_comparison(a, a.copy())
    assert out["mean_diff"] == 0.0 and out["median_diff"] == 0.0
    assert out["p_wilcoxon"] == 1.0 and out["p_ttest"] == 1.0
    assert (out["ci_low"], out["ci_high"]) == (0.0, 0.0)
    assert out["n"] == 4 and out["n_dropped"] == 0


def test_constant_shift_excludes_zero():
    b = np.linspace(0.5, 0.9, 20)
    a = b + 0.25
    out = paired_comparison(a, b)
    assert out["mean_diff"] == pytest.approx(0.25)
    assert out["ci_low"] == pytest.approx(0.25) and out["ci_high"] == pytest.approx(0.25)
    assert out["ci_low"] > 0
    assert out["p_wilcoxon"] < 1e-4 and out["p_ttest"] < 1e-4


def test_noisy_shift_and_reproducible_bootstrap():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.5, 0.9, 40)
    a = b + 0.05 + rng.normal(0, 0.05, 40)
    out = paired_comparison(a, b, seed=7, n_boot=2000)
    assert out["ci_low"] < out["mean_diff"] < out["ci_high"]
    assert out["ci_low"] > 0
    assert out["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a - b).pvalue)
    again = paired_comparison(a, b, seed=7, n_boot=2000)
    assert again == out
    other = paired_comparison(a, b, seed=8, n_boot=2000)
    assert other["ci_low"] != out["ci_low"]
    assert paired_comparison(b, a, seed=7, n_boot=2000)["mean_diff"] == pytest.approx(-out["mean_diff"])


def test_nan_pairs_dropped_and_counted():
    a = [0.9, np.nan, 0.8, 0.7, 0.6]
    b = [0.8, 0.5, np.nan, 0.6, 0.5]
    out = paired_comparison(a, b)
    assert out["n"] == 3 and out["n_dropped"] == 2
    assert out["mean_diff"] == pytest.approx(0.1)


def test_degenerate_inputs():
    out = paired_comparison([1.0], [0.0])
    assert out["n"] == 1 and math.isnan(out["p_wilcoxon"]) and out["ci_low"] == 1.0
    out = paired_comparison([np.nan], [0.0])
    assert out["n"] == 0 and math.isnan(out["mean_diff"]) and math.isnan(out["ci_low"])
    with pytest.raises(ValueError, match="same length"):
        paired_comparison([1, 2], [1])


def test_compare_methods_pairs_by_case_id(tmp_path):
    gt = square()
    col_a, col_b = MetricCollector(), MetricCollector()
    for i in range(6):
        col_a.add(f"case{i}", square(x=2 + (i % 2)), gt)  # dice 1 or 2/3
    for i in range(2, 8):
        col_b.add(f"case{i}", square(x=4), gt)  # dice 1/3
    path_a, _ = col_a.write(tmp_path / "a")
    path_b, _ = col_b.write(tmp_path / "b")

    out = compare_methods(path_a, path_b, "dice", n_boot=500)
    assert out["n_common"] == 4 and out["n_only_a"] == 2 and out["n_only_b"] == 2
    assert out["n"] == 4 and out["metric"] == "dice"
    assert out["mean_diff"] == pytest.approx(((1 + 2 / 3) / 2) - 1 / 3)

    same = compare_methods(col_a, col_b, "dice", n_boot=500)  # collectors directly
    assert same == out
    as_dicts = compare_methods(
        {r["case_id"]: r["dice"] for r in col_a.rows}, {r["case_id"]: r["dice"] for r in col_b.rows}, "dice", n_boot=500
    )
    assert as_dicts == out
    columns = {"case_id": [r["case_id"] for r in col_a.rows], "dice": [r["dice"] for r in col_a.rows]}
    assert compare_methods(columns, path_b, "dice", n_boot=500) == out


def test_compare_methods_dataframe_and_errors(tmp_path):
    pd = pytest.importorskip("pandas")
    a = pd.DataFrame({"case_id": ["x", "y", "z"], "dice": [0.9, 0.8, np.nan]})
    b = pd.DataFrame({"case_id": ["x", "y", "z"], "dice": [0.7, 0.7, 0.5]})
    out = compare_methods(a, b, "dice")
    assert out["n_common"] == 3 and out["n"] == 2 and out["n_dropped"] == 1
    with pytest.raises(ValueError, match="twice"):
        compare_methods([{"case_id": "x", "dice": 1}, {"case_id": "x", "dice": 1}], b, "dice")
    with pytest.raises(ValueError, match="lacks column"):
        compare_methods(a, b, "hd95")
