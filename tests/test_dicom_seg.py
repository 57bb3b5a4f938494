"""DICOM SEG output: the writer, the ``dicom`` layout, ``segment --format dicom-seg`` and the app's save.

Every test builds a small synthetic MR series with pydicom (sagittal slices, files named out of slice order)
and reads the SEG back: its grid, positions, orientation, spacing, frame of reference and referenced
series must be the source's, and each frame must equal the mask on the slice it references.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from scarceseg.errors import InputError, ShapeMismatchError
from scarceseg.io import read_image, read_mask, write_mask
from scarceseg.io.dicom_seg import write_dicom_seg

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
IOP = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]  # sagittal: rows run along +y (A->P), columns down -z
ROW_SPACING, COL_SPACING, THICKNESS = 0.8, 0.9, 2.5
BRIGHT = 1000


def write_series(folder: Path, n: int = 4, rows: int = 20, cols: int = 24, seed: int = 0,
                 patient: str = "P1", box: tuple[int, int] = (5, 7)) -> dict:
    """An MR series of ``n`` slices in ``folder``, files in shuffled order; bright box = the 'lesion'.

    Returns the UIDs and, per SOP Instance UID, the slice's position and its ``pixels > BRIGHT / 2`` mask.
    """
    folder.mkdir(parents=True, exist_ok=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    normal = np.cross(IOP[:3], IOP[3:])
    origin = np.array([-10.0, 20.0, 30.0])
    rng = np.random.default_rng(seed)
    slices = {}
    for file_no, k in enumerate(rng.permutation(n)):
        sop = generate_uid()
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.Modality, ds.PatientName, ds.PatientID = "MR", "Phantom^Test", patient
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.ReferringPhysicianName = "", "O", "", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber = "20240101", "120000", "1", 3
        ds.InstanceNumber, ds.Manufacturer = int(k) + 1, "test"
        ds.ImageOrientationPatient = IOP
        ds.ImagePositionPatient = [float(v) for v in origin + k * THICKNESS * normal]
        ds.PixelSpacing, ds.SliceThickness = [ROW_SPACING, COL_SPACING], THICKNESS
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        pixels = rng.integers(50, 150, (rows, cols)).astype(np.uint16)
        pixels[3 + 2 * k: 3 + 2 * k + box[0], 2 + k: 2 + k + box[1]] = BRIGHT  # moves with k: a wrong order shows
        ds.PixelData = pixels.tobytes()
        pydicom.dcmwrite(folder / f"im{file_no:03d}.dcm", ds, enforce_file_format=True)
        slices[sop] = {"k": int(k), "position": ds.ImagePositionPatient, "mask": pixels > BRIGHT // 2}
    return {"study": study, "series": series, "frame": frame, "slices": slices, "rows": rows, "cols": cols}


def check_seg(seg_path: Path, source: dict, expected: dict | None = None) -> pydicom.Dataset:
    """Assert the SEG lies on ``source``: grid, geometry, references; each frame equals ``expected[sop]``
    (default: the source's bright box). Returns the SEG dataset."""
    seg = pydicom.dcmread(seg_path)
    assert seg.SOPClassUID == SEG_STORAGE and seg.Modality == "SEG"
    assert (seg.Rows, seg.Columns) == (source["rows"], source["cols"])
    assert int(seg.NumberOfFrames) == len(source["slices"])  # one frame per source slice, empty ones too
    assert seg.FrameOfReferenceUID == source["frame"]
    assert seg.StudyInstanceUID == source["study"] and seg.SeriesInstanceUID != source["series"]
    (ref,) = seg.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == source["series"]
    assert {item.ReferencedSOPInstanceUID for item in ref.ReferencedInstanceSequence} == set(source["slices"])
    shared = seg.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == IOP
    measures = shared.PixelMeasuresSequence[0]
    assert [float(v) for v in measures.PixelSpacing] == [ROW_SPACING, COL_SPACING]
    assert float(measures.SliceThickness) == THICKNESS
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    seen = set()
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        sop = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        seen.add(sop)
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, source["slices"][sop]["position"])
        want = source["slices"][sop]["mask"] if expected is None else expected[sop]
        assert np.array_equal(frame > 0, want), f"frame of slice {source['slices'][sop]['k']} differs"
    assert seen == set(source["slices"])
    return seg


