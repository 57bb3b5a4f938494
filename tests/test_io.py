"""Readers, writers and describe() on tiny synthetic files written in each test."""

from __future__ import annotations

import os

import h5py
import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image

from scarceseg.errors import InputError
from scarceseg.io import (
    SUPPORTED_ENDINGS,
    Case,
    describe,
    ending_of,
    format_description,
    read_image,
    read_mask,
    require_2d,
    require_3d,
    stem_of,
    write_mask,
)

# ---- helpers ---------------------------------------------------------------------------------------


def _nifti(path, data, zooms=(0.5, 1.0, 2.0), affine=None):
    if affine is None:
        affine = np.diag([*zooms[:3], 1.0])
        affine[:3, 3] = (5.0, -3.0, 7.0)
    img = nib.Nifti1Image(data, affine)
    img.header.set_zooms(zooms[: data.ndim])
    nib.save(img, str(path))
    return affine


def _ras_of_itk(img: sitk.Image, ijk) -> np.ndarray:
    x, y, z = img.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk))
    return np.array([-x, -y, z])


def _write_dicom_series(folder, volume: np.ndarray, spacing, origin, series_uid: str):
    """One .dcm file per slice of ``volume`` (Z, Y, X) int16, with the geometry tags set."""
    folder.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(volume)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        sl = img[:, :, k]
        position = "\\".join(str(v) for v in img.TransformIndexToPhysicalPoint((0, 0, k)))
        tags = {
            "0008|0060": "MR",
            "0020|000d": series_uid + ".0",
            "0020|000e": series_uid,
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0020|0032": position,
            "0020|0013": str(k + 1),
            "0008|0018": f"{series_uid}.{k + 1}",
            "0018|0050": str(spacing[2]),
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(os.fspath(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


# ---- endings ---------------------------------------------------------------------------------------


def test_endings_case_insensitive(tmp_path):
    assert ending_of("a/B.NII.GZ") == ".nii.gz"
    assert ending_of("x.TIF") == ".tif"
    assert stem_of("dir/case_01.nii.gz") == "case_01"
    assert ".nrrd" in SUPPORTED_ENDINGS and ".h5" in SUPPORTED_ENDINGS
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    _nifti(tmp_path / "UP.NII.GZ", data)
    assert read_image(tmp_path / "UP.NII.GZ").shape == (4, 3, 2)


# ---- NIfTI -----------------------------------------------------------------------------------------


def test_nifti_3d_orientation_and_spacing(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # (i, j, k), all sizes differ
    affine = _nifti(tmp_path / "vol.nii.gz", data, zooms=(0.5, 1.0, 2.0))
    case = read_image(tmp_path / "vol.nii.gz")
    assert case.image.dtype == np.float32
    assert case.image.shape == (1, 6, 5, 4)
    for i, j, k in [(0, 0, 0), (3, 1, 2), (1, 4, 5)]:
        assert case.image[0, k, j, i] == data[i, j, k]
    assert case.spacing == (2.0, 1.0, 0.5)
    np.testing.assert_allclose(case.affine, affine)
    assert case.origin == (7.0, -3.0, 5.0)
    assert case.meta["dtype"] == "int16" and case.meta["format"] == "nifti"
    assert case.source == tmp_path / "vol.nii.gz"
    assert case.case_id == "vol" and case.label is None


def test_nifti_4d_channels_last_axis(tmp_path):
    data = np.random.default_rng(0).random((4, 5, 6, 2)).astype(np.float32)
    _nifti(tmp_path / "mc.nii", data, zooms=(1.0, 1.5, 3.0, 1.0))
    case = read_image(tmp_path / "mc.nii")
    assert case.image.shape == (2, 6, 5, 4)
    np.testing.assert_array_equal(case.image[1, 2, 3, 1], data[1, 3, 2, 1])
    assert case.spacing == (3.0, 1.5, 1.0)


def test_nifti_float_label_map_becomes_integer(tmp_path):
    labels = np.zeros((4, 5, 6), np.float32)
    labels[1, 2, 3], labels[2, 2, 2] = 4.0, 2.0
    _nifti(tmp_path / "seg.nii.gz", labels)
    mask = read_mask(tmp_path / "seg.nii.gz")
    assert mask.dtype == np.uint8 and mask.shape == (6, 5, 4)
    assert mask[3, 2, 1] == 4 and mask[2, 2, 2] == 2 and mask.sum() == 6


# ---- SimpleITK formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vol.nrrd", "vol.mha", "vol.mhd"])
def test_itk_volume_shape_spacing_affine(tmp_path, name):
    array = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)  # (Z, Y, X)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    theta = np.deg2rad(30)
    rot = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]])
    img.SetDirection(tuple(rot.ravel()))
    sitk.WriteImage(img, str(tmp_path / name))
    case = read_image(tmp_path / name)
    assert case.image.shape == (1, 3, 4, 5)
    np.testing.assert_array_equal(case.image[0], array)
    assert case.spacing == pytest.approx((2.0, 0.6, 0.5))
    assert case.meta["dtype"] == "uint16"
    for ijk in [(0, 0, 0), (4, 1, 2), (2, 3, 1)]:
        world = case.affine @ np.array([*ijk, 1.0])
        np.testing.assert_allclose(world[:3], _ras_of_itk(img, ijk), atol=1e-9)
    np.testing.assert_allclose(case.origin, (3.0, -2.0, -1.0))


