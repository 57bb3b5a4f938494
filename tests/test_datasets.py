"""Layouts on tiny synthetic folders, auto-detection, patient-level splits, slicing volumes."""

from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from scarceseg.datasets import (
    FLAIR_CHANNEL,
    LAYOUTS,
    LGG_CHANNELS,
    SliceDataset,
    SplitError,
    check_disjoint,
    detect_layout,
    kfold,
    n_shot,
    n_shot_split,
    open_dataset,
    split_patients,
)
from scarceseg.errors import InputError

# ---- builders --------------------------------------------------------------------------------------

LGG_PATIENTS = {"TCGA_AA_0001_19990101": [2, 10, 3], "TCGA_BB_0002_20000202": [7], "TCGA_CC_0003_20010303": [1, 4]}


def make_lgg(root, arrangement: str = "split", patients=None, masks: bool = True):
    """kaggle_3m-like slices: channel c of every image is 10 * (c + 1); the mask of slice s is an
    s-pixel horizontal run (so slice numbers are visible in the label), saved 3-channel {0, 255}."""
    patients = patients or LGG_PATIENTS
    for patient, slices in patients.items():
        for s in slices:
            stem = f"{patient}_{s}"
            if arrangement == "split":
                img_dir, mask_dir = root / "images", root / "masks"
            elif arrangement == "nested":
                img_dir = mask_dir = root / patient
            else:
                img_dir = mask_dir = root
            img_dir.mkdir(parents=True, exist_ok=True)
            mask_dir.mkdir(parents=True, exist_ok=True)
            image = np.zeros((12, 16, 3), np.uint8) + np.array([10, 20, 30], np.uint8)
            tifffile.imwrite(img_dir / f"{stem}.tif", image, compression="lzw", photometric="rgb")
            if masks:
                mask = np.zeros((12, 16, 3), np.uint8)
                mask[5, :s] = 255
                tifffile.imwrite(mask_dir / f"{stem}_mask.tif", mask, compression="lzw", photometric="rgb")
    return root


def _nii(path, data):
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))


def make_brats(root, cases, names, label_name="OTMultiClass", with_label=True):
    """One folder per case; modality file ``names[m]`` holds the constant value ``m_index + 1``."""
    shape = (5, 6, 4)
    for case in cases:
        folder = root / case
        folder.mkdir(parents=True)
        for value, name in enumerate(names, start=1):
            _nii(folder / f"{name}.nii.gz", np.full(shape, value, np.float32))
        _nii(folder / "brainmask.nii.gz", np.ones(shape, np.uint8))
        if with_label:
            label = np.zeros(shape, np.float32)
            label[1, 1, 1], label[2, 2, 2], label[3, 3, 3] = 1, 2, 4
            _nii(folder / f"{label_name}.nii.gz", label)
    return root


def make_h5(path, hwd=(6, 5, 4), with_label=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).random(hwd).astype(np.float32)
    with h5py.File(path, "w") as f:
        f["image"] = image
        if with_label:
            label = np.zeros(hwd, np.uint8)
            label[1:3, 1:3, 1] = 1
            f["label"] = label
    return path


# ---- lgg -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arrangement", ["split", "flat", "nested"])
def test_lgg_layout_ids_channels_labels(tmp_path, arrangement):
    ds = open_dataset(make_lgg(tmp_path, arrangement))
    assert ds.layout == "lgg" and ds.root == tmp_path and len(ds) == 6
    assert ds.case_ids == [
        "TCGA_AA_0001_19990101_2", "TCGA_AA_0001_19990101_3", "TCGA_AA_0001_19990101_10",
        "TCGA_BB_0002_20000202_7", "TCGA_CC_0003_20010303_1", "TCGA_CC_0003_20010303_4",
    ]
    assert ds.patient_ids == sorted(LGG_PATIENTS)
    case = ds.load("TCGA_AA_0001_19990101_10")
    assert case.patient_id == "TCGA_AA_0001_19990101"
    assert case.channel_names == LGG_CHANNELS and FLAIR_CHANNEL == 1
    assert case.image.shape == (3, 12, 16)
    assert float(case.channel("FLAIR").max()) == 20.0 and float(case.image[FLAIR_CHANNEL].min()) == 20.0
    assert case.label.dtype == np.uint8 and set(np.unique(case.label)) == {0, 1}
    assert int(case.label.sum()) == 10 and case.meta["slice"] == 10
    assert ds.load(0).case_id == "TCGA_AA_0001_19990101_2"