# ---- the writer ---------------------------------------------------------------------------------------------
def test_seg_of_a_series_overlays_its_source(tmp_path: Path) -> None:
    source = write_series(tmp_path / "series")
    case = read_image(tmp_path / "series")
    assert case.shape == (4, 20, 24) and len(case.meta["dicom_files"]) == 4
    mask = case.image[0] > BRIGHT // 2
    out = write_mask(mask, tmp_path / "out" / "series.dcm", like=case)  # .dcm -> DICOM SEG
    seg = check_seg(out, source)
    assert np.array_equal(read_mask(out, like=case), mask)  # read back onto the case's grid, by reference
    (segment,) = seg.SegmentSequence
    assert segment.SegmentLabel == "lesion" and segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentAlgorithmName == "scarceseg"


def test_label_map_gives_one_segment_per_value(tmp_path: Path) -> None:
    source = write_series(tmp_path / "series", n=3)
    case = read_image(tmp_path / "series")
    labels = np.zeros(case.shape, dtype=np.uint8)
    labels[:, :5, :5] = 1
    labels[1, 10:, 10:] = 2
    out = write_dicom_seg(labels, tmp_path / "labels.dcm", case, algorithm_type="manual")
    seg = pydicom.dcmread(out)
    assert [s.SegmentNumber for s in seg.SegmentSequence] == [1, 2]
    assert all(s.SegmentAlgorithmType == "MANUAL" for s in seg.SegmentSequence)
    by_sop = {p: s["k"] for p, s in source["slices"].items()}
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    assert int(seg.NumberOfFrames) == 2 * 3
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = item.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        k = by_sop[item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert np.array_equal(frame > 0, labels[k] == number)
    assert np.array_equal(read_mask(out, like=case), labels)
    with pytest.raises(InputError, match="only together with the DICOM image"):
        read_mask(out)
    empty = pydicom.dcmread(write_dicom_seg(np.zeros(case.shape, bool), tmp_path / "empty.dcm", case))
    assert int(empty.NumberOfFrames) == 3 and not empty.pixel_array.any()  # an empty mask is still a valid SEG


def test_single_file_and_axial_slice_of_a_series(tmp_path: Path) -> None:
    from scarceseg.datasets import slice_case

    source = write_series(tmp_path / "series", n=3)
    by_k = {s["k"]: sop for sop, s in source["slices"].items()}
    volume = read_image(tmp_path / "series")
    sl = slice_case(volume, 2, axis=0)  # 2D, knows its slice index
    seg = pydicom.dcmread(write_dicom_seg(sl.image[0] > BRIGHT // 2, tmp_path / "slice.dcm", sl))
    assert int(seg.NumberOfFrames) == 1
    item = seg.PerFrameFunctionalGroupsSequence[0]
    assert item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID == by_k[2]
    assert np.array_equal(seg.pixel_array > 0, source["slices"][by_k[2]]["mask"])
    assert np.array_equal(read_mask(tmp_path / "slice.dcm", like=sl) > 0, source["slices"][by_k[2]]["mask"])

    one_file = next(f for f in (tmp_path / "series").iterdir()
                    if pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID == by_k[1])
    case = read_image(one_file)
    assert case.ndim == 2
    seg = pydicom.dcmread(write_dicom_seg(case.image[0] > BRIGHT // 2, tmp_path / "file.dcm", case))
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == by_k[1]
    assert np.array_equal(seg.pixel_array > 0, source["slices"][by_k[1]]["mask"])


def test_refuses_non_dicom_input_wrong_shapes_and_moved_sources(tmp_path: Path) -> None:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((6, 5, 4), np.float32), np.eye(4)), tmp_path / "vol.nii.gz")
    nifti = read_image(tmp_path / "vol.nii.gz")
    with pytest.raises(InputError, match="not DICOM"):
        write_mask(np.zeros(nifti.shape, bool), tmp_path / "vol.dcm", like=nifti)
    with pytest.raises(InputError, match="needs the DICOM image"):
        write_mask(np.zeros((4, 5, 6), bool), tmp_path / "x.dcm")
    write_series(tmp_path / "series", n=3)
    case = read_image(tmp_path / "series")
    with pytest.raises(ShapeMismatchError):
        write_dicom_seg(np.zeros((3, 20, 23), bool), tmp_path / "bad.dcm", case)
    moved = Path(case.meta["dicom_files"][1])
    ds = pydicom.dcmread(moved)
    ds.ImagePositionPatient = [float(v) + 5.0 for v in ds.ImagePositionPatient]
    ds.save_as(moved)
    with pytest.raises(ShapeMismatchError, match="source files changed"):
        write_dicom_seg(np.zeros(case.shape, bool), tmp_path / "moved.dcm", case)
    assert not (tmp_path / "moved.dcm").exists()


# ---- the dicom layout ---------------------------------------------------------------------------------------
def test_dicom_layout_one_case_per_series_folder(tmp_path: Path) -> None:
    from PIL import Image

    from scarceseg.datasets import detect_layout, open_dataset

    root = tmp_path / "tcia"
    write_series(root / "P1" / "study" / "t2", n=3, patient="P1")
    write_series(root / "P2" / "flair", n=2, patient="P2")
    ds = open_dataset(root)
    assert ds.layout == "dicom" and ds.case_ids == ["P1_study_t2", "P2_flair"]
    assert [e.patient_id for e in ds.entries] == ["P1", "P2"]
    assert ds.load("P2_flair").shape == (2, 20, 24) and ds.load("P2_flair").label is None
    # masks/<case_id>.nii.gz are labels; a stray .dcm among images does not make a DICOM data set
    write_mask(np.ones((3, 20, 24), bool), root / "masks" / "P1_study_t2.nii.gz", like=ds.load("P1_study_t2"))
    labelled = open_dataset(root)
    assert labelled.load("P1_study_t2").label.sum() == 3 * 20 * 24
    assert labelled.load("P2_flair").label is None  # no mask: an unlabelled case, named in a note
    assert any("P2_flair" in note for note in labelled.notes)
    (root / "P3").mkdir()  # images that are not DICOM are named in a note, not silently dropped
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "P3" / "photo.png")
    assert any(note.startswith("P3/ holds images") for note in open_dataset(root).notes)
    plain = tmp_path / "plain"
    plain.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(plain / "a.png")
    (plain / "stray.dcm").write_bytes(b"not dicom")
    assert detect_layout(plain) != "dicom"


# ---- segment --format dicom-seg ----------------------------------------------------------------------------
def _run(*args):
    from typer.testing import CliRunner

    from scarceseg.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_segment_writes_dicom_seg_matching_the_nifti_masks(tmp_path: Path) -> None:
    import torch

    from scarceseg.methods.acwe import ACWESegmenter
    from scarceseg.methods.acwe_config import ACWEConfig

    torch.manual_seed(0)
    model = ACWESegmenter(ACWEConfig.cpu(size=16))
    model.net = model._build()  # untrained: any model shows the output format;
    model.polarity = -1  # ... this one marks its ROI (the bright box, which moves from slice to slice)
    model.save(tmp_path / "model")
    data = tmp_path / "data"
    sources = {"s1": write_series(data / "s1", n=3, seed=1), "s2": write_series(data / "s2", n=4, seed=2)}
    for cid in sources:  # truth masks, so that evaluate can score both outputs
        case = read_image(data / cid)
        write_mask(case.image[0] > BRIGHT // 2, data / "masks" / f"{cid}.nii.gz", like=case)

    nifti = _run("segment", "--model", tmp_path / "model", "--data", data, "--out", tmp_path / "nii")
    assert nifti.exit_code == 0, nifti.output
    seg = _run("segment", "--model", tmp_path / "model", "--data", data, "--out", tmp_path / "seg",
               "--format", "dicom-seg")
    assert seg.exit_code == 0, seg.output
    assert "wrote 2 masks" in seg.output and sorted(p.name for p in (tmp_path / "seg").iterdir()) == [
        "s1.dcm", "s2.dcm"]
    for cid, source in sources.items():
        volume = read_mask(tmp_path / "nii" / f"{cid}.nii.gz") > 0  # (Z, Y, X) in the reader's slice order
        assert volume.any() and not np.array_equal(volume[0], volume[1])  # a wrong slice order would show
        order = [Path(f) for f in read_image(data / cid).meta["dicom_files"]]
        uid_of = {f: pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in order}
        expected = {uid_of[f]: volume[k] for k, f in enumerate(order)}
        check_seg(tmp_path / "seg" / f"{cid}.dcm", source, expected)

    # evaluate reads the SEGs onto the cases' grids: the same scores as for the NIfTI masks
    for name in ("nii", "seg"):
        ev = _run("evaluate", "--pred", tmp_path / name, "--gt", data, "--out", tmp_path / f"ev_{name}")
        assert ev.exit_code == 0 and "evaluated 2 cases" in ev.output, ev.output
    per_case = {name: (tmp_path / f"ev_{name}" / "per_case.csv").read_text(encoding="utf-8") for name in ("nii", "seg")}
    assert per_case["seg"] == per_case["nii"]

    bad = _run("segment", "--model", tmp_path / "model", "--data", data, "--out", tmp_path / "x", "--format", "rt")
    assert bad.exit_code == 1 and "--format must be one of auto, dicom-seg" in bad.output


def test_segment_cases_skips_non_dicom_cases_with_a_reason(tmp_path: Path) -> None:
    import nibabel as nib

    from scarceseg.methods.folder import segment_cases

    data = tmp_path / "vols"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.float32), np.eye(4)), data / "images" / f"{name}.nii.gz")
        nib.save(nib.Nifti1Image(np.ones((6, 5, 4), np.uint8), np.eye(4)), data / "masks" / f"{name}.nii.gz")
    summary = segment_cases(data, tmp_path / "out", lambda c: (c.image[0] > 0, f"{c.case_id}.nii.gz"),
                            progress=False, mask_format="dicom-seg")
    assert summary["written"] == [] and [cid for cid, _ in summary["skipped"]] == ["a", "b"]
    assert all("not DICOM" in reason for _, reason in summary["skipped"])
    with pytest.raises(ValueError, match="mask format"):
        segment_cases(data, tmp_path / "out", lambda c: (c.image[0] > 0, "x.png"), mask_format="seg")


