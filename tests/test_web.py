"""The browser app's API (FastAPI TestClient) on the sample folder: security, pick/click/undo/save, users, restart."""

from __future__ import annotations

import base64
import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from scarceseg.cluster.propose import propose_case  # noqa: E402
from scarceseg.datasets import open_dataset  # noqa: E402
from scarceseg.datasets.sample import make_sample_data  # noqa: E402
from scarceseg.interactive.clicks import Click  # noqa: E402
from scarceseg.interactive.refiners import MinCutRefiner  # noqa: E402
from scarceseg.io import read_mask  # noqa: E402
from scarceseg.store import open_store  # noqa: E402
from scarceseg.store.picking import candidate_at_point  # noqa: E402
from scarceseg.store.proposals import load_proposal, save_proposal  # noqa: E402
from scarceseg.web import security  # noqa: E402
from scarceseg.web.app import ServerConfig, create_app  # noqa: E402
from scarceseg.web.bench import free_port, lesion_point, start_server  # noqa: E402
from scarceseg.web.catalog import Catalog  # noqa: E402

LOCAL = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> dict:
    """Three sample slices; the first two proposed once into a base WORKDIR that tests copy."""
    root = tmp_path_factory.mktemp("web")
    data = root / "sample"
    make_sample_data(data, n=3, seed=0)
    ds = open_dataset(data)
    base = root / "base_work"
    for cid in ds.case_ids[:2]:
        save_proposal(propose_case(ds.load(cid), "fast"), base)
    truth = {cid: ds.load(cid).target for cid in ds.case_ids}
    return {"data": data, "base": base, "ids": ds.case_ids, "truth": truth}


def work_copy(sample: dict, tmp_path: Path) -> Path:
    work = tmp_path / "work"
    shutil.copytree(sample["base"], work)
    return work


def client(sample: dict, work: Path, **kw) -> TestClient:
    kw.setdefault("refiner", "mincut")  # these tests check the candidate pick + Min-Cut flow (prior: test_web_prior)
    app = create_app(ServerConfig(folder=sample["data"], workdir=work, user=kw.pop("user", "alice"), **kw))
    return TestClient(app, base_url=LOCAL)


def bits(packed: dict) -> np.ndarray:
    raw = np.unpackbits(np.frombuffer(base64.b64decode(packed["bits"]), np.uint8))
    return raw[: int(np.prod(packed["shape"]))].reshape(packed["shape"]).astype(bool)


# ---- security -------------------------------------------------------------------------------------------
def test_inside_refuses_dotdot_absolute_and_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("x")
    (root / "out").symlink_to(tmp_path / "secret.txt")
    assert security.inside(root, "sub/a.png") == (root / "sub" / "a.png").resolve()
    for bad in ["..", "../secret.txt", "sub/../../secret.txt", "/etc/passwd", "\\x", "C:/x", "a\0b", "out"]:
        with pytest.raises(security.PathOutside):
            security.inside(root, bad)


def test_catalog_and_api_leave_out_a_symlink_pointing_outside(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "files"
    folder.mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "outside.png")
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    cat = Catalog(folder)
    assert cat.case_ids == ["a"] and [r[0] for r in cat.refused] == ["link"]
    with TestClient(create_app(ServerConfig(folder=folder, user="u")), base_url=LOCAL) as c:
        assert c.get("/api/cases/a/image.png").status_code == 200
        assert c.get("/api/cases/link/image.png").status_code == 404
        assert c.get("/api/info").json()["refused"][0][0] == "link"


def test_path_traversal_is_refused(sample: dict, tmp_path: Path) -> None:
    with client(sample, work_copy(sample, tmp_path)) as c:
        for url in ["/api/cases/..%2F..%2Fetc%2Fpasswd/image.png", "/api/cases/%2Fetc%2Fpasswd/state",
                    "/api/cases/..%2Fsample/contact_sheet.png", "/static/..%2F..%2Fcli.py", "/static/%2Fetc%2Fpasswd",
                    "/static/..%2fapp.py"]:
            assert c.get(url).status_code == 404, url
        assert c.get("/static/app.js").status_code == 200
        assert c.post("/api/cases/..%2F..%2Fx/pick", json={"y": 1, "x": 1}).status_code == 404