def test_lgg_without_any_mask_is_unlabelled(tmp_path):
    make_lgg(tmp_path, "flat", masks=False)
    ds = open_dataset(tmp_path, layout="lgg")
    assert len(ds) == 6 and all(c.label is None for c in ds) and not ds.skipped


def test_dataset_api_subset_and_lazy_iteration(tmp_path):
    ds = open_dataset(make_lgg(tmp_path))
    sub = ds.subset(["TCGA_CC_0003_20010303_4", "TCGA_BB_0002_20000202_7"])
    assert sub.case_ids == ["TCGA_CC_0003_20010303_4", "TCGA_BB_0002_20000202_7"]
    assert sub.patient_ids == ["TCGA_BB_0002_20000202", "TCGA_CC_0003_20010303"]
    assert "TCGA_BB_0002_20000202_7" in sub and len(sub) == 2
    with pytest.raises(InputError, match="unknown case ids"):
        ds.subset(["nope"])
    with pytest.raises(InputError, match="no case 'nope'"):
        ds.load("nope")
    calls = []
    loader = ds.loader
    ds.loader = lambda e: calls.append(e.case_id) or loader(e)
    it = iter(ds)
    next(it)
    assert len(calls) == 1  # one case decoded at a time
    assert len(list(ds.iter_cases(progress=True))) == 6
    assert ds.cases_by_patient()["TCGA_CC_0003_20010303"] == ["TCGA_CC_0003_20010303_1", "TCGA_CC_0003_20010303_4"]
    assert ds.skipped_summary() == "skipped 0 of 6 cases"


def test_layout_override_pairs_on_lgg_folder(tmp_path):
    make_lgg(tmp_path)
    ds = open_dataset(tmp_path, layout="pairs")
    assert ds.layout == "pairs" and len(ds) == 6
    case = ds.load("TCGA_BB_0002_20000202_7")
    assert case.patient_id == "TCGA_BB_0002_20000202_7" and case.channel_names == ("R", "G", "B")
    regex = open_dataset(tmp_path, layout="pairs", patient_regex=r"^(.+)_\d+$")
    assert regex.patient_ids == sorted(LGG_PATIENTS)
    with pytest.raises(InputError, match="unknown layout 'kaggle'"):
        open_dataset(tmp_path, layout="kaggle")
    with pytest.raises(InputError, match="has no option axes"):
        open_dataset(tmp_path, layout="lgg", axes="HWD")


# ---- pairs -----------------------------------------------------------------------------------------