def test_resuming_a_dicom_seg_run_looks_for_seg_files_only(tmp_path: Path) -> None:
    from scarceseg.methods.folder import segment_cases

    data = tmp_path / "data"
    write_series(data / "s1", n=2, seed=1)
    write_series(data / "s2", n=2, seed=2)

    def predict(case):
        return case.image[0] > BRIGHT // 2, f"{case.case_id}.nii.gz"

    out = tmp_path / "out"
    first = segment_cases(data, out, predict, progress=False)
    assert len(first["written"]) == 2 and not first["kept"]
    seg = segment_cases(data, out, predict, progress=False, mask_format="dicom-seg")  # NIfTI masks are no SEGs
    assert sorted(Path(p).name for p in seg["written"]) == ["s1.dcm", "s2.dcm"] and not seg["kept"]
    again = segment_cases(data, out, predict, progress=False, mask_format="dicom-seg")
    assert again["written"] == [] and sorted(again["kept"]) == ["s1", "s2"]


# ---- the browser app's save ---------------------------------------------------------------------------------
def test_app_save_as_dicom_seg(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from scarceseg.cluster.propose import propose_case
    from scarceseg.store.proposals import save_proposal
    from scarceseg.web.app import ServerConfig, create_app
    from scarceseg.web.catalog import Catalog

    folder = tmp_path / "dicoms"
    source = write_series(folder / "s1", n=4, rows=48, cols=48, box=(16, 18))
    by_k = {s["k"]: sop for sop, s in source["slices"].items()}
    work = tmp_path / "work"
    catalog = Catalog(folder)
    assert catalog.layout == "dicom" and catalog.case_ids == ["s1"]
    save_proposal(propose_case(catalog.slice_case("s1", 2), "fast"), work)
    config = ServerConfig(folder=folder, workdir=work, user="dana")
    with TestClient(create_app(config), base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/cases/s1").json()["dicom"] is True  # the page offers "as DICOM SEG"
        box = np.argwhere(source["slices"][by_k[2]]["mask"]).mean(axis=0).round().astype(int)
        picked = c.post("/api/cases/s1/pick", json={"y": int(box[0]), "x": int(box[1]), "z": 2})
        assert picked.status_code == 200, picked.text
        bad = c.post("/api/cases/s1/save", json={"z": 2, "format": "rtstruct"})
        assert bad.status_code == 422
        link = work / "masks" / "dana" / "s1.dcm"  # no-follow writes: a planted link is refused, not followed
        link.parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "outside.txt").write_text("keep", encoding="utf-8")
        link.symlink_to(tmp_path / "outside.txt")
        assert c.post("/api/cases/s1/save", json={"z": 2, "format": "dicom-seg"}).status_code == 400
        assert (tmp_path / "outside.txt").read_text(encoding="utf-8") == "keep"
        link.unlink()
        saved = c.post("/api/cases/s1/save", json={"z": 2, "format": "dicom-seg"}).json()["saved"]
        state = c.get("/api/cases/s1/state?z=2").json()
    assert saved["file"] == "masks/dana/s1.dcm"
    raw = np.unpackbits(np.frombuffer(__import__("base64").b64decode(state["mask"]["bits"]), np.uint8))
    picked_mask = raw[: 48 * 48].reshape(48, 48).astype(bool)
    assert picked_mask.any() and saved["voxels"] == int(picked_mask.sum())
    empty = np.zeros((48, 48), bool)
    expected = {sop: picked_mask if s["k"] == 2 else empty for sop, s in source["slices"].items()}
    seg = check_seg(work / saved["file"], source, expected)
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"


def test_app_refuses_dicom_seg_for_non_dicom_input(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient
    from PIL import Image

    from scarceseg.cluster.propose import propose_case
    from scarceseg.store.proposals import save_proposal
    from scarceseg.web.app import ServerConfig, create_app
    from scarceseg.web.catalog import Catalog

    folder = tmp_path / "pngs"
    folder.mkdir()
    image = np.full((40, 40), 30, np.uint8)
    image[12:26, 10:24] = 220
    Image.fromarray(image).save(folder / "a.png")
    work = tmp_path / "work"
    save_proposal(propose_case(Catalog(folder).load("a"), "fast"), work)
    config = ServerConfig(folder=folder, workdir=work, user="erin", save_format="dicom-seg")
    with TestClient(create_app(config), base_url="http://127.0.0.1:8765") as c:
        assert c.get("/api/cases/a").json()["dicom"] is False
        assert c.post("/api/cases/a/pick", json={"y": 18, "x": 16}).status_code == 200
        refused = c.post("/api/cases/a/save", json={})  # the server's default: dicom-seg
        assert refused.status_code == 400 and "not DICOM" in refused.json()["detail"]
        assert c.post("/api/cases/a/save", json={"format": "auto"}).status_code == 200
    assert not (work / "masks" / "erin" / "a.dcm").exists() and (work / "masks" / "erin" / "a.png").is_file()


def test_app_refuses_a_series_with_a_file_linked_from_outside(tmp_path: Path) -> None:
    from scarceseg.web.catalog import Catalog
    from scarceseg.web.security import PathOutside

    folder = tmp_path / "dicoms"
    write_series(folder / "s1", n=3)
    first = folder / "s1" / "im000.dcm"
    first.rename(tmp_path / "moved_out.dcm")  # same series, now outside the opened folder, linked back in
    first.symlink_to(tmp_path / "moved_out.dcm")
    catalog = Catalog(folder)
    assert catalog.case_ids == ["s1"]
    with pytest.raises(PathOutside):
        catalog.load("s1")
