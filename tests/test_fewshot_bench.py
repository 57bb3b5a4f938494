"""bench fewshot without the prior: the patient-disjoint plan, the summary and paired test, whole-volume negatives."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from scarceseg.bench.fewshot_bench import evaluate_volume, format_table, plan, summarise
from scarceseg.io.case import Case


def test_plan_is_patient_disjoint_and_nested(tmp_path):
    from scarceseg.datasets.sample import make_sample_data

    make_sample_data(tmp_path, n=20, seed=0)
    p = plan(tmp_path, 3, range(2), every=1, test_slices=4)
    ds = p["dataset"]
    test_patients = {ds.patient_of(c) for c in p["test"]}
    assert len(p["test"]) == 4
    for ids in p["train"].values():
        assert len(ids) == 3 and len({ds.patient_of(c) for c in ids}) == 3
        assert not test_patients & {ds.patient_of(c) for c in ids}
    assert p["train"][0] != p["train"][1]
    bigger = plan(tmp_path, 5, [0], every=1, test_slices=4)
    assert set(p["train"][0]) <= set(bigger["train"][0]) and bigger["test"] == p["test"]


def test_summary_per_seed_and_paired():
    rows = []
    for seed in (0, 1):
        for i in range(6):
            rows.append({"method": "fewshot", "shots": 10, "seed": seed, "case_id": f"c{i}", "dice": 0.8 + 0.01 * i,
                         "seconds": 0.5})
            rows.append({"method": "unet", "shots": 10, "seed": seed, "case_id": f"c{i}", "dice": 0.5, "seconds": 0.1})
    s = summarise(rows)
    few = next(t for t in s["table"] if t["method"] == "fewshot")
    assert few["per_seed"] == pytest.approx([0.825, 0.825]) and few["sd"] == pytest.approx(0.0)
    assert few["n_slices"] == 6 and few["slices_per_second"] == pytest.approx(2.0)
    paired = s["paired_fewshot_minus_unet"]["10"]
    assert paired["n"] == 12 and paired["mean_diff"] == pytest.approx(0.325)
    assert paired["p_wilcoxon"] < 0.01
    assert "fewshot - unet over 12" in format_table(s)


def test_evaluate_volume_counts_false_positives_on_lesion_free_slices():
    label = np.zeros((4, 6, 6), dtype=np.uint8)
    label[1, 2:4, 2:4] = 1  # lesion on slice 1 only
    image = np.zeros((1, 4, 6, 6), dtype=np.float32)
    image[0, 1, 2:4, 2:4] = 1.0  # the lesion is bright
    image[0, 3, 0, 0] = 1.0  # one bright false positive on lesion-free slice 3
    volume = Case(image=image, spacing=(2.0, 1.0, 1.0), case_id="v", label=label)
    model = SimpleNamespace(predict=lambda case: SimpleNamespace(mask=case.image[0] > 0.5))
    r = evaluate_volume(model, volume, spacing=volume.spacing)
    assert r["n_slices"] == 4 and r["n_lesion_free"] == 3
    assert r["fp_slices"] == 1 and r["fp_voxels"] == 1 and r["fp_ml"] == pytest.approx(0.002)
    assert r["dice"] == pytest.approx(2 * 4 / (5 + 4))


def test_training_slices_are_round_robin_spread_and_negatives_have_contrast():
    from scarceseg.bench.fewshot_volumes import training_slices

    def volume(name, areas):
        label = np.zeros((len(areas), 8, 8), dtype=np.uint8)
        image = np.zeros((1, len(areas), 8, 8), dtype=np.float32)
        for z, a in enumerate(areas):
            label[z].flat[:a] = 1
            image[0, z, 4:, 4:] = 1.0 if z != 0 else 0.0  # slice 0 has no contrast at all
        return Case(image=image, spacing=(1.0, 1.0, 1.0), case_id=name, label=label)

    vols = [volume("a", [0, 0, 5, 9, 2, 0]), volume("b", [0, 7, 3, 0, 0, 0])]
    picks = training_slices(vols, shots=3, negatives=2)
    assert [c.case_id for c in picks] == ["a_z3", "b_z1", "a_z4", "a_z1", "b_z3"]
    assert all(c.target.any() for c in picks[:3]) and not any(c.target.any() for c in picks[3:])
    assert [c.case_id for c in training_slices(vols, shots=1)] == ["a_z3"]