def test_itk_vector_image_channels_first(tmp_path):
    array = np.random.default_rng(1).random((3, 4, 5, 2)).astype(np.float32)
    img = sitk.GetImageFromArray(array, isVector=True)
    sitk.WriteImage(img, str(tmp_path / "vec.mha"))
    case = read_image(tmp_path / "vec.mha")
    assert case.image.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(case.image[1], array[..., 1])


def test_dicom_series_folder(tmp_path):
    volume = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    uid = "1.2.826.0.1.3680043.2.1125.7"
    _write_dicom_series(tmp_path / "series", volume, (0.7, 0.8, 2.5), (10.0, 20.0, 30.0), uid)
    case = read_image(tmp_path / "series")
    assert case.image.shape == (1, 4, 5, 6)
    np.testing.assert_array_equal(case.image[0], volume)
    assert case.spacing == pytest.approx((2.5, 0.8, 0.7))
    assert case.meta["format"] == "dicom-series" and case.meta["n_files"] == 4
    assert case.meta["modality"] == "MR"
    assert case.case_id == "series" and case.source == tmp_path / "series"
    np.testing.assert_allclose(case.affine[:3, 3], (-10.0, -20.0, 30.0))


def test_single_dicom_file_is_2d(tmp_path):
    _write_dicom_series(tmp_path / "one", np.arange(12, dtype=np.int16).reshape(1, 3, 4), (0.5, 0.25, 1.0),
                        (0.0, 0.0, 0.0), "1.2.3.4.9")
    case = read_image(tmp_path / "one" / "slice000.dcm")
    assert case.image.shape == (1, 3, 4) and case.spacing == pytest.approx((0.25, 0.5))
    assert case.meta["format"] == "dicom-file"
    assert read_image(tmp_path / "one").image.shape == (1, 3, 4)  # a one-file series too


def test_dicom_folder_with_two_series_needs_series_id(tmp_path):
    volume = np.ones((2, 3, 4), np.int16)
    _write_dicom_series(tmp_path / "mixed", volume, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), "1.2.3.4.1")
    _write_dicom_series(tmp_path / "other", volume * 2, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), "1.2.3.4.2")
    for f in (tmp_path / "other").iterdir():
        f.rename(tmp_path / "mixed" / f"b_{f.name}")
    with pytest.raises(InputError, match="2 DICOM series"):
        read_image(tmp_path / "mixed")
    case = read_image(tmp_path / "mixed", series_id="1.2.3.4.2")
    assert case.image.max() == 2


# ---- 2D pictures -----------------------------------------------------------------------------------


def test_png_gray_and_rgb(tmp_path):
    gray = np.arange(6 * 7, dtype=np.uint8).reshape(6, 7)
    Image.fromarray(gray).save(tmp_path / "g.png")
    case = read_image(tmp_path / "g.png")
    assert case.image.shape == (1, 6, 7) and case.spacing == (1.0, 1.0)
    np.testing.assert_array_equal(case.image[0], gray)
    assert case.meta["spacing_known"] is False and case.affine is None
    rgb = np.random.default_rng(2).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.PNG")
    case = read_image(tmp_path / "c.PNG")
    assert case.image.shape == (3, 6, 7) and case.channel_names == ("R", "G", "B")
    np.testing.assert_array_equal(case.image[2], rgb[..., 2])


def test_png_16bit(tmp_path):
    data = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(data).save(tmp_path / "d.png")
    case = read_image(tmp_path / "d.png")
    np.testing.assert_array_equal(case.image[0], data)
    assert case.meta["dtype"] == "uint16"


def test_jpeg(tmp_path):
    yy, xx = np.mgrid[0:16, 0:20]
    rgb = np.stack([yy * 8, xx * 6, np.full_like(yy, 100)], axis=-1).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.jpg", quality=98)
    case = read_image(tmp_path / "p.jpg")
    assert case.image.shape == (3, 16, 20) and case.meta["format"] == "jpeg"
    assert np.abs(case.image - np.moveaxis(rgb, -1, 0)).mean() < 3