def test_bodies_are_validated_and_size_limited(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    with client(sample, work_copy(sample, tmp_path), max_body=4096) as c:
        url = f"/api/cases/{cid}/pick"
        assert c.post(url, json={"y": 1, "x": 1, "pad": "a" * 10_000}).status_code == 413
        chunks = (b'{"y": 1, "x": 1, "pad": "' + b"a" * 1000 for _ in range(10))
        assert c.post(url, content=chunks, headers={"content-type": "application/json"}).status_code == 413
        assert c.post(url, json={"y": 1, "x": 1, "evil": 1}).status_code == 422
        assert c.post(url, json={"y": -1, "x": 1}).status_code == 422
        assert c.post(url, json={"y": "1; rm", "x": 1}).status_code == 422
        assert c.post(url, content=b"\x80\x04K\x01.", headers={"content-type": "application/octet-stream"}
                      ).status_code == 422  # a pickle is just a bad body
        assert c.post(url, json={"y": 300, "x": 1}).status_code == 400  # outside the 256x256 image
        assert c.post(f"/api/cases/{cid}/click", json={"y": 1, "x": 1}).status_code == 409  # no pick yet
        assert c.get(f"/api/cases/{cid}/state", headers={"X-Scarceseg-User": "../../x"}).status_code == 400


def test_token_host_and_bind_rules(sample: dict, tmp_path: Path) -> None:
    token = "t" * 24
    with client(sample, work_copy(sample, tmp_path), token=token) as c:
        assert c.get("/api/info").status_code == 401
        assert c.get("/api/info", headers={"X-Scarceseg-Token": "wrong" * 5}).status_code == 401
        assert c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        first = c.get(f"/?token={token}")
        assert first.status_code == 200 and c.cookies.get(security.TOKEN_COOKIE) == token
        assert c.get("/api/info").status_code == 200  # the cookie set by the first load
    with client(sample, work_copy(sample, tmp_path / "b")) as c:  # no token: loopback Host only
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"Host": "evil.example:8765"}).status_code == 403
        assert c.post(f"/api/cases/{sample['ids'][0]}/undo", json={},
                      headers={"Origin": "http://evil.example"}).status_code == 403
    assert security.check_bind("127.0.0.1", None) is None
    assert len(security.check_bind("0.0.0.0", None)) >= 24
    assert security.check_bind("0.0.0.0", token) == token
    with pytest.raises(Exception, match="16 characters"):
        security.check_bind("0.0.0.0", "short")


