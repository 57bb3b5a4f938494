"""Issue 16, the CLI and bad-input items (5-13, 15): one test (or a few) per item, each failing before its fix.

The browser-app side of item 5 is in tests/test_web.py; the fuzz corpus in tests/test_fuzz_corpus.py.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from scarceseg.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCARCESEG_LOG_DIR", str(tmp_path / "logs"))


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _lesion(size: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = rng.normal(60, 8, (size, size))
    image[(yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= (size // 6) ** 2] += 120
    return np.clip(image, 0, 255).astype(np.uint8)


# ---- item 5: size guard before decoding -------------------------------------------------------------
def test_size_guard_reads_only_headers_and_names_file_and_limit(tmp_path, monkeypatch):
    from scarceseg.errors import InputError
    from scarceseg.io import read_image
    from scarceseg.io.limits import ImageTooLargeError, SizeLimit, header_shape, size_limit_set

    Image.fromarray(_lesion(60)).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((60, 50, 3), np.uint8))
    nib.save(nib.Nifti1Image(np.zeros((30, 20, 10), np.int16), np.eye(4)), str(tmp_path / "v.nii.gz"))
    with h5py.File(tmp_path / "v.h5", "w") as f:
        f["image"] = np.zeros((30, 20, 10), np.float32)
    assert header_shape(tmp_path / "a.png", "png")[0] == (60, 60, 1)
    assert header_shape(tmp_path / "a.tif", "tiff")[0] == (60, 50, 3)
    assert header_shape(tmp_path / "v.nii.gz", "nifti") == ((30, 20, 10), np.dtype(np.int16))
    assert header_shape(tmp_path / "v.h5", "hdf5") == ((30, 20, 10), np.dtype(np.float32))
    with size_limit_set(SizeLimit(max_voxels=3000, max_megabytes=100)):
        for name in ("a.png", "a.tif", "v.nii.gz", "v.h5"):
            with pytest.raises(ImageTooLargeError) as info:
                read_image(tmp_path / name)
            text = str(info.value)
            assert text.startswith(str(tmp_path / name)) and "3,000 values" in text and "\n" not in text
    monkeypatch.setenv("SCARCESEG_MAX_MEMORY_MB", "0.01")  # from the environment: the memory estimate
    with pytest.raises(ImageTooLargeError, match="limit of 0.01 MB"):
        read_image(tmp_path / "v.nii.gz")
    monkeypatch.setenv("SCARCESEG_MAX_MEMORY_MB", "lots")
    with pytest.raises(InputError, match="must be numbers"):
        read_image(tmp_path / "a.png")


def test_propose_refuses_an_image_over_the_memory_limit_in_one_line(tmp_path, monkeypatch):
    import scarceseg.io

    Image.fromarray(_lesion(200)).save(tmp_path / "big.png")  # proposing needs ~14 MB at 360 B/px
    monkeypatch.setenv("SCARCESEG_MAX_MEMORY_MB", "5")

    def never(*_a, **_k):
        raise AssertionError("decoded although the header says it is too large")

    monkeypatch.setattr(scarceseg.io, "read_image", never)  # refused from the header, before decoding
    result = _run("propose", tmp_path / "big.png", "--out", tmp_path / "work")
    assert result.exit_code == 1
    lines = _lines(result.output)
    assert len(lines) == 1 and "big.png" in lines[0] and "limit of 5 MB" in lines[0] and "proposing" in lines[0]
    assert not (tmp_path / "work").exists()


# ---- item 6: a stray .h5 does not switch a plain folder to the h5 layout ------------------------------
def test_stray_h5_keeps_every_image_of_a_plain_folder(tmp_path):
    from scarceseg.datasets import open_dataset

    for i in range(3):
        Image.fromarray(_lesion(seed=i)).save(tmp_path / f"img{i}.png")
    with h5py.File(tmp_path / "stray.h5", "w") as f:
        f["image"] = _lesion(seed=9).astype(np.float32)
    ds = open_dataset(tmp_path)
    assert ds.layout == "files" and ds.case_ids == ["img0", "img1", "img2", "stray"]
    assert all(case.image.shape == (1, 40, 40) for case in ds)


def test_files_no_layout_takes_are_listed(tmp_path):
    from scarceseg.datasets import open_dataset
    from scarceseg.errors import InputError

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(_lesion()).save(tmp_path / "images" / "a.png")
    Image.fromarray((_lesion() > 150).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(_lesion()).save(tmp_path / "loose.png")
    ds = open_dataset(tmp_path)
    assert ds.layout == "pairs" and any("loose.png" in note and "match no case" in note for note in ds.notes)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x", encoding="utf-8")
    (other / "scan.doc").write_text("x", encoding="utf-8")
    with pytest.raises(InputError) as info:
        open_dataset(other)
    assert "notes.txt" in str(info.value) and "scan.doc" in str(info.value)


# ---- item 7: an image without a mask (or with a wrong one) is usable ----------------------------------
def _lgg(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for i in (1, 2, 3):
        rgb = np.stack([_lesion(seed=i)] * 3, axis=-1)
        tifffile.imwrite(folder / "images" / f"TCGA_AA_0001_20000101_{i}.tif", rgb, photometric="rgb")
    mask = np.zeros((40, 40), np.uint8)
    mask[15:25, 15:25] = 255
    tifffile.imwrite(folder / "masks" / "TCGA_AA_0001_20000101_1_mask.tif", mask)
    tifffile.imwrite(folder / "masks" / "TCGA_AA_0001_20000101_3_mask.tif", mask[:30])  # wrong shape
    return folder


def test_propose_uses_an_image_without_mask_and_one_with_a_wrong_mask(tmp_path):
    data = _lgg(tmp_path / "lgg")
    result = _run("propose", data, "--out", tmp_path / "work")
    assert result.exit_code == 0, result.output
    index = json.loads((tmp_path / "work" / "proposals" / "index.json").read_text(encoding="utf-8"))
    assert sorted(index) == [f"TCGA_AA_0001_20000101_{i}" for i in (1, 2, 3)]
    wrong = [line for line in _lines(result.output) if "_3_mask.tif" in line]
    assert len(wrong) == 1 and "mask ignored" in wrong[0] and "differs from the image" in wrong[0]
    assert any("no mask" in line and "_2" in line for line in _lines(result.output))


# ---- item 8: exit codes ------------------------------------------------------------------------------
def test_propose_on_a_missing_folder_is_one_line_exit_1_nothing_created(tmp_path):
    result = _run("propose", tmp_path / "WRONG_FOLDER", "--out", tmp_path / "W")
    assert result.exit_code == 1
    lines = _lines(result.output)
    assert len(lines) == 1 and lines[0].startswith("error:") and "WRONG_FOLDER" in lines[0]
    assert "UserWarning" not in result.output and not (tmp_path / "W").exists()


def test_propose_on_a_folder_without_readable_case_is_exit_1(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    result = _run("propose", tmp_path / "data", "--out", tmp_path / "W")
    assert result.exit_code == 1 and _lines(result.output)[-1].startswith("error:")
    assert sum("broken.png" in line for line in _lines(result.output)) == 1
    assert not (tmp_path / "W").exists()


# ---- item 9: one line per problem; details in a log file ---------------------------------------------
def test_skipped_case_is_one_line_and_the_details_go_to_the_named_log(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_lesion()).save(data / "good.png")
    (data / "bad.png").write_bytes(b"junk")
    result = _run("propose", data, "--out", tmp_path / "work")
    assert result.exit_code == 0, result.output
    assert "UserWarning" not in result.output and "propose.py:" not in result.output
    assert sum("bad.png" in line for line in _lines(result.output)) == 1
    logs = list((tmp_path / "logs").glob("scarceseg-propose-*.log"))
    assert len(logs) == 1 and str(logs[0]) in result.output
    assert "bad.png" in logs[0].read_text(encoding="utf-8")


def test_itk_gdcm_warnings_do_not_reach_stderr(tmp_path, capfd):
    from scarceseg.errors import InputError
    from scarceseg.io import read_image

    (tmp_path / "series").mkdir()
    (tmp_path / "series" / "x.dcm").write_bytes(b"DICM garbage" * 10)
    with pytest.raises(InputError, match="no DICOM series"):
        read_image(tmp_path / "series")
    captured = capfd.readouterr()
    assert "WARNING: In" not in captured.err and "itkGDCM" not in captured.err


def test_evaluate_empty_mask_warning_is_not_printed_as_code(tmp_path):
    data, pred = tmp_path / "data", tmp_path / "pred"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    pred.mkdir()
    for cid in ("a", "b"):
        Image.fromarray(_lesion()).save(data / "images" / f"{cid}.png")
        Image.fromarray((_lesion() > 150).astype(np.uint8) * 255).save(data / "masks" / f"{cid}.png")
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(pred / "a.png")  # empty prediction: NaN HD95
    Image.fromarray((_lesion() > 150).astype(np.uint8) * 255).save(pred / "b.png")
    result = _run("evaluate", "--pred", pred, "--gt", data, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert "EmptyMaskWarning" not in result.output and ".py:" not in result.output
    assert "1 cases with an empty mask" in result.output and "a (prediction empty)" in result.output
    assert "details in" in result.output


def test_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(tmp_path, monkeypatch):
    import scarceseg.io

    def boom(*_a, **_k):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(scarceseg.io, "describe", boom)
    result = _run("info", tmp_path)
    assert result.exit_code == 1
    lines = _lines(result.output)
    assert len(lines) == 1 and "unexpected RuntimeError: something nobody foresaw" in lines[0]
    log = next((tmp_path / "logs").glob("scarceseg-info-*.log"))
    assert str(log) in lines[0] and "Traceback" in log.read_text(encoding="utf-8")


# ---- item 10: resume; atomic writes ------------------------------------------------------------------
def test_propose_resumes_and_force_redoes(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_lesion(seed=i)).save(data / f"c{i}.png")
    work = tmp_path / "work"
    assert _run("propose", data, "--out", work).exit_code == 0
    index_file = work / "proposals" / "index.json"
    first = json.loads(index_file.read_text(encoding="utf-8"))
    # an interrupted run: c1's files are there but its index entry (written last) is not -> redone
    index = dict(first)
    del index["c1"]
    index_file.write_text(json.dumps(index), encoding="utf-8")
    result = _run("propose", data, "--out", work)
    assert result.exit_code == 0 and "proposed 1 case(s)" in result.output and "kept 1" in result.output
    again = json.loads(index_file.read_text(encoding="utf-8"))
    assert again["c0"]["created"] == first["c0"]["created"]
    result = _run("propose", data, "--out", work, "--seed", "3")  # another seed is other work: redone
    assert "proposed 2 case(s)" in result.output
    result = _run("propose", data, "--out", work, "--seed", "3", "--force")
    assert result.exit_code == 0 and "proposed 2 case(s)" in result.output


def test_write_mask_is_atomic(tmp_path, monkeypatch):
    from scarceseg.io import write_mask, writers

    target = tmp_path / "m.png"
    write_mask(np.ones((4, 4), np.uint8), target)
    before = target.read_bytes()

    def fail(labels, path, ending):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(writers, "_write_2d", fail)
    with pytest.raises(Exception, match="disk full"):
        write_mask(np.zeros((4, 4), np.uint8), target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.png"]


def test_segment_cases_keeps_finished_masks_unless_forced(tmp_path):
    from scarceseg.methods.folder import segment_cases

    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        Image.fromarray(_lesion(seed=i)).save(data / f"c{i}.png")
    calls: list[str] = []

    def predict(case):
        calls.append(case.case_id)
        return (case.image[0] > 100).astype(np.uint8), f"{case.case_id}.png"

    out = tmp_path / "out"
    first = segment_cases(data, out, predict, progress=False)
    assert len(first["written"]) == 3 and first["kept"] == []
    (out / "c1.png").unlink()
    calls.clear()
    second = segment_cases(data, out, predict, progress=False)
    assert calls == ["c1"] and second["kept"] == ["c0", "c2"]
    calls.clear()
    segment_cases(data, out, predict, progress=False, force=True)
    assert calls == ["c0", "c1", "c2"]


def test_segment_cases_shows_what_the_current_case_is_doing(tmp_path, monkeypatch):
    """A case's own loops (a volume's slices) reach the status beside the bar, which forgets the case after."""
    import scarceseg.progress as progress
    from scarceseg.methods.folder import segment_cases

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_lesion(seed=i)).save(data / f"c{i}.png")
    seen: list[tuple[str, str]] = []

    class Recording(progress.CaseStatus):
        def update(self, case_id, description=None, done=0, total=None):
            super().update(case_id, description, done, total)
            seen.append((case_id, self()))

    monkeypatch.setattr(progress, "CaseStatus", Recording)

    def predict(case):
        for _ in progress.track(range(3), f"segmenting {case.case_id}", enabled=False):
            pass
        return (case.image[0] > 100).astype(np.uint8), f"{case.case_id}.png"

    segment_cases(data, tmp_path / "out", predict, progress=False)
    assert seen == [("c0", "c0 0/3"), ("c0", "c0 3/3"), ("c0", ""), ("c1", "c1 0/3"), ("c1", "c1 3/3"), ("c1", "")]


# ---- item 11: progress ----------------------------------------------------------------------------------
def test_plain_progress_lines_when_piped_with_total_and_eta():
    from scarceseg.progress import track

    now = [0.0]

    def clock() -> float:
        return now[0]

    stream = io.StringIO()
    for _ in track(iter(range(10)), "proposing", total=10, stream=stream, interval=5, clock=clock):
        now[0] += 2.0  # every item takes 2 s
    lines = stream.getvalue().splitlines()
    assert lines[0] == "proposing: 3/10 (30 %), 0:00:06 elapsed, about 0:00:14 left"
    assert len(lines) == 3  # at 6, 12, 18 s: one line per 5 s or more, none for quick loops
    quiet = io.StringIO()
    list(track(range(3), "quick", stream=quiet, interval=5, clock=lambda: 0.0))
    assert quiet.getvalue() == ""


def test_propose_knows_its_total(tmp_path, monkeypatch):
    import scarceseg.progress as progress

    seen = []
    monkeypatch.setattr(progress, "PLAIN_INTERVAL", 0.0)
    from scarceseg.store.propose_many import propose_inputs

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        Image.fromarray(_lesion(seed=i)).save(data / f"c{i}.png")
    with progress.observe_progress(lambda d, done, total: seen.append((d, done, total))):
        propose_inputs([data], tmp_path / "work", progress=False, echo=None)
    assert seen[0] == ("proposing", 0, 2) and seen[-1] == ("proposing", 2, 2)


def test_progress_module_is_low_level():
    import ast

    source = Path(__file__).resolve().parents[1] / "src" / "scarceseg" / "progress.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("scarceseg")]
    from scarceseg.bench.progress import track as old
    from scarceseg.progress import track

    assert old is track


# ---- item 12: help and version -----------------------------------------------------------------------
def test_version_option_and_help_text():
    from scarceseg import __version__

    result = _run("--version")
    assert result.exit_code == 0 and result.output.strip() == f"scarceseg {__version__}"
    result = _run("--help")
    assert "imports live inside" not in result.output and "``" not in result.output
    result = _run("segment", "--help")
    assert "{case_id: [y, x]}" in " ".join(result.output.split())


# ---- item 13: questionable input is named --------------------------------------------------------------
def test_pick_in_the_background_warns(tmp_path):
    from scarceseg.cluster.propose import Proposal
    from scarceseg.store.proposals import save_proposal

    image = np.zeros((1, 30, 30), np.float32)
    image[0, 10:20, 10:20] = 1.0
    masks = np.zeros((2, 30, 30), bool)
    masks[0, 10:20, 10:20] = True  # the lesion
    masks[1] = ~masks[0]  # everything else, touching the edge
    save_proposal(Proposal("c", image, masks.astype(np.int32)[0], masks, [{"index": 0}, {"index": 1}],
                           {"channel_names": ["gray"]}, 0.1), tmp_path, pictures=False)
    result = _run("pick", tmp_path, "c", "--point", "2,2", "--who", "a")
    assert result.exit_code == 0 and "looks like background" in result.output and "edge" in result.output
    result = _run("pick", tmp_path, "c", "--point", "15,15", "--who", "a")
    assert result.exit_code == 0 and "background" not in result.output


def test_selector_with_zero_accuracy_warns(tmp_path, monkeypatch):
    import scarceseg.store.training as store_training  # the trainer that reads a WORKDIR's picks lives in store/

    class FakeSelector:
        summary = {"n_images": 2}

        def save(self, out):
            return Path(out)

    class History:
        accuracy = {"train": [0.5, 0.0]}
        seconds = 1.0

    monkeypatch.setattr(store_training, "train_selector", lambda *a, **k: (FakeSelector(), History()))
    result = _run("train", "selector", "--work", tmp_path, "--out", tmp_path / "m")
    assert result.exit_code == 0 and "warning: the final training selection accuracy is 0.00" in result.output


def test_app_and_cli_train_the_selector_for_the_same_episodes():
    import inspect

    from scarceseg.cli import serve_cmd
    from scarceseg.methods.udc_rl import SelectorConfig
    from scarceseg.web.app import ServerConfig

    default = inspect.signature(serve_cmd).parameters["episodes"].default.default
    assert ServerConfig(folder=Path(".")).episodes == SelectorConfig().n_episodes == default


# ---- item 15: evaluate details -------------------------------------------------------------------------
def _pairs(folder: Path, preds: Path, ids, unreadable_image=()) -> None:
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    preds.mkdir()
    truth = (_lesion() > 150).astype(np.uint8) * 255
    for cid in ids:
        Image.fromarray(_lesion()).save(folder / "images" / f"{cid}.png")
        Image.fromarray(truth).save(folder / "masks" / f"{cid}.png")
        Image.fromarray(truth).save(preds / f"{cid}.png")
    for cid in unreadable_image:
        (folder / "images" / f"{cid}.png").write_bytes(b"junk")


def test_evaluate_one_case_unit_and_every_skip(tmp_path):
    data, preds = tmp_path / "data", tmp_path / "preds"
    ids = ["ok", *[f"bad{i}" for i in range(7)]]
    _pairs(data, preds, ids)
    for i in range(7):
        (preds / f"bad{i}.png").write_bytes(b"")
    result = _run("evaluate", "--pred", preds, "--gt", data, "--out", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    assert "± -" not in result.output and "± n/a" in result.output
    assert "hd95 (px)" in result.output and "assd (px)" in result.output
    assert "more" not in result.output
    for i in range(7):
        assert sum(f"bad{i}" in line for line in _lines(result.output)) == 1


def test_evaluate_scores_from_the_truth_when_the_image_is_unreadable(tmp_path):
    from scarceseg.bench.evaluate import evaluate_folder

    data, preds = tmp_path / "data", tmp_path / "preds"
    _pairs(data, preds, ["a", "b"], unreadable_image=["b"])
    result = evaluate_folder(preds, data, tmp_path / "ev")
    assert result.n_evaluated == 2 and result.truth_only == ["b"] and result.skipped == []
    assert result.summary["dice"]["mean"] == 1.0


def test_evaluate_says_mm_when_the_spacing_is_known(tmp_path):
    from scarceseg.bench.evaluate import evaluate_folder

    data, preds = tmp_path / "data", tmp_path / "preds"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    preds.mkdir()
    volume = np.zeros((10, 10, 6), np.float32)
    volume[3:7, 3:7, 2:4] = 1
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), str(data / "images" / "v.nii.gz"))
    nib.save(nib.Nifti1Image(volume.astype(np.uint8), affine), str(data / "masks" / "v.nii.gz"))
    nib.save(nib.Nifti1Image(volume.astype(np.uint8), affine), str(preds / "v.nii.gz"))
    assert "hd95 (mm)" in evaluate_folder(preds, data, tmp_path / "ev").table


def test_an_unwritable_log_folder_costs_the_details_only(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("SCARCESEG_LOG_DIR", str(tmp_path / "file" / "logs"))
    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_lesion()).save(data / "good.png")
    (data / "bad.png").write_bytes(b"junk")
    result = _run("propose", data, "--out", tmp_path / "work")
    assert result.exit_code == 0 and "Logging error" not in result.output and "details in" not in result.output
    assert sum("bad.png" in line for line in _lines(result.output)) == 1


def test_segment_lists_the_files_its_layout_does_not_use(tmp_path):
    from scarceseg.methods.folder import segment_cases

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(_lesion()).save(tmp_path / "images" / "a.png")
    Image.fromarray((_lesion() > 150).astype(np.uint8)).save(tmp_path / "masks" / "a.png")
    Image.fromarray(_lesion()).save(tmp_path / "stray.png")
    result = segment_cases(tmp_path, tmp_path / "out", lambda c: (c.image[0] > 100, f"{c.case_id}.png"),
                           progress=False)
    assert any("stray.png" in note for note in result["notes"])


def test_plain_folder_names_the_sub_folders_it_does_not_read(tmp_path):
    from scarceseg.datasets import open_dataset

    Image.fromarray(_lesion()).save(tmp_path / "a.png")
    (tmp_path / "more").mkdir()
    Image.fromarray(_lesion()).save(tmp_path / "more" / "b.png")
    ds = open_dataset(tmp_path)
    assert ds.case_ids == ["a"] and any("more/" in note and "1 image" in note for note in ds.notes)