def test_tiff_lzw_multichannel(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 255, (8, 9, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", rgb, compression="lzw", photometric="rgb")
    case = read_image(tmp_path / "t.tif")
    assert case.image.shape == (3, 8, 9)
    np.testing.assert_array_equal(case.image, np.moveaxis(rgb, -1, 0))
    assert case.meta["tiff_compression"] == "LZW" and case.meta["dtype"] == "uint8"
    planar = np.random.default_rng(4).random((2, 8, 9)).astype(np.float32)
    tifffile.imwrite(tmp_path / "p.tiff", planar, photometric="minisblack", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "p.tiff").image, planar)


def test_tiff_with_explicit_z_axis_is_a_volume(tmp_path):
    vol = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    tifffile.imwrite(tmp_path / "v.tif", vol, imagej=True, metadata={"axes": "ZYX"})
    case = read_image(tmp_path / "v.tif")
    assert case.image.shape == (1, 3, 4, 5)
    require_3d(case)


# ---- HDF5 ------------------------------------------------------------------------------------------


def test_hdf5_uamt_layout(tmp_path):
    image = np.random.default_rng(5).random((6, 5, 4)).astype(np.float32)  # (H, W, D)
    label = (image > 0.5).astype(np.uint8)
    with h5py.File(tmp_path / "mri_norm2.h5", "w") as f:
        f["image"], f["label"] = image, label
    case = read_image(tmp_path / "mri_norm2.h5")
    assert case.image.shape == (1, 4, 6, 5)  # (C, D, H, W)
    np.testing.assert_array_equal(case.image[0, 3, 2, 1], image[2, 1, 3])
    np.testing.assert_array_equal(case.label, label.transpose(2, 0, 1))
    assert case.spacing == (1.0, 1.0, 1.0) and case.meta["spacing_known"] is False
    assert case.label_source == tmp_path / "mri_norm2.h5"
    np.testing.assert_array_equal(read_mask(tmp_path / "mri_norm2.h5", like=case), case.label)


def test_hdf5_spacing_attribute_and_axes(tmp_path):
    image = np.zeros((2, 8, 9), np.float32)  # ACDC-like (D, H, W): first axis shortest
    with h5py.File(tmp_path / "patient001_frame01.h5", "w") as f:
        f["image"] = image
        f.attrs["spacing"] = (10.0, 1.5, 1.25)
    case = read_image(tmp_path / "patient001_frame01.h5")
    assert case.image.shape == (1, 2, 8, 9) and case.label is None
    assert case.spacing == (10.0, 1.5, 1.25) and case.meta["spacing_known"] is True
    forced = read_image(tmp_path / "patient001_frame01.h5", h5_axes="HWD")
    assert forced.image.shape == (1, 9, 2, 8) and forced.spacing == (1.25, 10.0, 1.5)


def test_hdf5_2d_slice(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["image"] = np.ones((8, 9), np.float64)
        f["label"] = np.eye(8, 9, dtype=np.uint8) * 3
    case = read_image(tmp_path / "s.h5")
    assert case.image.shape == (1, 8, 9) and case.label.max() == 3
    require_2d(case)


# ---- masks -----------------------------------------------------------------------------------------


def test_read_mask_three_identical_channels_0_255(tmp_path):
    m = np.zeros((5, 6), np.uint8)
    m[1:3, 2:5] = 255
    tifffile.imwrite(tmp_path / "x_mask.tif", np.repeat(m[..., None], 3, -1), compression="lzw", photometric="rgb")
    mask = read_mask(tmp_path / "x_mask.tif")
    assert mask.dtype == np.uint8 and mask.shape == (5, 6)
    np.testing.assert_array_equal(mask, m // 255)


def test_read_mask_keeps_integer_labels_and_palette(tmp_path):
    labels = np.zeros((5, 6), np.uint8)
    labels[0, 0], labels[2, 3] = 3, 7
    img = Image.fromarray(labels, mode="L").convert("P")
    img.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    img.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "pal.png"), labels)


def test_jpeg_mask_is_thresholded_with_a_warning(tmp_path):
    m = np.zeros((16, 16), np.uint8)
    m[4:12, 4:12] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=70)
    with pytest.warns(UserWarning, match="lossy"):
        mask = read_mask(tmp_path / "m.jpg")
    np.testing.assert_array_equal(mask, m // 255)


def test_write_mask_png_round_trip_exact(tmp_path):
    mask = np.zeros((7, 9), bool)
    mask[2:5, 3:6] = True
    out = write_mask(mask, tmp_path / "deep" / "er" / "m.png")
    assert out.is_file()
    stored = np.asarray(Image.open(out))
    assert stored.dtype == np.uint8 and set(np.unique(stored)) == {0, 255}
    back = read_mask(out)
    np.testing.assert_array_equal(back, mask.astype(np.uint8))
    multi = np.arange(63, dtype=np.uint8).reshape(7, 9) % 4
    np.testing.assert_array_equal(read_mask(write_mask(multi, tmp_path / "multi.png")), multi)
    np.testing.assert_array_equal(read_mask(write_mask(mask, tmp_path / "m.tif")), mask)


def test_write_mask_nifti_keeps_affine_and_values(tmp_path):
    theta = np.deg2rad(20)
    affine = np.array(
        [[0.5 * np.cos(theta), -np.sin(theta), 0, 12.0], [0.5 * np.sin(theta), np.cos(theta), 0, -4.0],
         [0, 0, 2.0, 30.0], [0, 0, 0, 1]]
    )
    _nifti(tmp_path / "img.nii.gz", np.zeros((4, 5, 6), np.float32), affine=affine)
    like = read_image(tmp_path / "img.nii.gz")
    mask = np.zeros(like.shape, np.uint8)
    mask[1, 2, 3], mask[5, 4, 0] = 1, 2
    out = write_mask(mask, tmp_path / "out" / "mask.nii.gz", like=like)
    saved = nib.load(str(out))
    np.testing.assert_allclose(saved.affine, affine)
    assert saved.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(saved.dataobj), mask.transpose(2, 1, 0))
    np.testing.assert_array_equal(read_mask(out, like=like), mask)


