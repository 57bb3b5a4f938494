"""Bad input gives the specific scarceseg error, naming the file, and loses nothing else."""

from __future__ import annotations

import gzip

import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from scarceseg.datasets import open_dataset
from scarceseg.errors import (
    CorruptFileError,
    DimensionError,
    InputError,
    NonFiniteError,
    ScarcesegError,
    ShapeMismatchError,
    UnsupportedFormatError,
)
from scarceseg.io import read_image, read_mask, require_2d, require_3d, write_mask


def _names_file(exc: ScarcesegError, path) -> None:
    """The error names the file: as its ``path`` and at the start of its one-line message."""
    assert exc.path == path
    assert str(exc).startswith(str(path))
    assert "\n" not in str(exc)


def _rgb(seed: int = 0, shape=(40, 48)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


def _write_broken_lzw_tiff(path, seed: int = 0) -> None:
    """A valid LZW TIFF whose first strip is then zeroed from a third on: the LZW stream ends without
    its EOI code, as in the broken public LGG files (tifffile: 'corrupted strip cannot be reshaped')."""
    tifffile.imwrite(path, _rgb(seed), compression="lzw", photometric="rgb", rowsperstrip=16)
    with tifffile.TiffFile(path) as tf:
        offset, count = tf.pages[0].dataoffsets[0], tf.pages[0].databytecounts[0]
    raw = bytearray(path.read_bytes())
    raw[offset + count // 3 : offset + count] = bytes(count - count // 3)
    path.write_bytes(bytes(raw))


def _write_lgg_pair(folder, stem: str, seed: int = 0, broken: bool = False) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    if broken:
        _write_broken_lzw_tiff(folder / "images" / f"{stem}.tif", seed)
    else:
        tifffile.imwrite(folder / "images" / f"{stem}.tif", _rgb(seed), compression="lzw", photometric="rgb")
    mask = np.zeros((40, 48, 3), np.uint8)
    mask[5:9, 5:9] = 255
    tifffile.imwrite(folder / "masks" / f"{stem}_mask.tif", mask, compression="lzw", photometric="rgb")


# ---- undecodable files -----------------------------------------------------------------------------


def test_broken_lzw_tiff_is_corrupt_file_error(tmp_path):
    path = tmp_path / "TCGA_XX_0001_20000101_3.tif"
    _write_broken_lzw_tiff(path)
    with pytest.raises(CorruptFileError, match="cannot decode TIFF") as info:
        read_image(path)
    _names_file(info.value, path)
    with pytest.raises(CorruptFileError):
        read_mask(path)


def test_broken_png_nifti_hdf5_and_empty_file(tmp_path):
    Image.fromarray(_rgb()).save(tmp_path / "a.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "a.png").read_bytes()[:200])
    volume = np.random.default_rng(0).random((20, 20, 20)).astype(np.float32)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(tmp_path / "v.nii.gz"))
    packed = (tmp_path / "v.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "cut.nii").write_bytes(gzip.decompress(packed)[:1000])
    (tmp_path / "junk.h5").write_bytes(b"not an hdf5 file at all" * 10)
    (tmp_path / "empty.nrrd").write_bytes(b"")
    (tmp_path / "bad.nrrd").write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 9 9 9\nencoding: raw\n\nab")
    for name in ("cut.png", "cut.nii.gz", "cut.nii", "junk.h5", "empty.nrrd", "bad.nrrd"):
        with pytest.raises(CorruptFileError) as info:
            read_image(tmp_path / name)
        _names_file(info.value, tmp_path / name)


def test_folder_with_one_corrupt_case_skips_it_and_loads_the_rest(tmp_path):
    for i in range(1, 4):
        _write_lgg_pair(tmp_path, f"TCGA_AA_0001_20000101_{i}", seed=i)
    _write_lgg_pair(tmp_path, "TCGA_AA_0002_20000101_7", broken=True)
    ds = open_dataset(tmp_path)
    assert ds.layout == "lgg" and len(ds) == 4
    with pytest.warns(UserWarning, match="TCGA_AA_0002_20000101_7"):
        cases = list(ds)
    assert [c.case_id for c in cases] == [f"TCGA_AA_0001_20000101_{i}" for i in range(1, 4)]
    assert len(ds.skipped) == 1
    case_id, where, reason = ds.skipped[0]
    assert case_id == "TCGA_AA_0002_20000101_7" and where.endswith("TCGA_AA_0002_20000101_7.tif")
    assert "cannot decode TIFF" in reason
    assert ds.skipped_summary().startswith("skipped 1 of 4 cases: TCGA_AA_0002_20000101_7 (cannot decode")
    with pytest.raises(CorruptFileError):
        ds.load("TCGA_AA_0002_20000101_7")
    list(ds)  # a second pass does not record the skip twice
    assert len(ds.skipped) == 1


def test_image_without_mask_is_an_unlabelled_case(tmp_path):
    """Issue 16 item 7: a new image next to labelled ones can be opened (to be labelled), not skipped."""
    _write_lgg_pair(tmp_path, "TCGA_AA_0001_20000101_1")
    tifffile.imwrite(tmp_path / "images" / "TCGA_AA_0001_20000101_2.tif", _rgb(1), photometric="rgb")
    ds = open_dataset(tmp_path)
    assert any("TCGA_AA_0001_20000101_2" in note and "no mask" in note for note in ds.notes)
    cases = {c.case_id: c for c in ds}
    assert set(cases) == {"TCGA_AA_0001_20000101_1", "TCGA_AA_0001_20000101_2"} and not ds.skipped
    assert cases["TCGA_AA_0001_20000101_2"].label is None
    assert cases["TCGA_AA_0001_20000101_1"].label is not None
    assert ds.load("TCGA_AA_0001_20000101_2").image.shape == (3, 40, 48)


# ---- geometry and values ---------------------------------------------------------------------------


def test_shape_mismatch_names_both_files(tmp_path):
    Image.fromarray(_rgb(shape=(10, 12))).save(tmp_path / "img.png")
    Image.fromarray(np.zeros((10, 11), np.uint8)).save(tmp_path / "img_mask.png")
    case = read_image(tmp_path / "img.png")
    with pytest.raises(ShapeMismatchError) as info:
        read_mask(tmp_path / "img_mask.png", like=case)
    _names_file(info.value, tmp_path / "img_mask.png")
    assert "img.png" in str(info.value) and "(10, 11)" in str(info.value) and "(10, 12)" in str(info.value)
    with pytest.raises(ShapeMismatchError):
        write_mask(np.zeros((10, 11), np.uint8), tmp_path / "out.png", like=case)


def test_pairs_dataset_with_mismatched_mask_reports_it_and_keeps_the_image(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name, mshape in (("a", (10, 12)), ("b", (9, 12))):
        Image.fromarray(_rgb(shape=(10, 12))).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(np.zeros(mshape, np.uint8)).save(tmp_path / "masks" / f"{name}.png")
    ds = open_dataset(tmp_path)
    with pytest.warns(UserWarning, match="mask ignored"):
        cases = {c.case_id: c for c in ds}
    assert sorted(cases) == ["a", "b"] and not ds.skipped  # item 7: the image is still usable
    assert cases["a"].label is not None and cases["b"].label is None
    (case_id, mask_path, reason), = ds.label_problems
    assert case_id == "b" and mask_path.endswith("b.png") and "differs from the image" in reason


def test_nan_and_inf_are_counted(tmp_path):
    data = np.zeros((4, 5, 6), np.float32)
    data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.nan, np.inf, -np.inf
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "nan.nii.gz"))
    with pytest.raises(NonFiniteError, match=r"3 of 120 voxels are not finite \(1 NaN, 2 infinite\)") as info:
        read_image(tmp_path / "nan.nii.gz")
    _names_file(info.value, tmp_path / "nan.nii.gz")
    tifffile.imwrite(tmp_path / "inf.tif", np.array([[1.0, np.inf]], np.float32))
    with pytest.raises(NonFiniteError, match="1 of 2"):
        read_image(tmp_path / "inf.tif")
    with h5py.File(tmp_path / "n.h5", "w") as f:
        f["image"] = np.full((3, 3, 3), np.nan, np.float32)
    with pytest.raises(NonFiniteError, match="27 of 27"):
        read_image(tmp_path / "n.h5")


def test_non_integral_mask_and_colour_mask(tmp_path):
    nib.save(nib.Nifti1Image(np.full((2, 3, 4), 0.5, np.float32), np.eye(4)), str(tmp_path / "p.nii.gz"))
    with pytest.raises(InputError, match="non-integer values") as info:
        read_mask(tmp_path / "p.nii.gz")
    _names_file(info.value, tmp_path / "p.nii.gz")
    Image.fromarray(_rgb()).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="channels that differ"):
        read_mask(tmp_path / "colour.png")
    with pytest.raises(InputError, match="non-integer"):
        write_mask(np.full((3, 3), 0.3), tmp_path / "prob.png")


def test_hdf5_without_image_or_label(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["data"] = np.zeros((2, 2, 2))
    with pytest.raises(InputError, match="no 'image' dataset"):
        read_image(tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f["image"] = np.zeros((2, 2, 2))
    with pytest.raises(InputError, match="no 'label'"):
        read_mask(tmp_path / "y.h5")


# ---- dimensionality --------------------------------------------------------------------------------


def test_3d_where_2d_is_needed(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), str(tmp_path / "v.nii.gz"))
    case = read_image(tmp_path / "v.nii.gz")
    with pytest.raises(DimensionError, match="needs a 2D image") as info:
        require_2d(case)
    _names_file(info.value, tmp_path / "v.nii.gz")
    assert require_3d(case) is case
    with pytest.raises(DimensionError, match="use .nii.gz") as info:
        write_mask(np.zeros((6, 5, 4), np.uint8), tmp_path / "m.png")
    _names_file(info.value, tmp_path / "m.png")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "p.png")
    with pytest.raises(DimensionError, match="needs a 3D volume"):
        require_3d(read_image(tmp_path / "p.png"))
    with pytest.raises(DimensionError, match="use .png"):
        write_mask(np.zeros((3, 3), np.uint8), tmp_path / "m.nii.gz")


def test_plain_multipage_tiff_is_refused_as_ambiguous(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((5, 8, 8), np.uint8))
    with pytest.raises(UnsupportedFormatError, match="ambiguous") as info:
        read_image(tmp_path / "stack.tif")
    _names_file(info.value, tmp_path / "stack.tif")


# ---- paths -----------------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    missing = tmp_path / "nope.nii.gz"
    for call in (read_image, read_mask, open_dataset):
        with pytest.raises(InputError, match="no such") as info:
            call(missing)
        _names_file(info.value, missing)


def test_unsupported_ending(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match="unsupported file ending '.txt'") as info:
        read_image(tmp_path / "notes.txt")
    _names_file(info.value, tmp_path / "notes.txt")
    with pytest.raises(UnsupportedFormatError, match="cannot write a mask as '.jpg'"):
        write_mask(np.zeros((3, 3), np.uint8), tmp_path / "m.jpg")


def test_empty_folder_and_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    for call in (read_image, open_dataset):
        with pytest.raises(InputError, match="folder is empty") as info:
            call(tmp_path / "empty")
        _names_file(info.value, tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.md").write_text("no images")
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "other")
    with pytest.raises(InputError, match="matches no known data set layout") as info:
        open_dataset(tmp_path / "other")
    assert "lgg:" in str(info.value) and "brats:" in str(info.value) and "pairs:" in str(info.value)


def test_open_dataset_on_a_file(tmp_path):
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "p.png")
    with pytest.raises(InputError, match="not a data set folder"):
        open_dataset(tmp_path / "p.png")