# ---- editing --------------------------------------------------------------------------------------------
def test_pick_click_undo_redo_save_2d(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    work = work_copy(sample, tmp_path)
    point = lesion_point(sample["truth"][cid])
    proposal = load_proposal(work, cid)
    with client(sample, work) as c:
        st = c.post(f"/api/cases/{cid}/pick", json={"y": point[0], "x": point[1]}).json()
        k = candidate_at_point(proposal, point)
        picked = proposal.masks[k]
        assert st["picked"]["candidate"] == k and np.array_equal(bits(st["mask"]), picked)
        neg = (int(np.argwhere(picked)[0][0]), int(np.argwhere(picked)[0][1]))
        st = c.post(f"/api/cases/{cid}/click", json={"y": neg[0], "x": neg[1], "positive": False}).json()
        init = np.where(picked, 0.6, 0.4).astype(np.float32)  # the default pick confidence
        expected = MinCutRefiner().refine(proposal.image[0], init, [Click(neg, False)], init=init) > 0.5
        assert np.array_equal(bits(st["mask"]), expected) and not expected[neg]
        assert st["clicks"] == [{"y": neg[0], "x": neg[1], "positive": False}] and st["can_undo"]
        st = c.post(f"/api/cases/{cid}/undo", json={}).json()
        assert np.array_equal(bits(st["mask"]), picked) and st["can_redo"] and st["step"] == 0
        st = c.post(f"/api/cases/{cid}/redo", json={}).json()
        assert np.array_equal(bits(st["mask"]), expected) and st["step"] == 1
        st = c.post(f"/api/cases/{cid}/save", json={}).json()
        saved = work / st["saved"]["file"]
        assert saved == work / "masks" / "alice" / f"{cid}.png"
        assert np.array_equal(read_mask(saved) > 0, expected) and read_mask(saved).shape == (256, 256)
        assert c.get("/api/cases").json()["n_saved"] == 1
    with open_store(work) as store:
        assert [(p.case_id, p.who, p.point) for p in store.all_picks()] == [(cid, "alice", point)]
        assert [(k.y, k.x, k.positive, k.who) for k in store.clicks(cid)] == [(*neg, False, "alice")]
        assert np.array_equal(store.latest_mask(cid, "final", who="alice"), expected)


def test_two_users_do_not_overwrite_each_other(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    work = work_copy(sample, tmp_path)
    point = lesion_point(sample["truth"][cid])
    app = create_app(ServerConfig(folder=sample["data"], workdir=work, user="alice", refiner="mincut"))
    with TestClient(app, base_url=LOCAL) as alice, TestClient(app, base_url=LOCAL,
                                                              headers={"X-Scarceseg-User": "bob"}) as bob:
        a = alice.post(f"/api/cases/{cid}/pick", json={"y": point[0], "x": point[1]}).json()
        assert bob.get(f"/api/cases/{cid}/state").json()["picked"] is None
        bob.post(f"/api/cases/{cid}/pick", json={"y": point[0], "x": point[1]})
        b = bob.post(f"/api/cases/{cid}/click", json={"y": point[0], "x": point[1], "positive": False}).json()
        a2 = alice.get(f"/api/cases/{cid}/state").json()
        assert a2["mask"] == a["mask"] and a2["clicks"] == [] and not a2["can_undo"]
        assert not np.array_equal(bits(b["mask"]), bits(a["mask"])) and len(b["clicks"]) == 1
        assert alice.post(f"/api/cases/{cid}/undo", json={}).json()["step"] == 0  # a no-op for alice
        assert bob.get(f"/api/cases/{cid}/state").json()["step"] == 1
        fa = alice.post(f"/api/cases/{cid}/save", json={}).json()["saved"]["file"]
        fb = bob.post(f"/api/cases/{cid}/save", json={}).json()["saved"]["file"]
        assert fa != fb and np.array_equal(read_mask(work / fa) > 0, bits(a["mask"]))
        assert np.array_equal(read_mask(work / fb) > 0, bits(b["mask"]))
        assert alice.get("/api/info").json()["user"] == "alice" and bob.get("/api/info").json()["user"] == "bob"
    with open_store(work) as store:
        assert sorted(p.who for p in store.all_picks()) == ["alice", "bob"]
        assert [k.who for k in store.clicks(cid)] == ["bob"]


def test_restart_restores_sessions_with_undo_history(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][1]
    work = work_copy(sample, tmp_path)
    y, x = lesion_point(sample["truth"][cid])
    with client(sample, work) as c:
        c.post(f"/api/cases/{cid}/pick", json={"y": y, "x": x})
        c.post(f"/api/cases/{cid}/click", json={"y": y, "x": x, "positive": False})
        c.post(f"/api/cases/{cid}/click", json={"y": y + 2, "x": x + 2, "positive": False})
        before = c.post(f"/api/cases/{cid}/undo", json={}).json()
    with client(sample, work) as c:
        after = c.get(f"/api/cases/{cid}/state").json()
        assert after == {**before, "refine_ms": after["refine_ms"]}
        assert after["step"] == 1 and after["can_redo"]
        redone = c.post(f"/api/cases/{cid}/redo", json={}).json()
        assert redone["step"] == 2 and len(redone["clicks"]) == 2


def test_volume_slice_pick_and_nifti_save_keep_the_geometry(tmp_path: Path) -> None:
    import nibabel as nib

    folder = tmp_path / "vols"
    folder.mkdir()
    rng = np.random.default_rng(0)
    _, yy, xx = np.mgrid[:5, :48, :48]
    vol = 100 + 10 * rng.standard_normal((5, 48, 48))
    vol[(yy - 22) ** 2 + (xx - 25) ** 2 < 10**2] += 120
    affine = np.array([[0.8, 0, 0, -10], [0, 0.9, 0, 5], [0, 0, 2.5, 30], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0).astype(np.float32), affine), folder / "vol1.nii.gz")
    work = tmp_path / "work"
    cat = Catalog(folder)
    save_proposal(propose_case(cat.slice_case("vol1", 2), "fast"), work)
    app = create_app(ServerConfig(folder=folder, workdir=work, user="carol", refiner="mincut"))
    with TestClient(app, base_url=LOCAL) as c:
        assert c.get("/api/cases/vol1").json()["shape"] == [5, 48, 48]
        assert c.get("/api/cases/vol1/image.png?z=2").status_code == 200
        assert c.get("/api/cases/vol1/state").status_code == 400  # a volume needs z
        st = c.post("/api/cases/vol1/pick", json={"y": 22, "x": 25, "z": 2}).json()
        assert st["key"] == "vol1_z2"
        saved = c.post("/api/cases/vol1/save", json={"z": 2}).json()["saved"]
    out = nib.load(work / saved["file"])
    assert out.shape == (48, 48, 5) and np.allclose(out.affine, affine)
    data = np.asarray(out.dataobj).transpose(2, 1, 0) > 0
    assert np.array_equal(data[2], bits(st["mask"])) and not data[[0, 1, 3, 4]].any()


# ---- durability with a real server process ----------------------------------------------------------
def _call(port: int, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.mark.slow
def test_sigkill_after_acknowledged_actions_loses_nothing(sample: dict, tmp_path: Path) -> None:
    cid = sample["ids"][0]
    work = work_copy(sample, tmp_path)
    y, x = lesion_point(sample["truth"][cid])
    port = free_port()
    proc = start_server(sample["data"], port, user="dave", workdir=work, log=tmp_path / "server.log",
                        extra=["--refiner", "mincut"])
    try:
        _call(port, "POST", f"/api/cases/{cid}/pick", {"y": y, "x": x})
        _call(port, "POST", f"/api/cases/{cid}/click", {"y": y, "x": x, "positive": False})
        _call(port, "POST", f"/api/cases/{cid}/click", {"y": y + 3, "x": x, "positive": False})
        _call(port, "POST", f"/api/cases/{cid}/undo", {})
        before = _call(port, "POST", f"/api/cases/{cid}/click", {"y": y, "x": x + 3, "positive": False})
    finally:
        proc.kill()  # SIGKILL: no shutdown handler runs
        proc.wait()
    assert proc.returncode == -9
    port = free_port()
    proc = start_server(sample["data"], port, user="dave", workdir=work, log=tmp_path / "server.log",
                        extra=["--refiner", "mincut"])
    try:
        after = _call(port, "GET", f"/api/cases/{cid}/state")
    finally:
        proc.kill()
        proc.wait()
    assert after == {**before, "refine_ms": after["refine_ms"]}
    assert len(after["clicks"]) == 2 and not after["can_redo"]
    with open_store(work) as store:
        assert len(store.all_picks()) == 1 and len(store.clicks(cid)) == 3
        assert all(k.who == "dave" for k in store.clicks(cid))


# ---- background jobs ----------------------------------------------------------------------------------------
def _wait(c: TestClient, job: dict) -> dict:
    import time

    for _ in range(1200):
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
        job = c.get(f"/api/jobs/{job['id']}").json()
    raise AssertionError(f"job did not finish: {job}")


@pytest.mark.slow
def test_propose_train_selector_and_segment_the_rest(sample: dict, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(sample["base"], work)
    ids = sample["ids"]
    shutil.rmtree(work / "proposals" / ids[1])  # proposed again below through the API
    with client(sample, work, episodes=2) as c:
        assert c.post("/api/segment-rest", json={}).json()["status"] in ("queued", "running", "failed")
        job = _wait(c, c.post(f"/api/cases/{ids[1]}/propose", json={}).json())
        assert job["status"] == "done" and job["done"] == job["total"] == 3
        assert c.get(f"/api/cases/{ids[1]}/contact_sheet.png").status_code == 200
        cand = c.get(f"/api/cases/{ids[1]}/candidates").json()
        assert cand["n"] == job["result"]["n_candidates"] and len(cand["colours"]) == cand["n"]
        for cid in ids[:2]:
            y, x = lesion_point(sample["truth"][cid])
            assert c.post(f"/api/cases/{cid}/pick", json={"y": y, "x": x}).status_code == 200
        job = _wait(c, c.post("/api/train", json={"episodes": 2}).json())
        assert job["status"] == "done", job
        assert job["result"]["n_images"] == 2 and (work / "selector" / "runs" / "0001" / "config.json").is_file()
        job = _wait(c, c.post("/api/segment-rest", json={}).json())
        assert job["status"] == "done" and job["result"]["segmented"] == 1 and job["done"] == job["total"] == 1
        auto = c.get(f"/api/cases/{ids[2]}/state").json()["auto"]
        assert auto is not None and bits(auto["mask"]).shape == (256, 256) and bits(auto["mask"]).any()
        assert [r["auto"] for r in c.get("/api/cases").json()["cases"]] == [False, False, True]


def test_progress_observer_sees_track_loops_in_its_thread_only() -> None:
    import threading

    from scarceseg.progress import observe_progress, track

    seen: list[tuple] = []
    other: list[int] = []
    with observe_progress(lambda d, done, total: seen.append((d, done, total))):
        assert list(track(range(3), "work", enabled=False)) == [0, 1, 2]
        t = threading.Thread(target=lambda: other.extend(track(range(2), "elsewhere", enabled=False)))
        t.start()
        t.join()
    assert seen == [("work", 0, 3), ("work", 1, 3), ("work", 2, 3), ("work", 3, 3)]
    assert other == [0, 1]
    assert list(track(range(2), "after", enabled=False)) == [0, 1] and len(seen) == 4


def test_serve_command_requires_a_token_off_loopback(sample: dict, tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    import scarceseg.web.app as web_app
    from scarceseg.cli import app as cli

    started: dict = {}
    monkeypatch.setattr(web_app, "run_server", lambda app, sock: started.update(app=app, name=sock.getsockname()))
    work = work_copy(sample, tmp_path)
    port = free_port()
    res = CliRunner().invoke(cli, ["serve", str(sample["data"]), "--host", "0.0.0.0", "--port", str(port),
                                   "--user", "frank", "--workdir", str(work)])
    assert res.exit_code == 0, res.output
    assert "?token=" in res.output and "as user 'frank'" in res.output and started["name"] == ("0.0.0.0", port)
    token = res.output.split("?token=")[1].split()[0]
    with TestClient(started["app"], base_url="http://192.0.2.1:9999") as c:
        assert c.get("/api/info").status_code == 401
        assert c.get("/api/info", headers={"X-Scarceseg-Token": token}).json()["user"] == "frank"
    res = CliRunner().invoke(cli, ["serve", str(sample["data"]), "--user", "../x", "--workdir", str(work)])
    assert res.exit_code == 1 and "user name" in res.output


def test_a_workdir_inside_the_folder_is_not_read_as_data(sample: dict, tmp_path: Path) -> None:
    data = tmp_path / "copy"
    shutil.copytree(sample["data"], data)
    hidden = data / ".scarceseg" / "masks" / "u"
    hidden.mkdir(parents=True)
    for f in (data / "images").iterdir():  # TIFFs inside a hidden WORKDIR must not become cases
        shutil.copy(f, hidden / f"X{f.name}")
    app = create_app(ServerConfig(folder=data, workdir=data / ".scarceseg", user="u"))
    with TestClient(app, base_url=LOCAL) as c:
        assert [r["case_id"] for r in c.get("/api/cases").json()["cases"]] == sample["ids"]
    assert (data / ".scarceseg" / "store.sqlite").is_file()


def test_propose_on_an_oversized_image_is_a_clear_4xx(sample: dict, tmp_path: Path) -> None:
    """Issue 16 item 5 through the server: refused before any job runs, the server stays up."""
    from scarceseg.io.limits import SizeLimit, size_limit_set

    cid = sample["ids"][2]
    work = work_copy(sample, tmp_path)
    with client(sample, work) as c:
        with size_limit_set(SizeLimit(max_voxels=10**9, max_megabytes=1.0)):  # proposing 256² needs ~24 MB
            r = c.post(f"/api/cases/{cid}/propose", json={})
        assert r.status_code == 400
        assert "limit of 1 MB" in r.json()["detail"] and "proposing" in r.json()["detail"]
        assert c.get("/api/jobs/1").status_code == 404  # no job was started
        with size_limit_set(SizeLimit(max_voxels=1000, max_megabytes=1e6)):  # over the read limit (not cached)
            r = c.post(f"/api/cases/{sample['ids'][1]}/propose", json={})
        assert r.status_code == 400 and "size limit of 1,000 values" in r.json()["detail"]
        assert c.get("/api/cases").status_code == 200


@pytest.mark.filterwarnings("ignore:case .* mask ignored")
def test_image_without_mask_or_with_a_wrong_mask_opens_in_the_app(sample: dict, tmp_path: Path) -> None:
    """Issue 16 item 7: a new image in a labelled folder can be opened (and so labelled) in the app."""
    from PIL import Image

    data = tmp_path / "data"
    shutil.copytree(sample["data"], data)
    ids = sample["ids"]
    mask_of = {cid: next(data.rglob(f"{cid}_mask.*")) for cid in ids}
    mask_of[ids[0]].unlink()  # no mask
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask_of[ids[1]])  # a mask of the wrong shape
    app = create_app(ServerConfig(folder=data, workdir=tmp_path / "work", user="alice"))
    with TestClient(app, base_url=LOCAL) as c:
        assert [r["case_id"] for r in c.get("/api/cases").json()["cases"]] == ids
        for cid in ids[:2]:
            assert c.get(f"/api/cases/{cid}/image.png").status_code == 200
            assert c.get(f"/api/cases/{cid}").json()["shape"] == [256, 256]