def test_write_mask_nifti_overlays_an_nrrd_input(tmp_path):
    img = sitk.GetImageFromArray(np.zeros((3, 4, 5), np.int16))
    img.SetSpacing((0.5, 0.6, 2.0))
    img.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(img, str(tmp_path / "img.nrrd"))
    like = read_image(tmp_path / "img.nrrd")
    mask = np.zeros(like.shape, np.uint8)
    mask[2, 1, 4] = 1
    saved = nib.load(str(write_mask(mask, tmp_path / "m.nii.gz", like=like)))
    i, j, k = np.argwhere(np.asarray(saved.dataobj))[0]
    world = saved.affine @ np.array([i, j, k, 1.0])
    np.testing.assert_allclose(world[:3], _ras_of_itk(img, (4, 1, 2)))


def test_write_mask_nifti_without_like_uses_identity(tmp_path):
    mask = np.zeros((2, 3, 4), np.uint8)
    saved = nib.load(str(write_mask(mask, tmp_path / "m.nii")))
    np.testing.assert_allclose(saved.affine, np.eye(4))
    assert saved.shape == (4, 3, 2)
    spaced = Case(image=np.zeros((1, 2, 3, 4), np.float32), spacing=(3.0, 2.0, 0.5))
    saved = nib.load(str(write_mask(mask, tmp_path / "s.nii.gz", like=spaced)))
    np.testing.assert_allclose(np.diag(saved.affine), (0.5, 2.0, 3.0, 1.0))


# ---- describe --------------------------------------------------------------------------------------


def test_describe_fields(tmp_path):
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 1] = 200
    rgb[0, 0, 0] = 10
    tifffile.imwrite(tmp_path / "a.tif", rgb, compression="lzw", photometric="rgb")
    m = np.zeros((8, 9), np.uint8)
    m[2:4, 2:5] = 255
    Image.fromarray(m).save(tmp_path / "a_mask.png")
    info = describe(tmp_path / "a.tif", mask=tmp_path / "a_mask.png")
    assert info["format"] == "tiff" and info["dtype"] == "uint8"
    assert info["shape"] == [8, 9] and info["ndim"] == 2 and info["channels"] == 3
    assert info["channel_names"] == ["R", "G", "B"]
    assert info["spacing"] == [1.0, 1.0] and info["spacing_known"] is False
    assert info["intensity"]["min"] == 0.0 and info["intensity"]["max"] == 200.0
    assert info["channel_stats"][0]["max"] == 10.0 and info["channel_stats"][1]["mean"] == 200.0
    assert info["has_label"] is True and info["label_values"] == [0, 1]
    assert info["label_counts"] == {"0": 66, "1": 6}
    text = format_description(info)
    assert "a.tif" in text and "8 x 9" in text and "values 0" in text
    plain = describe(tmp_path / "a.tif")
    assert plain["has_label"] is False and "label      none" in format_description(plain)


def test_describe_volume_with_origin(tmp_path):
    _nifti(tmp_path / "v.nii.gz", np.ones((4, 5, 6), np.float32), zooms=(0.5, 1.0, 2.0))
    info = describe(tmp_path / "v.nii.gz")
    assert info["shape"] == [6, 5, 4] and info["spacing"] == [2.0, 1.0, 0.5]
    assert info["origin"] == [7.0, -3.0, 5.0] and info["spacing_known"] is True
    assert "mm" in format_description(info)
