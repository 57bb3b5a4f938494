"""The app's label -> learn -> correct loop (API): learn from saved masks, suggestions ordered by uncertainty,
accept, model history and going back to an earlier model.

A tiny threshold learner is registered for these tests (through the registry, as the app reaches every
learner), on 32 x 32 synthetic images, so the loop runs in about a second; the browser test
(tests/test_web_e2e.py) runs it with the real few-shot learner.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from scarceseg.methods import registry  # noqa: E402
from scarceseg.methods.contract import Prediction, Segmenter  # noqa: E402
from scarceseg.metrics.uncertainty import binary_entropy, mask_uncertainty  # noqa: E402
from scarceseg.progress import track  # noqa: E402

SIZE = 32
LOCAL = "http://127.0.0.1:8765"


class TinyLearner(Segmenter):
    """Threshold halfway between the mean intensity inside and outside the labels; a soft sigmoid around it."""

    name = "tiny"

    def fit(self, cases, budget=None, progress=False, seed=0) -> dict:
        steps = int(getattr(budget, "steps", None) or 3)
        for _ in track(range(steps), "training tiny", enabled=progress):
            pass
        inside = np.concatenate([c.image[0][c.label > 0] for c in cases])
        outside = np.concatenate([c.image[0][c.label == 0] for c in cases])
        self.config.update(threshold=float((inside.mean() + outside.mean()) / 2),
                           scale=float((inside.mean() - outside.mean()) / 8), trained_on=len(cases))
        return {"steps": steps}

    def predict(self, case) -> Prediction:
        prob = 1.0 / (1.0 + np.exp(-(case.image[0] - self.config["threshold"]) / self.config["scale"]))
        return Prediction(prob, prob > 0.5)

    def save_files(self, folder: Path) -> None:
        (folder / "tiny.json").write_text(json.dumps(self.config), encoding="utf-8")

    @classmethod
    def load_files(cls, folder: Path, config: dict):
        return cls(json.loads((folder / "tiny.json").read_text(encoding="utf-8")))


def disk(centre=(16, 16), radius=6) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


@pytest.fixture
def folder(tmp_path: Path, monkeypatch) -> Path:
    """img0, img1 (to label): a 200 disk on 50; img2 a clear 200 disk, img3 a faint 140 disk (less certain)."""
    from PIL import Image

    monkeypatch.setitem(registry.METHODS, "tiny", registry.Entry("segmenter", f"{__name__}:TinyLearner", "test"))
    data = tmp_path / "images"
    data.mkdir()
    for i, (value, centre) in enumerate([(200, (16, 16)), (200, (12, 18)), (200, (18, 14)), (140, (15, 15))]):
        image = np.full((SIZE, SIZE), 50, np.uint8)
        image[disk(centre)] = value
        Image.fromarray(image).save(data / f"img{i}.png")
    return data


def app_client(folder: Path, work: Path, user: str = "alice") -> TestClient:
    from scarceseg.web.app import ServerConfig, create_app

    return TestClient(create_app(ServerConfig(folder=folder, workdir=work, user=user, refiner="mincut")),
                      base_url=LOCAL)


def wait(c: TestClient, job: dict) -> dict:
    seen = [job]
    for _ in range(600):
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.02)
        job = c.get(f"/api/jobs/{job['id']}").json()
        seen.append(job)
    raise AssertionError(f"job did not finish: {job}")


def bits(packed: dict) -> np.ndarray:
    import base64

    raw = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), np.uint8))
    return raw[: int(np.prod(packed["shape"]))].reshape(packed["shape"]).astype(bool)


# ---- uncertainty ------------------------------------------------------------------------------------------
def test_mask_uncertainty_is_the_mean_entropy_over_the_band() -> None:
    prob = np.zeros((10, 10))
    prob[0, :4] = 0.5  # 1 bit each
    prob[1, :4] = 1.0  # 0 bits
    prob[5, 5] = 0.01  # below the band: left out
    out = mask_uncertainty(prob)
    assert out == {"uncertainty": 0.5, "band_px": 8, "graded": True}
    assert mask_uncertainty(np.zeros((4, 4))) == {"uncertainty": 0.0, "band_px": 0, "graded": False}
    hard = np.zeros((4, 4))
    hard[1:3, 1:3] = 1
    assert mask_uncertainty(hard, hard > 0) == {"uncertainty": 0.0, "band_px": 4, "graded": False}
    mask = np.zeros((10, 10), bool)
    mask[9, 9] = True  # a mask pixel at p = 0 still counts in the band
    assert mask_uncertainty(prob, mask)["band_px"] == 9
    np.testing.assert_allclose(binary_entropy([0.0, 0.5, 1.0, 0.25]), [0.0, 1.0, 0.0, 0.811278], atol=1e-6)


def test_job_eta_comes_from_the_current_loop_only() -> None:
    from scarceseg.web.jobs import Job

    job = Job("1", "learn", status="running")
    job.progress("encoding", 0, None)
    assert job.as_dict()["eta_seconds"] is None  # no total: no ETA (the page shows no bar)
    job.progress("training", 0, 10)
    job.phase_started -= 4.0  # 4 s into the training loop
    job.progress("training", 4, 10)
    assert job.as_dict()["eta_seconds"] == pytest.approx(6.0, abs=0.5)
    job.phase_started, job.reported = job.phase_started - 2.0, job.reported - 2.0  # 2 s later, no new report
    assert job.as_dict()["eta_seconds"] == pytest.approx(4.0, abs=0.5)
    job.progress("suggesting", 0, 3)
    assert job.as_dict()["eta_seconds"] is None and job.as_dict()["total"] == 3


# ---- the loop through the API ---------------------------------------------------------------------------
def test_learn_suggest_by_uncertainty_accept_learn_again_and_go_back(folder: Path, tmp_path: Path) -> None:
    from scarceseg.io import read_mask
    from scarceseg.store import open_store

    work = tmp_path / "work"
    with open_store(work) as store:  # two images labelled by alice
        store.save_mask("img0", "final", disk((16, 16)), who="alice")
        store.save_mask("img1", "final", disk((12, 18)), who="alice")
    with app_client(folder, work) as c:
        assert c.get("/api/models/tiny").json() == {"method": "tiny", "active": None, "runs": []}
        job = wait(c, c.post("/api/learn", json={"method": "tiny", "steps": 4}).json())
        assert job["status"] == "done", job
        run = job["result"]["run"]
        assert run["run"] == "0001" and run["case_ids"] == ["img0", "img1"] and run["who"] == "alice"
        assert run["budget"] == {"epochs": None, "steps": 4} and run["created"].endswith("Z")
        assert job["result"]["suggested"]["segmented"] == 2 and job["done"] == job["total"] == 2
        assert job["message"] == "suggesting masks" and job["eta_seconds"] is None

        rows = c.get("/api/cases", params={"order": "uncertainty"}).json()["cases"]
        assert [r["case_id"] for r in rows] == ["img3", "img2", "img0", "img1"]
        assert rows[0]["uncertainty"] > rows[1]["uncertainty"] > 0 and rows[2]["uncertainty"] is None
        assert [r["case_id"] for r in c.get("/api/cases").json()["cases"]] == ["img0", "img1", "img2", "img3"]
        auto = c.get("/api/cases/img2/state").json()["auto"]
        assert auto["run"] == "0001" and auto["method"] == "tiny" and auto["graded"] is True
        suggestion = bits(auto["mask"])
        assert suggestion.sum() > 50

        # accept (key a): the suggestion is saved as alice's mask, through the save path
        st = c.post("/api/cases/img2/accept", json={}).json()
        assert st["accepted"] and st["saved"]["file"] == "masks/alice/img2.png" and st["source"] == "auto"
        assert np.array_equal(read_mask(work / "masks" / "alice" / "img2.png") > 0, suggestion)
        assert c.get("/api/cases").json()["cases"][2]["saved"]
        rows = c.get("/api/cases", params={"order": "uncertainty"}).json()["cases"]
        assert [r["case_id"] for r in rows] == ["img3", "img0", "img1", "img2"]  # saved ones: folder order
        # correcting: the adopted suggestion is the editable mask; undo goes back to it
        st = c.post("/api/cases/img3/adopt", json={}).json()
        assert st["step"] == 0 and np.array_equal(bits(st["mask"]), bits(st["auto"]["mask"]))
        st = c.post("/api/cases/img3/click", json={"y": 2, "x": 2, "positive": True}).json()
        assert st["step"] == 1 and st["can_undo"]
        st = c.post("/api/cases/img3/undo", json={}).json()
        assert st["step"] == 0 and np.array_equal(bits(st["mask"]), bits(st["auto"]["mask"]))
        st = c.post("/api/cases/img3/click", json={"y": 2, "x": 2, "positive": True}).json()
    with app_client(folder, work) as c:  # a restarted server: the adopted suggestion and its history are back
        st2 = c.get("/api/cases/img3/state").json()
        assert st2["source"] == "auto" and st2["step"] == 1 and st2["mask"] == st["mask"]
        st2 = c.post("/api/cases/img3/undo", json={}).json()
        assert st2["step"] == 0 and np.array_equal(bits(st2["mask"]), bits(st2["auto"]["mask"]))
        assert c.post("/api/cases/img3/accept", json={}).json()["saved"]["file"] == "masks/alice/img3.png"
        # refusals, one line each
        r = c.post("/api/cases/img0/accept", json={})
        assert r.status_code == 409 and "no suggestion" in r.json()["detail"]

        # learn again: from every saved / accepted mask, into a new run; the first is kept
        job = wait(c, c.post("/api/learn", json={"method": "tiny", "steps": 2}).json())
        assert job["status"] == "done", job
        assert job["result"]["run"]["run"] == "0002"
        assert job["result"]["run"]["case_ids"] == ["img0", "img1", "img2", "img3"]
        assert job["result"]["suggested"]["segmented"] == 0  # nothing left to suggest
        listed = c.get("/api/models/tiny").json()
        assert listed["active"] == "0002" and [r["run"] for r in listed["runs"]] == ["0001", "0002"]
        assert [r["active"] for r in listed["runs"]] == [False, True]
        first = work / "tiny" / "runs" / "0001"
        assert (first / "tiny.json").is_file() and json.loads((first / "run.json").read_text())["n_images"] == 2

        # go back to the first model, and suggest again with it (for bob, who has labelled nothing)
        r = c.post("/api/models/tiny/activate", json={"run": "0001", "suggest": True},
                   headers={"X-Scarceseg-User": "bob"}).json()
        assert r["run"]["run"] == "0001" and r["run"]["active"]
        job = wait(c, r["job"])
        assert job["status"] == "done" and job["result"] == {"segmented": 4, "skipped": {}, "method": "tiny",
                                                              "run": "0001"}
        assert c.get("/api/models/tiny").json()["active"] == "0001"
        assert c.get("/api/cases/img3/state", headers={"X-Scarceseg-User": "bob"}).json()["auto"]["run"] == "0001"
        r = c.post("/api/models/tiny/activate", json={"run": "0009"})
        assert r.status_code == 400 and "no run 0009 of tiny" in r.json()["detail"]
        assert c.post("/api/models/tiny/activate", json={"run": "../x"}).status_code == 422
        assert c.get("/api/models/nope").status_code == 400
        r = c.post("/api/learn", json={"method": "mincut"})
        assert r.status_code == 400 and "not a learner" in r.json()["detail"]


def test_learning_without_saved_masks_fails_in_one_line_and_leaves_no_run(folder: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    with app_client(folder, work) as c:
        job = wait(c, c.post("/api/learn", json={"method": "tiny"}).json())
        assert job["status"] == "failed" and "no saved masks to train tiny on" in job["error"]
        assert str(work) not in job["error"] and "\n" not in job["error"]
        assert c.get("/api/models/tiny").json()["runs"] == [] and list((work / "tiny" / "runs").iterdir()) == []


def test_accept_refuses_a_unit_with_the_users_own_mask(folder: Path, tmp_path: Path) -> None:
    from scarceseg.store import open_store
    from scarceseg.web.app import ServerConfig, create_app

    work = tmp_path / "work"
    with open_store(work) as store:
        store.save_mask("img2", "auto", disk((18, 14)), who="alice", note=json.dumps({"uncertainty": 0.1}))
    web = create_app(ServerConfig(folder=folder, workdir=work, user="alice", refiner="mincut"))
    own = np.where(disk((18, 14), 4), 0.9, 0.1).astype(np.float32)  # as a box drawn with the prior starts it
    web.app.state.sessions.start("alice", "img2", None, own, "box", box=(12, 8, 24, 20))
    with TestClient(web, base_url=LOCAL) as c:
        r = c.post("/api/cases/img2/accept", json={})
        assert r.status_code == 409 and "your own mask" in r.json()["detail"]
        assert not (work / "masks" / "alice" / "img2.png").exists()


def test_runs_are_published_whole_and_symlinks_are_refused(tmp_path: Path) -> None:
    from scarceseg.errors import InputError
    from scarceseg.web import runs

    work = tmp_path / "work"
    run = runs.NewRun(work, "unet")
    (run.path / "method.json").write_text("{}")
    assert runs.list_runs(work, "unet") == [] and runs.active_model_dir(work, "unet") is None  # not published
    info = run.publish({"case_ids": ["a"]})
    assert info["run"] == "0001" and runs.active_run(work, "unet") == "0001"
    assert runs.active_model_dir(work, "unet") == work / "unet" / "runs" / "0001"
    second = runs.NewRun(work, "unet")
    second.publish({"case_ids": ["a", "b"]}, activate_it=False)
    assert runs.active_run(work, "unet") == "0001" and len(runs.list_runs(work, "unet")) == 2
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "unet" / "active.json").unlink()
    (work / "unet" / "active.json").symlink_to(outside / "target.json")
    with pytest.raises(InputError, match="symbolic link"):
        runs.activate(work, "unet", "0001")
    assert not (outside / "target.json").exists()
    (work / "acwe").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match="symbolic link"):
        runs.NewRun(work, "acwe")
    assert list(outside.iterdir()) == []
