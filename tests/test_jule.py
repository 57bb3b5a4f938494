"""Paper 001: graph-degree-linkage merging, patch projection, JULE fit/segment, baselines, CLI `cluster`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scarceseg.bench.jule_bench import brats_truth, la_truth, matched_dice
from scarceseg.cluster.gdl import GDLMerger, gdl_cluster, initial_clusters, knn_affinity
from scarceseg.cluster.volume_baselines import kmeans_volume, multi_otsu_volume, order_by_intensity
from scarceseg.methods.jule import JULEConfig, JuleSegmenter, get_config
from scarceseg.methods.jule.patches import (
    extract_patches,
    fill_outside,
    grid_centres,
    pad_for_patches,
    project_labels,
    sample_centres,
)
from scarceseg.metrics import nmi
from scarceseg.nets.jule_cnn import JuleCNN, feature_side

TINY = JULEConfig(n_patches=150, patch=13, kernel=3, channels=4, hidden=16, out_features=8, n_final_clusters=3,
                  stride=3, k=2, k_s=8, epochs=1, final_epochs=1, batch_size=32, kmeans_n_init=2, name="tiny")


def _blobs(rng, n_per=30, sep=20.0):
    centres = np.array([[0, 0], [sep, 0], [0, sep], [sep, sep]], dtype=float)
    x = np.concatenate([c + rng.normal(size=(n_per, 2)) for c in centres])
    return x, np.repeat(np.arange(4), n_per)


def _cube_volume(rng, shape=(24, 24, 24)):
    """Noisy volume: dim background, a mid-grey ball (the 'organ'), a bright cube inside it."""
    z, y, x = np.indices(shape)
    c = np.asarray(shape) / 2
    ball = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < (0.45 * shape[0]) ** 2
    image = np.where(ball, 1.0, 0.0)
    cube = np.zeros(shape, dtype=bool)
    cube[8:15, 8:15, 9:16] = True
    image[cube] = 3.0
    return (image + rng.normal(scale=0.15, size=shape)).astype(np.float32), ball, cube


# ---- graph degree linkage -----------------------------------------------------------------------------------
def test_gdl_recovers_separated_clusters_exactly(rng):
    x, truth = _blobs(rng)
    labels = gdl_cluster(x, 4, k_s=5)
    assert labels.shape == truth.shape and labels.max() == 3
    assert nmi(labels, truth) == pytest.approx(1.0)


def test_gdl_incremental_affinity_matches_recomputation(rng):
    x, _ = _blobs(rng, n_per=15, sep=6.0)
    w, nearest = knn_affinity(x, 6)
    assert w.shape == (60, 60) and w.nnz == 60 * 6 and (w.diagonal() == 0).all()
    merger = GDLMerger(w, initial_clusters(nearest), x, k_c=3)
    for _ in range(min(5, merger.n_clusters - 2)):
        merger.merge_once()
    fresh = GDLMerger(w, merger.labels, x, k_c=3)
    alive = np.flatnonzero(merger.alive)
    np.testing.assert_allclose(merger.aff[np.ix_(alive, alive)], fresh.aff, atol=1e-12)
    np.testing.assert_allclose(np.sort(merger.scores()[alive]), np.sort(fresh.scores()), atol=1e-12)


def test_initial_clusters_are_nearest_neighbour_components():
    nearest = np.array([1, 0, 3, 2, 3])  # {0,1} and {2,3,4}
    np.testing.assert_array_equal(initial_clusters(nearest), [0, 0, 1, 1, 1])


# ---- patches and sub-patch projection -----------------------------------------------------------------------
def test_extract_patches_exact_including_edges():
    vol = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    padded = pad_for_patches(vol, 3)
    p = extract_patches(padded, np.array([[1, 1, 1], [0, 0, 0]]), 3)
    np.testing.assert_array_equal(p[0], vol[0:3, 0:3, 0:3])
    # corner: edge padding repeats the border voxel
    np.testing.assert_array_equal(p[1][1:, 1:, 1:], vol[0:2, 0:2, 0:2])
    assert p[1][0, 0, 0] == vol[0, 0, 0]
    p2 = extract_patches(pad_for_patches(vol[0], 3), np.array([[2, 3]]), 3)  # 2D
    np.testing.assert_array_equal(p2[0], vol[0, 1:4, 2:5])


def test_grid_and_projection_give_exact_labels():
    shape = (4, 5, 6)
    region = np.ones(shape, dtype=bool)
    centres = grid_centres(region, 2)
    assert len(centres) == 2 * 3 * 3
    np.testing.assert_array_equal(centres[0], [1, 1, 1])
    np.testing.assert_array_equal(centres[-1], [3, 4, 5])  # the partial last tile's centre is clipped
    labels = np.arange(1, len(centres) + 1)
    out = project_labels(labels, centres, shape, 2, region)
    z, y, x = np.indices(shape)
    expected = (z // 2) * 9 + (y // 2) * 3 + (x // 2) + 1
    np.testing.assert_array_equal(out, expected)
    # only tiles touching the region are kept, voxels outside it are 0
    region = np.zeros(shape, dtype=bool)
    region[3, 4, 5] = True
    centres = grid_centres(region, 2)
    np.testing.assert_array_equal(centres, [[3, 4, 5]])
    out = project_labels(np.array([7]), centres, shape, 2, region)
    assert out[3, 4, 5] == 7 and out.sum() == 7


def test_fill_outside_continues_the_region():
    image = np.array([[9.0, 1.0, 2.0, 9.0], [9.0, 3.0, 4.0, 9.0]])
    region = image < 9
    np.testing.assert_array_equal(fill_outside(image, region), [[1, 1, 2, 2], [3, 3, 4, 4]])
    np.testing.assert_array_equal(fill_outside(image, np.ones_like(region)), image)


def test_sample_centres_inside_region_and_seeded():
    region = np.zeros((6, 6, 6), dtype=bool)
    region[2:4, 2:4, 2:4] = True
    a = sample_centres(region, 5, np.random.default_rng(3))
    b = sample_centres(region, 5, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a, axis=0)) == 5 and region[tuple(a.T)].all()
    assert len(sample_centres(region, 100, np.random.default_rng(0))) == 8


# ---- network ------------------------------------------------------------------------------------------------
def test_paper_network_shapes():
    assert feature_side(27, 5) == 3  # 27 -> 23 -> 11 -> 7 -> 3, 50 * 27 = 1350 inputs to the first dense layer
    net = JuleCNN()
    assert net.fc1.in_features == 1350 and net.fc1.out_features == 1350 and net.fc2.out_features == 160
    net2d = JuleCNN(patch=13, kernel=3, channels=4, hidden=8, out_features=5, ndim=2).eval()
    out = net2d(torch.randn(3, 1, 13, 13))
    assert out.shape == (3, 5)
    np.testing.assert_allclose(out.norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        net2d(torch.randn(3, 1, 12, 12))


# ---- metrics of the experiment --------------------------------------------------------------------------------
def test_nmi_and_matched_dice_perfect_relabelled_clustering(rng):
    truth = rng.integers(1, 4, size=500)
    relabelled = np.array([0, 7, 2, 5])[truth]
    assert nmi(relabelled, truth) == pytest.approx(1.0)
    assert matched_dice(relabelled, truth) == {1: 1.0, 2: 1.0, 3: 1.0}
    merged = np.where(truth == 3, 2, truth)  # two clusters for three classes: one class gets none
    dice = matched_dice(merged, truth)
    assert dice[1] == 1.0 and sorted([dice[2], dice[3]])[0] == 0.0


def test_truth_mappings():
    label = np.array([0, 1, 2, 3, 4, 0])
    region = np.array([True, True, True, True, True, False])
    np.testing.assert_array_equal(brats_truth(label, region), [1, 3, 2, 3, 3, 0])
    np.testing.assert_array_equal(la_truth(np.array([0, 1, 1]), np.ones(3, bool)), [1, 2, 2])


# ---- baselines ------------------------------------------------------------------------------------------------
def test_volume_baselines_recover_three_levels(rng):
    image = np.repeat([0.0, 1.0, 2.0], 200).reshape(6, 10, 10) + rng.normal(scale=0.05, size=(6, 10, 10))
    truth = np.repeat([1, 2, 3], 200).reshape(6, 10, 10)
    for labels in (multi_otsu_volume(image, 3), kmeans_volume(image, 3, seed=0)):
        np.testing.assert_array_equal(labels, truth)  # ordered darkest first
    region = truth > 1
    labels = kmeans_volume(image, 2, region)
    assert (labels[~region] == 0).all() and set(np.unique(labels[region])) == {1, 2}
    np.testing.assert_array_equal(order_by_intensity(np.array([2, 1, 0]), np.array([1.0, 5.0, 9.0])), [1, 2, 0])


# ---- JULE fit / segment -----------------------------------------------------------------------------------------
def test_jule_same_seed_same_labels_and_save_load(rng, tmp_path: Path):
    image, ball, cube = _cube_volume(rng)
    a = JuleSegmenter.fit(image, ball, TINY, seed=5)
    b = JuleSegmenter.fit(image, ball, TINY, seed=5)
    la, lb = a.segment(image, ball, 2), b.segment(image, ball, 2)
    np.testing.assert_array_equal(la, lb)
    assert la.shape == image.shape and (la[~ball] == 0).all() and set(np.unique(la[ball])) == {1, 2}
    assert a.summary["final_clusters"] <= TINY.n_final_clusters and a.summary["n_patches"] == TINY.n_patches
    a.save(tmp_path / "m")
    c = JuleSegmenter.load(tmp_path / "m")
    np.testing.assert_array_equal(c.segment(image, ball, 2), la)
    assert c.config == a.config


def test_registered_jule_matches_the_segmenter(rng):
    """registry "jule" with options_for(config), the region in case.meta and ``ks`` = JuleSegmenter, label for label."""
    from scarceseg.io.case import Case
    from scarceseg.methods import registry

    image, ball, _ = _cube_volume(rng)
    direct = JuleSegmenter.fit(image, ball, TINY, seed=2).segment_many(image, [2, 3], ball)
    method = registry.get("jule")({**registry.get("jule").options_for(TINY), "ks": [2, 3]})
    case = Case(image=image[None], spacing=(1.0, 1.0, 1.0), case_id="c", meta={"region": ball})
    lines: list[str] = []
    method.fit([case], progress=lines.append, seed=2)
    assert method.model.config == TINY and lines and lines[-1].startswith("period")
    prediction = method.predict(case)
    for k in (2, 3):
        np.testing.assert_array_equal(prediction.extra["labels_by_k"][k], direct[k])
    np.testing.assert_array_equal(prediction.extra["labels"], direct[TINY.k])


def test_jule_2d_variant(rng):
    image, ball, _ = _cube_volume(rng, shape=(30, 30, 30))
    cfg = replace(TINY, ndim=2)
    model = JuleSegmenter.fit(image[15], ball[15], cfg, seed=0)
    labels = model.segment(image[15], ball[15], 3)
    assert labels.shape == (30, 30) and labels.max() == 3


def test_get_config_names_and_json(tmp_path: Path):
    assert get_config("paper") == JULEConfig()
    assert get_config("cpu").patch < get_config("paper").patch
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"n_patches": 7}))
    assert get_config(str(path)).n_patches == 7
    from scarceseg.errors import CorruptFileError, InputError

    path.write_text(json.dumps({"n_patches": 7, "unknown": 1}))
    with pytest.raises(CorruptFileError, match="unknown"):  # unknown keys are an error in every config (issue 14)
        get_config(str(path))

    with pytest.raises(InputError):
        get_config("nosuch")


# ---- CLI ----------------------------------------------------------------------------------------------------------
def _write_nifti(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 2.0)) -> np.ndarray:
    import nibabel as nib

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (10.0, -5.0, 3.0)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine), str(path))
    return affine


@pytest.mark.parametrize("method", ["otsu", "kmeans", "jule"])
def test_cli_cluster_each_method(method, rng, tmp_path: Path):
    import nibabel as nib

    from scarceseg.cli import app

    image, ball, _ = _cube_volume(rng)
    affine = _write_nifti(tmp_path / "vol.nii.gz", image)
    _write_nifti(tmp_path / "mask.nii.gz", ball.astype(np.float32))
    (tmp_path / "tiny.json").write_text(json.dumps({k: v for k, v in TINY.__dict__.items()}))
    out = tmp_path / method
    args = ["cluster", str(tmp_path / "vol.nii.gz"), "--method", method, "--k", "3", "--out", str(out),
            "--mask", str(tmp_path / "mask.nii.gz"), "--config", str(tmp_path / "tiny.json")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = nib.load(str(out / "labels.nii.gz"))
    np.testing.assert_allclose(written.affine, affine)
    labels = np.asarray(written.dataobj).transpose(2, 1, 0)
    assert labels.shape == image.shape and (labels[~ball] == 0).all()
    assert set(np.unique(labels[ball])) == {1, 2, 3}
    assert (out / "slices.png").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["method"] == method and summary["k"] == 3
    if method == "otsu":  # the bright cube is the brightest class
        assert nmi(labels[ball] == 3, (image > 2)[ball]) > 0.8


def test_cli_cluster_errors_are_one_line(tmp_path: Path):
    from scarceseg.cli import app

    result = CliRunner().invoke(app, ["cluster", str(tmp_path / "none.nii.gz"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and result.output.startswith("error:")
    result = CliRunner().invoke(app, ["cluster", str(tmp_path / "none.nii.gz"), "--method", "dbscan",
                                      "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "Traceback" not in result.output


# ---- real data ------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_real_volumes_crop(shared_data: Path):
    """A crop of one LA volume and a BRATS brain mask: every method runs and scores; JULE with the tiny config."""
    from scarceseg.bench.jule_bench import _brainmask, _find_sets
    from scarceseg.datasets import open_dataset

    kinds = dict(_find_sets(shared_data))
    if "la" not in kinds or "brats" not in kinds:
        pytest.skip("brats2015/ or la2018/ missing from the shared data")
    ds = open_dataset(kinds["la"])
    case = ds.load(ds.case_ids[0])
    zc, yc, xc = (int(v) for v in np.argwhere(case.label > 0).mean(axis=0))
    box = (slice(max(zc - 12, 0), zc + 12), slice(max(yc - 40, 0), yc + 40), slice(max(xc - 40, 0), xc + 40))
    image, truth = case.image[0][box], la_truth(case.label[box], np.ones(case.label[box].shape, bool))
    region = np.ones(image.shape, dtype=bool)
    assert set(np.unique(truth)) == {1, 2}
    jule = JuleSegmenter.fit(image, region, replace(TINY, n_patches=300), seed=0).segment(image, region, 2)
    for labels in (jule, kmeans_volume(image, 2, region), multi_otsu_volume(image, 2, region)):
        assert labels.shape == image.shape and set(np.unique(labels)) == {1, 2}
        assert 0.0 <= nmi(labels, truth) <= 1.0
        assert set(matched_dice(labels, truth)) == {1, 2}
    brats = open_dataset(kinds["brats"])
    bcase = brats.load(brats.case_ids[0])
    mask = _brainmask(bcase)
    assert mask.shape == bcase.shape and 0.05 < mask.mean() < 0.5
    assert (bcase.label[~mask] == 0).all()


def test_bench_on_tiny_synthetic_sets(rng, tmp_path: Path):
    """The whole experiment on one synthetic BRATS-layout case and one LA-layout HDF5 case (tiny config)."""
    import h5py

    from scarceseg.bench.jule_bench import run_jule_bench

    image, ball, cube = _cube_volume(rng)
    case = tmp_path / "data" / "brats2015" / "brats_2013_pat0009_1"
    case.mkdir(parents=True)
    label = np.where(cube, 2.0, 0.0).astype(np.float32)
    label[10:13, 10:13, 11:14] = 4.0
    for name, arr in (("Flair_subtrMeanDivStd", image), ("OTMultiClass", label),
                      ("brainmask", ball.astype(np.float32) * np.float32(0.99999997))):
        _write_nifti(case / f"{name}.nii.gz", arr, spacing=(1.0, 1.0, 1.0))
    la = tmp_path / "data" / "la2018" / "cases" / "LA0001"
    la.mkdir(parents=True)
    with h5py.File(la / "mri_norm2.h5", "w") as f:  # UA-MT stores (H, W, D)
        f["image"] = image[:20].transpose(1, 2, 0)
        f["label"] = cube[:20].transpose(1, 2, 0).astype(np.uint8)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY.__dict__))
    lines = []
    summary = run_jule_bench(tmp_path / "data", tmp_path / "out", config=str(tmp_path / "tiny.json"), ks=(2, 3),
                             la_limit=1, echo=lines.append)
    assert set(summary["mean_nmi"]) == {"brats", "la"}
    assert set(summary["mean_nmi"]["brats"]) == {"jule", "kmeans", "otsu", "random-cnn"}
    for name in ("rows.csv", "timings.csv", "summary.json", "report.md", "nmi_vs_k.png", "slices_brats.png",
                 "slices_la.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    rows = (tmp_path / "out" / "rows.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 2 * 4 * 2  # header + 2 sets x 4 methods x 2 K
    assert all(0.3 < summary["mean_nmi"]["brats"][m][3] <= 1 for m in ("kmeans", "otsu"))  # the cube stands out
    assert "mean NMI" in lines[-1]
