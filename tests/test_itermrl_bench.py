"""`scarceseg bench itermrl` end to end with a tiny budget: sample slices for 2D, tiny HDF5 volumes for 3D."""

from __future__ import annotations

import json

import numpy as np
import pytest


def _h5_volumes(folder, n=3):
    import h5py

    rng = np.random.default_rng(0)
    for k in range(n):
        image = rng.normal(0, 0.1, (24, 24, 12)).astype(np.float32)  # UA-MT layout (H, W, D)
        label = np.zeros(image.shape, dtype=np.uint8)
        label[8:16, 7:15, 3:9] = 1
        image[label > 0] += 2.0
        (folder / "cases" / f"case{k}").mkdir(parents=True)
        with h5py.File(folder / "cases" / f"case{k}" / "mri_norm2.h5", "w") as f:
            f["image"], f["label"] = image, label


@pytest.mark.slow
def test_bench_itermrl_tiny_budget_writes_every_table(tmp_path):
    from scarceseg.bench.itermrl_bench import ItermrlBudget, run_itermrl_bench
    from scarceseg.datasets.sample import make_sample_data

    make_sample_data(tmp_path / "lgg", n=6, seed=0)
    _h5_volumes(tmp_path / "la")
    budget = ItermrlBudget(n_train1=2, unet_epochs=1, n_train2=2, n_test=2, itermrl_iterations=2,
                           baseline_iterations=2, noc_max=2, noc_cases=1, latency_steps=2, iterations_3d=1,
                           baseline_iterations_3d=1, crop_3d=(24, 40, 40), latency_3d_repeats=1)
    res = run_itermrl_bench(tmp_path / "lgg", tmp_path / "out", budget, data3d=tmp_path / "la", echo=lambda s: None)
    saved = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    methods = {"initial", "mincut", "itermrl", "rnet", "intercnn"}
    for part in (saved, saved["3d"]):
        assert set(part["table2"]) == {"bg", "unet", "corrupt"} - ({"unet"} if part is saved["3d"] else set())
        for rows in part["table2"].values():
            assert set(rows) == methods
            assert all(len(r["mean"]) == budget.steps + 1 for r in rows.values())
            assert all(0.0 <= v <= 1.0 for r in rows.values() for v in r["mean"])
            # the initial mask is never changed by the identity "refiner"
            assert len(set(np.round(rows["initial"]["mean"], 9))) == 1
    assert set(saved["3d"]["train_seconds"]) == {"itermrl", "rnet", "intercnn"}
    assert res["3d"]["latency_128cubed_ms_itermrl"] > 0
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "## 3D" in report and "| intercnn |" in report
    assert (tmp_path / "out" / "curves.png").stat().st_size > 0