def test_pairs_2d_and_3d_endings(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.full((4, 5), 9, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.eye(4, 5, dtype=np.uint8) * 255).save(tmp_path / "masks" / "a_mask.png")
    _nii(tmp_path / "images" / "b.nii.gz", np.ones((3, 4, 5), np.float32))
    seg = np.zeros((3, 4, 5), np.uint8)
    seg[0, 0, 0] = 3
    _nii(tmp_path / "masks" / "b.nii.gz", seg)
    (tmp_path / "masks" / "orphan.png").write_bytes((tmp_path / "masks" / "a_mask.png").read_bytes())
    assert detect_layout(tmp_path) == "pairs"
    ds = open_dataset(tmp_path)
    assert ds.case_ids == ["a", "b"] and ds.patient_ids == ["a", "b"]
    a, b = ds.load("a"), ds.load("b")
    assert a.label.sum() == 4 and a.image.shape == (1, 4, 5)
    assert b.image.shape == (1, 5, 4, 3) and b.label[0, 0, 0] == 3
    assert any("orphan" in n for n in ds.notes)


# ---- brats -----------------------------------------------------------------------------------------


def test_brats_layout_channel_order_and_labels(tmp_path):
    names = ["T1c_subtrMeanDivStd", "Flair_subtrMeanDivStd"]
    make_brats(tmp_path, ["brats_2013_pat0001_1", "brats_2013_pat0002_1"], names)
    assert detect_layout(tmp_path) == "brats"
    ds = open_dataset(tmp_path)
    assert ds.case_ids == ["brats_2013_pat0001_1", "brats_2013_pat0002_1"]
    assert ds.patient_ids == ["brats_2013_pat0001", "brats_2013_pat0002"]
    case = ds.load("brats_2013_pat0002_1")
    assert case.channel_names == ("FLAIR", "T1c")
    assert case.image.shape == (2, 4, 6, 5) and case.spacing == (2.0, 1.0, 1.0)
    assert case.image[0].max() == 2.0 and case.image[1].max() == 1.0  # FLAIR first, whatever the file order
    assert case.label.dtype == np.uint8 and sorted(np.unique(case.label)) == [0, 1, 2, 4]
    assert int(case.target.sum()) == 3
    assert case.source.name == "Flair_subtrMeanDivStd.nii.gz"


def test_brats_2023_names_fixed_order_and_modalities_option(tmp_path):
    names = ["BraTS-GLI-00001-000-t1c", "BraTS-GLI-00001-000-t1n", "BraTS-GLI-00001-000-t2f", "BraTS-GLI-00001-000-t2w"]
    make_brats(tmp_path, ["BraTS-GLI-00001-000"], names, label_name="BraTS-GLI-00001-000-seg")
    ds = open_dataset(tmp_path)
    assert ds.patient_ids == ["BraTS-GLI-00001"]
    case = ds.load(0)
    assert case.channel_names == ("FLAIR", "T1", "T1c", "T2")
    assert [float(case.image[i].max()) for i in range(4)] == [3.0, 2.0, 1.0, 4.0]
    two = open_dataset(tmp_path, layout="brats", modalities=("t2", "FLAIR")).load(0)
    assert two.channel_names == ("T2", "FLAIR") and float(two.image[0].max()) == 4.0


def test_brats_common_modalities_and_missing_label(tmp_path):
    make_brats(tmp_path, ["BraTS20_Training_001"], ["BraTS20_Training_001_flair", "BraTS20_Training_001_t1"])
    make_brats(tmp_path, ["BraTS20_Training_002"], ["BraTS20_Training_002_flair"], with_label=False)
    ds = open_dataset(tmp_path)
    assert ds.patient_ids == ["BraTS20_Training_001", "BraTS20_Training_002"]
    assert any("T1" in n for n in ds.notes)
    with pytest.warns(UserWarning, match="no label file"):
        cases = list(ds)
    assert [c.case_id for c in cases] == ["BraTS20_Training_001"] and cases[0].channel_names == ("FLAIR",)


# ---- h5 --------------------------------------------------------------------------------------------


def test_h5_cases_folders_uamt(tmp_path):
    for case_id in ("B2", "A1", "A10"):
        make_h5(tmp_path / "cases" / case_id / "mri_norm2.h5")
    assert detect_layout(tmp_path) == "h5"
    ds = open_dataset(tmp_path)
    assert ds.case_ids == ["A1", "A10", "B2"] and ds.patient_ids == ["A1", "A10", "B2"]
    case = ds.load("A10")
    assert case.image.shape == (1, 4, 6, 5) and case.label.sum() == 4
    assert case.case_id == "A10" and case.source.name == "mri_norm2.h5"


def test_h5_flat_acdc_patients(tmp_path):
    for name in ("patient001_frame01", "patient001_frame12", "patient002_frame01"):
        make_h5(tmp_path / f"{name}.h5", hwd=(3, 8, 9))
    (tmp_path / "slices").mkdir()
    make_h5(tmp_path / "slices" / "x_slice_1.h5", hwd=(8, 9, 2))
    make_h5(tmp_path / "slices" / "x_slice_2.h5", hwd=(8, 9, 2))
    ds = open_dataset(tmp_path, layout="h5")
    assert ds.case_ids == ["patient001_frame01", "patient001_frame12", "patient002_frame01"]
    assert ds.patient_ids == ["patient001", "patient002"]
    assert ds.load(0).image.shape == (1, 3, 8, 9)  # (D, H, W) guessed: first axis shortest
    assert any("slices" in n for n in ds.notes)
    forced = open_dataset(tmp_path, layout="h5", axes="HWD")
    assert forced.load(0).image.shape == (1, 9, 3, 8)


# ---- msd -------------------------------------------------------------------------------------------


def test_msd_layout_4d_images_and_modality_names(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    (tmp_path / "imagesTs").mkdir()
    training = []
    for i in (1, 2):
        data = np.stack([np.full((5, 6, 4), c + 1, np.float32) for c in range(3)], axis=-1)
        _nii(tmp_path / "imagesTr" / f"BRATS_00{i}.nii.gz", data)
        _nii(tmp_path / "labelsTr" / f"BRATS_00{i}.nii.gz", np.full((5, 6, 4), i, np.uint8))
        (tmp_path / "imagesTr" / f"._BRATS_00{i}.nii.gz").write_bytes(b"macOS resource fork")
        training.append({"image": f"./imagesTr/BRATS_00{i}.nii.gz", "label": f"./labelsTr/BRATS_00{i}.nii.gz"})
    meta = {"name": "BRATS", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd"},
            "labels": {"0": "background", "1": "edema", "2": "tumour"}, "training": training, "test": []}
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    assert detect_layout(tmp_path) == "msd"
    ds = open_dataset(tmp_path)
    assert ds.case_ids == ["BRATS_001", "BRATS_002"] and ds.patient_ids == ["BRATS_001", "BRATS_002"]
    case = ds.load("BRATS_002")
    assert case.image.shape == (3, 4, 6, 5) and case.channel_names == ("FLAIR", "T1w", "t1gd")
    assert float(case.channel("t1gd").max()) == 3.0
    assert int(case.label.max()) == 2 and case.meta["label_names"]["2"] == "tumour"


def test_msd_nnunet_channel_files(tmp_path):
    (tmp_path / "imagesTr").mkdir()
    (tmp_path / "labelsTr").mkdir()
    for case in ("la_003", "la_004"):
        for c in range(2):
            _nii(tmp_path / "imagesTr" / f"{case}_{c:04d}.nii.gz", np.full((5, 6, 4), 10 * c, np.float32))
        _nii(tmp_path / "labelsTr" / f"{case}.nii.gz", np.ones((5, 6, 4), np.uint8))
    (tmp_path / "dataset.json").write_text(json.dumps({"channel_names": {"0": "MRI", "1": "ADC"}}))
    ds = open_dataset(tmp_path)
    assert ds.layout == "msd" and ds.case_ids == ["la_003", "la_004"]
    case = ds.load("la_004")
    assert case.channel_names == ("MRI", "ADC") and float(case.channel("ADC").max()) == 10.0


def test_layouts_dict_is_explicit():
    assert set(LAYOUTS) == {"lgg", "brats", "h5", "msd", "pairs", "dicom", "files"}
    assert all(layout.name == key for key, layout in LAYOUTS.items())


# ---- splits ----------------------------------------------------------------------------------------


def _synthetic_patients(n_patients: int = 23, seed: int = 0) -> dict[str, str]:
    """case_id -> patient_id, 1 to 12 slices per patient (ids shuffled so order carries no hint)."""
    rng = np.random.default_rng(seed)
    pairs = [(f"P{p:03d}_{s}", f"P{p:03d}") for p in range(n_patients) for s in range(int(rng.integers(1, 13)))]
    return dict(pairs[i] for i in rng.permutation(len(pairs)))


def _patients_of(ids, mapping):
    return {mapping[c] for c in ids}


def test_split_patients_disjoint_complete_reproducible_for_many_seeds():
    mapping = _synthetic_patients()
    results = []
    for seed in range(40):
        parts = split_patients(mapping, (0.7, 0.1, 0.2), seed=seed)
        train, val, test = (_patients_of(parts[k], mapping) for k in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert sorted(parts["train"] + parts["val"] + parts["test"]) == sorted(mapping)
        assert (len(train), len(val), len(test)) == (16, 2, 5)
        check_disjoint(parts, mapping)
        assert parts == split_patients(mapping, (0.7, 0.1, 0.2), seed=seed)
        results.append(tuple(sorted(test)))
    assert len(set(results)) > 30  # seeds give different splits


def test_split_patients_on_dataset_and_bad_fractions(tmp_path):
    ds = open_dataset(make_lgg(tmp_path))
    parts = split_patients(ds, (0.34, 0.33, 0.33), seed=3)
    mapping = {e.case_id: e.patient_id for e in ds.entries}
    assert sorted(len(_patients_of(v, mapping)) for v in parts.values()) == [1, 1, 1]
    two = split_patients(ds, (0.5, 0.5), seed=0)
    assert set(two) == {"train", "test"}
    with pytest.raises(SplitError, match="summing to 1"):
        split_patients(ds, (0.5, 0.6, 0.1))
    with pytest.raises(SplitError):
        check_disjoint([["TCGA_AA_0001_19990101_2"], ["TCGA_AA_0001_19990101_3"]], ds)


def test_kfold_each_patient_tested_once():
    mapping = _synthetic_patients()
    for seed in range(20):
        folds = kfold(mapping, k=5, seed=seed)
        tested = []
        for train, test in folds:
            assert not _patients_of(train, mapping) & _patients_of(test, mapping)
            assert sorted(train + test) == sorted(mapping)
            tested.extend(_patients_of(test, mapping))
        assert sorted(tested) == sorted(set(mapping.values()))
        assert sorted(len(_patients_of(t, mapping)) for _, t in folds) == [4, 4, 5, 5, 5]
    assert kfold(mapping, 5, seed=1) == kfold(mapping, 5, seed=1) != kfold(mapping, 5, seed=2)
    with pytest.raises(SplitError):
        kfold(mapping, k=24)


def test_n_shot_distinct_patients_nested_and_reproducible():
    mapping = _synthetic_patients()
    chosen_sets = set()
    for seed in range(40):
        shots = n_shot(mapping, 10, seed=seed)
        assert len(shots) == 10 and len(_patients_of(shots, mapping)) == 10
        assert shots == n_shot(mapping, 10, seed=seed)
        assert set(n_shot(mapping, 4, seed=seed)) <= set(shots)  # smaller sets are contained
        split = n_shot_split(mapping, 10, seed=seed)
        assert split["train"] == shots
        shot_patients = _patients_of(shots, mapping)
        assert set(split["test"]) == {c for c, p in mapping.items() if p not in shot_patients}
        chosen_sets.add(tuple(shots))
    assert len(chosen_sets) > 30
    with pytest.raises(SplitError, match="number of patients \\(23\\)"):
        n_shot(mapping, 24)
    pool = [c for c, p in mapping.items() if p < "P005"]
    assert _patients_of(n_shot(mapping, 5, seed=0, pool=pool), mapping) == {f"P{i:03d}" for i in range(5)}
    with pytest.raises(SplitError):
        n_shot(mapping, 6, pool=pool)


def test_n_shot_largest_lesion_slice(tmp_path):
    ds = open_dataset(make_lgg(tmp_path))
    shots = n_shot(ds, 3, seed=0, pick="largest")
    assert shots == ["TCGA_AA_0001_19990101_10", "TCGA_BB_0002_20000202_7", "TCGA_CC_0003_20010303_4"]
    with pytest.raises(SplitError, match="needs a Dataset"):
        n_shot({"a": "p"}, 1, pick="largest")
    with pytest.raises(SplitError, match="pick must be"):
        n_shot(ds, 1, pick="biggest")


# ---- volumes as slices -----------------------------------------------------------------------------


def test_slices_of_volumes(tmp_path):
    for case_id in ("v1", "v2"):
        path = make_h5(tmp_path / "cases" / case_id / "mri_norm2.h5", hwd=(6, 5, 4))
        with h5py.File(path, "a") as f:
            f.attrs["spacing"] = (0.5, 0.6, 2.0)
    ds = open_dataset(tmp_path)
    slices = ds.as_slices(axis=0)
    assert isinstance(slices, SliceDataset)
    out = list(slices)
    assert [c.case_id for c in out[:5]] == ["v1_z0", "v1_z1", "v1_z2", "v1_z3", "v2_z0"]
    assert len(out) == 8 and all(c.patient_id in ("v1", "v2") for c in out)
    first = out[1]
    assert first.image.shape == (1, 6, 5) and first.spacing == (0.5, 0.6) and first.ndim == 2
    assert first.meta["volume_id"] == "v1" and first.meta["slice_index"] == 1
    volume = ds.load("v1")
    np.testing.assert_array_equal(first.image, volume.image[:, 1])
    np.testing.assert_array_equal(first.label, volume.label[1])
    fg = list(ds.as_slices(axis=0, only_foreground=True))
    assert [c.case_id for c in fg] == ["v1_z1", "v2_z1"]
    sagittal = SliceDataset(ds, axis=2).load("v2_x3")
    assert sagittal.image.shape == (1, 4, 6) and sagittal.spacing == (2.0, 0.5)
    with pytest.raises(InputError, match="not a slice id"):
        SliceDataset(ds, axis=2).load("v2_z3")
