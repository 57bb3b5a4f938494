"""The fuzz corpus of issue 16: bad inputs mixed with good ones, through `info`, `propose`, `segment`, `evaluate`.

For every command the test asserts the exit code, exactly one output line per bad file naming it, no
traceback, and that every good file was still processed. Images are tiny and the proposer and selector
are the smallest that run, so the whole module stays within seconds of work.

Decisions recorded here (and in the README's "Bad input" section):

* a 4D NIfTI with a short 4th axis (here 3) is read as channels, as MSD stores its sequences; ``info``
  says "(from the 4th NIfTI axis)", the 2D commands refuse it as 3D in one line; a 4th axis longer than
  8 is refused as a time series;
* a 16-bit PNG and names with spaces and non-ASCII letters are good input;
* a PNG named ``.tif`` is refused (the ending decides the reader; the message names the file);
* a 1x1 image is refused by the 2D methods (too small to hold a lesion); ``info`` describes it.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
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
SIZE = 40

#: file name -> what makes it bad (every one of them must be named on exactly one line).
BAD = {
    "empty.nii.gz": "a zero-byte NIfTI",
    "truncated.nii.gz": "a NIfTI cut in half",
    "png_named.tif": "a PNG with a TIFF ending",
    "zero.png": "a zero-byte PNG",
    "one_pixel.png": "a 1x1 image",
    "four_d.nii.gz": "a 4D NIfTI (3 channels): a volume, not a 2D image",
    "nan.nii.gz": "a NIfTI holding NaN",
    "no_image.h5": "an HDF5 file without 'image'",
    "text.h5": "a text file named .h5",
    "dicom_garbage": "a folder with one garbage .dcm",
    "huge.png": "a PNG whose header announces 20000 x 20000 RGB",
}
#: good files of the mixed folder: case id -> file name.
GOOD = {"good_a": "good_a.png", "good b ü": "good b ü.png", "deep16": "deep16.png", "good_c": "good_c.tif"}


def _lesion(seed: int, dtype=np.uint8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - 16 - seed) ** 2 + (xx - 20) ** 2 <= 36
    image = rng.normal(60, 8, (SIZE, SIZE))
    image[disc] += 120
    image[:, :3] = 0  # dark background at the edge
    if dtype == np.uint16:
        return np.clip(image * 200, 0, 65535).astype(np.uint16)
    return np.clip(image, 0, 255).astype(np.uint8)


def _png_header_only(path: Path, width: int, height: int) -> None:
    """A PNG whose IHDR announces ``width x height`` RGB, with a tiny IDAT (decoding would fail or explode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def build_mixed(folder: Path) -> Path:
    """Every bad input of :data:`BAD` and the good files of :data:`GOOD`, side by side in one plain folder."""
    folder.mkdir(parents=True)
    Image.fromarray(_lesion(0)).save(folder / "good_a.png")
    Image.fromarray(_lesion(2)).save(folder / "good b ü.png")
    Image.fromarray(_lesion(4, np.uint16)).save(folder / "deep16.png")
    tifffile.imwrite(folder / "good_c.tif", _lesion(6))
    (folder / "empty.nii.gz").write_bytes(b"")
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), np.eye(4)),
             str(folder / "whole.nii.gz"))
    packed = (folder / "whole.nii.gz").read_bytes()
    (folder / "whole.nii.gz").unlink()
    (folder / "truncated.nii.gz").write_bytes(packed[: len(packed) // 2])
    buffer = Path(folder / "tmp.png")
    Image.fromarray(_lesion(1)).save(buffer)
    (folder / "png_named.tif").write_bytes(buffer.read_bytes())
    buffer.unlink()
    (folder / "zero.png").write_bytes(b"")
    Image.fromarray(np.full((1, 1), 200, np.uint8)).save(folder / "one_pixel.png")
    nib.save(nib.Nifti1Image(np.random.default_rng(1).random((12, 12, 4, 3)).astype(np.float32), np.eye(4)),
             str(folder / "four_d.nii.gz"))
    nan = np.ones((12, 12, 4), np.float32)
    nan[3, 3, 1] = np.nan
    nib.save(nib.Nifti1Image(nan, np.eye(4)), str(folder / "nan.nii.gz"))
    with h5py.File(folder / "no_image.h5", "w") as f:
        f["volume"] = np.zeros((8, 8), np.float32)
    (folder / "text.h5").write_text("this is not HDF5\n" * 20, encoding="utf-8")
    (folder / "dicom_garbage").mkdir()
    (folder / "dicom_garbage" / "slice1.dcm").write_bytes(b"DICM garbage" * 50)
    _png_header_only(folder / "huge.png", 20000, 20000)
    return folder


def build_truth(folder: Path, preds: Path) -> None:
    """A pairs data set (images/ + masks/) of the good cases with bad members, and a predictions folder.

    * ``good_*``: image, mask and prediction fine;
    * ``broken_image``: unreadable image, readable mask: scored from the mask (item 15);
    * ``bad_mask``: zero-byte mask: skipped, one line;
    * ``bad_pred``: a truncated prediction: skipped, one line;
    * ``wrong_shape_pred``: a prediction of another shape: skipped, one line.
    """
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    preds.mkdir()
    truth = (_lesion(0) > 150).astype(np.uint8) * 255
    for cid in ("good_1", "good 2 ü", "broken_image", "bad_mask", "bad_pred", "wrong_shape_pred"):
        Image.fromarray(_lesion(0)).save(folder / "images" / f"{cid}.png")
        Image.fromarray(truth).save(folder / "masks" / f"{cid}.png")
        Image.fromarray(truth).save(preds / f"{cid}.png")
    (folder / "images" / "broken_image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    (folder / "masks" / "bad_mask.png").write_bytes(b"")
    (preds / "bad_pred.png").write_bytes((preds / "bad_pred.png").read_bytes()[:40])
    Image.fromarray(truth[:20]).save(preds / "wrong_shape_pred.png")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("fuzz")
    mixed = build_mixed(root / "mixed")
    build_truth(root / "truth", root / "preds")
    return {"root": root, "mixed": mixed, "truth": root / "truth", "preds": root / "preds"}


@pytest.fixture(autouse=True)
def _log_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SCARCESEG_LOG_DIR", str(tmp_path / "logs"))


def _run(*args) -> tuple[int, list[str], str]:
    result = runner.invoke(app, [str(a) for a in args])
    text = result.output
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, [line for line in text.splitlines() if line.strip()], text


def _one_line_each(lines: list[str], names, text: str) -> None:
    for name in names:
        naming = [line for line in lines if name in line]
        assert len(naming) == 1, f"{name!r} is named on {len(naming)} lines:\n{text}"


def test_corpus_has_every_bad_input_of_the_issue(corpus):
    assert sorted(p.name for p in corpus["mixed"].iterdir()) == sorted([*BAD, *GOOD.values()])


@pytest.mark.parametrize("name", sorted(BAD))
def test_info_bad_file_is_one_line(corpus, name):
    code, lines, text = _run("info", corpus["mixed"] / name)
    if name == "four_d.nii.gz":  # decided: read as 3 channels, and said so
        assert code == 0 and "channels   3" in text and "4th NIfTI axis" in text
        return
    if name == "one_pixel.png":  # info describes it; the 2D methods refuse it
        assert code == 0 and "1 x 1" in text
        return
    assert code == 1, text
    assert len(lines) == 1 and lines[0].startswith("error:") and name in lines[0], text


@pytest.mark.parametrize("name", sorted(GOOD.values()))
def test_info_good_file(corpus, name):
    code, _, text = _run("info", corpus["mixed"] / name)
    assert code == 0 and "shape      40 x 40" in text, text


def test_info_16_bit_png_keeps_its_range(corpus):
    code, _, text = _run("info", corpus["mixed"] / "deep16.png")
    assert code == 0 and "uint16" in text


def test_propose_on_the_mixed_folder(corpus, tmp_path):
    work = tmp_path / "work"
    code, lines, text = _run("propose", corpus["mixed"], "--out", work, "--config", "fast")
    assert code == 0, text
    _one_line_each(lines, sorted(BAD), text)
    index = json.loads((work / "proposals" / "index.json").read_text(encoding="utf-8"))
    assert sorted(index) == sorted(GOOD)  # every good file proposed, unicode and spaces included
    # resume: a rerun keeps the finished cases and says so, the bad files are listed again once each
    code, lines, text = _run("propose", corpus["mixed"], "--out", work, "--config", "fast")
    assert code == 0 and f"kept {len(GOOD)} finished" in text and "proposed 0 case(s)" in text, text
    _one_line_each(lines, sorted(BAD), text)


def test_propose_on_a_folder_of_only_bad_files_is_an_error(corpus, tmp_path):
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    for name in ("zero.png", "text.h5", "truncated.nii.gz"):
        (only_bad / name).write_bytes((corpus["mixed"] / name).read_bytes())
    code, lines, text = _run("propose", only_bad, "--out", tmp_path / "work")
    assert code == 1 and lines[-1].startswith("error:") and "no readable" in lines[-1], text
    _one_line_each(lines, ["zero.png", "text.h5", "truncated.nii.gz"], text)
    assert not (tmp_path / "work").exists()


def test_segment_on_the_mixed_folder(corpus, tmp_path):
    model = _tiny_selector(tmp_path / "model")
    out = tmp_path / "masks"
    code, lines, text = _run("segment", "--model", model, "--data", corpus["mixed"], "--out", out)
    assert code == 0, text
    _one_line_each(lines, sorted(BAD), text)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{cid}.png" for cid in GOOD)
    code, lines, text = _run("segment", "--model", model, "--data", corpus["mixed"], "--out", out)
    assert code == 0 and f"kept {len(GOOD)} written before" in text, text


def test_segment_on_a_folder_of_only_bad_files_is_an_error(corpus, tmp_path):
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    for name in ("zero.png", "nan.nii.gz", "one_pixel.png"):
        (only_bad / name).write_bytes((corpus["mixed"] / name).read_bytes())
    model = _tiny_selector(tmp_path / "model")
    code, lines, text = _run("segment", "--model", model, "--data", only_bad, "--out", tmp_path / "masks")
    assert code == 1 and lines[-1].startswith("error:"), text
    _one_line_each(lines, ["zero.png", "nan.nii.gz", "one_pixel.png"], text)
    assert not (tmp_path / "masks").exists()


def test_evaluate_mixed_truth_and_predictions(corpus, tmp_path):
    code, lines, text = _run("evaluate", "--pred", corpus["preds"], "--gt", corpus["truth"], "--out", tmp_path / "ev")
    assert code == 0, text
    _one_line_each(lines, ["bad_mask", "bad_pred", "wrong_shape_pred"], text)
    assert "hd95 (px)" in text  # PNG spacing is unknown: distances in pixels
    rows = (tmp_path / "ev" / "per_case.csv").read_text(encoding="utf-8").splitlines()
    scored = sorted(row.split(",")[0] for row in rows[1:])
    assert scored == ["broken_image", "good 2 ü", "good_1"]  # the unreadable image is scored from its mask
    assert "from the truth mask alone" in text and "broken_image" in text


def _tiny_selector(path: Path) -> Path:
    """An untrained selector small enough to run at once, whose proposer is the smallest that works.

    Its picks are arbitrary; the test is about which files get a mask and which get one line.
    """
    import torch

    from scarceseg.cluster.udc import UDCConfig
    from scarceseg.methods.udc_rl import Selector, SelectorConfig
    from scarceseg.nets.dqn_cnn import DQNCNN

    torch.manual_seed(0)
    cfg = SelectorConfig(input_size=32, channels=(4, 4, 4, 4), hidden=8, n_episodes=1)
    net = DQNCNN(3, cfg.input_size, 2, cfg.channels, cfg.hidden, cfg.head)
    small = UDCConfig(n_segments=60, channels=8, target_clusters=4, levels=(6,), max_iters=10, threads=1,
                      min_area=10, reference_shape=(SIZE, SIZE), candidates="extended")
    from dataclasses import asdict

    summary = {"proposer_config": {**asdict(small), "input_channels": "flair"}}
    Selector(net, cfg, seed=0, summary=summary).save(path)
    return path


def test_gzip_module_is_what_nibabel_reads(corpus):
    """The truncated NIfTI really is a cut gzip stream (so the corpus tests the decoder's error path)."""
    with pytest.raises((EOFError, OSError)):
        gzip.decompress((corpus["mixed"] / "truncated.nii.gz").read_bytes())


@pytest.mark.data
def test_real_broken_lgg_files_one_line_each_nothing_created(shared_data, tmp_path):
    """The four real LGG slices whose TIFF is broken: four lines naming them, exit 1, no WORKDIR."""
    folder = shared_data / "corrupt" / "lgg"
    images = sorted(p.name for p in (folder / "images").iterdir())
    code, lines, text = _run("propose", folder, "--out", tmp_path / "work")
    assert code == 1 and lines[-1].startswith("error:"), text
    _one_line_each(lines[:-1], images, text)
    assert not (tmp_path / "work").exists()
    code, lines, text = _run("info", folder / "images" / images[0])
    assert code == 1 and len(lines) == 1 and images[0] in lines[0] and "cannot decode TIFF" in lines[0]
