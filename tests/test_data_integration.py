"""The loaders on the real development data in ../shared/data (skipped when it is absent)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from scarceseg.datasets import FLAIR_CHANNEL, LGG_CHANNELS, n_shot, open_dataset, split_patients
from scarceseg.errors import CorruptFileError
from scarceseg.io import read_image, read_mask

pytestmark = pytest.mark.data


def test_lgg_966_slices_of_80_patients(shared_data):
    ds = open_dataset(shared_data / "lgg")
    assert ds.layout == "lgg"
    assert len(ds) == 966 and len(ds.patient_ids) == 80
    assert all(e.label is not None and e.problem is None for e in ds.entries)
    assert ds.case_ids[:2] == ["TCGA_CS_4942_19970222_9", "TCGA_CS_4942_19970222_10"]  # natural order
    for case_id in ds.case_ids[:: len(ds) // 5]:  # a handful, not all 966
        case = ds.load(case_id)
        assert case.image.shape == (3, 256, 256) and case.image.dtype == np.float32
        assert case.channel_names == LGG_CHANNELS and case.channel_names[FLAIR_CHANNEL] == "FLAIR"
        assert case.meta["dtype"] == "uint8" and case.meta["tiff_compression"] == "LZW"
        assert case.label.shape == (256, 256) and set(np.unique(case.label)) == {0, 1}
        assert case.patient_id == case_id.rsplit("_", 1)[0]
        flair = case.channel("FLAIR")
        assert flair[case.target].mean() > flair[~case.target & (flair > 0)].mean()


def test_lgg_splits_keep_patients_apart(shared_data):
    ds = open_dataset(shared_data / "lgg")
    parts = split_patients(ds, (0.7, 0.1, 0.2), seed=0)
    owners = [{ds.patient_of(c) for c in ids} for ids in parts.values()]
    assert sum(len(o) for o in owners) == 80 and not (owners[0] & owners[1] or owners[0] & owners[2])
    shots = n_shot(ds, 10, seed=0)
    assert len({ds.patient_of(c) for c in shots}) == 10


def test_corrupt_lgg_images_raise_and_are_skipped(shared_data):
    root = shared_data / "corrupt" / "lgg"
    images = sorted((root / "images").glob("*.tif"))
    assert len(images) == 4
    for path in images:
        with pytest.raises(CorruptFileError) as info:
            read_image(path)
        assert info.value.path == path and str(info.value).startswith(str(path))
        assert "\n" not in str(info.value)
    for path in sorted((root / "masks").glob("*_mask.tif")):
        assert read_mask(path).max() == 1  # the masks are fine
    ds = open_dataset(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = list(ds)
    assert cases == [] and len(ds.skipped) == 4
    assert ds.skipped_summary().startswith("skipped 4 of 4 cases: TCGA_")


def test_brats_four_cases(shared_data):
    ds = open_dataset(shared_data / "brats2015")
    assert ds.layout == "brats" and len(ds) == 4
    assert ds.case_ids == [f"brats_2013_pat000{i}_1" for i in range(1, 5)]
    case = ds.load(ds.case_ids[0])
    assert case.image.shape == (2, 155, 240, 240) and case.channel_names == ("FLAIR", "T1c")
    assert case.spacing == (1.0, 1.0, 1.0) and case.affine.shape == (4, 4)
    assert case.label.shape == (155, 240, 240)
    assert set(np.unique(case.label)) <= {0, 1, 2, 3, 4} and case.target.any()
    for entry in ds.entries:  # the label of every case, cheaply
        assert entry.label.name == "OTMultiClass.nii.gz"
        assert set(np.unique(ds.load_label(entry.case_id))) <= {0, 1, 2, 3, 4}


def test_la2018_sixteen_cases_h5(shared_data):
    ds = open_dataset(shared_data / "la2018")
    assert ds.layout == "h5" and len(ds) == 16 and len(ds.patient_ids) == 16
    case = ds.load(ds.case_ids[0])
    assert case.image.ndim == 4 and case.image.shape[:2] == (1, 88)
    assert case.label.shape == case.image.shape[1:] and set(np.unique(case.label)) == {0, 1}
    assert case.meta["spacing_known"] is False


def test_lgg_slices_find_their_neighbours_and_brats_volumes_theirs(shared_data):
    """Volume context on the real layouts: an LGG patient's numbered slice files, and a BRATS volume's slices."""
    from scarceseg.datasets.slices import NeighbourSlices, slice_case, stack_position

    ds = open_dataset(shared_data / "lgg")
    near = NeighbourSlices.of_dataset(ds)
    case = ds.load("TCGA_CS_4942_19970222_12")
    assert stack_position(case) == ("TCGA_CS_4942_19970222", 12)
    got = near(case, 2)
    assert {o: c.case_id for o, c in got.items()} == {o: f"TCGA_CS_4942_19970222_{12 + o}" for o in (-2, -1, 1, 2)}
    first = ds.load(ds.case_ids[0])  # slice 9, the patient's first tumour slice: nothing below it
    assert sorted(near(first, 2)) == [1, 2]
    linked = sum(bool(near(ds.load(c), 1)) for c in ds.case_ids[::50])
    assert linked == len(ds.case_ids[::50])  # every sampled slice has a neighbour in the folder
    brats = open_dataset(shared_data / "brats2015")
    volume = brats.load(brats.case_ids[0])
    one = slice_case(volume, 0)
    assert sorted(NeighbourSlices.of_volume(volume)(one, 2)) == [1, 2]
