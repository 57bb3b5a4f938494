"""The built-in sample data: lgg layout, formats, determinism, lesions that look like lesions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from scarceseg.datasets.sample import make_sample_data

N = 20


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("sample")
    return out, make_sample_data(out, n=N, seed=0)


def _mask_path(image: Path) -> Path:
    return image.parent.parent / "masks" / f"{image.stem}_mask.tif"


def _read_arrays(folder: Path) -> list[np.ndarray]:
    return [tifffile.imread(p) for p in sorted((folder / "images").glob("*.tif"))]


def test_layout_and_manifest(sample):
    out, paths = sample
    images = sorted((out / "images").glob("*.tif"))
    masks = sorted((out / "masks").glob("*_mask.tif"))
    assert len(paths) == len(images) == len(masks) == N
    assert sorted(paths) == images
    for p in paths:
        assert re.fullmatch(r"SAMPLE_\d{2}_\d{8}_\d+\.tif", p.name), p.name
        assert _mask_path(p).is_file()
    assert "SYNTHETIC" in (out / "README.txt").read_text(encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["synthetic"] is True and manifest["seed"] == 0 and manifest["n"] == N
    assert [c["case_id"] for c in manifest["cases"]] == [p.stem for p in paths]
    for case in manifest["cases"]:
        assert 0.003 <= case["lesion"]["fraction"] <= 0.1
        assert {"flair_contrast_vs_wm", "centre_yx", "radius_px"} <= set(case["lesion"])


def test_formats(sample):
    _, paths = sample
    for p in paths:
        with tifffile.TiffFile(p) as tif:
            assert tif.pages[0].compression == 5  # LZW, like the real set
        image = tifffile.imread(p)
        mask = tifffile.imread(_mask_path(p))
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert mask.shape == (256, 256, 3) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask[..., 0] == mask[..., 1]).all() and (mask[..., 0] == mask[..., 2]).all()


def test_one_patient_per_slice(sample):
    _, paths = sample
    patients = {p.stem.rsplit("_", 1)[0] for p in paths}
    assert len(patients) == N


def test_same_seed_same_bytes_different_seed_differs(sample, tmp_path):
    out, _ = sample
    first = _read_arrays(out)
    again = make_sample_data(tmp_path / "again", n=3, seed=0)  # case i does not depend on n
    for p, ref in zip(again, first[:3], strict=True):
        assert np.array_equal(tifffile.imread(p), ref)
        assert p.read_bytes() == (out / "images" / p.name).read_bytes()
    other = make_sample_data(tmp_path / "other", n=3, seed=1)
    assert [p.name for p in other] != [p.name for p in again]
    assert not any(np.array_equal(tifffile.imread(p), ref) for p, ref in zip(other, first, strict=False))


def test_lesion_inside_head_and_hyperintense_on_flair(sample):
    _, paths = sample
    for p in paths:
        flair = tifffile.imread(p)[..., 1].astype(float)
        lesion = tifffile.imread(_mask_path(p))[..., 0] > 0
        assert lesion.sum() > 0
        head = ndimage.binary_fill_holes(ndimage.binary_closing(flair > 12, iterations=2))
        assert (lesion & ~head).sum() == 0, p.name
        brain = ndimage.binary_erosion(head, iterations=15) & ~lesion  # inside the skull
        assert flair[lesion].mean() > flair[brain].mean(), p.name


def test_loads_as_lgg_layout(sample):
    open_dataset = pytest.importorskip("scarceseg.datasets").__dict__.get("open_dataset")
    if open_dataset is None:
        pytest.skip("scarceseg.datasets.open_dataset is not available yet")
    out, _ = sample
    ds = open_dataset(out, layout="lgg")
    assert len(ds.case_ids) == N
    case = next(iter(ds))
    assert case.image.shape == (3, 256, 256) and case.target.any()
    assert len({e.patient_id for e in ds.entries}) == N


def test_rejects_bad_n(tmp_path):
    with pytest.raises(ValueError, match="n must be"):
        make_sample_data(tmp_path, n=0)
